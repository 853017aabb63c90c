"""The small interface between the one training loop (bench.train.loop) and what differs between vision and
language: data, model construction, optimizer and schedule, batches, loss, evaluation, result files.

Only the modality implementations (bench.train.vision, bench.train.text) may know the task kind; everything else
asks `modality_for(task)`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch

    from bench.data.status import DataStatus
    from bench.method import Method
    from bench.spec import AnyTaskSpec
    from bench.train.config import MethodSettings, RunConfig, RunOptions
    from bench.train.model import PeftModel

# modality name -> "module:class"; resolved lazily so planning and listing never import torch.
MODALITIES = {"vision": "bench.train.vision:VisionModality", "language": "bench.train.text:TextModality"}


@dataclass
class StepResult:
    """One training step: the loss to backpropagate, how many examples it averaged over, and per-step sums the
    modality wants in its epoch summary (device tensors: nothing here forces a host-device sync)."""

    loss: torch.Tensor
    examples: int
    sums: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Evaluation:
    """A periodic evaluation during training: history entries, and the score that selection / pruning use."""

    entry: dict[str, Any]
    score: float | None


class Modality(ABC):
    """What one kind of task does differently. Instances hold the per-process caches of that kind."""

    name: ClassVar[str]
    # Study variants this modality supports: run option -> the alternative to suggest elsewhere.
    variants: ClassVar[dict[str, str]] = {}

    def check_variants(self, task: AnyTaskSpec, requested: list[str]) -> None:
        """Refuse a run option this modality cannot honour (e.g. --grid-prune on a language task)."""
        from bench.errors import BenchError

        for flag in requested:
            if flag not in self.variants:
                supported = ", ".join(self.variants) or "none"
                raise BenchError(f"{flag} does not apply to {self.name} tasks such as '{task.name}'.",
                                 hint=f"Options of this kind for {self.name} tasks: {supported}.")

    @abstractmethod
    def optim_settings(self, task: AnyTaskSpec, method: str, settings: MethodSettings,
                       point: dict[str, Any]) -> dict[str, Any]:
        """The optimisation settings of one grid point (the `optim` section of a run's identity)."""

    def smoke_optim(self, optim: dict[str, Any], epochs: int) -> dict[str, Any]:
        """The optimisation settings of a smoke run (--epochs E): E epochs, and every warm-up length (`warmup_*`:
        epochs or steps) shortened in proportion, floor(warmup * E / epochs), so a 1-epoch run still trains."""
        planned = optim["epochs"]
        shortened = {name: value * epochs // planned for name, value in optim.items()
                     if name.startswith("warmup_") and isinstance(value, int) and not isinstance(value, bool)}
        return {**optim, **shortened, "epochs": epochs}

    def smoke_warning(self, task: AnyTaskSpec, limit: int) -> str | None:
        """Why --limit N makes a poor quick check on this task (a warning, not an error; None when it is fine)."""
        return None

    # -- identity and data ----------------------------------------------------------------------------------
    @abstractmethod
    def data_status(self, task: AnyTaskSpec) -> DataStatus:
        """`bench data status`: is the task's data usable, and what to do when it is not."""

    def missing_data(self, task: AnyTaskSpec) -> str | None:
        """Why the task's data is not usable yet (None when it is, or will be made / fetched automatically)."""
        return None

    @abstractmethod
    def split_sizes(self, task: AnyTaskSpec) -> dict[str, int | None]:
        """Examples per split without loading them (None: not present yet), for planning."""

    def data_present(self, task: AnyTaskSpec) -> bool:
        """Whether every split's files are in place (the dry run lists the tasks whose data is not)."""
        return all(size is not None for size in self.split_sizes(task).values())

    def protocol_summary(self, task: AnyTaskSpec) -> str:
        """What the dry run says about the task's modality-specific protocol switches ('' when none)."""
        return ""

    def backbone_cost(self, task: AnyTaskSpec) -> tuple[int, float] | None:
        """(backbone parameters, forward FLOPs per example) for the dry run's estimate (None: not estimated)."""
        return None

    @abstractmethod
    def fingerprints(self, task: AnyTaskSpec, splits: list[str], options: RunOptions) -> dict[str, str]:
        """Content fingerprint of each split: part of every run's key."""

    @abstractmethod
    def prepare(self, config: RunConfig, run_dir: Path, options: RunOptions) -> Any:
        """The run's data (training and evaluation), as the modality's own object."""

    # -- model and optimisation -----------------------------------------------------------------------------
    @abstractmethod
    def pristine_backbone(self, task: AnyTaskSpec) -> Any:
        """A fresh copy of the task's frozen backbone (built once per process, with a fixed seed)."""

    @abstractmethod
    def build_model(self, config: RunConfig, method: Method, backbone: Any) -> PeftModel:
        """The method attached to the backbone (plus a head where the task needs one)."""

    def after_model(self, config: RunConfig, method: Method, model: PeftModel, data: Any, options: RunOptions) -> Any:
        """A chance to change the data once the model exists (e.g. cached features); returns the data."""
        return data

    @abstractmethod
    def optimizer(self, model: PeftModel, optim: dict[str, Any]) -> torch.optim.Optimizer: ...

    @abstractmethod
    def learning_rate(self, optim: dict[str, Any], epoch: int, step: int, steps_per_epoch: int) -> float:
        """The learning rate of global step `step` (in epoch `epoch`)."""

    @abstractmethod
    def steps_per_epoch(self, data: Any, optim: dict[str, Any]) -> int: ...

    # -- steps and evaluation -------------------------------------------------------------------------------
    @abstractmethod
    def batches(self, data: Any, optim: dict[str, Any], generator: torch.Generator, device: torch.device
                ) -> Iterator[Any]:
        """One epoch's training batches, drawn only from `generator` (so a resumed epoch sees the same ones)."""

    @abstractmethod
    def step(self, net: Any, data: Any, batch: Any, precision: str, device: torch.device) -> StepResult:
        """Forward one batch (autocast to `precision`: fp32, bf16 or fp16) and compute its loss (no backward, no
        optimizer step: the loop owns those)."""

    @abstractmethod
    def epoch_entry(self, epoch: int, lr: float, sums: dict[str, float], examples: int) -> dict[str, Any]:
        """The history entry of a finished epoch from its summed step statistics."""

    @abstractmethod
    def periodic_evaluation(self, net: Any, data: Any, config: RunConfig, epoch: int, last: bool,
                            options: RunOptions) -> Evaluation | None:
        """Evaluation during training (grid val scores, best-epoch selection); None when none is due."""

    def keeps_best_epoch(self, config: RunConfig) -> bool:
        """True when the reported model is the epoch with the best periodic score, not the last epoch."""
        return False

    @abstractmethod
    def final_evaluation(self, net: Any, data: Any, config: RunConfig, run_dir: Path, options: RunOptions,
                         chosen_epoch: int) -> dict[str, Any]:
        """Evaluate the reported model on the run's eval split, write its per-example file; returns the metrics."""

    @abstractmethod
    def failed_metrics(self, config: RunConfig) -> dict[str, Any]:
        """Metrics of a run that did not complete (diverged, pruned): the primary score is None."""

    @abstractmethod
    def throughput(self, sums: dict[str, float], train_seconds: float, examples: int) -> dict[str, Any]:
        """The cost figures of training speed (images/s, tokens/s)."""

    @abstractmethod
    def data_summary(self, data: Any) -> dict[str, Any]:
        """Example counts for the record."""


_INSTANCES: dict[str, Modality] = {}


def modality_for(task: AnyTaskSpec) -> Modality:
    """The modality implementation of a task (one instance per process: it holds that modality's caches)."""
    name = task.modality
    if name not in _INSTANCES:
        module_name, _, class_name = MODALITIES[name].partition(":")
        _INSTANCES[name] = getattr(importlib.import_module(module_name), class_name)()
    return _INSTANCES[name]


def data_status(task: AnyTaskSpec) -> DataStatus:
    return modality_for(task).data_status(task)


def require(task: AnyTaskSpec, modality: str, what: str) -> None:
    """Refuse a task of another modality for a command that only makes sense for one (e.g. `bench score`)."""
    if task.modality != modality:
        from bench.errors import BenchError

        raise BenchError(f"'{task.name}' is a {task.modality} task; {what}.",
                         hint=f"Pick a {modality} task (see `bench list tasks`).")


def of_modality(tasks: list[AnyTaskSpec], modality: str) -> list[AnyTaskSpec]:
    """The tasks of one modality, in order (e.g. the vision tasks of a suite, whose cost a ViT study measures)."""
    return [task for task in tasks if task.modality == modality]
