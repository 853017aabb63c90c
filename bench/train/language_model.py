"""The trained language model: a frozen GPT-2 / BART plus the method's module (no head: the LM head is the
backbone's own, frozen unless the method trains the backbone)."""

from __future__ import annotations

import torch
from torch import nn

from bench.backbones.language import LanguageBackbone
from bench.method import Method


class LanguagePeftModel(nn.Module):
    """Frozen language backbone + the method's module; `train()` keeps the backbone in eval mode for PEFT."""

    def __init__(self, backbone: LanguageBackbone, method: Method) -> None:
        super().__init__()
        for parameter in backbone.parameters():
            parameter.requires_grad_(False)
        self.backbone = backbone
        self.backbone_params = backbone.backbone_parameter_count()
        self.trains_backbone = method.trains_backbone
        attached = method.attach(backbone)
        self.method_module = attached if attached is not backbone else nn.Module()
        self.method_trainable = sum(p.numel() for p in attached.parameters() if p.requires_grad)
        self.method_stored = method.stored_parameter_count(attached)

    def train(self, mode: bool = True) -> LanguagePeftModel:
        super().train(mode)
        if mode and not self.trains_backbone:
            self.backbone.eval()
        return self

    def trainable_state(self) -> dict[str, torch.Tensor]:
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {n: t.detach().clone() for n, t in self.state_dict().items()
                if n in names or n.startswith("method_module.")}
