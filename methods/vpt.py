"""Visual Prompt Tuning (Jia et al., 2022): learned tokens inserted after CLS; deep VPT replaces them
before every layer. Written against the backbone's token hook only."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from bench.backbones import Backbone
from bench.method import Count, Method, MethodHParams, Probability, register_method
from bench.prompting import batch_dropout, prompt_init_bound, uniform_parameter


class PromptTokens(nn.Module):
    """N prompt tokens per prompted layer; layer 0 inserts them, deeper layers overwrite their positions."""

    def __init__(self, backbone: Backbone, num_tokens: int, deep: bool, dropout: float) -> None:
        super().__init__()
        layers = backbone.num_layers if deep else 1
        self.prompts = uniform_parameter((layers, num_tokens, backbone.hidden_size), prompt_init_bound(backbone))
        self.dropout = nn.Dropout(dropout)
        self.start = backbone.num_prefix_tokens  # prompts go after CLS, before the patches
        self.num_tokens = num_tokens

    def forward(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        if layer >= self.prompts.shape[0]:
            return hidden
        batch = hidden.shape[0]
        prompts = batch_dropout(self.prompts[layer], batch, self.dropout).expand(batch, -1, -1).to(hidden.dtype)
        head = hidden[:, : self.start]
        tail = hidden[:, self.start :] if layer == 0 else hidden[:, self.start + self.num_tokens :]
        return torch.cat([head, prompts, tail], dim=1)


class VPTHParams(MethodHParams):
    num_tokens: Count = 10
    dropout: Probability = 0.1


@register_method("vpt_deep")
class VPTDeep(Method[VPTHParams]):
    """VPT-deep: prompt tokens at the input and new ones before every layer (prompt dropout 0.1)."""

    HParams = VPTHParams
    modalities = ("vision",)  # prompts are image tokens
    deep: ClassVar[bool] = True

    def attach(self, backbone: Backbone) -> nn.Module:
        hp = self.hp
        module = PromptTokens(backbone, hp.num_tokens, self.deep, hp.dropout)
        backbone.set_token_hook(module)
        return module


class VPTShallowHParams(VPTHParams):
    dropout: Probability = 0.0  # VPT uses no prompt dropout for the shallow variant


@register_method("vpt_shallow")
class VPTShallow(VPTDeep):
    """VPT-shallow: prompt tokens at the input only; they travel through every layer as hidden states."""

    HParams = VPTShallowHParams
    deep = False
