"""Per-example results of a cell's seeds, aligned on test items, for the paired significance tests.

Vision runs store predictions.npz (index, label, pred): the per-item value is 100 when the prediction is right,
so its mean is top-1 (%). Language runs store outputs.jsonl with per-item metric statistics: a list per item
for corpus metrics (BLEU sufficient statistics), a number for mean metrics (ROUGE F1).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.store import OUTPUTS, PREDICTIONS


@dataclass(frozen=True)
class Examples:
    """values[seed, item] (per-item scores) or values[seed, item, k] (per-item sufficient statistics)."""

    items: np.ndarray  # test item ids (vision: image index; language: example id), in the order of values
    values: np.ndarray
    seeds: tuple[int, ...]

    @property
    def is_corpus(self) -> bool:
        return self.values.ndim == 3


def load_examples(run_dirs: tuple[str, ...], seeds: tuple[int, ...], metric: str) -> Examples | str:
    """The seeds' per-example values, or the reason they cannot be compared item by item."""
    rows: list[np.ndarray] = []
    items: np.ndarray | None = None
    for run_dir in run_dirs:
        try:
            loaded = _load_one(Path(run_dir), metric)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
            return f"unreadable per-example file in {run_dir} ({type(exc).__name__}: {exc})"
        if isinstance(loaded, str):
            return loaded
        run_items, values = loaded
        if items is None:
            items = run_items
        elif not same_items(run_items, items):
            return f"the seeds of one method were scored on different test items ({run_dir})"
        rows.append(values)
    if items is None:
        return "no runs"
    return Examples(items=items, values=np.stack(rows), seeds=seeds)


def same_items(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))


def _load_one(run_dir: Path, metric: str) -> tuple[np.ndarray, np.ndarray] | str:
    if (run_dir / PREDICTIONS).is_file():
        with np.load(run_dir / PREDICTIONS) as data:
            index, correct = data["index"], data["pred"] == data["label"]
        if index.size > 1 and not bool(np.all(index[1:] > index[:-1])):
            order = np.argsort(index, kind="stable")
            index, correct = index[order], correct[order]
        return index, 100.0 * correct.astype(np.float64)
    if (run_dir / OUTPUTS).is_file():
        rows = [json.loads(line) for line in (run_dir / OUTPUTS).read_text().splitlines() if line.strip()]
        if not rows or metric not in rows[0].get("stats", {}):
            return f"{run_dir / OUTPUTS} has no per-item '{metric}' statistics"
        rows.sort(key=lambda r: r["index"])
        return (np.asarray([str(r.get("id", r["index"])) for r in rows]),
                np.asarray([r["stats"][metric] for r in rows], dtype=np.float64))
    return f"no per-example file ({PREDICTIONS} or {OUTPUTS}) in {run_dir}"
