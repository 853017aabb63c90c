"""Stored runs -> one result per (task, method): the final seeds of ONE configuration, with cost and provenance.

A configuration is everything in a final run's identity except its seed (bench.train.config.RunConfig.identity):
the task spec as it was, the data, the weights, the method's code and hyper-parameters, precision, how the point
was chosen. A cell never mixes configurations, and holds one record per seed. When a (task, method) has several
configurations in the store, the rule below picks one and the others are named in a footnote:
runs that follow the task's protocol (all the training data, hyper-parameters from its grid) over study variants,
the full grid's selection over a pruned grid's, then a configuration with every protocol seed over an incomplete
one, then more finished seeds, then the newest.

Only runs of one protocol are read (the task profile a run was made with: 'clean' unless asked), and never
smoke runs (--limit / --epochs: quick checks, not benchmark results); both kinds are counted in `set_aside`.
Reads run.json files only, and only trustworthy ones (bench.records); the others are counted and named in
`rejected`. Per-example files are read later, by the significance tests. Nothing here trains or changes a record.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.records import file_problems
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
    failed_seeds: tuple[int, ...] = ()  # e.g. out of device memory twice (bench.train.memory)
    grid_pruned: bool = False  # selected by --grid-prune, not the full grid
    data_fraction: float | None = None  # trained on this share of the training data (--data-fraction)
    chosen_by: dict[str, Any] | None = None  # {"how": "val" | "spec" | "set", "set": {the --set values}}
    configuration: str = ""  # hash of the identity without the seed
    alternatives: int = 0  # other configurations of this (task, method) in the store, not shown
    precision: str = "fp32"  # what the runs trained in (part of their identity): fp32, bf16 or fp16
    peak_memory_bytes: tuple[int | None, ...] = ()  # per completed seed: cost.peak_memory_bytes (None: not recorded)
    peak_memory_kinds: tuple[str | None, ...] = ()  # per completed seed: cost.peak_memory_kind (cuda_allocated, ...)
    trainable_recorded: bool = True  # False: the record has no params.trainable (`trainable` then reads 0)

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
    rejected: dict[str, list[str]] = field(default_factory=dict)  # run folder -> why its record is not used
    protocol: str = "clean"  # the task profile of every record read
    set_aside: dict[str, int] = field(default_factory=dict)  # other protocols' and smoke runs, never shown

    @property
    def methods(self) -> list[str]:
        return sorted({m for _, m in [*self.cells, *self.missing]})


def read_records(
    root: Path,
    tasks: list[str] | None,
    methods: list[str] | None,
    keep: Callable[[dict[str, Any]], bool] | None = None,
    rejected: dict[str, list[str]] | None = None,
    protocol: str | None = "clean",
    set_aside: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Every trustworthy run.json below root for the given tasks/methods, filtering on the folder layout
    (<task>/<method>/<stage>/<key>/run.json) before parsing, so unrelated runs cost nothing. Records that fail
    their checks go to `rejected` (folder -> reasons) when given. Runs of another protocol than `protocol` and smoke
runs are skipped and counted in `set_aside` ('paper protocol': n, 'smoke': n); protocol None reads every
trustworthy record (bench compare matches runs by key)."""
    out: list[dict[str, Any]] = []
    if not root.is_dir():
        return out
    wanted_tasks = None if tasks is None else set(tasks)
    wanted_methods = None if methods is None else set(methods)
    store = RunStore(root)
    for path in sorted(root.rglob(RECORD)):
        relative = path.relative_to(root).parts
        if len(relative) < 5:
            if rejected is not None:
                rejected[str(path.parent)] = ["not in a <task>/<method>/<stage>/<key> folder"]
            continue
        task, method = "/".join(relative[:-4]), relative[-4]
        if (wanted_tasks is not None and task not in wanted_tasks) or (
            wanted_methods is not None and method not in wanted_methods
        ):
            continue
        record, problems = store.read(path.parent)
        if problems or record is None:
            if rejected is not None:
                rejected[str(path.parent)] = problems or ["empty record"]
            continue
        reason = None if protocol is None else set_aside_reason(record, protocol)
        if reason is not None:
            if set_aside is not None:
                set_aside[reason] = set_aside.get(reason, 0) + 1
            continue
        if keep is not None and not keep(record):
            continue
        record["_dir"] = str(path.parent)
        out.append(record)
    return out


