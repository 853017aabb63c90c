"""GPT-2 and BART (transformers) behind the backbone interface, so the prefix method files work unchanged.

Prefix keys/values enter through transformers' attention-function registry: a registered function
("bench_prefix") puts the layer's prefix in front of the keys/values the model computed (and cached) and
then calls transformers' own SDPA function, so the fused kernel stays in use. Because the prefix is added
inside the attention function it is never written into the KV cache: beam reordering never touches it.

Layer numbering (what a method sees as `layer`): GPT-2 has one stack (its blocks); BART has three
prefix stacks (reference §1.2): encoder self-attention 0..L-1, decoder self-attention L..2L-1 and decoder
cross-attention 2L..3L-1. Bottleneck adapters use blocks instead (GPT-2 blocks; BART encoder then
decoder layers).

Pitfalls handled (reference/backbones.md): the mask interface is registered too (otherwise the causal
mask silently disappears); with a prefix q_len != kv_len, so causal attention gets an explicit mask
padded on the left with visible prefix positions; GPT-2 positions can start after the prefix
(`shift_positions`), as with `past_key_values` in Li & Liang's code and HF peft.
"""

from __future__ import annotations

import functools
from abc import abstractmethod
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.backbones.base import Backbone, PrefixKV
from bench.errors import BenchError
from bench.spec import LanguageBackboneSpec

ATTENTION_NAME = "bench_prefix"
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
_REGISTERED = False


def _register_attention() -> None:
    """Register the prefix attention function and its mask function once per process."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, prefix_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    _REGISTERED = True


def prefix_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, **kwargs: Any) -> tuple[torch.Tensor, Any]:
    """SDPA with the layer's prefix keys/values (B, H, P, Dh) in front of the model's own keys/values."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    slot = module.__dict__.get("_bench_slot")
    prefix = slot.prefix(query.shape[0]) if slot is not None else None
    if prefix is not None:
        prefix_key, prefix_value = prefix
        positions = prefix_key.shape[2]
        q_len, kv_len = query.shape[2], key.shape[2]
        key = torch.cat([prefix_key.to(key.dtype), key], dim=2)
        value = torch.cat([prefix_value.to(value.dtype), value], dim=2)
        if attention_mask is None and getattr(module, "is_causal", False) and q_len > 1:
            # SDPA's is_causal aligns top-left, which is wrong once q_len != kv_len: an explicit mask, with the
            # prefix columns visible, built once per shape.
            attention_mask = _causal_prefix_mask(q_len, kv_len, positions, query.device)
        elif attention_mask is not None:
            visible: bool | float = True if attention_mask.dtype == torch.bool else 0.0
            attention_mask = F.pad(attention_mask, (positions, 0), value=visible)
        kwargs["is_causal"] = False
    else:
        positions = 0
    if slot is not None and slot.backbone.attention_record is not None:
        slot.backbone.attention_record.append(
            (slot.layer, positions, _attention_probabilities(module, query, key, attention_mask, kwargs)))
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def _attention_probabilities(module: nn.Module, query: torch.Tensor, key: torch.Tensor,
                             attention_mask: torch.Tensor | None, kwargs: dict[str, Any]) -> torch.Tensor:
    """The softmax the SDPA call computes, made explicit (B, H, Q, K), for `bench analyze attention` only."""
    scaling = kwargs.get("scaling") or query.shape[-1] ** -0.5
    scores = (query.float() @ key.float().transpose(-1, -2)) * scaling
    q_len, kv_len = query.shape[2], key.shape[2]
    causal = kwargs.get("is_causal")
    causal = getattr(module, "is_causal", True) if causal is None else causal  # as sdpa_attention_forward decides
    if attention_mask is None and causal and q_len > 1:
        attention_mask = _causal_prefix_mask(q_len, kv_len, 0, query.device)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, float("-inf"))
        else:
            scores = scores + attention_mask.float()
    return scores.softmax(dim=-1).detach().cpu()


