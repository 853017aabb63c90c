"""Bottleneck adapters (Houlsby et al., 2019; Pfeiffer placement): after every layer,
h <- h + W_up act(W_down h), with W_up initialised to 0 so training starts from the frozen network."""

from __future__ import annotations

import torch
from torch import nn

from bench.backbones import Backbone
from bench.method import ADAMW_GRID, Count, Method, MethodHParams, register_method


class Bottlenecks(nn.Module):
    """One down-projection / GELU / up-projection per layer, added to the layer's output."""

    def __init__(self, backbone: Backbone, bottleneck: int) -> None:
        super().__init__()
        hidden = backbone.hidden_size
        self.down = nn.ModuleList(nn.Linear(hidden, bottleneck) for _ in range(backbone.num_blocks))
        self.up = nn.ModuleList(nn.Linear(bottleneck, hidden) for _ in range(backbone.num_blocks))
        for up in self.up:
            nn.init.zeros_(up.weight)
            nn.init.zeros_(up.bias)
        self.act = nn.GELU()

    def forward(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up[layer](self.act(self.down[layer](hidden)))


class AdapterHParams(MethodHParams):
    bottleneck: Count = 64


@register_method("adapter")
class Adapter(Method[AdapterHParams]):
    """A residual bottleneck MLP after every layer (AdamW)."""

    HParams = AdapterHParams
    optimizer = "adamw"
    grid = ADAMW_GRID

    def attach(self, backbone: Backbone) -> nn.Module:
        module = Bottlenecks(backbone, self.hp.bottleneck)
        backbone.set_layer_output_hook(module)
        return module
