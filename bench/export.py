"""`bench export`: every stored run as one row of a flat table (CSV, parquet, JSON lines), for analysis elsewhere.

Reads run.json files through the store's checks only: a record that fails them is never exported, and is named with
its reasons. Nothing here trains, and nothing in the store is changed; the table is rebuilt from records each time.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError, did_you_mean
from bench.records import RECORD, run_key
from bench.store import RunStore, atomic_write_bytes

# 1: one row per run; hp.* / optim.* / metric.* / selection.* / params.* / cost.* / data.* column groups.
EXPORT_SCHEMA = 1
FORMATS = ("csv", "parquet", "jsonl")
DEFAULT_STEM = "runs"  # the file name inside a folder given to --out

# Columns every row has, in this order; the grouped columns (hp.*, metric.*, ...) follow, sorted within a group.
COLUMNS = (
    "export_schema", "key", "configuration", "task", "method", "stage", "seed", "status", "chosen_by", "set",
    "split", "primary_metric", "score", "epoch", "data_fraction", "train_examples", "grid_pruned", "profile",
    "smoke_limit", "smoke_epochs", "backbone", "precision", "train_splits", "eval_split", "device", "runner_version",
    "method_code", "bench_version", "torch_version", "git_commit", "created_at",
)
GROUPS = ("hp.", "optim.", "metric.", "selection.", "params.", "cost.", "data.")


@dataclass
class Export:
    """The exported rows (one per trustworthy run, in a stable order), their columns, and the records left out."""

    rows: list[dict[str, Any]]
    columns: list[str]
    left_out: dict[str, list[str]] = field(default_factory=dict)  # run folder -> why its record is not used

    def frame(self) -> Any:
        """The rows as a pandas DataFrame with one dtype per column (nullable integers, booleans and strings)."""
        import pandas as pd

        return pd.DataFrame({name: _column(name, [row.get(name) for row in self.rows]) for name in self.columns},
                            columns=self.columns)


def _column(name: str, values: list[Any]) -> Any:
    import pandas as pd

    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pd.array(values, dtype="boolean")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pd.array(values, dtype="Int64")
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pd.array([math.nan if v is None else float(v) for v in values], dtype="float64")
    return pd.array([None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values],
                    dtype="string")


# ---------------------------------------------------------------- which runs


def stored_names(root: Path) -> tuple[set[str], set[str]]:
    """The task and method names the store's folder layout holds (<task>/<method>/<stage>/<key>/run.json)."""
    tasks, methods = set(), set()
    if root.is_dir():
        for path in root.rglob(RECORD):
            parts = path.relative_to(root).parts
            if len(parts) >= 5:
                tasks.add("/".join(parts[:-4]))
                methods.add(parts[-4])
    return tasks, methods


def task_filter(name: str | None, root: Path, tasks_dirs: Sequence[str | Path] = ()) -> set[str] | None:
    """The task names a --task value stands for (None: every task). A task or suite known here gives its tasks;
    a name known only to the store (runs someone else made with their own --tasks-dir) gives the stored tasks
    it names or that lie below it ('mini' -> 'mini/counting', ...)."""
    if not name:
        return None
    from bench import registry

    stored, _ = stored_names(root)
    try:
        _, specs = registry.resolve_tasks(name, tuple(Path(d) for d in tasks_dirs))
        return {spec.name for spec in specs}
    except BenchError as exc:
        found = {t for t in stored if t == name or t.startswith(name.rstrip("/") + "/")}
        if found:
            return found
        raise BenchError(f"no task or suite '{name}' here or in {root}.{did_you_mean(name, stored)}",
                         field="--task", hint="Give a task or suite name (`bench list tasks`).") from exc


def method_filter(names: Sequence[str] | None, root: Path, methods_dirs: Sequence[str | Path] = ()) -> set[str] | None:
    """The method names a --method value stands for (None or ('all',): every method). A name must be a method
    known here or one the store has runs of."""
    if not names or tuple(names) == ("all",):
        return None
    from bench.peft_spec import PREFIX, resolve

    names = [resolve(n).name if n.startswith(PREFIX) else n for n in names]  # a peft: config's stored name
    _, stored = stored_names(root)
    unknown = [n for n in names if n not in stored]
    if unknown:
        from bench import registry

        known = set(registry.load_methods(tuple(Path(d) for d in methods_dirs)))
        for name in unknown:
            if name not in known:
                raise BenchError(f"unknown method '{name}': not a method here and no runs of it in {root}."
                                 f"{did_you_mean(name, known | stored)}", field="--method")
    return set(names)


