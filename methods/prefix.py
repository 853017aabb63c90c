"""The three prefix variants of "Revisiting Prefix-tuning" (Le et al., ICLR 2025), deep and shallow.

- no_share:     independent key and value vectors per position (E = num_tokens // 2 positions per layer);
- simple_share: N = num_tokens prompts per layer, turned into key and value by the layer's own frozen
                LayerNorm and W_K / W_V (a keys/values-only VPT-deep);
- deep_share:   one vector p'_i per position feeds a per-layer MLP (hidden 48, tanh) whose output gives the
                key (even coordinates) and the value (odd coordinates); at inference the keys/values are
                computed once and cached, so the MLP is trained but not stored.
"Shallow" variants put the prefix in the first layer of each attention stack only (ViT, GPT-2: layer 0; BART:
the first encoder self-, decoder self- and decoder cross-attention). Defaults are the CUB scripts of the paper.
Initialisation follows the reference code of the modality (bench.prompting.reference_init); on language
backbones Deep-share is Li & Liang's reparameterisation, one table and one MLP per attention stack.
"""

from __future__ import annotations

from typing import ClassVar, Literal, TypeVar

import torch
from torch import nn

from bench.backbones import Backbone, PrefixKV
from bench.method import Count, Method, MethodHParams, PairedCount, Probability, register_method
from bench.prompting import batch_dropout, reference_init


class _LayerTable(nn.Module):
    """Base of the per-layer prefixes: row i of each table belongs to the i-th prefixed layer."""

    def __init__(self, layers: list[int], positions: int) -> None:
        super().__init__()
        self.rows = {layer: row for row, layer in enumerate(layers)}
        self.num_positions = positions

    def positions(self, layer: int) -> int:
        return self.num_positions if layer in self.rows else 0


class NoSharePrefix(_LayerTable):
    """Learned key and value tables, (layers, E, hidden) each, concatenated after projection."""

    def __init__(self, backbone: Backbone, positions: int, layers: list[int], dropout: float) -> None:
        super().__init__(layers, positions)
        shape = (len(layers), positions, backbone.hidden_size)
        self.keys = reference_init(backbone, shape)
        self.values = reference_init(backbone, shape)
        self.dropout = nn.Dropout(dropout)
        self.split_heads = backbone.split_heads

    def forward(self, layer: int, batch: int) -> PrefixKV | None:
        if layer not in self.rows:
            return None
        keys = batch_dropout(self.keys[self.rows[layer]], batch, self.dropout)
        values = batch_dropout(self.values[self.rows[layer]], batch, self.dropout)
        return self.split_heads(keys), self.split_heads(values)


class SimpleSharePrefix(_LayerTable):
    """Prompts (layers, N, hidden) through each layer's frozen LayerNorm + W_K / W_V (with bias)."""

    def __init__(self, backbone: Backbone, prompts: int, layers: list[int], dropout: float) -> None:
        super().__init__(layers, prompts)
        self.prompts = reference_init(backbone, (len(layers), prompts, backbone.hidden_size))
        self.dropout = nn.Dropout(dropout)
        self.project_kv = backbone.project_kv  # a bound method: the backbone is not registered twice

    def forward(self, layer: int, batch: int) -> PrefixKV | None:
        if layer not in self.rows:
            return None
        return self.project_kv(layer, batch_dropout(self.prompts[self.rows[layer]], batch, self.dropout))


