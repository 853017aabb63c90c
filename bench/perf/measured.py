"""Which backbone a `bench perf` benchmark measures: the task's own (`--backbone task`, the default: ViT-B/16 at
224 for VTAB and FGVC, GPT-2 medium for E2E, BART-large for XSum, with random weights, so nothing is downloaded),
or the mini suites' backbone of the same kind (`--backbone mini`, a fast check whose hours mean nothing for the
real protocol). The task's protocol (batch size, hyper-parameters, split sizes) stays the task's either way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.errors import BenchError

CHOICES = ("task", "mini")
MINI_PREFIX = "mini/"


def measured_task(task: Any, backbone: str, tasks_dirs: tuple[Path, ...] = ()) -> tuple[Any, str]:
    """The task as measured (its backbone with random weights, or the mini one) and a note saying which."""
    if backbone not in CHOICES:
        raise BenchError(f"--backbone must be one of {', '.join(CHOICES)}, not '{backbone}'.", field="--backbone",
                         hint="task: the task's own backbone with random weights; mini: the mini suites' one.")
    if backbone == "task":
        return _random_weights(task), "the task's backbone, random weights"
    mini = _mini_task(task, tasks_dirs)
    update: dict[str, Any] = {"backbone": _random_weights(mini).backbone}
    if hasattr(task.data, "images") and hasattr(mini.data, "images"):  # vision: the mini backbone's input size
        update["data"] = task.data.model_copy(update={"images": mini.data.images})
    return task.model_copy(update=update), f"{mini.name}'s mini backbone, a fast check"


def _random_weights(task: Any) -> Any:
    spec = task.backbone
    update = {k: v for k, v in {"pretrained": False, "weights": None}.items() if k in type(spec).model_fields}
    return task.model_copy(update={"backbone": spec.model_copy(update=update)})


def _mini_task(task: Any, tasks_dirs: tuple[Path, ...]) -> Any:
    from bench import registry

    for name, entry in sorted(registry.spec_files(tasks_dirs).items()):
        if entry.is_suite or not name.startswith(MINI_PREFIX):
            continue
        candidate = registry.load_task_by_name(name, tasks_dirs)
        if candidate.backbone.kind == task.backbone.kind:
            return candidate
    raise BenchError(f"no mini task has a backbone of kind '{task.backbone.kind}' like '{task.name}'.",
                     field="--backbone", hint="Use --backbone task.")