def trusted_records(
    root: Path, tasks: set[str] | None, methods: set[str] | None, deep: bool = False
) -> tuple[list[tuple[Path, dict[str, Any]]], dict[str, list[str]]]:
    """(run folder, record) for every record below `root` that passes its checks, filtered on the folder layout
    before parsing, and folder -> reasons for the ones that do not. `deep` also checks the result files."""
    store = RunStore(root)
    found: list[tuple[Path, dict[str, Any]]] = []
    left_out: dict[str, list[str]] = {}
    for path in sorted(root.rglob(RECORD)) if root.is_dir() else []:
        parts = path.relative_to(root).parts
        if len(parts) < 5:
            left_out[str(path.parent)] = ["not in a <task>/<method>/<stage>/<key> folder"]
            continue
        if (tasks is not None and "/".join(parts[:-4]) not in tasks) or (methods is not None
                                                                          and parts[-4] not in methods):
            continue
        record, problems = store.read(path.parent, deep=deep)
        if problems or record is None:
            left_out[str(path.parent)] = problems or ["empty record"]
            continue
        found.append((path.parent, record))
    return found, left_out


def require_store(root: Path) -> None:
    """--results must be an existing folder for the commands that read a store."""
    RunStore(root)  # a file: one paragraph naming --results
    if not root.is_dir():
        raise BenchError(f"there is no run store at {root}.", field="--results",
                         hint="Give --results the folder `bench run` wrote to (default: $BENCH_RESULTS or "
                         "results/runs).")


# ---------------------------------------------------------------- rows


def export_runs(
    results: Path,
    tasks: set[str] | None = None,
    methods: set[str] | None = None,
) -> Export:
    """One row per trustworthy stored run (grid and final stages; one seed of one configuration each)."""
    root = Path(results)
    require_store(root)
    records, left_out = trusted_records(root, tasks, methods)
    rows = sorted((run_row(record) for _, record in records),
                  key=lambda r: (r["task"], r["method"], r["stage"], r["configuration"], r["seed"], r["key"]))
    grouped = sorted({name for row in rows for name in row if name not in COLUMNS},
                     key=lambda name: (_group_index(name), name))
    return Export(rows, [*COLUMNS, *grouped], left_out)


def _group_index(name: str) -> int:
    return next((i for i, prefix in enumerate(GROUPS) if name.startswith(prefix)), len(GROUPS))


