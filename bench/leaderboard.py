"""Leaderboards rebuilt from run records: methods × tasks, mean ± std over final seeds, trainable params.

Nothing here trains or changes records; a new table layout never needs a re-run.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from bench.reference import ReferenceTable
from bench.store import RunStore


@dataclass(frozen=True)
class Cell:
    """The final-stage result of one method on one task."""

    scores: tuple[float, ...]
    trainable_percent: float
    trainable: int
    point: str
    metric: str = "top1"

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
        metric = records[0]["metrics"].get("primary", "top1")
        cells[(task, method)] = Cell(tuple(r["metrics"][metric] for r in records), params["trainable_percent"],
                                     params["trainable"], point, metric)
    return cells


def _means(scores: dict[str, float], task_names: list[str], groups: dict[str, list[str]]) -> list[str]:
    """Group means (when the suite has groups), then the overall mean: of the group means when there are
    groups (the VTAB convention), else of the tasks. '–' unless every task needed is present."""
    out = []
    for members in groups.values():
        out.append(f"{statistics.mean(scores[t] for t in members):.2f}" if all(t in scores for t in members) else "–")
    if groups:
        group_means = [float(v) for v in out if v != "–"]
        out.append(f"{statistics.mean(group_means):.2f}" if len(group_means) == len(groups) else "–")
    else:
        out.append(f"{statistics.mean(scores[t] for t in task_names):.2f}"
                   if all(t in scores for t in task_names) else "–")
    return out


def markdown_table(cells: dict[tuple[str, str], Cell], tasks: list[str] | None = None,
                   methods: list[str] | None = None, groups: dict[str, list[str]] | None = None,
                   references: dict[str, ReferenceTable] | None = None) -> str:
    """Methods as rows, tasks as columns (mean ± std, n seeds), group means, the mean, trainable %; then
    published reference rows, labelled with their source."""
    from tabulate import tabulate

    groups = groups or {}
    task_names = tasks or sorted({t for t, _ in cells})
    method_names = methods or sorted({m for _, m in cells})
    metric_of = {t: c.metric for (t, _), c in cells.items()}
    shown = [t if metric_of.get(t, "top1") == "top1" else f"{t} ({metric_of[t]})" for t in task_names]
    headers = ["Method", *shown, *[f"Mean {g}" for g in groups], "Mean", "Trainable % (excl. head)"]
    rows = []
    for method in method_names:
        row: list[str] = [method]
        scores, percents = {}, []
        for task in task_names:
            cell = cells.get((task, method))
            if cell is None:
                row.append("–")
                continue
            row.append(f"{cell.mean:.2f} ± {cell.std:.2f} (n={len(cell.scores)})")
            scores[task] = cell.mean
            percents.append(cell.trainable_percent)
        if not percents:
            continue
        row.extend(_means(scores, task_names, groups))
        row.append(f"{statistics.mean(percents):.3f}")
        rows.append(row)
    sources = []
    for name, reference in (references or {}).items():
        for method, values in reference.methods.items():
            if not any(t in values for t in task_names):
                continue
            row = [f"{method} [{name}]", *[f"{values[t]:.1f}" if t in values else "–" for t in task_names]]
            rows.append([*row, *_means(values, task_names, groups), ""])
        if any(any(t in v for t in task_names) for v in reference.methods.values()):
            label = " (read from a figure)" if reference.kind == "figure" else ""
            sources.append(f"[{name}]{label}: {reference.citation}")
    table = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    what = "Test top-1 (%) at the last epoch" if set(metric_of.values()) <= {"top1"} else (
        "Test scores (top-1 % for vision tasks, the metric in the column header for language tasks)")
    note = (f"\n\n{what}, mean ± sample std over the final seeds; hyper-parameters "
            "selected on val only. Means are unweighted and shown only when every task they need is present"
            + ("; the overall mean is the mean of the group means." if groups else "."))
    if sources:
        note += "\n\nReference rows (published, not run here):\n" + "\n".join(f"- {s}" for s in sources)
    return table + note + "\n"
