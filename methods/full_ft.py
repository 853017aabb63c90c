"""Full fine-tuning: every backbone weight is trained, with AdamW and the fine-tuning grid of VPT's code."""

from torch import nn

from bench.backbones import Backbone
from bench.method import ADAMW_GRID, Method, MethodHParams, register_method


@register_method("full_ft")
class FullFineTuning(Method[MethodHParams]):
    """All backbone parameters plus the head; the backbone runs in train mode, so its dropout is active.

    Defaults follow VPT's configs/finetune (base-finetune.yaml): AdamW, 5 warm-up epochs, base lr grid
    {0.001, 0.0001, 0.0005, 0.005} x the usual weight-decay grid. Unlike VPT's optimizer code, the
    configured weight decay is used as given (VPT fixes it at 0.01 and falls back to SGD when it is 0).
    """

    optimizer = "adamw"
    warmup_epochs = 5
    trains_backbone = True
    grid = ADAMW_GRID

    def attach(self, backbone: Backbone) -> nn.Module:
        for parameter in backbone.parameters():
            parameter.requires_grad_(True)
        return backbone
