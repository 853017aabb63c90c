"""`bench perf leaderboard`: time a full rebuild (read, test, lay out, plot, render every format) from a
synthetic store of realistic records, by default 10,000 runs: 20 tasks × 20 methods × (20 grid + 5 final).

Final runs carry predictions on `items` test images, so the per-task paired tests do their real work.
A benchmark, not a test: it prints the time against the 5 s goal.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GOAL_S = 5.0


@dataclass(frozen=True)
class Timing:
    runs: int
    final_runs: int
    items: int
    seconds: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def write_synthetic_store(root: Path, tasks: int, methods: int, grid: int, seeds: int, items: int) -> int:
    """Records shaped like bench.train.loop's (history of 100 epochs, a task spec, environment)."""
    rng = np.random.default_rng(0)
    history = [{"epoch": e, "loss": 1.0 / (e + 1), "lr": 0.1} for e in range(100)]
    count = 0
    for t in range(tasks):
        task = f"synthetic/task{t:02d}"
        labels = rng.integers(0, 100, items)
        for m in range(methods):
            method = f"method{m:02d}"
            skill = 0.5 + 0.4 * rng.random()
            for stage, n in (("grid", grid), ("final", seeds)):
                for i in range(n):
                    key = f"{stage}{i:03d}"
                    run_dir = root / task / method / stage / key
                    run_dir.mkdir(parents=True)
                    correct = rng.random(items) < skill
                    record = {
                        "schema_version": 1, "key": key, "status": "completed",
                        "run": {"task": task, "method": method, "stage": stage, "seed": i,
                                "hparams": {"num_tokens": 10}, "optim": {"base_lr": 0.1 if stage == "final" else
                                                                         0.01 * (i + 1), "weight_decay": 0.0}},
                        "metrics": {"split": "test", "metric": "top1", "top1": 100.0 * float(correct.mean())},
                        "history": history,
                        "params": {"backbone": 85_800_000, "trainable": 10_000 * (m + 1), "stored": 10_000 * (m + 1),
                                   "head": 76_900, "trainable_percent": 100.0 * 10_000 * (m + 1) / 85_800_000},
                        "cost": {"wall_s": 100.0, "device": "NVIDIA H100", "precision": "bf16"},
                        "task_spec": {"name": task, "protocol": {"seeds": list(range(seeds)), "epochs": 100}},
                        "env": {"versions": {"python": "3.11"}, "git_commit": None},
                        "created_at": "2026-11-25T00:00:00+00:00",
                    }
                    (run_dir / "run.json").write_text(json.dumps(record, indent=1))
                    if stage == "final":
                        pred = np.where(correct, labels, (labels + 1) % 100)
                        np.savez(run_dir / "predictions.npz", index=np.arange(items), label=labels, pred=pred)
                    count += 1
    return count


def measure(tasks: int = 20, methods: int = 20, grid: int = 20, seeds: int = 5, items: int = 2000) -> Timing:
    from bench import leaderboard
    from bench.leaderboard.board import build_board
    from bench.leaderboard.significance import Settings, across_tasks, per_task_tests
    from bench.store import RunStore

    with tempfile.TemporaryDirectory(prefix="bench-perf-leaderboard-") as folder:
        root = Path(folder) / "runs"
        runs = write_synthetic_store(root, tasks, methods, grid, seeds, items)
        task_names = [f"synthetic/task{t:02d}" for t in range(tasks)]
        settings = Settings()
        seconds = {}
        start = time.perf_counter()
        collected = leaderboard.collect(RunStore(root), task_names, None)
        seconds["read records"] = time.perf_counter() - start
        start = time.perf_counter()
        tests = per_task_tests(collected.cells, task_names, settings)
        across = across_tasks(collected.cells, task_names, collected.methods, settings)
        seconds["significance tests"] = time.perf_counter() - start
        start = time.perf_counter()
        board = build_board("synthetic", collected, task_names, collected.methods, {}, {}, tests, across, settings)
        board.plots = leaderboard.draw_plots(board)
        seconds["layout + plots"] = time.perf_counter() - start
        start = time.perf_counter()
        leaderboard.write(board, Path(folder) / "out")
        seconds["render + write 5 formats"] = time.perf_counter() - start
    return Timing(runs=runs, final_runs=tasks * methods * seeds, items=items, seconds=seconds)


def report(timing: Timing) -> str:
    lines = [f"leaderboard rebuild from {timing.runs:,} stored runs ({timing.final_runs:,} final runs with "
             f"{timing.items:,} test predictions each):"]
    lines += [f"  {name:<26} {value:6.2f} s" for name, value in timing.seconds.items()]
    verdict = "within" if timing.total <= GOAL_S else "OVER"
    lines.append(f"  {'total':<26} {timing.total:6.2f} s  ({verdict} the {GOAL_S:.0f} s goal; "
                 f"ratio to goal {timing.total / GOAL_S:.2f})")
    return "\n".join(lines)