class DeepSharePrefix(_LayerTable):
    """p' (layers, E, hidden) -> per-layer MLP -> (E, 2·hidden); key = even, value = odd coordinates."""

    def __init__(self, backbone: Backbone, positions: int, layers: list[int], dropout: float, mlp_hidden: int,
                 share_type: str) -> None:
        super().__init__(layers, positions)
        hidden = backbone.hidden_size
        self.table = reference_init(backbone, (len(layers), positions, hidden))
        if share_type == "non-linear":
            self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(hidden, mlp_hidden), nn.Tanh(),
                                                    nn.Linear(mlp_hidden, 2 * hidden)) for _ in layers)
        else:
            self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.Tanh()) for _ in layers)
        self.dropout = nn.Dropout(dropout)
        self.split_heads = backbone.split_heads
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def materialised_size(self) -> int:
        return 2 * self.table.numel()

    def key_value(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The generated (E, hidden) key and value of one layer, before dropout."""
        row = self.rows[layer]
        out = self.mlps[row](self.table[row])
        pairs = out.unflatten(-1, (-1, 2))  # (E, hidden, 2): coordinate 2j -> key j, 2j+1 -> value j
        return pairs[..., 0], pairs[..., 1]

    def train(self, mode: bool = True) -> DeepSharePrefix:
        self._cache.clear()  # parameters may change while training; recompute after
        return super().train(mode)

    def forward(self, layer: int, batch: int) -> PrefixKV | None:
        if layer not in self.rows:
            return None
        if self.training:
            keys, values = self.key_value(layer)
        else:  # inference: materialise the keys/values once, no MLP afterwards
            if layer not in self._cache:
                with torch.no_grad():
                    self._cache[layer] = self.key_value(layer)
            keys, values = self._cache[layer]
        keys = batch_dropout(keys, batch, self.dropout)
        values = batch_dropout(values, batch, self.dropout)
        return self.split_heads(keys), self.split_heads(values)


class StackDeepSharePrefix(nn.Module):
    """Li & Liang's reparameterisation (language): per attention stack one table p' (E, hidden) and one MLP
    hidden -> mlp_hidden -> tanh -> layers·2·hidden; consecutive hidden-sized blocks of the output are
    [K of layer 0, V of layer 0, K of layer 1, ...] (reference §1.2)."""

    def __init__(self, backbone: Backbone, positions: int, stacks: list[range], dropout: float, mlp_hidden: int,
                 share_type: str) -> None:
        super().__init__()
        hidden = backbone.hidden_size
        self.stacks = stacks
        self.tables = nn.ParameterList(reference_init(backbone, (positions, hidden)) for _ in stacks)
        if share_type == "non-linear":
            self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(hidden, mlp_hidden), nn.Tanh(),
                                                    nn.Linear(mlp_hidden, len(s) * 2 * hidden)) for s in stacks)
        else:
            self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(hidden, len(s) * 2 * hidden), nn.Tanh())
                                      for s in stacks)
        self.dropout = nn.Dropout(dropout)
        self.split_heads = backbone.split_heads
        self._outputs: dict[int, torch.Tensor] = {}  # stack -> (E, layers, 2, hidden) of the current forward

    def positions(self, layer: int) -> int:
        return self.tables[0].shape[0] if any(layer in s for s in self.stacks) else 0

    def materialised_size(self) -> int:
        return sum(2 * len(s) * t.numel() for s, t in zip(self.stacks, self.tables, strict=True))

    def generate(self, stack: int) -> torch.Tensor:
        out = self.mlps[stack](self.tables[stack])
        return out.unflatten(-1, (len(self.stacks[stack]), 2, -1))

    def train(self, mode: bool = True) -> StackDeepSharePrefix:
        self._outputs.clear()
        return super().train(mode)

    def forward(self, layer: int, batch: int) -> PrefixKV | None:
        stack = next((i for i, s in enumerate(self.stacks) if layer in s), None)
        if stack is None:  # a shallow prefix: not a stack's first layer
            return None
        first = self.stacks[stack].start
        if self.training and layer == first:  # one MLP pass per forward, at the stack's first layer
            self._outputs[stack] = self.generate(stack)
        elif not self.training and stack not in self._outputs:  # inference: materialise once
            with torch.no_grad():
                self._outputs[stack] = self.generate(stack)
        generated = self._outputs[stack][:, layer - first]
        keys = batch_dropout(generated[:, 0], batch, self.dropout)
        values = batch_dropout(generated[:, 1], batch, self.dropout)
        return self.split_heads(keys), self.split_heads(values)


class PrefixHParams(MethodHParams):
    num_tokens: PairedCount = 20  # E = num_tokens // 2 key/value positions per layer (the official NUM_TOKENS)
    dropout: Probability = 0.1


class NoShareHParams(PrefixHParams):
    init_text: str | None = None  # e.g. " summarize": start from the language model's own keys/values of this text


class DeepShareHParams(PrefixHParams):
    mlp_hidden: Count = 48
    share_type: Literal["non-linear", "linear"] = "non-linear"


class SimpleShareHParams(MethodHParams):
    num_tokens: Count = 10  # N prompts per layer = as many key/value positions as E of the other variants
    dropout: Probability = 0.1


def prefixed_layers(backbone: Backbone, deep: bool) -> list[int]:
    """Every layer (deep), or the first layer of each attention stack (shallow)."""
    return list(range(backbone.num_layers)) if deep else [stack.start for stack in backbone.stacks()]


H = TypeVar("H", bound=MethodHParams)


class _PrefixMethod(Method[H]):
    deep: ClassVar[bool] = True

    def layers(self, backbone: Backbone) -> list[int]:
        return prefixed_layers(backbone, self.deep)


@register_method("no_share")
class NoShare(_PrefixMethod[PrefixHParams]):
    """Prefix tuning without sharing: independent key and value vectors in every layer."""

    HParams = NoShareHParams  # the shallow variant's have no init_text

    def attach(self, backbone: Backbone) -> nn.Module:
        hp = self.hp
        init_text = getattr(hp, "init_text", None)
        if init_text:
            # Li & Liang's --init_shallow_word: the tables start as the frozen model's own keys/values for the
            # text, and the prefix has as many positions as the text has tokens (num_tokens is ignored).
            layers = self.layers(backbone)
            text_kv = backbone.text_kv(init_text)
            keys, values = zip(*[text_kv[layer] for layer in layers], strict=True)
            module = NoSharePrefix(backbone, keys[0].shape[0], layers, hp.dropout)
            with torch.no_grad():
                module.keys.copy_(torch.stack([k.flatten(-2) for k in keys]))
                module.values.copy_(torch.stack([v.flatten(-2) for v in values]))
        else:
            module = NoSharePrefix(backbone, hp.num_tokens // 2, self.layers(backbone), hp.dropout)
        backbone.set_prefix_provider(module)
        return module


@register_method("simple_share")
class SimpleShare(_PrefixMethod[SimpleShareHParams]):
    """One prompt gives key and value through the frozen W_K / W_V, in every layer."""

    HParams = SimpleShareHParams

    def attach(self, backbone: Backbone) -> nn.Module:
        hp = self.hp
        module = SimpleSharePrefix(backbone, hp.num_tokens, self.layers(backbone), hp.dropout)
        backbone.set_prefix_provider(module)
        return module


@register_method("deep_share")
class DeepShare(_PrefixMethod[DeepShareHParams]):
    """Key and value generated from one shared vector by a per-layer MLP, in every layer."""

    HParams = DeepShareHParams

    def attach(self, backbone: Backbone) -> nn.Module:
        hp = self.hp
        module: DeepSharePrefix | StackDeepSharePrefix
        if backbone.modality == "language":  # the language reference code: one table + one MLP per stack
            stacks = backbone.stacks() if self.deep else [range(s.start, s.start + 1) for s in backbone.stacks()]
            module = StackDeepSharePrefix(backbone, hp.num_tokens // 2, stacks, hp.dropout, hp.mlp_hidden,
                                          hp.share_type)
        else:
            module = DeepSharePrefix(backbone, hp.num_tokens // 2, self.layers(backbone), hp.dropout,
                                     hp.mlp_hidden, hp.share_type)
        backbone.set_prefix_provider(module)
        return module

    def stored_parameter_count(self, module: nn.Module) -> int:
        """Only the generated keys and values are kept for inference: 2 · layers · E · hidden."""
        assert isinstance(module, DeepSharePrefix | StackDeepSharePrefix)
        return module.materialised_size()


class ShallowPrefixHParams(PrefixHParams):
    num_tokens: PairedCount = 200  # CUB shallow scripts: E = 100
    dropout: Probability = 0.0


class ShallowDeepShareHParams(DeepShareHParams):
    num_tokens: PairedCount = 200
    dropout: Probability = 0.0


class ShallowSimpleShareHParams(SimpleShareHParams):
    num_tokens: Count = 100
    dropout: Probability = 0.0


@register_method("no_share_shallow")
class NoShareShallow(NoShare):
    """No-share prefix in the first layer (of each attention stack) only."""

    HParams = ShallowPrefixHParams
    deep = False


@register_method("simple_share_shallow")
class SimpleShareShallow(SimpleShare):
    """Simple-share prompts in the first layer (of each stack) only (not VPT-shallow: nothing propagates as tokens)."""

    HParams = ShallowSimpleShareHParams
    deep = False


@register_method("deep_share_shallow")
class DeepShareShallow(DeepShare):
    """Deep-share prefix in the first layer (of each attention stack) only."""

    HParams = ShallowDeepShareHParams
    deep = False
