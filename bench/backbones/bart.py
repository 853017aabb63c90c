"""BART (transformers BartForConditionalGeneration) behind the backbone interface: three attention stacks.

Layers: encoder self-attention 0..L-1, decoder self-attention L..2L-1, decoder cross-attention 2L..3L-1 (each
stack gets its own prefix, as in Li & Liang's BART code); blocks: the encoder layers, then the decoder layers.
Learned input tokens go in front of the encoder's input embeddings; the encoder mask and the decoder's
cross-attention mask get as many visible positions, also inside `generate` (which runs the encoder once).
The cross-attention's prefix joins its cached keys/values once per `generate` call (they are the same at every step).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bench.backbones.base import Part, PrefixKV
from bench.backbones.language import LanguageBackbone

_ENCODER_ARGS = ("input_ids", "attention_mask", "inputs_embeds")


class _EncoderInputTokens:
    """Forward pre-hook on the encoder: the input tokens before the source embeddings, the mask widened."""

    def __init__(self, backbone: BartBackbone) -> None:
        self.backbone = backbone

    def __call__(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        tokens = self.backbone.input_tokens
        if tokens is None:
            return None
        kwargs = {**dict(zip(_ENCODER_ARGS, args, strict=False)), **kwargs}
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            embeds = module.embed_tokens(kwargs["input_ids"])
        batch = embeds.shape[0]
        prompts = tokens(batch).to(embeds.dtype).expand(batch, -1, -1)
        self.backbone.num_input_tokens = prompts.shape[1]
        kwargs["input_ids"], kwargs["inputs_embeds"] = None, torch.cat([prompts, embeds], dim=1)
        kwargs["attention_mask"] = _widen(kwargs.get("attention_mask"), prompts.shape[1])
        return (), kwargs


class _CrossAttentionMask:
    """Forward pre-hook on the decoder: the encoder mask widened by the input tokens the encoder output holds."""

    def __init__(self, backbone: BartBackbone) -> None:
        self.backbone = backbone

    def __call__(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        mask, states = kwargs.get("encoder_attention_mask"), kwargs.get("encoder_hidden_states")
        added = self.backbone.num_input_tokens
        if self.backbone.input_tokens is None or mask is None or states is None or mask.dim() != 2:
            return None
        if states.shape[1] != mask.shape[1] + added:
            return None  # the mask already covers the tokens (or the encoder output came from elsewhere)
        return args, {**kwargs, "encoder_attention_mask": _widen(mask, added)}


def _keep_cross_cache(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Forward pre-hook on a decoder cross-attention: the cache that keeps its keys/values over decoding steps, so
    its prefix is put in front once per `generate` call (language.py, `_Slot.with_prefix`)."""
    cache = kwargs.get("past_key_values")
    cross = getattr(cache, "cross_attention_cache", None)
    module.__dict__["_bench_slot"].kept = None if cross is None else (cross, module.layer_idx)


def _release_cross_cache(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
    module.__dict__["_bench_slot"].kept = None


def _widen(mask: torch.Tensor | None, added: int) -> torch.Tensor | None:
    """A 2-D padding mask with `added` visible positions in front."""
    if mask is None or mask.dim() != 2:
        return mask
    return torch.cat([mask.new_ones(mask.shape[0], added), mask], dim=1)


class BartBackbone(LanguageBackbone):
    kind = "bart"

    def __init__(self, model: Any, tokenizer: Any, spec: Any) -> None:
        super().__init__(model, tokenizer, spec)
        self.num_input_tokens = 0  # input tokens in front of the current encoder output
        for layer in self._layers()[1]:
            layer.encoder_attn.register_forward_pre_hook(_keep_cross_cache, with_kwargs=True)
            layer.encoder_attn.register_forward_hook(_release_cross_cache, with_kwargs=True, always_call=True)

    @classmethod
    def model_class(cls) -> Any:
        from transformers import BartForConditionalGeneration

        return BartForConditionalGeneration

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

    def stack_names(self) -> list[str]:
        return ["encoder self", "decoder self", "decoder cross"]

    def projections(self, layer: int) -> list[tuple[nn.Module, tuple[Part, ...]]]:
        attention = self.attention_modules()[layer]
        return [(attention.q_proj, ("q",)), (attention.k_proj, ("k",)), (attention.v_proj, ("v",))]

    def mlp_projections(self) -> list[nn.Module]:
        return [block.fc2 for block in self.blocks()]

    def set_input_tokens(self, tokens: Any) -> None:
        super().set_input_tokens(tokens)
        if tokens is not None:
            self._install_once("input_tokens", self._install_input_token_hooks)

    def _install_input_token_hooks(self) -> None:
        inner = self.model.model
        inner.encoder.register_forward_pre_hook(_EncoderInputTokens(self), with_kwargs=True)
        inner.decoder.register_forward_pre_hook(_CrossAttentionMask(self), with_kwargs=True)

    def project_kv(self, layer: int, x: torch.Tensor) -> PrefixKV:
        """BART is post-LayerNorm: a layer's attention input is already normalised, so only W_K / W_V."""
        attention = self.attention_modules()[layer]
        return self.split_heads(attention.k_proj(x)), self.split_heads(attention.v_proj(x))
