"""LoRA (Hu et al., 2022) on the query and value projections: W x + (alpha / r) · B A x, B initialised to 0."""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.backbones import Backbone
from bench.method import ADAMW_GRID, Count, Method, MethodHParams, Positive, Probability, register_method


class LowRankQV(nn.Module):
    """Per layer, rank-r updates A (r x hidden), B (attn_dim x r) for the query and for the value."""

    def __init__(self, backbone: Backbone, rank: int, alpha: float, dropout: float) -> None:
        super().__init__()
        hidden, attn_dim, layers = backbone.hidden_size, backbone.num_heads * backbone.head_dim, backbone.num_layers
        self.down = nn.Parameter(torch.empty(layers, 2, rank, hidden))
        self.up = nn.Parameter(torch.zeros(layers, 2, attn_dim, rank))
        for layer in range(layers):  # A as nn.Linear's default init (as HF PEFT), B = 0: no change at start
            for which in range(2):
                nn.init.kaiming_uniform_(self.down.data[layer, which], a=math.sqrt(5))
        self.scale = alpha / rank
        self.dropout = nn.Dropout(dropout)

    def forward(self, layer: int, x: torch.Tensor) -> tuple[torch.Tensor, None, torch.Tensor]:
        x = self.dropout(x)
        down, up = self.down[layer].to(x.dtype), self.up[layer].to(x.dtype)
        q = (x @ down[0].T) @ up[0].T * self.scale
        v = (x @ down[1].T) @ up[1].T * self.scale
        return q, None, v


class LoRAHParams(MethodHParams):
    rank: Count = 8
    alpha: Positive = 8.0
    dropout: Probability = 0.0


@register_method("lora")
class LoRA(Method[LoRAHParams]):
    """Low-rank updates of the frozen query and value projections in every layer (AdamW)."""

    HParams = LoRAHParams
    optimizer = "adamw"
    grid = ADAMW_GRID

    def attach(self, backbone: Backbone) -> nn.Module:
        hp = self.hp
        module = LowRankQV(backbone, hp.rank, hp.alpha, hp.dropout)
        backbone.set_qkv_delta(module)
        return module
