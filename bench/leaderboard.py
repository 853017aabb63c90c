"""Leaderboards rebuilt from run records: methods × tasks, mean ± std over final seeds, trainable params.

Nothing here trains or changes records; a new table layout never needs a re-run.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from bench.store import RunStore


@dataclass(frozen=True)
class Cell:
    """The final-stage result of one method on one task."""

    scores: tuple[float, ...]
    trainable_percent: float
    trainable: int
    point: str

    @property
    def mean(self) -> float:
        return statistics.mean(self.scores)

    @property
    def std(self) -> float:
        return statistics.stdev(self.scores) if len(self.scores) > 1 else 0.0


def collect(store: RunStore, tasks: list[str] | None = None, methods: list[str] | None = None
            ) -> dict[tuple[str, str], Cell]:
    """(task, method) -> Cell. When several hyper-parameter sets have final runs (the grid was re-run and
    selected differently), the set with the most seeds wins, then the most recent."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in store.records(stage="final"):
        run = record["run"]
        if record["status"] != "completed":
            continue
        if tasks is not None and run["task"] not in tasks:
            continue
        if methods is not None and run["method"] not in methods:
            continue
        point = json.dumps({**run["hparams"], "base_lr": run["optim"]["base_lr"],
                            "weight_decay": run["optim"]["weight_decay"]}, sort_keys=True)
        groups[(run["task"], run["method"], point)].append(record)
    best: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (task, method, _), records in groups.items():
        current = best.get((task, method))
        newest = max(r["created_at"] for r in records)
        if current is None or (len(records), newest) > (len(current), max(r["created_at"] for r in current)):
            best[(task, method)] = records
    cells = {}
    for (task, method), records in best.items():
        records = sorted(records, key=lambda r: r["run"]["seed"])
        params = records[0]["params"]
        run = records[0]["run"]
        point = " ".join(f"{k}={v}" for k, v in {"lr": run["optim"]["base_lr"], "wd": run["optim"]["weight_decay"],
                                                 **run["hparams"]}.items())
        cells[(task, method)] = Cell(tuple(r["metrics"]["top1"] for r in records), params["trainable_percent"],
                                     params["trainable"], point)
    return cells


def markdown_table(cells: dict[tuple[str, str], Cell], tasks: list[str] | None = None,
                   methods: list[str] | None = None) -> str:
    """Methods as rows, tasks as columns (mean ± std, n seeds), then the mean over tasks and trainable %."""
    from tabulate import tabulate

    task_names = tasks or sorted({t for t, _ in cells})
    method_names = methods or sorted({m for _, m in cells})
    headers = ["Method", *task_names, "Mean", "Trainable % (excl. head)"]
    rows = []
    for method in method_names:
        row: list[str] = [method]
        means, percents = [], []
        for task in task_names:
            cell = cells.get((task, method))
            if cell is None:
                row.append("–")
                continue
            row.append(f"{cell.mean:.2f} ± {cell.std:.2f} (n={len(cell.scores)})")
            means.append(cell.mean)
            percents.append(cell.trainable_percent)
        if not percents:
            continue
        complete = len(means) == len(task_names)
        row.append(f"{statistics.mean(means):.2f}" if complete else "–")
        row.append(f"{statistics.mean(percents):.3f}")
        rows.append(row)
    table = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    note = ("\n\nTest top-1 (%) at the last epoch, mean ± sample std over the final seeds; hyper-parameters "
            "selected on val only. Mean: unweighted over tasks (only for methods with every task).")
    return table + note + "\n"
