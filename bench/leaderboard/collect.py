"""Stored runs -> one result per (task, method): the final seeds of the selected point, with cost and provenance.

Reads run.json files only (per-example files are read later, by the significance tests, for the cells that need
them). Nothing here trains or changes a record.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.store import RECORD, RunStore


@dataclass(frozen=True)
class Cell:
    """The final-stage result of one method on one task (one hyper-parameter point, every finished seed)."""

    task: str
    method: str
    scores: tuple[float, ...]
    seeds: tuple[int, ...]
    run_dirs: tuple[str, ...]
    metric: str
    point: str
    trainable: int
    trainable_percent: float
    protocol_seeds: int | None = None
    diverged_seeds: tuple[int, ...] = ()
    grid_pruned: bool = False  # selected by --grid-prune, not the full grid
    data_fraction: float | None = None  # trained on this share of the training data (--data-fraction)

    @property
    def mean(self) -> float:
        return statistics.mean(self.scores)

    @property
    def std(self) -> float:
        return statistics.stdev(self.scores) if len(self.scores) > 1 else 0.0


@dataclass
class Collected:
    """Cells, why a (task, method) pair has none, and what all its runs (grid + final) cost."""

    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    missing: dict[tuple[str, str], str] = field(default_factory=dict)
    wall_s: dict[tuple[str, str], float] = field(default_factory=dict)
    devices: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        return sorted({m for _, m in [*self.cells, *self.missing]})


def read_records(root: Path, tasks: list[str] | None, methods: list[str] | None,
                 keep: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
    """Every run.json below root for the given tasks/methods, filtering on the folder layout
    (<task>/<method>/<stage>/<key>/run.json) before parsing, so unrelated runs cost nothing."""
    out: list[dict[str, Any]] = []
    if not root.is_dir():
        return out
    wanted_tasks = None if tasks is None else set(tasks)
    wanted_methods = None if methods is None else set(methods)
    store = RunStore(root)
    for path in sorted(root.rglob(RECORD)):
        relative = path.relative_to(root).parts
        if len(relative) < 5:
            continue
        task, method = "/".join(relative[:-4]), relative[-4]
        if (wanted_tasks is not None and task not in wanted_tasks) or (
                wanted_methods is not None and method not in wanted_methods):
            continue
        record = store.load(path.parent)
        if record is None or (keep is not None and not keep(record)):
            continue
        record["_dir"] = str(path.parent)
        out.append(record)
    return out


def collect(store: RunStore, tasks: list[str] | None = None, methods: list[str] | None = None,
            keep: Callable[[dict[str, Any]], bool] | None = None) -> Collected:
    """Group final runs by hyper-parameter point; when several points have final runs (the grid was re-run and
    selected differently, or also run with --grid-prune), the full grid's wins, then the point with the most
    finished seeds, then the most recent. `keep` filters records (a study takes one data fraction at a time)."""
    found = Collected()
    finals: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    grid_runs: dict[tuple[str, str], int] = defaultdict(int)
    by_pair: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in read_records(store.root, tasks, methods, keep):
        run = record["run"]
        pair = (run["task"], run["method"])
        by_pair[pair].append(record)
        if run["stage"] == "final":
            finals[(*pair, _point_key(run))].append(record)
        else:
            grid_runs[pair] += 1
    chosen: dict[tuple[str, str], list[dict[str, Any]]] = {}
    defaults: dict[tuple[str, str], dict[str, list[Any]] | None] = {}
    for (task, method, _), records in sorted(finals.items()):
        if (task, method) not in defaults:
            defaults[(task, method)] = _protocol_grid(records[0])
        current = chosen.get((task, method))
        if current is None or _preference(records, defaults[(task, method)]) > _preference(
                current, defaults[(task, method)]):
            chosen[(task, method)] = records
    for pair, records in chosen.items():
        # Cost: the grid and final runs of the chosen variant only (not the study runs beside it).
        variant = _variant(records[0]["run"], defaults[pair])
        for record in by_pair[pair]:
            if _variant(record["run"], defaults[pair]) == variant:
                cost = record.get("cost", {})
                found.wall_s[pair] = found.wall_s.get(pair, 0.0) + float(cost.get("wall_s") or 0.0)
                found.devices.setdefault(pair, set()).add(str(cost.get("device", "unknown")))
        cell = _cell(records)
        if cell is None:
            found.missing[pair] = f"all {len(records)} final seeds diverged"
        else:
            found.cells[pair] = cell
    for pair, count in grid_runs.items():
        if pair not in chosen:
            for record in by_pair[pair]:
                cost = record.get("cost", {})
                found.wall_s[pair] = found.wall_s.get(pair, 0.0) + float(cost.get("wall_s") or 0.0)
                found.devices.setdefault(pair, set()).add(str(cost.get("device", "unknown")))
            found.missing[pair] = f"grid search only ({count} grid run{'s' if count != 1 else ''}, no final runs yet)"
    return found


def _point_key(run: dict[str, Any]) -> str:
    return json.dumps({**run.get("hparams", {}), "base_lr": run["optim"]["base_lr"],
                       "weight_decay": run["optim"]["weight_decay"], "grid_prune": run.get("grid_prune"),
                       "data_fraction": run.get("data_fraction"), "train_examples": run.get("train_examples")},
                      sort_keys=True)


def _protocol_grid(record: dict[str, Any]) -> dict[str, list[Any]] | None:
    """The search grid the task's protocol gives this method (None when the method or spec cannot be loaded)."""
    from bench import registry
    from bench.errors import BenchError
    from bench.spec import task_from_record
    from bench.train.protocol import method_settings

    try:
        task = task_from_record(record.get("task_spec", {}))
        return method_settings(task, registry.get_method(record["run"]["method"])).grid
    except (BenchError, ValueError, KeyError):
        return None