def _scalar(value: Any) -> Any:
    """A cell: numbers, strings, booleans and None as they are; lists and mappings as canonical JSON."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def run_row(record: dict[str, Any]) -> dict[str, Any]:
    """The flat row of one record. Hyper-parameters are the grid point (base_lr, weight_decay and the method's
    own); `chosen_by` says how a final run's point was chosen (val, spec, set) and `set` which values --set fixed;
    grid runs say `grid`. Metrics are on the split the record holds them for (`split`: val for grid runs, the
    final stage's eval split, usually test, for final runs)."""
    run, identity, metrics = record["run"], record["identity"], record["metrics"]
    cost, params = record.get("cost") or {}, record.get("params") or {}
    task_spec = identity.get("task_spec") or record.get("task_spec") or {}
    env = record.get("env") or {}
    chosen = run.get("chosen_by") or {}
    primary = metrics.get("primary") or metrics.get("metric")
    optim = run.get("optim") or {}
    row: dict[str, Any] = {
        "export_schema": EXPORT_SCHEMA,
        "key": record["key"],
        "configuration": run_key({k: v for k, v in identity.items() if k != "seed"}),  # = leaderboard's
        "task": run["task"],
        "method": run["method"],
        "stage": run["stage"],
        "seed": run["seed"],
        "status": record["status"],
        "chosen_by": chosen.get("how") or ("grid" if run["stage"] == "grid" else None),
        "set": _scalar(chosen["set"]) if chosen.get("set") else None,
        "split": metrics.get("split"),
        "primary_metric": primary,
        "score": metrics.get(primary) if _number(metrics.get(primary)) else None,
        "epoch": metrics.get("epoch"),
        "data_fraction": run.get("data_fraction") or 1.0,
        "train_examples": run.get("train_examples"),
        "grid_pruned": bool(run.get("grid_prune")),
        "profile": task_spec.get("profile"),
        "smoke_limit": (run.get("smoke") or {}).get("limit"),  # smoke runs (--limit / --epochs): quick checks
        "smoke_epochs": (run.get("smoke") or {}).get("epochs"),
        "backbone": (task_spec.get("backbone") or {}).get("model"),
        "precision": run.get("precision"),
        "train_splits": "+".join(run.get("train_splits") or []) or None,
        "eval_split": run.get("eval_split"),
        "device": cost.get("device"),
        "runner_version": identity.get("runner_version"),
        "method_code": identity.get("method_code"),
        "bench_version": (env.get("versions") or {}).get("bench"),
        "torch_version": (env.get("versions") or {}).get("torch"),
        "git_commit": env.get("git_commit"),
        "created_at": record.get("created_at"),
    }
    for name in ("base_lr", "weight_decay"):
        if name in optim:
            row[f"hp.{name}"] = _scalar(optim[name])
    row.update({f"hp.{k}": _scalar(v) for k, v in (run.get("hparams") or {}).items()})
    row.update({f"optim.{k}": _scalar(v) for k, v in optim.items() if k not in ("base_lr", "weight_decay")})
    row.update({f"metric.{k}": v for k, v in metrics.items() if _number(v) and k != "epoch"})
    selection = record.get("selection") or {}
    row.update({f"selection.{k}": selection[k] for k in sorted(selection)
                if (k.startswith("val_") and _number(selection[k])) or k in ("grid_key", "candidates", "diverged")})
    row.update({f"params.{k}": v for k, v in params.items() if _number(v)})
    row.update({f"cost.{k}": _scalar(v) for k, v in cost.items() if k != "device"})
    row.update({f"data.{k}": v for k, v in (record.get("data") or {}).items() if _number(v)})
    return row


# ---------------------------------------------------------------- files


def output_stem(out: str | Path) -> Path:
    """--out as a file stem: an existing folder, or a path ending in '/', holds `runs.<format>`; a name ending in
    a format's suffix loses it (`table.csv` -> table.csv, table.parquet, ...); any other name is the stem."""
    text = str(out)  # a str keeps its trailing '/', which Path drops
    out = Path(out)
    if out.is_dir() or text.endswith(("/", "\\")):
        return out / DEFAULT_STEM
    if out.suffix.lstrip(".") in FORMATS:
        out = out.with_suffix("")
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out} is an existing file, not a folder or a file stem.", field="--out",
                         hint="Give a folder (files runs.csv, runs.parquet, runs.jsonl are written in it) or a "
                         "stem such as results/export/mini (mini.csv, mini.parquet, ...).")
    if out.parent.exists() and not out.parent.is_dir():
        raise BenchError(f"--out {out}: {out.parent} is a file, not a folder.", field="--out",
                         hint="Give a path inside a folder.")
    return out


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise BenchError(f"unknown --format {', '.join(unknown) or '(empty)'}.", field="--format",
                         hint=f"Use a comma-separated list of {', '.join(FORMATS)} (default: all three).")
    return tuple(dict.fromkeys(formats))


def write_export(export: Export, out: str | Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write the table as <stem>.<format> for each format (each file atomically); returns the paths."""
    stem = output_stem(out)
    written = []
    for fmt in check_formats(formats):
        path = stem.with_name(f"{stem.name}.{fmt}")
        atomic_write_bytes(path, render(export, fmt))
        written.append(path)
    return written


def render(export: Export, fmt: str) -> bytes:
    if fmt == "jsonl":
        lines = [json.dumps({c: _finite(row.get(c)) for c in export.columns}, allow_nan=False) for row in export.rows]
        return "".join(line + "\n" for line in lines).encode()
    frame = export.frame()
    if fmt == "csv":
        return str(frame.to_csv(index=False, lineterminator="\n")).encode()
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: those cells become null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
