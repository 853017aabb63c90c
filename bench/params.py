"""Parameter counts of methods on a task's backbone, built on the meta device (no weights, no memory).

Counts are what a run records: trained (the method's trainable parameters, head excluded), stored (what is
kept for inference), the classification head (vision tasks) and the frozen backbone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from bench.errors import BenchError
from bench.method import Method
from bench.spec import AnyTaskSpec


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


@dataclass(frozen=True)
class NotApplicable:
    method: str
    reason: str  # one sentence, for listings


@dataclass(frozen=True)
class TaskParamCounts:
    """Every method's counts on one task, and the methods that do not apply to it (with the reason)."""

    task: str
    modality: str
    counts: list[ParamCount]
    not_applicable: list[NotApplicable]


def count_parameters(task: AnyTaskSpec, method_cls: type[Method[Any]], hparams: Mapping[str, object] | None = None
                     ) -> ParamCount:
    """One method with the given hyper-parameters (defaults for the rest) on the task's backbone."""
    from bench.backbones import backbone_skeleton

    backbone = backbone_skeleton(task.backbone)
    for parameter in backbone.parameters():
        parameter.requires_grad_(False)
    backbone_params = backbone.backbone_parameter_count()  # before the method adds anything
    method = method_cls(method_cls.parse_hparams(dict(hparams or {})))
    with torch.device("meta"):
        attached = method.attach(backbone)
    trained = sum(p.numel() for p in attached.parameters() if p.requires_grad)
    classes: int = getattr(task.data, "num_classes", 0)  # vision: a linear head; language: the model's own head
    head = (backbone.hidden_size + 1) * classes if classes else 0
    return ParamCount(method_cls.name, trained, method.stored_parameter_count(attached), head, backbone_params)


def task_modality(task: AnyTaskSpec) -> str:
    """"vision" or "language": the modality of the task's backbone kind."""
    from bench.backbones import backbone_class

    return backbone_class(task.backbone.kind).modality


def method_parameter_counts(task: AnyTaskSpec, methods: Mapping[str, type[Method[Any]]]) -> TaskParamCounts:
    """Counts of every method that applies to the task's modality, with the task's fixed hyper-parameters
    (`protocol.methods.<name>.hparams`), in name order; the others are listed with the reason."""
    from bench.backbones import backbone_skeleton

    modality = task_modality(task)
    backbone_skeleton(task.backbone)  # a missing config is the task's problem, not a method's: raise it here
    counts: list[ParamCount] = []
    skipped: list[NotApplicable] = []
    for name, cls in sorted(methods.items()):
        if modality not in cls.modalities:
            skipped.append(NotApplicable(name, f"a {' / '.join(cls.modalities)} method; {task.name} is a "
                                               f"{modality} task"))
            continue
        fixed = task.protocol.methods[name].hparams if name in task.protocol.methods else {}
        try:
            counts.append(count_parameters(task, cls, fixed))
        except BenchError as exc:  # the method refuses this backbone (e.g. a hyper-parameter it cannot honour)
            skipped.append(NotApplicable(name, exc.message))
    return TaskParamCounts(task.name, modality, counts, skipped)
