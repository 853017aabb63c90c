"""What one run is (RunConfig: everything that can change its result) and how it executes (RunOptions).

Nothing here imports torch at module level, so planning and key computation stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.spec import AnyTaskSpec

# Bump when a change to the training code changes results, so old records are not reused.
RUNNER_VERSION = 1
OPTIM_KEYS = ("base_lr", "weight_decay")


@dataclass(frozen=True)
class MethodSettings:
    """A method's protocol on one task: per-task override > method default > task protocol."""

    optimizer: str
    grid: dict[str, list[Any]]
    epochs: int
    warmup_epochs: int
    batch_size: int
    fixed: dict[str, Any]
    grid_source: str = "task protocol.grid"  # where the grid came from, for the dry run


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs; `identity()` is what its key hashes."""

    task: AnyTaskSpec
    method: str
    hparams: dict[str, Any]
    optim: dict[str, Any]
    stage: str
    seed: int
    train_splits: tuple[str, ...]
    eval_split: str
    grid_prune: dict[str, Any] | None = None  # --grid-prune settings; part of the identity only when set
    data_fraction: float | None = None  # --data-fraction below 1: a nested class-balanced training subset
    train_examples: int | None = None  # --train-examples (language): a nested seeded subset of N training pairs

    def describe(self) -> str:
        shown = {**{k: self.optim[k] for k in OPTIM_KEYS}, **self.hparams}
        text = " ".join(f"{k}={v}" for k, v in shown.items())
        fraction = f" data_fraction={self.data_fraction:g}" if self.data_fraction else ""
        fraction += f" train_examples={self.train_examples}" if self.train_examples else ""
        return f"{self.task.name} {self.method} {self.stage} seed={self.seed}{fraction} {text}"

    def identity(self, data_fingerprints: dict[str, str]) -> dict[str, Any]:
        """Result-changing settings only: no machine paths, no settings of other runs (seed list, grid)."""
        data = self.task.data.model_dump(mode="json", exclude={"root", "prepare", "download_hint"})
        backbone = self.task.backbone.model_dump(mode="json")
        if backbone.get("weights"):
            backbone["weights"] = Path(str(backbone["weights"])).name
        return {
            "runner_version": RUNNER_VERSION,
            "task": self.task.name,
            "metric": self.task.metric,
            "data": data,
            "data_fingerprints": data_fingerprints,
            "backbone": backbone,
            "method": self.method,
            "hparams": self.hparams,
            "optim": self.optim,
            "stage": self.stage,
            "seed": self.seed,
            "train_splits": list(self.train_splits),
            "eval_split": self.eval_split,
            "eval_every": getattr(self.task.protocol, "eval_every", None),
            **({"grid_prune": self.grid_prune} if self.grid_prune else {}),
            **({"data_fraction": self.data_fraction} if self.data_fraction else {}),
            **({"train_examples": self.train_examples} if self.train_examples else {}),
        }


@dataclass
class RunOptions:
    """How to execute (never changes results): device, precision, checkpoint cadence, caches."""

    device: Any = "cpu"  # a torch.device (or its name); kept loose so that this module needs no torch
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    checkpoint_interval_s: float = 120.0
    cache_dir: Path | None = None
    progress: bool = False
    feature_cache: bool = True  # head-only methods train on cached frozen features (equal up to float rounding)
    compile: str | None = None  # torch.compile backend for the model's forward ("inductor"), None = eager

    def torch_device(self) -> Any:
        import torch

        return self.device if isinstance(self.device, torch.device) else torch.device(self.device)
