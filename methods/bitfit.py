"""BitFit (Ben Zaken et al., 2022): train only the backbone's bias terms (AdamW, like VPT's "Bias")."""

from __future__ import annotations

from torch import nn

from bench.backbones import Backbone
from bench.method import ADAMW_GRID, Method, MethodHParams, register_method


@register_method("bitfit")
class BitFit(Method[MethodHParams]):
    """Every bias of the backbone is trained; the backbone stays in eval mode."""

    optimizer = "adamw"
    grid = ADAMW_GRID

    def attach(self, backbone: Backbone) -> nn.Module:
        for name, parameter in backbone.named_parameters():
            if name.endswith(".bias"):
                parameter.requires_grad_(True)
        return backbone
