"""Parameter counts of methods on a task's backbone, built on the meta device (no weights, no memory)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from bench.method import Method
from bench.spec import TaskSpec


@dataclass(frozen=True)
class ParamCount:
    method: str
    trained: int  # trainable parameters of the method, head excluded
    stored: int  # what must be kept after training (e.g. Deep-share's generated keys/values, not its MLP)
    head: int
    backbone: int

    @property
    def trained_percent(self) -> float:
        return 100.0 * self.trained / self.backbone


def count_parameters(task: TaskSpec, method_cls: type[Method], hparams: Mapping[str, object] | None = None
                     ) -> ParamCount:
    from bench.backbones.vit import build_vit
    from bench.train.model import PeftModel

    spec = task.backbone.model_copy(update={"pretrained": False, "weights": None})
    with torch.device("meta"):
        backbone = build_vit(spec)
        method = method_cls(method_cls.parse_hparams(dict(hparams or {})))
        model = PeftModel(backbone, method, task.data.num_classes)
    head = sum(p.numel() for p in model.head.parameters())
    return ParamCount(method_cls.name, model.method_trainable, model.method_stored, head, model.backbone_params)
