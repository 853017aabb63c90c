"""What one run is (RunConfig: everything that can change its result) and how it executes (RunOptions).

Nothing here imports torch at module level, so planning and key computation stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.spec import AnyTaskSpec

# Bump when a change to the engine's code (loop, modalities, backbones, data pipeline) changes results, so old
# records are not reused. Methods are identified by their own source (bench.identity.code_identity).
RUNNER_VERSION = 2
# Task-spec fields that cannot change a run's result: names, texts, where files live, and what belongs to other
# runs (the seed list, the grid, other methods' overrides, the other profiles).
NOT_RESULT_FIELDS = {
    "description": None,
    "group": None,
    "profiles": None,
    "data": {"root": None, "prepare": None, "download_hint": None},
    "backbone": {"weights": None},
    "protocol": {"seeds": None, "grid": None, "methods": None, "grid_seed": None},
}
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
class Smoke:
    """A quick check (`bench run --limit N --epochs E`), never a benchmark result: at most `limit` examples of every
    split a run reads (a fixed seeded choice, bench.data.subsets.smoke_subset) and `epochs` epochs instead of the
    task's / method's, the warm-up shortened in proportion (floor(warmup * E / epochs)). Part of the run's
    identity and record (`run.smoke`), so a smoke run never shares a record or a leaderboard cell with a protocol
    run."""

    limit: int | None = None
    epochs: int | None = None

    def identity(self) -> dict[str, int | None]:
        return {"limit": self.limit, "epochs": self.epochs}

    def describe(self) -> str:
        """'smoke (limit 10, 1 epoch)'."""
        parts = [f"limit {self.limit}"] if self.limit is not None else []
        if self.epochs is not None:
            parts.append(f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}")
        return f"smoke ({', '.join(parts)})"

    def examples(self, count: int) -> int:
        """How many of `count` examples of a split a smoke run reads."""
        return count if self.limit is None else min(count, self.limit)


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
    precision: str = "fp32"  # fp32 | bf16 (autocast): bf16 and fp32 runs never share a record
    method_code: str = ""  # bench.identity.code_identity of the method class
    chosen_by: dict[str, Any] | None = None  # final runs: how the point was chosen (val, the spec, --set values)
    smoke: Smoke | None = None  # --limit / --epochs; part of the identity only when set
    tf32: bool = False  # --tf32 on CUDA (TF32 matmuls and convolutions); part of the identity only when set

    def describe(self) -> str:
        shown = {**{k: self.optim[k] for k in OPTIM_KEYS}, **self.hparams}
        text = " ".join(f"{k}={v}" for k, v in shown.items())
        fraction = f" data_fraction={self.data_fraction:g}" if self.data_fraction else ""
        fraction += f" train_examples={self.train_examples}" if self.train_examples else ""
        fraction += f" {self.smoke.describe()}" if self.smoke else ""
        return f"{self.task.name} {self.method} {self.stage} seed={self.seed}{fraction} {text}"

    def identity(self, data_fingerprints: dict[str, str]) -> dict[str, Any]:
        """Everything that can change the result, and nothing that cannot (machine paths, other runs' settings):
        the resolved task spec, the data's content, the backbone weights' content, the method's name, code and
        hyper-parameters, the optimisation settings, seed, stage, precision and every variant option."""
        from bench.identity import weights_identity

        return {
            "runner_version": RUNNER_VERSION,
            "task": self.task.name,
            "task_spec": without(self.task.model_dump(mode="json"), NOT_RESULT_FIELDS),
            "data_fingerprints": data_fingerprints,
            "weights": weights_identity(self.task.backbone),
            "method": self.method,
            "method_code": self.method_code,
            "hparams": self.hparams,
            "optim": self.optim,
            "stage": self.stage,
            "seed": self.seed,
            "train_splits": list(self.train_splits),
            "eval_split": self.eval_split,
            "precision": self.precision,
            **({"chosen_by": self.chosen_by} if self.chosen_by is not None else {}),
            **({"grid_prune": self.grid_prune} if self.grid_prune else {}),
            **({"data_fraction": self.data_fraction} if self.data_fraction else {}),
            **({"train_examples": self.train_examples} if self.train_examples else {}),
            **({"smoke": self.smoke.identity()} if self.smoke else {}),
            **({"tf32": True} if self.tf32 else {}),
        }


def without(values: dict[str, Any], drop: dict[str, Any]) -> dict[str, Any]:
    """`values` without the keys `drop` names (None: the whole key; a mapping: recurse)."""
    out = {}
    for key, value in values.items():
        rule = drop.get(key, ...)
        if rule is None:
            continue
        out[key] = without(value, rule) if isinstance(rule, dict) and isinstance(value, dict) else value
    return out


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
    tf32: bool = False  # TF32 on CUDA (--tf32); the runs' RunConfig.tf32, so part of their identity when set
    # After a CUDA out-of-memory error: smaller evaluation batches, image splits in host memory (bench.train.memory);
    # the same results in exact arithmetic.
    memory_fallback: bool = False

    def torch_device(self) -> Any:
        import torch

        return self.device if isinstance(self.device, torch.device) else torch.device(self.device)
