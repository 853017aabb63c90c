"""The backbone interface every method is written against (DESIGN.md, "The backbone interface").

A backbone exposes shape facts, per-layer prefix keys/values, the layer's own frozen K/V projection and
token hooks. It must not contain method-specific code: methods attach to these hooks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

# Keys and values for one layer, shaped (P, heads, head_dim) or (batch, P, heads, head_dim).
PrefixKV = tuple[torch.Tensor, torch.Tensor]
# (layer index, batch size) -> the prefix of that layer, or None for no prefix there.
PrefixProvider = Callable[[int, int], PrefixKV | None]
# (layer index, hidden states (batch, tokens, hidden)) -> hidden states; called before each layer
# (token hook) or after each layer (layer-output hook).
TokenHook = Callable[[int, torch.Tensor], torch.Tensor]
# (layer index, normalised attention input (batch, tokens, hidden)) -> additive deltas for the query, key
# and value projections (each (batch, tokens, heads*head_dim) or None), e.g. LoRA.
QKVDelta = Callable[[int, torch.Tensor], tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]]


class Backbone(nn.Module, ABC):
    """A frozen pre-trained network with hooks for prefix K/V and prompt tokens."""

    num_layers: int
    hidden_size: int
    num_heads: int
    head_dim: int
    num_prefix_tokens: int  # tokens before the patches (CLS); prompts are inserted after them
    # Deep-share's reparameterisation in the reference code: one MLP per layer (vision) or one table and one MLP
    # shared by all layers of an attention stack (language, Li & Liang).
    prefix_mlp_scope: str = "layer"

    def __init__(self) -> None:
        super().__init__()
        self.prefix_provider: PrefixProvider | None = None
        self.token_hook: TokenHook | None = None
        self.layer_output_hook: TokenHook | None = None
        self.qkv_delta: QKVDelta | None = None

    def set_prefix_provider(self, provider: PrefixProvider | None) -> None:
        if provider is not None and self.prefix_provider is not None:
            raise RuntimeError("a prefix provider is already attached to this backbone")
        self._set_hook("prefix_provider", provider)

    def set_token_hook(self, hook: TokenHook | None) -> None:
        """`hook(layer, hidden)` runs before each layer: insert or replace tokens (VPT)."""
        if hook is not None and self.token_hook is not None:
            raise RuntimeError("a token hook is already attached to this backbone")
        self._set_hook("token_hook", hook)

    def set_layer_output_hook(self, hook: TokenHook | None) -> None:
        """`hook(layer, hidden)` runs on each layer's output (bottleneck adapters)."""
        if hook is not None and self.layer_output_hook is not None:
            raise RuntimeError("a layer-output hook is already attached to this backbone")
        self._set_hook("layer_output_hook", hook)

    def set_qkv_delta(self, delta: QKVDelta | None) -> None:
        """`delta(layer, x)` adds to the frozen query/key/value projections of x (LoRA)."""
        if delta is not None and self.qkv_delta is not None:
            raise RuntimeError("a q/k/v delta is already attached to this backbone")
        self._set_hook("qkv_delta", delta)

    def _set_hook(self, name: str, hook: object) -> None:
        # Plain attribute, never a registered submodule: the method's module belongs to the method (its
        # parameters, train/eval mode and state dict), not to the frozen backbone.
        object.__setattr__(self, name, hook)

    @property
    def num_blocks(self) -> int:
        """Transformer blocks (what adapters follow); equal to num_layers unless a block has several attentions."""
        return self.num_layers

    def stacks(self) -> list[range]:
        """Layer ranges of the separate attention stacks (one for ViT and GPT-2; three for BART)."""
        return [range(self.num_layers)]

    def new_prefix_parameter(self, shape: tuple[int, ...]) -> nn.Parameter:
        """A prompt / prefix table initialised as the reference code does for this backbone family."""
        from bench.prompting import uniform_parameter

        return uniform_parameter(shape, self.prompt_init_bound)

    @property
    def prompt_init_bound(self) -> float:
        """Bound of the uniform init of prompt / prefix vectors (VPT: sqrt(6 / (3·patch² + hidden)))."""
        return float((6.0 / (2 * self.hidden_size)) ** 0.5)  # xavier-uniform of a hidden x hidden matrix

    @abstractmethod
    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        """Vision: images (batch, 3, H, W) -> features (batch, hidden). Language: the transformers model's call."""

    def text_kv(self, text: str) -> list[PrefixKV]:
        """Per layer, the frozen model's own keys and values (P, heads, head_dim) for a text (language models)."""
        from bench.errors import BenchError

        raise BenchError("initialising a prefix from text needs a decoder-only language backbone (GPT-2).",
                         field="hparams.init_text", hint="Leave init_text unset on this task.")

    @abstractmethod
    def project_kv(self, layer: int, x: torch.Tensor) -> PrefixKV:
        """The layer's own frozen LayerNorm + W_K / W_V (with bias): (..., P, hidden) -> (..., P, heads, head_dim)."""

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(..., hidden) -> (..., heads, head_dim): contiguous chunks, the layout of the projected keys."""
        return x.unflatten(-1, (self.num_heads, self.head_dim))

    def backbone_parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