def set_aside_reason(record: dict[str, Any], protocol: str) -> str | None:
    """Why a trustworthy record is not part of a `protocol` board (None: it is)."""
    if record.get("run", {}).get("smoke"):
        return "smoke"
    profile = str((record.get("task_spec") or {}).get("profile", "clean"))
    return None if profile == protocol else f"{profile} protocol"


def configuration(record: dict[str, Any]) -> str:
    """The configuration a final run belongs to: its identity without the seed."""
    from bench.store import run_key

    return run_key({k: v for k, v in record["identity"].items() if k != "seed"})


def collect(
    store: RunStore,
    tasks: list[str] | None = None,
    methods: list[str] | None = None,
    keep: Callable[[dict[str, Any]], bool] | None = None,
    protocol: str = "clean",
) -> Collected:
    """One configuration per (task, method), chosen by the rule in the module docstring. `keep` filters records
    (a study takes one data fraction at a time)."""
    found = Collected(protocol=protocol)
    finals: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    grid_runs: dict[tuple[str, str], int] = defaultdict(int)
    by_pair: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in read_records(store.root, tasks, methods, keep, found.rejected, protocol, found.set_aside):
        run = record["run"]
        pair = (run["task"], run["method"])
        by_pair[pair].append(record)
        if run["stage"] == "final":
            finals[(*pair, configuration(record))].append(record)
        else:
            grid_runs[pair] += 1
    chosen: dict[tuple[str, str], list[dict[str, Any]]] = {}
    defaults: dict[tuple[str, str], dict[str, list[Any]] | None] = {}
    configurations: dict[tuple[str, str], int] = defaultdict(int)
    for (task, method, _), records in sorted(finals.items()):
        configurations[(task, method)] += 1
        if (task, method) not in defaults:
            defaults[(task, method)] = _protocol_grid(records[0])
        current = chosen.get((task, method))
        if current is None or _preference(records, defaults[(task, method)]) > _preference(
            current, defaults[(task, method)]
        ):
            chosen[(task, method)] = records
    for pair, records in list(chosen.items()):
        # The runs a cell shows must also have result files matching their checksums and a top-1 their
        # predictions reproduce; a run that does not is left out (and named), never shown.
        kept = []
        for record in records:
            problems = file_problems(Path(record["_dir"]), record)
            if problems:
                found.rejected[record["_dir"]] = problems
            else:
                kept.append(record)
        if not kept:
            found.missing[pair] = "every final run of the chosen configuration failed its checks (bench doctor)"
            del chosen[pair]
            continue
        chosen[pair] = records = kept
        # Cost: the grid runs of the chosen variant and the final runs of the chosen configuration.
        variant = _variant(records[0]["run"], defaults[pair]), _fixed(records[0]["run"], defaults[pair])
        shown = {r["key"] for r in records}
        for record in by_pair[pair]:
            is_grid = record["run"]["stage"] == "grid"
            same = (_variant(record["run"], defaults[pair]), _fixed(record["run"], defaults[pair])) == variant
            if (is_grid and same) or record["key"] in shown:
                cost = record.get("cost", {})
                found.wall_s[pair] = found.wall_s.get(pair, 0.0) + float(cost.get("wall_s") or 0.0)
                found.devices.setdefault(pair, set()).add(str(cost.get("device", "unknown")))
        cell = _cell(records, configurations[pair] - 1)
        if cell is None:
            statuses = sorted({str(r["status"]) for r in records})
            found.missing[pair] = f"all {len(records)} final seeds {' or '.join(statuses)}"
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
    return json.dumps(
        {
            **run.get("hparams", {}),
            "base_lr": run["optim"]["base_lr"],
            "weight_decay": run["optim"]["weight_decay"],
            "grid_prune": run.get("grid_prune"),
            "data_fraction": run.get("data_fraction"),
            "train_examples": run.get("train_examples"),
        },
        sort_keys=True,
    )


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
    chosen = run.get("chosen_by") or {}
    if chosen.get("how") == "set" or chosen.get("set"):
        return False  # a value fixed on the command line, even one the protocol would also have used
    if grid is None:
        return True
    values = {**run.get("hparams", {}), **run.get("optim", {})}
    return all(values[name] in allowed for name, allowed in grid.items() if name in values)