@functools.lru_cache(maxsize=32)
def _causal_prefix_mask(q_len: int, kv_len: int, positions: int, device: torch.device) -> torch.Tensor:
    causal = torch.ones(q_len, kv_len, dtype=torch.bool, device=device).tril(kv_len - q_len)
    return F.pad(causal, (positions, 0), value=True)[None, None]


class _Slot:
    """What one attention module needs at call time: its global layer index and the owning backbone."""

    def __init__(self, backbone: LanguageBackbone, layer: int) -> None:
        self.backbone, self.layer = backbone, layer

    def prefix(self, batch: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        provider = self.backbone.prefix_provider
        kv = provider(self.layer, batch) if provider is not None else None
        if kv is None:
            return None
        keys, values = kv
        if keys.dim() == 3:  # (P, H, Dh): the same prefix for every sequence
            keys, values = keys.expand(batch, *keys.shape), values.expand(batch, *values.shape)
        return keys.transpose(1, 2), values.transpose(1, 2)  # (B, H, P, Dh)


class _ShiftedPositions(nn.Module):
    """GPT-2's position table read `offset` positions later: position ids continue after the prefix."""

    def __init__(self, table: nn.Embedding, backbone: LanguageBackbone) -> None:
        super().__init__()
        self.table = table
        object.__setattr__(self, "backbone", backbone)

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        backbone: LanguageBackbone = self.__dict__["backbone"]
        offset = backbone.prefix_positions(0)
        return self.table(position_ids + offset)


class _BlockOutputHook:
    """Forward hook: the method's adapter on a block's output. An object (not a closure), so a deep copy
    of the backbone gets hooks that point at the copy."""

    def __init__(self, backbone: LanguageBackbone, index: int) -> None:
        self.backbone, self.index = backbone, index

    def __call__(self, module: nn.Module, inputs: Any, output: Any) -> Any:
        adapter = self.backbone.layer_output_hook
        if adapter is None:
            return output
        if isinstance(output, tuple):
            return (adapter(self.index, output[0]), *output[1:])
        return adapter(self.index, output)


class _DeltaHook:
    """Forward hook: adds the method's q/k/v delta to a projection (fused: GPT-2's c_attn gives q|k|v)."""

    def __init__(self, backbone: LanguageBackbone, layer: int, part: int, fused: bool) -> None:
        self.backbone, self.layer, self.part, self.fused = backbone, layer, part, fused

    def __call__(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        delta = self.backbone.qkv_delta
        if delta is None:
            return output
        deltas = delta(self.layer, inputs[0])
        if not self.fused:
            extra = deltas[self.part]
            return output if extra is None else output + extra
        width = self.backbone.hidden_size
        pieces = [d if d is not None else output.new_zeros(*output.shape[:-1], width) for d in deltas]
        return output + torch.cat(pieces, dim=-1)


class LanguageBackbone(Backbone):
    """Common part of the GPT-2 and BART adapters: hooks installed on the transformers modules."""

    kind: str = ""
    tokenizer: Any
    model: Any  # the transformers model (a registered submodule)
    supports_token_hooks = False
    prefix_mlp_scope = "stack"  # language Deep-share: one table + one MLP per stack (reference §1.2)

    def __init__(self, model: Any, tokenizer: Any, spec: LanguageBackboneSpec) -> None:
        super().__init__()
        self.model = model
        object.__setattr__(self, "tokenizer", tokenizer)
        self.spec = spec
        config: Any = model.config
        self.hidden_size = int(config.hidden_size)
        self.num_heads = int(config.num_attention_heads)
        self.head_dim = self.hidden_size // self.num_heads
        self.num_prefix_tokens = 0
        # (layer, prefix positions, probabilities) per attention call while a list; None outside analyses
        self.attention_record: list[tuple[int, int, torch.Tensor]] | None = None
        _register_attention()
        model.set_attn_implementation(ATTENTION_NAME)
        attentions = self.attention_modules()
        self.num_layers = len(attentions)
        for layer, module in enumerate(attentions):
            module.__dict__["_bench_slot"] = _Slot(self, layer)  # plain attribute: not a submodule
        self._hooks_installed: set[str] = set()

    # Forward hooks are installed only when a method needs them, so prefix methods pay nothing for them.
    def set_qkv_delta(self, delta: Any) -> None:
        super().set_qkv_delta(delta)
        if delta is not None and "qkv" not in self._hooks_installed:
            self._install_projection_hooks()
            self._hooks_installed.add("qkv")

    def set_layer_output_hook(self, hook: Any) -> None:
        super().set_layer_output_hook(hook)
        if hook is not None and "blocks" not in self._hooks_installed:
            for index, block in enumerate(self.blocks()):
                block.register_forward_hook(_BlockOutputHook(self, index))
            self._hooks_installed.add("blocks")

    @property
    def num_blocks(self) -> int:
        return len(self.blocks())

    # -- structure -------------------------------------------------------------------------------------
    @abstractmethod
    def attention_modules(self) -> list[Any]:
        """Every attention module that takes a prefix, in global layer order."""

    @abstractmethod
    def blocks(self) -> list[Any]:
        """The transformer blocks whose outputs adapters change."""

    def stacks(self) -> list[range]:
        """Layer ranges that share one Deep-share table and MLP (GPT-2: one; BART: three)."""
        return [range(self.num_layers)]

    # -- prompt / prefix initialisation ----------------------------------------------------------------
    def new_prefix_parameter(self, shape: tuple[int, ...]) -> nn.Parameter:
        """Li & Liang / ReparamPrefix initialise language prefixes from N(0, 1) (nn.Embedding's default)."""
        return nn.Parameter(torch.randn(shape))

    def prefix_positions(self, layer: int) -> int:
        provider = self.prefix_provider
        if provider is None or not self.spec.shift_positions:
            return 0
        positions = getattr(provider, "positions", None)
        return int(positions(layer)) if callable(positions) else 0

    def set_token_hook(self, hook: Any) -> None:
        if hook is not None:
            raise BenchError(
                f"this method inserts prompt tokens into the input sequence, which the {self.kind} backbone does "
                "not support (VPT is a vision method).",
                hint="Use a prefix method (no_share, simple_share, deep_share) or lora / adapter / bitfit / full_ft.",
            )

    # -- LoRA and adapters ------------------------------------------------------------------------------
    @abstractmethod
    def _install_projection_hooks(self) -> None:
        """Forward hooks on the q/k/v projections that add the method's deltas (LoRA)."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def backbone_parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


class GPT2Backbone(LanguageBackbone):
    kind = "gpt2"

    def __init__(self, model: Any, tokenizer: Any, spec: LanguageBackboneSpec) -> None:
        super().__init__(model, tokenizer, spec)
        transformer: Any = model.transformer
        if spec.shift_positions:
            transformer.wpe = _ShiftedPositions(transformer.wpe, self)

    def attention_modules(self) -> list[Any]:
        return [block.attn for block in self.model.transformer.h]

    def blocks(self) -> list[Any]:
        return list(self.model.transformer.h)

    def _install_projection_hooks(self) -> None:
        for layer, attention in enumerate(self.attention_modules()):
            attention.c_attn.register_forward_hook(_DeltaHook(self, layer, 0, fused=True))

    @torch.no_grad()
    def text_kv(self, text: str) -> list[PrefixKV]:
        """GPT-2's cache for `text` (no prefix, positions from 0): per layer (tokens, heads, head_dim)."""
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        provider = self.prefix_provider
        object.__setattr__(self, "prefix_provider", None)
        try:
            cache = self.model(input_ids=ids.to(self.model.device), use_cache=True).past_key_values
        finally:
            object.__setattr__(self, "prefix_provider", provider)
        return [(layer.keys[0].transpose(0, 1), layer.values[0].transpose(0, 1)) for layer in cache.layers]

    def project_kv(self, layer: int, x: torch.Tensor) -> PrefixKV:
        """ln_1 then the key and value thirds of c_attn (GPT-2's Conv1D: weight is (in, 3·hidden))."""
        block = self.model.transformer.h[layer]
        qkv = block.attn.c_attn(block.ln_1(x))
        _, keys, values = qkv.split(self.hidden_size, dim=-1)
        return self.split_heads(keys), self.split_heads(values)


class BartBackbone(LanguageBackbone):
    kind = "bart"

    def _layers(self) -> tuple[list[Any], list[Any]]:
        inner = self.model.model
        return list(inner.encoder.layers), list(inner.decoder.layers)

    def attention_modules(self) -> list[Any]:
        encoder, decoder = self._layers()
        return ([layer.self_attn for layer in encoder] + [layer.self_attn for layer in decoder]
                + [layer.encoder_attn for layer in decoder])

    def blocks(self) -> list[Any]:
        encoder, decoder = self._layers()
        return encoder + decoder

    def stacks(self) -> list[range]:
        per_stack = self.num_layers // 3
        return [range(i * per_stack, (i + 1) * per_stack) for i in range(3)]

    def _install_projection_hooks(self) -> None:
        for layer, attention in enumerate(self.attention_modules()):
            attention.q_proj.register_forward_hook(_DeltaHook(self, layer, 0, fused=False))
            attention.k_proj.register_forward_hook(_DeltaHook(self, layer, 1, fused=False))
            attention.v_proj.register_forward_hook(_DeltaHook(self, layer, 2, fused=False))

    def project_kv(self, layer: int, x: torch.Tensor) -> PrefixKV:
        """BART is post-LayerNorm: a layer's attention input is already normalised, so only W_K / W_V."""
        attention = self.attention_modules()[layer]
        return self.split_heads(attention.k_proj(x)), self.split_heads(attention.v_proj(x))


def resolve_model_path(name: str) -> str:
    """'bench:<asset>' -> the folder shipped in bench/assets; anything else is a hub id or a folder."""
    if name.startswith("bench:"):
        return str(ASSETS_DIR / name.removeprefix("bench:"))
    return name


def build_language_backbone(spec: LanguageBackboneSpec) -> LanguageBackbone:
    """Load tokenizer + model (local folder, hub cache, or the network) or build it from its config."""
    from transformers import AutoConfig, AutoTokenizer, BartForConditionalGeneration, GPT2LMHeadModel

    source = resolve_model_path(spec.model)
    model_cls: Any = GPT2LMHeadModel if spec.kind == "gpt2" else BartForConditionalGeneration
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, revision=spec.revision)
        config = AutoConfig.from_pretrained(source, revision=spec.revision, **spec.config_overrides)
        if spec.dropout is not None:
            for name in ("resid_pdrop", "embd_pdrop", "attn_pdrop", "dropout", "attention_dropout"):
                if hasattr(config, name):
                    setattr(config, name, spec.dropout)
        if spec.pretrained:
            model = model_cls.from_pretrained(source, revision=spec.revision, config=config)
        else:
            model = model_cls(config)
    except OSError as exc:
        raise BenchError(
            f"cannot load the {spec.kind} model '{spec.model}': {str(exc).splitlines()[0]}",
            field="backbone.model",
            hint="With network access the hub downloads it once into the Hugging Face cache; offline, "
            "point backbone.model at a local folder holding config.json, the weights and the tokenizer files "
            "(e.g. from `huggingface-cli download <id>` on a machine with network).",
        ) from exc
    if tokenizer.pad_token is None:
        # Li & Liang add a [PAD] token to GPT-2; padding positions are masked, so its embedding never matters.
        tokenizer.add_special_tokens({"pad_token": "[PAD]"})
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.eval()
    backbone_cls = GPT2Backbone if spec.kind == "gpt2" else BartBackbone
    return backbone_cls(model, tokenizer, spec)