def _follows_protocol(run: dict[str, Any], grid: dict[str, list[Any]] | None) -> bool:
    """No study variant (fraction, training-set size) and no axis fixed off the protocol's grid (--set,
    --num-tokens, an init_text): such runs answer another question than the leaderboard's."""
    if run.get("data_fraction") or run.get("train_examples"):
        return False
    if grid is None:
        return True
    values = {**run.get("hparams", {}), **run.get("optim", {})}
    return all(values[name] in allowed for name, allowed in grid.items() if name in values)


def _variant(run: dict[str, Any], grid: dict[str, list[Any]] | None) -> tuple[bool, Any, Any]:
    return _follows_protocol(run, grid), run.get("data_fraction"), run.get("train_examples")


def _preference(records: list[dict[str, Any]], grid: dict[str, list[Any]] | None) -> tuple[bool, bool, bool, int, str]:
    """Runs that follow the task's protocol (all the training data, hyper-parameters from its grid) over study
    variants, the full grid's selection over a pruned grid's, then more finished seeds, then the newest."""
    completed = [r for r in records if r["status"] == "completed"]
    standard = _follows_protocol(records[0]["run"], grid)
    full_data = not any(r["run"].get("data_fraction") for r in records)
    full_grid = not any(r["run"].get("grid_prune") for r in records)
    return standard, full_data, full_grid, len(completed), max(str(r.get("created_at", "")) for r in records)


def _cell(records: list[dict[str, Any]]) -> Cell | None:
    completed = sorted((r for r in records if r["status"] == "completed"), key=lambda r: r["run"]["seed"])
    if not completed:
        return None
    first = completed[0]
    run, params = first["run"], first.get("params", {})
    metric = first["metrics"].get("primary", "top1")
    point = " ".join(f"{k}={v}" for k, v in {"lr": run["optim"]["base_lr"], "wd": run["optim"]["weight_decay"],
                                             **run.get("hparams", {})}.items())
    protocol = first.get("task_spec", {}).get("protocol", {})
    seeds = protocol.get("seeds")
    diverged = sorted(r["run"]["seed"] for r in records if r["status"] != "completed")
    return Cell(task=run["task"], method=run["method"], scores=tuple(float(r["metrics"][metric]) for r in completed),
                seeds=tuple(int(r["run"]["seed"]) for r in completed),
                run_dirs=tuple(str(r["_dir"]) for r in completed), metric=metric, point=point,
                trainable=int(params.get("trainable", 0)), trainable_percent=float(params.get("trainable_percent", 0)),
                protocol_seeds=len(seeds) if isinstance(seeds, list) else None, diverged_seeds=tuple(diverged),
                grid_pruned=bool(run.get("grid_prune")), data_fraction=run.get("data_fraction"))
