"""Building blocks shared by prompt and prefix methods: VPT's uniform init and per-example prompt dropout.

Only backbone-agnostic tensor code lives here; methods stay one small file each.
"""

from __future__ import annotations

import torch
from torch import nn


def uniform_parameter(shape: tuple[int, ...], bound: float) -> nn.Parameter:
    """A parameter drawn from U(-bound, bound), VPT's "xavier uniform" prompt init."""
    parameter = nn.Parameter(torch.zeros(shape))
    nn.init.uniform_(parameter, -bound, bound)
    return parameter


def batch_dropout(vectors: torch.Tensor, batch: int, dropout: nn.Dropout) -> torch.Tensor:
    """Dropout as the official code applies it: after expanding over the batch, so every example gets its
    own mask. When dropout is inactive the vectors are returned unexpanded (the backbone broadcasts them)."""
    if dropout.training and dropout.p > 0:
        return dropout(vectors.expand(batch, *vectors.shape))
    return vectors
