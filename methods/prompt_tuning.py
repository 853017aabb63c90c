"""Prompt tuning (Lester et al., 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning"): N learned
vectors in front of the input sequence; nothing else is trained.

Written against the backbone's input-token hook only: on ViT the prompts follow the class token (the computation
of VPT-shallow); on GPT-2 they take the first N positions and the text starts at position N (HF peft's prompt
tuning); on BART they precede the encoder input, and the decoder's cross-attention sees them (peft's prompt
tuning for seq2seq, whose forward and generate use the encoder prompts only). Random init as the modality's
reference code: N(0, 1) on language (peft's RANDOM init, nn.Embedding's default), VPT's uniform bound on vision.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.backbones import Backbone
from bench.method import Count, Method, MethodHParams, Probability, register_method
from bench.prompting import batch_dropout, reference_init


class SoftPrompt(nn.Module):
    """N prompt vectors (N, hidden); with dropout, one mask per example."""

    def __init__(self, backbone: Backbone, num_tokens: int, dropout: float) -> None:
        super().__init__()
        self.prompts = reference_init(backbone, (num_tokens, backbone.hidden_size))
        self.dropout = nn.Dropout(dropout)

    def forward(self, batch: int) -> torch.Tensor:
        return batch_dropout(self.prompts, batch, self.dropout)


class PromptTuningHParams(MethodHParams):
    num_tokens: Count = 20
    dropout: Probability = 0.0


@register_method("prompt_tuning")
class PromptTuning(Method[PromptTuningHParams]):
    """Learned tokens at the input of ViT, GPT-2 and BART (the task protocol's optimizer and grid)."""

    HParams = PromptTuningHParams

    def attach(self, backbone: Backbone) -> nn.Module:
        module = SoftPrompt(backbone, self.hp.num_tokens, self.hp.dropout)
        backbone.set_input_tokens(module)
        return module
