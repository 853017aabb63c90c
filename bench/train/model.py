"""The trained model of every modality: frozen backbone + the method's module (+ a classification head for vision).

The head follows VPT's code: one Linear(hidden -> classes), kaiming-normal (fan-out) weight, bias
-log(0.99/0.01) ≈ -4.595, so every class starts at probability 0.01. Language models have no head: the LM head
is the backbone's own, frozen unless the method trains the backbone.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from bench.method import Method

HEAD_BIAS = -math.log(0.99 / 0.01)


def make_head(hidden_size: int, num_classes: int) -> nn.Linear:
    head = nn.Linear(hidden_size, num_classes)
    nn.init.kaiming_normal_(head.weight, a=0, mode="fan_out")
    nn.init.constant_(head.bias, HEAD_BIAS)
    return head


class PeftModel(nn.Module):
    """backbone (-> features -> head); `train()` keeps the backbone in eval mode unless the method trains it.

    `num_classes` None means no head (language models): `forward` is the backbone's own call.
    """

    inputs_are_features = False  # set by the vision modality when it feeds cached backbone features (linear probing)
    backbone_dropout = False  # set by the language modality for protocol.backbone_mode 'train'

    def __init__(self, backbone: Any, method: Method, num_classes: int | None = None) -> None:
        super().__init__()
        for parameter in backbone.parameters():
            parameter.requires_grad_(False)
        self.backbone = backbone
        self.backbone_params = backbone.backbone_parameter_count()  # before the method adds anything
        self.trains_backbone = method.trains_backbone
        attached = method.attach(backbone)
        # The method's module is registered only when it is not the backbone itself (full fine-tuning).
        self.method_module = attached if attached is not backbone else nn.Module()
        # Created after attach(): the head's random draws come after the method's, as they always have.
        self.head = make_head(backbone.hidden_size, num_classes) if num_classes is not None else None
        self.method_trainable = sum(p.numel() for p in attached.parameters() if p.requires_grad)
        self.method_stored = method.stored_parameter_count(attached)

    @property
    def head_parameter_count(self) -> int:
        return 0 if self.head is None else sum(p.numel() for p in self.head.parameters())

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        if self.head is None:
            return self.backbone(*inputs, **kwargs)
        (images,) = inputs
        return self.head(images if self.inputs_are_features else self.backbone(images))

    def train(self, mode: bool = True) -> PeftModel:
        super().train(mode)
        if mode and not self.trains_backbone and not self.backbone_dropout:
            self.backbone.eval()  # no backbone dropout for PEFT methods (VPT / ReparamPrefix behaviour)
        return self

    def trainable_state(self, copy: bool = False) -> dict[str, torch.Tensor]:
        """Only what training changes: trainable parameters and all buffers of trained parts. `copy` detaches
        and clones (a snapshot that later steps do not change, e.g. the best epoch's state)."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        state = {n: t for n, t in self.state_dict().items() if n in names or n.startswith("method_module.")}
        return {n: t.detach().clone() for n, t in state.items()} if copy else state