def _fixed(run: dict[str, Any], grid: dict[str, list[Any]] | None) -> str:
    """The method hyper-parameters that are not grid axes (a --num-tokens sweep's grid runs differ here)."""
    return json.dumps({k: v for k, v in run.get("hparams", {}).items() if k not in (grid or {})}, sort_keys=True)


def _variant(run: dict[str, Any], grid: dict[str, list[Any]] | None) -> tuple[bool, Any, Any]:
    return _follows_protocol(run, grid), run.get("data_fraction"), run.get("train_examples")


def _preference(
    records: list[dict[str, Any]], grid: dict[str, list[Any]] | None
) -> tuple[bool, bool, bool, bool, int, str]:
    """Runs that follow the task's protocol (all the training data, hyper-parameters from its grid) over study
    variants, the full grid's selection over a pruned grid's, then every protocol seed, more finished seeds, the
    newest."""
    completed = [r for r in records if r["status"] == "completed"]
    standard = _follows_protocol(records[0]["run"], grid)
    full_data = not any(r["run"].get("data_fraction") for r in records)
    full_grid = not any(r["run"].get("grid_prune") for r in records)
    seeds = records[0].get("task_spec", {}).get("protocol", {}).get("seeds")
    complete = isinstance(seeds, list) and {r["run"]["seed"] for r in records} >= set(seeds)
    return standard, full_data, full_grid, complete, len(completed), max(str(r.get("created_at", "")) for r in records)


def _cell(records: list[dict[str, Any]], alternatives: int) -> Cell | None:
    completed = sorted((r for r in records if r["status"] == "completed"), key=lambda r: r["run"]["seed"])
    if not completed:
        return None
    first = completed[0]
    run, params = first["run"], first.get("params", {})
    metric = first["metrics"].get("primary", "top1")
    point = " ".join(
        f"{k}={v}"
        for k, v in {
            "lr": run["optim"]["base_lr"],
            "wd": run["optim"]["weight_decay"],
            **run.get("hparams", {}),
        }.items()
    )
    protocol = first.get("task_spec", {}).get("protocol", {})
    seeds = protocol.get("seeds")
    diverged = sorted(r["run"]["seed"] for r in records if r["status"] == "diverged")
    failed = sorted(r["run"]["seed"] for r in records if r["status"] not in ("completed", "diverged"))
    return Cell(
        task=run["task"],
        method=run["method"],
        scores=tuple(float(r["metrics"][metric]) for r in completed),
        seeds=tuple(int(r["run"]["seed"]) for r in completed),
        run_dirs=tuple(str(r["_dir"]) for r in completed),
        metric=metric,
        point=point,
        trainable=int(params.get("trainable", 0)),
        trainable_percent=float(params.get("trainable_percent", 0)),
        protocol_seeds=len(seeds) if isinstance(seeds, list) else None,
        diverged_seeds=tuple(diverged),
        failed_seeds=tuple(failed),
        grid_pruned=bool(run.get("grid_prune")),
        data_fraction=run.get("data_fraction"),
        chosen_by=run.get("chosen_by"),
        configuration=configuration(first),
        alternatives=alternatives,
        precision=str(run.get("precision", "fp32")),
        peak_memory_bytes=tuple(_peak_memory(r)[0] for r in completed),
        peak_memory_kinds=tuple(_peak_memory(r)[1] for r in completed),
        trainable_recorded="trainable" in params,
    )


def _peak_memory(record: dict[str, Any]) -> tuple[int | None, str | None]:
    """(bytes, kind) of a record's peak memory, as it recorded them; (None, None) when it did not."""
    cost = record.get("cost") or {}
    value, kind = cost.get("peak_memory_bytes"), cost.get("peak_memory_kind")
    return (None if value is None else int(value)), (None if kind is None else str(kind))
