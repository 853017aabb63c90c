"""A request to run the protocol, as plain values: it travels to worker processes and Slurm array tasks as JSON."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGES = ("grid", "final")


def default_results_dir() -> Path:
    return Path(os.environ.get("BENCH_RESULTS", "results/runs"))


@dataclass(frozen=True)
class RunRequest:
    """Everything `run` needs, as plain values (it travels to worker processes and Slurm array tasks as JSON).

    `methods` are names or ("all",); `stages` a subset of ("grid", "final"); the list options (`data_fractions`,
    `num_tokens`, `train_examples`) run the whole protocol once per value. `protocol` names the task profile to
    apply ('clean': the tasks as written; 'paper': the official code's settings, docs/parity.md). `limit` and
    `epochs` (--limit N, --epochs E) make every run a smoke run, a quick check kept apart from protocol runs
    (bench.train.config.Smoke).
    """

    task: str
    methods: tuple[str, ...]
    stages: tuple[str, ...] = STAGES
    seeds: tuple[int, ...] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    results: str | None = None
    device: str | None = None
    precision: str | None = None
    checkpoint_interval: float = 120.0
    data_fractions: tuple[float, ...] | None = None
    num_tokens: tuple[int, ...] | None = None
    train_examples: tuple[int, ...] | None = None
    compile: bool = False
    tf32: bool = False  # --tf32: TF32 matmuls and convolutions on CUDA; off = true fp32
    grid_prune: bool = False
    shard: tuple[int, int] | None = None
    tasks_dirs: tuple[str, ...] = ()
    methods_dirs: tuple[str, ...] = ()
    protocol: str = "clean"
    limit: int | None = None  # smoke: at most N examples of every split a run reads
    epochs: int | None = None  # smoke: E epochs instead of the task's / method's
    poll_s: float = 5.0  # workers: seconds between passes over the plan while other workers hold runs

    @property
    def results_dir(self) -> Path:
        return Path(self.results) if self.results else default_results_dir()

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunRequest:
        values = json.loads(text)
        for name in ("methods", "stages", "seeds", "data_fractions", "num_tokens", "train_examples", "shard",
                     "tasks_dirs", "methods_dirs"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)
