"""The common part of the transformers backbones (gpt2.py, bart.py): prefix attention, hooks and loading.

Prefix keys/values enter through transformers' attention-function registry: a registered function
("bench_prefix") puts the layer's prefix in front of the keys/values the model computed (and cached) and
then calls transformers' own SDPA function, so the fused kernel stays in use. Self-attention keys grow at every
decoding step, so their prefix is added at every call and never written into the KV cache (beam reordering never
touches it); keys that a cache keeps unchanged over the steps (BART's cross-attention) get it once per `generate`
call, at the first step, written into that cache layer (`_Slot.with_prefix`). Loading: files.py.
The q/k/v delta and hook are forward hooks on the projections, so they act before anything is cached; the
MLP hook is a forward pre-hook on each block's second MLP projection.

Pitfalls handled: the mask interface is registered too (otherwise the causal mask silently disappears); with
a prefix q_len != kv_len, so causal attention gets an explicit mask padded on the left with visible prefix
positions; GPT-2 positions can start after the prefix (`shift_positions`), as with `past_key_values` in
Li & Liang's code and HF peft.
"""

from __future__ import annotations

import functools
from abc import abstractmethod
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.backbones import files
from bench.backbones.base import Backbone, Part, PrefixKV
from bench.errors import BenchError
from bench.spec import LanguageBackboneSpec

ATTENTION_NAME = "bench_prefix"
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
    key, value, positions = slot.with_prefix(key, value, query.shape[0]) if slot is not None else (key, value, 0)
    if positions:
        q_len, kv_len = query.shape[2], key.shape[2] - positions
        if attention_mask is None and getattr(module, "is_causal", False) and q_len > 1:
            # SDPA's is_causal aligns top-left, which is wrong once q_len != kv_len: an explicit mask, with the
            # prefix columns visible, built once per shape.
            attention_mask = _causal_prefix_mask(q_len, kv_len, positions, query.device)
        elif attention_mask is not None:
            visible: bool | float = True if attention_mask.dtype == torch.bool else 0.0
            attention_mask = F.pad(attention_mask, (positions, 0), value=visible)
        kwargs["is_causal"] = False
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


# Set on a transformers cache layer whose keys/values already hold the layer's prefix in front: the prefix positions.
PREFIX_IN_CACHE = "_bench_prefix_positions"


