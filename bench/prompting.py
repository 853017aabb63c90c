"""Building blocks shared by prompt and prefix methods: the reference codes' initialisation and per-example
prompt dropout.

Only backbone-agnostic tensor code lives here (the backbone gives shape facts; the choices are the methods');
methods stay one small file each.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def uniform_parameter(shape: tuple[int, ...], bound: float) -> nn.Parameter:
    """A parameter drawn from U(-bound, bound), VPT's "xavier uniform" prompt init."""
    parameter = nn.Parameter(torch.zeros(shape))
    nn.init.uniform_(parameter, -bound, bound)
    return parameter


def prompt_init_bound(backbone: Any) -> float:
    """VPT's prompt bound sqrt(6 / (3·patch_h·patch_w + hidden)) (0.0625 for ViT-B/16): xavier-uniform of the
    patch embedding; without patches, that of a hidden x hidden matrix."""
    if backbone.patch_size is None:
        return float((6.0 / (2 * backbone.hidden_size)) ** 0.5)
    patch_h, patch_w = backbone.patch_size
    return float((6.0 / (3 * patch_h * patch_w + backbone.hidden_size)) ** 0.5)


def reference_init(backbone: Any, shape: tuple[int, ...]) -> nn.Parameter:
    """A prompt / prefix table initialised as the reference code of the backbone's modality does: VPT's uniform
    bound on vision; N(0, 1) on language (nn.Embedding's default, used by Li & Liang and HF peft)."""
    if backbone.modality == "language":
        return nn.Parameter(torch.randn(shape))
    return uniform_parameter(shape, prompt_init_bound(backbone))


def batch_dropout(vectors: torch.Tensor, batch: int, dropout: nn.Dropout) -> torch.Tensor:
    """Dropout as the official code applies it: after expanding over the batch, so every example gets its
    own mask. When dropout is inactive the vectors are returned unexpanded (the backbone broadcasts them)."""
    if dropout.training and dropout.p > 0:
        return dropout(vectors.expand(batch, *vectors.shape))
    return vectors
