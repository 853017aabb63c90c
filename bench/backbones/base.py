"""The backbone interface every method is written against: shape facts and hooks, nothing else.

A method never sees module names or model families: it reads the shape facts and installs its functions
through the `set_*` hooks below. The backbone must not contain code that belongs to one method (no method
defaults, no method-specific initialisation); adapters (vit.py, gpt2.py, bart.py) only implement the hooks.
docs/methods.md is the user guide with the full hook reference.

Layer numbering: `layer` counts attention layers (ViT and GPT-2: the blocks; BART: encoder self-attention
0..L-1, decoder self-attention L..2L-1, decoder cross-attention 2L..3L-1, see `stacks()`); `block` counts
transformer blocks (what has one MLP and one output: BART's encoder layers, then its decoder layers).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import torch
from torch import nn

from bench.errors import BenchError

# Keys and values for one layer, each (P, heads, head_dim) or (batch, P, heads, head_dim).
PrefixKV = tuple[torch.Tensor, torch.Tensor]
Part = Literal["q", "k", "v"]


@runtime_checkable
class PrefixProvider(Protocol):
    """Prefix keys/values in projected space, concatenated in front of each layer's own keys and values.

    `provider(layer, batch)` returns that layer's (keys, values), each (P, heads, head_dim) for the whole batch
    or (batch, P, heads, head_dim) per example, or None for no prefix there. They are never queries and produce
    no output tokens. `provider.positions(layer)` states P for that layer (0 where it returns None): GPT-2
    starts the text's position ids after `positions(0)` (as with `past_key_values`), and the backbone checks
    every returned prefix against it. A plain function can be used with `set_prefix_provider(fn, positions=P)`.
    """

    def __call__(self, layer: int, batch: int) -> PrefixKV | None: ...

    def positions(self, layer: int) -> int: ...


class InputTokens(Protocol):
    """`tokens(batch)` -> learned vectors (N, hidden) or (batch, N, hidden), put in front of the input sequence.

    They are inserted where token embeddings are: ViT after the class token, after the position embedding (as
    VPT does); GPT-2 and BART before the first token, where they take positions 0..N-1 and the text starts at N.
    They attend and are attended like tokens (BART: the decoder's cross-attention sees them too) but produce no
    output: logits and features are those of the real tokens only.
    """

    def __call__(self, batch: int) -> torch.Tensor: ...


class TokenHook(Protocol):
    """`hook(layer, hidden)` with hidden (batch, tokens, hidden) -> hidden states, possibly with more tokens.

    As a token hook it runs before each layer (ViT only: VPT-deep replaces its prompts there); as a layer-output
    hook it runs on each block's output (bottleneck adapters; then `layer` is the block index).
    """

    def __call__(self, layer: int, hidden: torch.Tensor) -> torch.Tensor: ...


class QKVDelta(Protocol):
    """`delta(layer, x)` with x the attention input (batch, tokens, hidden), after the layer's own LayerNorm
    where it has one -> additive deltas (q, k, v), each (batch, tokens, heads*head_dim) or None (LoRA)."""

    def __call__(self, layer: int, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None,
                                                             torch.Tensor | None]: ...


class QKVHook(Protocol):
    """`hook(layer, part, projected)` -> the same shape: changes one projection's output (IA3 scaling).

    `part` is "q", "k" or "v"; `projected` is that projection's output (with bias and any q/k/v delta),
    (batch, tokens, heads*head_dim) with heads as contiguous chunks of head_dim (`split_heads` gives the heads),
    before the attention and before anything is cached. Keys and values that come from a cache are not
    projected again (BART's cross-attention during generation), so elementwise changes are the natural use.
    """

    def __call__(self, layer: int, part: Part, projected: torch.Tensor) -> torch.Tensor: ...


class MLPHook(Protocol):
    """`hook(block, activations)` -> the same shape, with activations (batch, tokens, mlp_dim(block)): the MLP's
    hidden activations after the activation function, the input of its second projection (IA3's l_ff)."""

    def __call__(self, block: int, activations: torch.Tensor) -> torch.Tensor: ...


class Backbone(nn.Module, ABC):
    """A frozen pre-trained network with shape facts and hooks (see the module docstring and docs/methods.md).

    Shape facts: `kind` (its registry name), `modality` ("vision" or "language"), `num_layers` (attention layers),
    `num_blocks`, `hidden_size`, `num_heads`, `head_dim`, `attention_dim` (= heads * head_dim), `mlp_dim(block)`,
    `num_prefix_tokens` (tokens before the patches: ViT's CLS), `patch_size` (ViT, else None), `stacks()`.
    Each `set_*` accepts one function (a second raises) and None to remove it.
    """

    kind: ClassVar[str] = ""
    modality: ClassVar[Literal["vision", "language"]]
    num_layers: int
    hidden_size: int
    num_heads: int
    head_dim: int
    num_prefix_tokens: int = 0
    patch_size: tuple[int, int] | None = None

    def __init__(self) -> None:
        super().__init__()
        self._set_hook("prefix_provider", None)
        self._set_hook("input_tokens", None)
        self._set_hook("token_hook", None)
        self._set_hook("layer_output_hook", None)
        self._set_hook("qkv_delta", None)
        self._set_hook("qkv_hook", None)
        self._set_hook("mlp_hook", None)
        self._hooks_installed: set[str] = set()

    # ------------------------------------------------------------------ hooks
    prefix_provider: PrefixProvider | None
    input_tokens: InputTokens | None
    token_hook: TokenHook | None
    layer_output_hook: TokenHook | None
    qkv_delta: QKVDelta | None
    qkv_hook: QKVHook | None
    mlp_hook: MLPHook | None

    def set_prefix_provider(self, provider: Any, positions: int | None = None) -> None:
        """Prefix keys/values per layer (a PrefixProvider). A provider without `positions(layer)` needs
        `positions=P` (the same P in every layer); a provider with neither is refused."""
        if provider is not None and positions is not None:
            provider = _CountedPrefix(provider, positions)
        if provider is not None and not isinstance(provider, PrefixProvider):
            raise BenchError(
                "a prefix provider must state how many positions it adds: give it a `positions(layer) -> int` "
                "method or pass `set_prefix_provider(fn, positions=P)`.",
                hint="GPT-2 starts the text's position ids after the prefix, so the count cannot be guessed.")
        self._replace("prefix_provider", provider)

    def set_input_tokens(self, tokens: InputTokens | None) -> None:
        """Learned tokens at the input (prompt tuning): see InputTokens."""
        self._replace("input_tokens", tokens)

    def set_token_hook(self, hook: TokenHook | None) -> None:
        """`hook(layer, hidden)` before each layer, to insert or replace tokens (VPT-deep; ViT only)."""
        self._replace("token_hook", hook)

    def set_layer_output_hook(self, hook: TokenHook | None) -> None:
        """`hook(block, hidden)` on each block's output (bottleneck adapters)."""
        self._replace("layer_output_hook", hook)
        if hook is not None:
            self._install_once("layer_output", self._install_layer_output_hooks)

    def set_qkv_delta(self, delta: QKVDelta | None) -> None:
        """`delta(layer, x)` adds to the frozen query/key/value projections of the attention input (LoRA)."""
        self._replace("qkv_delta", delta)
        if delta is not None:
            self._install_once("projections", self._install_projection_hooks)

    def set_qkv_hook(self, hook: QKVHook | None) -> None:
        """`hook(layer, part, projected)` on each projected query, key and value (IA3)."""
        self._replace("qkv_hook", hook)
        if hook is not None:
            self._install_once("projections", self._install_projection_hooks)

    def set_mlp_hook(self, hook: MLPHook | None) -> None:
        """`hook(block, activations)` on each MLP's hidden activations (IA3's feed-forward scaling)."""
        self._replace("mlp_hook", hook)
        if hook is not None:
            self._install_once("mlp", self._install_mlp_hooks)

    def _replace(self, name: str, hook: object) -> None:
        if hook is not None and getattr(self, name) is not None:
            raise RuntimeError(f"a {name.replace('_', ' ')} is already attached to this backbone")
        self._set_hook(name, hook)

    def _set_hook(self, name: str, hook: object) -> None:
        # Plain attribute, never a registered submodule: the method's module belongs to the method (its
        # parameters, train/eval mode and state dict), not to the frozen backbone.
        object.__setattr__(self, name, hook)

    def _install_once(self, name: str, install: Any) -> None:
        """Module hooks are installed when a method first needs them, so other methods pay nothing for them."""
        if name not in self._hooks_installed:
            install()
            self._hooks_installed.add(name)

    def _install_mlp_hooks(self) -> None:
        for block, projection in enumerate(self.mlp_projections()):
            projection.register_forward_pre_hook(_MLPInputHook(self, block))

    def _install_layer_output_hooks(self) -> None:
        """Adapters: the ViT calls the layer-output hook itself; transformers adapters hook their blocks."""

    def _install_projection_hooks(self) -> None:
        """Forward hooks that apply `qkv_delta` and `qkv_hook` (the ViT applies both in its attention)."""

    def checked_prefix(self, layer: int, batch: int) -> PrefixKV | None:
        """The provider's prefix of one layer, checked against its stated positions (for adapters)."""
        provider = self.prefix_provider
        if provider is None:
            return None
        kv = provider(layer, batch)
        if kv is not None and kv[0].shape[-3] != provider.positions(layer):
            raise RuntimeError(f"the prefix provider returned {kv[0].shape[-3]} positions for layer {layer} but "
                               f"states positions({layer}) = {provider.positions(layer)}")
        return kv

    # ------------------------------------------------------------------ shape facts
    @property
    def num_blocks(self) -> int:
        """Transformer blocks (what adapters and MLP hooks count); equal to num_layers unless a block has
        several attentions (BART's decoder)."""
        return self.num_layers

    @property
    def attention_dim(self) -> int:
        """Width of the projected queries, keys and values: heads * head_dim."""
        return self.num_heads * self.head_dim

    def stacks(self) -> list[range]:
        """Layer ranges of the separate attention stacks (one for ViT and GPT-2; three for BART)."""
        return [range(self.num_layers)]

    def stack_names(self) -> list[str]:
        """A name per stack, for reports ("layer"; BART: "encoder self", "decoder self", "decoder cross")."""
        return ["layer"]

    def mlp_dim(self, block: int) -> int:
        """Width of a block's MLP hidden activations (what an MLP hook sees)."""
        projection: Any = self.mlp_projections()[block]
        return int(projection.in_features)

    @abstractmethod
    def mlp_projections(self) -> list[nn.Module]:
        """Each block's second MLP projection, whose input is the hidden activations (for the MLP hook)."""

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(..., heads*head_dim) -> (..., heads, head_dim): contiguous chunks, the layout of the projected keys."""
        return x.unflatten(-1, (self.num_heads, self.head_dim))

    # ------------------------------------------------------------------ building (bench.backbones.registry)
    @classmethod
    @abstractmethod
    def from_spec(cls, spec: Any) -> Backbone:
        """The backbone a task's `backbone:` section names, with its weights when the spec asks for them."""

    @classmethod
    @abstractmethod
    def from_config(cls, spec: Any) -> Backbone:
        """The same structure from its configuration alone: random init, no weight files, no tokenizer (it is
        built on the meta device to count parameters)."""

    # ------------------------------------------------------------------ computations
    @abstractmethod
    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        """Vision: images (batch, 3, H, W) -> features (batch, hidden). Language: the transformers model's call."""

    @abstractmethod
    def project_kv(self, layer: int, x: torch.Tensor) -> PrefixKV:
        """The layer's own frozen LayerNorm + W_K / W_V (with bias): (..., P, hidden) -> (..., P, heads, head_dim)."""

    def text_kv(self, text: str) -> list[PrefixKV]:
        """Per layer, the frozen model's own keys and values (P, heads, head_dim) for a text (language models)."""
        raise BenchError("initialising a prefix from text needs a decoder-only language backbone (GPT-2).",
                         field="hparams.init_text", hint="Leave init_text unset on this task.")

    def backbone_parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


class _CountedPrefix:
    """A plain prefix function with the position count given to `set_prefix_provider(fn, positions=P)`."""

    def __init__(self, fn: Any, positions: int) -> None:
        self.fn, self.count = fn, positions

    def __call__(self, layer: int, batch: int) -> PrefixKV | None:
        kv: PrefixKV | None = self.fn(layer, batch)
        return kv

    def positions(self, layer: int) -> int:
        return self.count


class _MLPInputHook:
    """Forward pre-hook on a block's second MLP projection: the method's MLP hook on its input. An object, not a
    closure, so a deep copy of the backbone gets hooks that point at the copy."""

    def __init__(self, backbone: Backbone, block: int) -> None:
        self.backbone, self.block = backbone, block

    def __call__(self, module: nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...] | None:
        hook = self.backbone.mlp_hook
        if hook is None:
            return None
        return (hook(self.block, inputs[0]), *inputs[1:])
