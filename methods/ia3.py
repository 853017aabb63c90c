"""(IA)^3 (Liu et al., 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context
Learning"): learned vectors rescale the projected keys and values (l_k, l_v, one per attention layer) and the
MLP's hidden activations (l_ff, one per block). All start at 1, so training starts from the frozen network.

Which projections are rescaled follows HF peft's IA3 defaults per model family, so counts and computations
match peft: GPT-2 rescales its fused c_attn output (queries, keys and values) and BART its query and value
projections (q_proj, v_proj, in all three attention stacks); every family rescales the input of the second
MLP projection (GPT-2 mlp.c_proj, BART fc2). peft has no default for the timm ViT, which gets the paper's
keys and values. `attention` overrides the choice ("kv" is the paper's everywhere).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from bench.backbones import Backbone
from bench.method import ADAMW_GRID, Method, MethodHParams, register_method

# HF peft's TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING, as the parts each family's targets compute.
PEFT_DEFAULT_PARTS = {"gpt2": "qkv", "bart": "qv"}
PAPER_PARTS = "kv"


class Rescaling(nn.Module):
    """One learned vector per attention layer for each rescaled part, and one per block for the MLP."""

    def __init__(self, backbone: Backbone, parts: str, feedforward: bool) -> None:
        super().__init__()
        shape = (backbone.num_layers, backbone.attention_dim)
        self.attention = nn.ParameterDict({part: nn.Parameter(torch.ones(shape)) for part in parts})
        self.feedforward = nn.ParameterList(nn.Parameter(torch.ones(backbone.mlp_dim(block)))
                                            for block in range(backbone.num_blocks) if feedforward)

    def projection(self, layer: int, part: str, projected: torch.Tensor) -> torch.Tensor:
        """The QKV hook: l_part ⊙ (W x + b), computed in the vector's precision as peft does."""
        if part not in self.attention:
            return projected
        return (projected * self.attention[part][layer]).to(projected.dtype)

    def activations(self, block: int, hidden: torch.Tensor) -> torch.Tensor:
        """The MLP hook: l_ff ⊙ act(W_1 x + b_1), the input of the second projection."""
        return (hidden * self.feedforward[block]).to(hidden.dtype)


class IA3HParams(MethodHParams):
    attention: Literal["auto", "kv", "qv", "qkv"] = "auto"  # auto: peft's default for the family (else "kv")
    feedforward: bool = True


@register_method("ia3")
class IA3(Method[IA3HParams]):
    """Learned rescaling of projected keys / values (per peft's family defaults) and MLP activations (AdamW)."""

    HParams = IA3HParams
    optimizer = "adamw"
    # No weight decay: decoupled decay would pull the scales towards 0, not towards their identity value 1.
    grid = {"base_lr": ADAMW_GRID["base_lr"], "weight_decay": [0.0]}

    def attach(self, backbone: Backbone) -> nn.Module:
        parts = self.hp.attention
        if parts == "auto":
            parts = PEFT_DEFAULT_PARTS.get(backbone.kind, PAPER_PARTS)
        module = Rescaling(backbone, parts, self.hp.feedforward)
        backbone.set_qkv_hook(module.projection)
        if self.hp.feedforward:
            backbone.set_mlp_hook(module.activations)
        return module
