"""The trained model: frozen backbone + the method's module + a linear classification head.

The head follows VPT's code: one Linear(hidden -> classes), kaiming-normal (fan-out) weight, bias
-log(0.99/0.01) ≈ -4.595, so every class starts at probability 0.01.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.backbones import Backbone
from bench.method import Method

HEAD_BIAS = -math.log(0.99 / 0.01)


def make_head(hidden_size: int, num_classes: int) -> nn.Linear:
    head = nn.Linear(hidden_size, num_classes)
    nn.init.kaiming_normal_(head.weight, a=0, mode="fan_out")
    nn.init.constant_(head.bias, HEAD_BIAS)
    return head


class PeftModel(nn.Module):
    """backbone -> features -> head; `train()` keeps the backbone in eval mode unless the method trains it."""

    def __init__(self, backbone: Backbone, method: Method, num_classes: int) -> None:
        super().__init__()
        for parameter in backbone.parameters():
            parameter.requires_grad_(False)
        self.backbone = backbone
        self.backbone_params = backbone.backbone_parameter_count()  # before the method adds anything
        self.trains_backbone = method.trains_backbone
        attached = method.attach(backbone)
        # The method's module is registered only when it is not the backbone itself (full fine-tuning).
        self.method_module = attached if attached is not backbone else nn.Module()
        self.head = make_head(backbone.hidden_size, num_classes)
        self.method_trainable = sum(p.numel() for p in attached.parameters() if p.requires_grad)
        self.method_stored = method.stored_parameter_count(attached)

    inputs_are_features = False  # set by the runner when it feeds cached backbone features (linear probing)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(images if self.inputs_are_features else self.backbone(images))

    def train(self, mode: bool = True) -> PeftModel:
        super().train(mode)
        if mode and not self.trains_backbone:
            self.backbone.eval()  # no backbone dropout for PEFT methods (VPT / ReparamPrefix behaviour)
        return self

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Only what training changes (for checkpoints): trainable parameters and all buffers of trained parts."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {n: t for n, t in self.state_dict().items() if n in names or n.startswith("method_module.")}
