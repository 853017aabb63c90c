"""Optimizer, weight-decay groups and the per-epoch learning-rate schedule of the paper's vision protocol.

Rules (docs/parity.md): lr = base_lr × batch / 256; linear warm-up from 0 then cosine,
stepped once per epoch (epoch 0 runs at lr 0 when there is warm-up); weight decay on every trainable
tensor except the head bias (SGD); AdamW skips every bias, as VPT's AdamW path does (its "LayerNorm.weight"
exclusion never matches the ViT's norm names, so norm weights, cls token and position embedding are decayed).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn


def effective_lr(base_lr: float, batch_size: int, lr_scale_batch: int = 256) -> float:
    return base_lr * batch_size / lr_scale_batch


def lr_multiplier(epoch: int, warmup_epochs: int, total_epochs: int) -> float:
    """VPT's WarmupCosineSchedule evaluated at a 0-based epoch."""
    if epoch < warmup_epochs:
        return epoch / max(1, warmup_epochs)
    progress = (epoch - warmup_epochs) / max(1, total_epochs - warmup_epochs)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def weight_decay_groups(model: nn.Module, optimizer: Literal["sgd", "adamw"], head_bias_name: str = "head.bias"
                        ) -> tuple[list[str], list[str]]:
    """Names of trainable parameters (with decay, without decay)."""
    decay: list[str] = []
    no_decay: list[str] = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        skip = name == head_bias_name or (optimizer == "adamw" and name.endswith(".bias"))
        (no_decay if skip else decay).append(name)
    return decay, no_decay


def build_optimizer(model: nn.Module, optimizer: Literal["sgd", "adamw"], lr: float, weight_decay: float,
                    momentum: float = 0.9) -> torch.optim.Optimizer:
    decay_names, no_decay_names = weight_decay_groups(model, optimizer)
    parameters = dict(model.named_parameters())
    groups = [
        {"params": [parameters[n] for n in decay_names], "weight_decay": weight_decay},
        {"params": [parameters[n] for n in no_decay_names], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-6)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
