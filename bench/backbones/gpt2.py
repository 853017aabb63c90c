"""GPT-2 (transformers GPT2LMHeadModel) behind the backbone interface: one attention stack, one layer per block.

Learned input tokens are exact and generation-friendly here: in a causal decoder, tokens placed first never see
the text, so their keys and values in every layer depend on themselves only. The backbone runs them through
the frozen model once per sequence (each forward without a cache, i.e. every training step and the first
step of `generate`) and puts the resulting per-layer keys/values in front of the text's, like a prefix, with
the text's positions starting after them. Logits are those of the text; beam search reorders nothing of them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bench.backbones.base import Part, PrefixKV
from bench.backbones.language import LanguageBackbone
from bench.spec import LanguageBackboneSpec


class _ShiftedPositions(nn.Module):
    """GPT-2's position table read `offset` positions later: position ids continue after the prefix."""

    def __init__(self, table: nn.Embedding, backbone: GPT2Backbone) -> None:
        super().__init__()
        self.table = table
        object.__setattr__(self, "backbone", backbone)

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        backbone: GPT2Backbone = self.__dict__["backbone"]
        return self.table(position_ids + backbone.position_offset())


class _InputTokenPass:
    """Forward pre-hook on the GPT-2 stack: at the start of a sequence, the input tokens' keys and values."""

    def __init__(self, backbone: GPT2Backbone) -> None:
        self.backbone = backbone

    def __call__(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        backbone = self.backbone
        if backbone.input_tokens is None or backbone.in_token_pass:
            return
        cache = kwargs.get("past_key_values")
        if cache is None or cache.get_seq_length() == 0 or backbone.token_kv is None:
            first = args[0] if args and args[0] is not None else kwargs.get("input_ids")
            if first is None:
                first = kwargs["inputs_embeds"]
            backbone.token_kv = backbone.input_token_kv(first.shape[0])


class GPT2Backbone(LanguageBackbone):
    kind = "gpt2"
    decoder_only = True

    def __init__(self, model: Any, tokenizer: Any, spec: LanguageBackboneSpec) -> None:
        super().__init__(model, tokenizer, spec)
        transformer: Any = model.transformer
        if spec.shift_positions:
            transformer.wpe = _ShiftedPositions(transformer.wpe, self)
        # Per layer (b, H, N, Dh) keys/values of the input tokens of the current sequence; True while computing them
        self.token_kv: list[PrefixKV] | None = None
        self.in_token_pass = False

    @classmethod
    def model_class(cls) -> Any:
        from transformers import GPT2LMHeadModel

        return GPT2LMHeadModel

    def attention_modules(self) -> list[Any]:
        return [block.attn for block in self.model.transformer.h]

    def blocks(self) -> list[Any]:
        return list(self.model.transformer.h)

    def projections(self, layer: int) -> list[tuple[nn.Module, tuple[Part, ...]]]:
        return [(self.model.transformer.h[layer].attn.c_attn, ("q", "k", "v"))]

    def mlp_projections(self) -> list[nn.Module]:
        return [block.mlp.c_proj for block in self.model.transformer.h]

    def mlp_dim(self, block: int) -> int:
        return int(self.model.transformer.h[block].mlp.c_proj.nx)  # Conv1D(out, in): nx is its input width

    # -- input tokens as the first positions of every layer -------------------------------------------------
    def set_input_tokens(self, tokens: Any) -> None:
        super().set_input_tokens(tokens)
        if tokens is not None:
            self._install_once("input_tokens", lambda: self.model.transformer.register_forward_pre_hook(
                _InputTokenPass(self), with_kwargs=True))

    def input_token_kv(self, batch: int) -> list[PrefixKV]:
        """The input tokens run through the frozen stack (after any prefix): per layer their keys and values."""
        assert self.input_tokens is not None
        tokens = self.input_tokens(batch)
        self.in_token_pass = True
        try:
            out = self.model.transformer(inputs_embeds=tokens if tokens.dim() == 3 else tokens[None], use_cache=True)
        finally:
            self.in_token_pass = False
        return [(layer.keys, layer.values) for layer in out.past_key_values.layers]

    def layer_prefix(self, layer: int, batch: int) -> PrefixKV | None:
        own = super().layer_prefix(layer, batch)
        if self.input_tokens is None or self.in_token_pass or self.token_kv is None:
            return own
        keys, values = self.token_kv[layer]
        keys, values = keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1)
        if own is None:
            return keys, values
        return torch.cat([own[0], keys.to(own[0].dtype)], dim=2), torch.cat([own[1], values.to(own[1].dtype)], dim=2)

    def position_offset(self) -> int:
        """Where the text's position ids start: after the prefix of layer 0 and after the input tokens."""
        offset = 0 if self.prefix_provider is None else int(self.prefix_provider.positions(0))
        if self.input_tokens is not None and not self.in_token_pass and self.token_kv is not None:
            offset += self.token_kv[0][0].shape[2]
        return offset

    # -- frozen computations ------------------------------------------------------------------------------
    @torch.no_grad()
    def text_kv(self, text: str) -> list[PrefixKV]:
        """GPT-2's cache for `text` (no prefix, positions from 0): per layer (tokens, heads, head_dim)."""
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        provider, tokens = self.prefix_provider, self.input_tokens
        self._set_hook("prefix_provider", None)
        self._set_hook("input_tokens", None)
        try:
            cache = self.model(input_ids=ids.to(self.model.device), use_cache=True).past_key_values
        finally:
            self._set_hook("prefix_provider", provider)
            self._set_hook("input_tokens", tokens)
        return [(layer.keys[0].transpose(0, 1), layer.values[0].transpose(0, 1)) for layer in cache.layers]

    def project_kv(self, layer: int, x: torch.Tensor) -> PrefixKV:
        """ln_1 then the key and value thirds of c_attn (GPT-2's Conv1D: weight is (in, 3·hidden))."""
        block = self.model.transformer.h[layer]
        qkv = block.attn.c_attn(block.ln_1(x))
        _, keys, values = qkv.split(self.hidden_size, dim=-1)
        return self.split_heads(keys), self.split_heads(values)