class _Slot:
    """What one attention module needs at call time: its global layer index and the owning backbone; during a call
    whose keys/values a cache keeps over decoding steps (BART's cross-attention), that cache and the layer's index
    in it (`kept`, set by the adapter around the call)."""

    def __init__(self, backbone: LanguageBackbone, layer: int) -> None:
        self.backbone, self.layer = backbone, layer
        self.kept: tuple[Any, int] | None = None

    def with_prefix(self, key: torch.Tensor, value: torch.Tensor, batch: int
                    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The layer's prefix in front of its keys/values, and its positions (0: no prefix).

        Keys that persist over decoding steps get the prefix once: at the first step the joined tensors replace the
        cache layer's own (which beam search then reorders like any cached keys), and later steps find it there.
        Self-attention keys grow at every step, so their prefix is joined at every call."""
        kept = self._kept_layer()
        persistent = kept is not None and key is kept.keys and value is kept.values
        if persistent and PREFIX_IN_CACHE in kept.__dict__:
            return key, value, int(kept.__dict__[PREFIX_IN_CACHE])
        prefix = self.backbone.layer_prefix(self.layer, batch)
        if prefix is None:
            return key, value, 0
        prefix_key, prefix_value = prefix
        key = torch.cat([prefix_key.to(key.dtype), key], dim=2)
        value = torch.cat([prefix_value.to(value.dtype), value], dim=2)
        if persistent:
            kept.keys, kept.values = key, value
            kept.__dict__[PREFIX_IN_CACHE] = prefix_key.shape[2]
        return key, value, prefix_key.shape[2]

    def _kept_layer(self) -> Any:
        if self.kept is None:
            return None
        cache, index = self.kept
        layers = getattr(cache, "layers", [])
        return layers[index] if index < len(layers) else None


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


_PART_INDEX = {"q": 0, "k": 1, "v": 2}


class _ProjectionHook:
    """Forward hook on a q/k/v projection: the method's q/k/v delta (LoRA), then its q/k/v hook (IA3).
    `parts` is ("q", "k", "v") for a fused projection (GPT-2's c_attn gives q|k|v) or one part."""

    def __init__(self, backbone: LanguageBackbone, layer: int, parts: tuple[Part, ...]) -> None:
        self.backbone, self.layer, self.parts = backbone, layer, parts

    def __call__(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        delta, hook = self.backbone.qkv_delta, self.backbone.qkv_hook
        width = self.backbone.attention_dim
        if delta is not None:
            deltas = delta(self.layer, inputs[0])
            if len(self.parts) == 1:
                extra = deltas[_PART_INDEX[self.parts[0]]]
                output = output if extra is None else output + extra
            else:
                pieces = [d if d is not None else output.new_zeros(*output.shape[:-1], width) for d in deltas]
                output = output + torch.cat(pieces, dim=-1)
        if hook is not None:
            if len(self.parts) == 1:
                output = hook(self.layer, self.parts[0], output)
            else:
                chunks = output.split(width, dim=-1)
                output = torch.cat([hook(self.layer, part, chunk) for part, chunk in zip(self.parts, chunks,
                                                                                           strict=True)], dim=-1)
        return output


class LanguageBackbone(Backbone):
    """Common part of the GPT-2 and BART adapters: hooks installed on the transformers modules."""

    modality = "language"
    decoder_only: bool = False  # GPT-2: one stack that reads source and target; BART: encoder + decoder
    tokenizer: Any
    model: Any  # the transformers model (a registered submodule)

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

    # -- building -----------------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def model_class(cls) -> Any:
        """The transformers class with the language-model head (imported lazily)."""

    @classmethod
    def from_spec(cls, spec: Any) -> LanguageBackbone:
        """Tokenizer + pre-trained model (local folder, Hugging Face cache, or the hub when reachable); with
        `pretrained: false`, random weights from the config of a local folder, bench's shipped copy or the cache,
        never the hub (a tokenizer that is not on this machine fails at its first use, not here)."""
        if spec.pretrained:
            tokenizer, model = files.load_pretrained(cls.model_class(), spec)
        else:
            tokenizer = files.local_tokenizer(spec)
            model = cls.model_class()(files.with_dropout(files.read_config(spec, hub=False), spec.dropout))
        if isinstance(tokenizer, files.MissingTokenizer):
            if model.config.pad_token_id is None:  # what adding [PAD] below does to the model
                model.resize_token_embeddings(model.config.vocab_size + 1, mean_resizing=False)
        elif tokenizer.pad_token is None:
            # Li & Liang add a [PAD] token to GPT-2; padding positions are masked, so its embedding never matters.
            tokenizer.add_special_tokens({"pad_token": "[PAD]"})
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        model.eval()
        return cls(model, tokenizer, spec)

    @classmethod
    def from_config(cls, spec: Any) -> LanguageBackbone:
        """From config.json alone (a local folder, bench's shipped copy, the Hugging Face cache, or the hub when
        reachable); no weights, and a tokenizer stand-in whose use says it is not loaded (No-share's init_text)."""
        return cls(cls.model_class()(files.read_config(spec, hub=True)), files.MissingTokenizer(spec), spec)

    # -- structure -------------------------------------------------------------------------------------
    @abstractmethod
    def attention_modules(self) -> list[Any]:
        """Every attention module that takes a prefix, in global layer order."""

    @abstractmethod
    def blocks(self) -> list[Any]:
        """The transformer blocks whose outputs adapters change."""

    @abstractmethod
    def projections(self, layer: int) -> list[tuple[nn.Module, tuple[Part, ...]]]:
        """The q/k/v projection modules of one attention layer and which of q, k, v each one computes."""

    @property
    def num_blocks(self) -> int:
        return len(self.blocks())

    # -- hooks -----------------------------------------------------------------------------------------
    def _install_projection_hooks(self) -> None:
        for layer in range(self.num_layers):
            for module, parts in self.projections(layer):
                module.register_forward_hook(_ProjectionHook(self, layer, parts))

    def _install_layer_output_hooks(self) -> None:
        for index, block in enumerate(self.blocks()):
            block.register_forward_hook(_BlockOutputHook(self, index))

    def set_token_hook(self, hook: Any) -> None:
        if hook is not None:
            raise BenchError(
                f"this method changes the token sequence before every layer, which the {self.kind} backbone does "
                "not support (VPT is a vision method); learned tokens at the input go through set_input_tokens.",
                hint="Use prompt_tuning or a prefix method (no_share, simple_share, deep_share) on language tasks.",
            )

    def layer_prefix(self, layer: int, batch: int) -> PrefixKV | None:
        """The keys and values (B, H, P, Dh) to put in front of one attention layer's own, or None."""
        kv = self.checked_prefix(layer, batch)
        if kv is None:
            return None
        keys, values = kv
        if keys.dim() == 3:  # (P, H, Dh): the same prefix for every sequence
            keys, values = keys.expand(batch, *keys.shape), values.expand(batch, *values.shape)
        return keys.transpose(1, 2), values.transpose(1, 2)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def backbone_parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())
