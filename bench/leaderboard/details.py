"""What a leaderboard cell's run records say beyond its score: every test metric per seed, the per-epoch history,
the chosen hyper-parameters and how they were chosen, and the val scores of its grid (lr x weight decay).

Read-only: the final records come from the cell's run folders, the grid records from the same store through
collect.read_records; nothing here trains, selects or changes a record.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.leaderboard.collect import Cell, read_records
from bench.store import RunStore

Pair = tuple[str, str]


@dataclass(frozen=True)
class SeedRun:
    """One final run: its numeric test metrics (primary and secondary), its per-epoch history, and what made it
    (run key, engine and package versions, the commit of the code that ran it), for the board's provenance."""

    seed: int
    metrics: dict[str, float]
    history: tuple[dict[str, Any], ...]
    key: str = ""
    runner_version: int | None = None
    bench_version: str | None = None
    git_commit: str | None = None


@dataclass(frozen=True)
class GridPoint:
    """One grid run at the cell's other hyper-parameters: its val score (None when it diverged or was pruned)."""

    lr: float
    wd: float
    score: float | None
    status: str
    key: str
    history: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class CellDetail:
    task: str
    method: str
    metric: str
    lr: float
    wd: float
    hparams: dict[str, Any]
    selection: dict[str, Any] | None
    seeds: tuple[SeedRun, ...]
    grid: tuple[GridPoint, ...]

    @property
    def metric_names(self) -> list[str]:
        """The numeric test metrics every seed has, in the order the records list them."""
        names = [name for run in self.seeds for name in run.metrics]
        return [n for n in dict.fromkeys(names) if all(n in run.metrics for run in self.seeds)]

    @property
    def selected_grid(self) -> GridPoint | None:
        """The grid run the final point was selected from (the selection's grid_key, else the same lr and wd)."""
        key = (self.selection or {}).get("grid_key")
        by_key = [p for p in self.grid if key is not None and p.key == key]
        if by_key:
            return by_key[0]
        same = [p for p in self.grid if p.lr == self.lr and p.wd == self.wd]
        return same[0] if same else None


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The scores of an evaluation record (not its epoch, split or convention text)."""
    return {name: float(value) for name, value in metrics.items()
            if isinstance(value, int | float) and not isinstance(value, bool) and name != "epoch"}


def _variant(run: Mapping[str, Any]) -> str:
    """Everything but lr and weight decay that makes two runs of a (task, method) comparable points of one grid."""
    return json.dumps({"hparams": run.get("hparams", {}), "data_fraction": run.get("data_fraction"),
                       "train_examples": run.get("train_examples"), "grid_prune": run.get("grid_prune")},
                      sort_keys=True, default=str)


def read_details(root: Path, cells: Mapping[Pair, Cell]) -> dict[Pair, CellDetail]:
    """Details of every cell; grid points are the grid runs with the same method hyper-parameters and data as the
    final runs (so a prefix-length study's grid at another length is not mixed in), the newest run per point."""
    store = RunStore(root)
    finals: dict[Pair, list[dict[str, Any]]] = {}
    for pair, cell in cells.items():
        finals[pair] = [r for d in cell.run_dirs if (r := store.load(Path(d))) is not None]
    # The grid runs sit beside the final runs: <task>/<method>/grid/<key>/ (folder names, as the store lays out).
    folders = {Path(d).relative_to(root).parts[:-2] for cell in cells.values() for d in cell.run_dirs}
    tasks = sorted({"/".join(parts[:-1]) for parts in folders})
    methods = sorted({parts[-1] for parts in folders})
    grids: dict[Pair, list[dict[str, Any]]] = defaultdict(list)
    if cells:
        for record in read_records(root, tasks, methods, keep=lambda r: r["run"].get("stage") == "grid"):
            grids[(record["run"]["task"], record["run"]["method"])].append(record)
    out = {}
    for pair, records in sorted(finals.items()):
        if not records:
            continue
        first = records[0]
        run = first["run"]
        variant = _variant(run)
        points: dict[tuple[float, float], dict[str, Any]] = {}
        for record in sorted(grids.get(pair, []), key=lambda r: str(r.get("created_at", ""))):
            if _variant(record["run"]) == variant:
                optim = record["run"]["optim"]
                points[(float(optim["base_lr"]), float(optim["weight_decay"]))] = record
        metric = cells[pair].metric
        grid = tuple(GridPoint(lr, wd, _grid_score(r, metric), str(r.get("status")), str(r.get("key")),
                               tuple(r.get("history") or ()))
                     for (lr, wd), r in sorted(points.items()))
        seeds = tuple(_seed_run(r) for r in records)
        out[pair] = CellDetail(task=pair[0], method=pair[1], metric=metric, lr=float(run["optim"]["base_lr"]),
                               wd=float(run["optim"]["weight_decay"]), hparams=dict(run.get("hparams", {})),
                               selection=first.get("selection"), seeds=seeds, grid=grid)
    return out


def _seed_run(record: Mapping[str, Any]) -> SeedRun:
    env = record.get("env") or {}
    runner = (record.get("identity") or {}).get("runner_version")
    return SeedRun(int(record["run"]["seed"]), numeric_metrics(record.get("metrics", {})),
                   tuple(record.get("history") or ()), key=str(record.get("key", "")),
                   runner_version=runner if isinstance(runner, int) else None,
                   bench_version=(env.get("versions") or {}).get("bench"), git_commit=env.get("git_commit"))


def _grid_score(record: Mapping[str, Any], metric: str) -> float | None:
    if record.get("status") != "completed":
        return None
    value = record.get("metrics", {}).get(metric)
    return None if value is None else float(value)
