"""CSV (one line per row × column, long format; the selected hyper-parameters and every language metric as two
more files) and JSON (the whole board, versioned, with its provenance) for scripts and other tools.

CSV text cells go through bench.leaderboard.escape.csv_cell, so no name opens as a spreadsheet formula; numbers
are written as numbers. JSON is safe as it is (json.dumps).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from bench.leaderboard.board import Board, Row
from bench.leaderboard.escape import csv_cell
from bench.leaderboard.provenance import SCHEMA_VERSION, provenance
from bench.leaderboard.text import selection_text, statistics_tables

CSV_FIELDS = ["block", "method", "column", "kind", "metric", "mean", "std", "seeds", "place", "not_worse_than_best",
              "p_holm", "missing_reason", "trainable_m", "trainable_percent", "cost_h", "row_note"]


def _num(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def _records(board: Board) -> list[dict[str, Any]]:
    notes = board.footnotes
    letters = {board.footnote_mark(text): text for text in notes}
    out = []
    for row in board.rows:
        for column, entry in zip(board.columns, row.entries, strict=True):
            comparison = board.task_tests.comparisons.get((column.key, row.label))
            out.append({
                "block": row.block, "method": row.label, "column": column.key, "kind": column.kind,
                "metric": column.metric, "mean": _num(entry.value), "std": _num(entry.std), "seeds": entry.seeds,
                "place": entry.place or None, "not_worse_than_best": entry.tied if row.block == "runs" else None,
                "p_holm": None if comparison is None else _num(comparison.p_holm),
                "missing_reason": letters.get(entry.footnote) if entry.value is None and entry.footnote else None,
                "trainable_m": _num(row.trainable_m), "trainable_percent": _num(row.trainable_percent),
                "cost_h": _num(row.cost_h), "row_note": letters.get(row.footnote) if row.footnote else None,
            })
        out += _efficiency_records(board, row, letters)
    return out


def _efficiency_records(board: Board, row: Row, letters: dict[str, str]) -> list[dict[str, Any]]:
    """The opt-in efficiency-aware scores of a runs row: its value per cell ('<score>:<task>'), then the row's
    value ('<score>', taken like the Mean) where the board shows one."""
    if row.block != "runs" or not board.efficiency:
        return []
    shown = [(c.key, c.score, e) for c, e in zip(board.efficiency, row.efficiency, strict=True) if c.task is None]
    cells = [(f"{score}:{task}", score, board.efficiency_cells[(task, row.method)][score])
             for score in board.efficiency_notes for task in board.tasks]
    return [{
        "block": row.block, "method": row.label, "column": key, "kind": "efficiency", "metric": score,
        "mean": _num(entry.value), "std": None, "seeds": None, "place": entry.place or None,
        "not_worse_than_best": None, "p_holm": None,
        "missing_reason": letters.get(entry.footnote) if entry.value is None and entry.footnote else None,
        "trainable_m": _num(row.trainable_m), "trainable_percent": _num(row.trainable_percent),
        "cost_h": _num(row.cost_h), "row_note": letters.get(row.footnote) if row.footnote else None,
    } for key, score, entry in [*cells, *shown]]


def _csv(fields: list[str], records: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: "" if v is None else csv_cell(v) if isinstance(v, str) else v for k, v in record.items()})
    return buffer.getvalue()


def render_csv(board: Board) -> str:
    return _csv(CSV_FIELDS, _records(board))


HPARAM_FIELDS = ["task", "method", "lr", "weight_decay", "hparams", "selected_by", "rule", "val_metric", "val_score",
                 "grid_points", "diverged", "pruned"]


def _hparam_records(board: Board) -> list[dict[str, Any]]:
    return [{"task": h.task, "method": h.method, "lr": h.lr, "weight_decay": h.wd,
             "hparams": json.dumps(h.hparams, sort_keys=True, ensure_ascii=False, default=str),
             "selected_by": selection_text(h), "rule": h.rule, "val_metric": h.metric, "val_score": _num(h.val_score),
             "grid_points": h.candidates, "diverged": h.diverged, "pruned": h.pruned} for h in board.hparams]


def render_hparams_csv(board: Board) -> str:
    """One line per (task, method): the chosen lr, weight decay, method hyper-parameters (JSON) and the selection."""
    return _csv(HPARAM_FIELDS, _hparam_records(board))


METRIC_FIELDS = ["task", "method", "metric", "primary", "mean", "std", "seeds"]


def _metric_records(board: Board) -> list[dict[str, Any]]:
    return [{"task": t.task, "method": row.method, "metric": metric, "primary": metric == t.primary,
             "mean": _num(row.values[metric][0]), "std": _num(row.values[metric][1]), "seeds": row.values[metric][2]}
            for t in board.metric_tables for row in t.rows for metric in t.metrics if metric in row.values]


def render_metrics_csv(board: Board) -> str:
    """One line per (task, method, metric) of the language tasks' every test metric."""
    return _csv(METRIC_FIELDS, _metric_records(board))


def _grid_points(board: Board, task: str, method: str) -> list[dict[str, Any]]:
    """Every grid run behind a selection: lr, weight decay, val score (None: diverged or pruned), status, run key."""
    detail = board.details.get((task, method))
    return [{"lr": p.lr, "weight_decay": p.wd, "val_score": _num(p.score), "status": p.status, "key": p.key}
            for p in (detail.grid if detail is not None else ())]


def render_json(board: Board) -> str:
    across = board.across
    payload = {
        "schema_version": SCHEMA_VERSION,
        "provenance": provenance(board),
        "name": board.name,
        "columns": [{"key": c.key, "label": c.label, "kind": c.kind, "metric": c.metric} for c in board.columns],
        "cells": _records(board),
        "footnotes": {board.footnote_mark(t): t for t in board.footnotes},
        "sources": dict(board.sources),
        "devices": board.devices,
        "significance": {
            "test": board.settings.test, "alpha": board.settings.alpha, "resamples": board.settings.resamples,
            "seed": board.settings.seed,
            "per_task": [{"task": c.task, "best": c.best, "method": c.method, "n": c.result.n,
                          "difference": _num(c.result.statistic), "p": _num(c.result.p_value, 8),
                          "p_holm": _num(c.p_holm, 8),
                          "detail": {k: _num(v, 8) for k, v in sorted(c.result.detail.items())}}
                         for c in sorted(board.task_tests.comparisons.values(), key=lambda c: (c.task, c.method))],
            "not_tested": [{"task": t, "method": m, "reason": why}
                           for (t, m), why in sorted(board.task_tests.skipped.items())],
            "across_tasks": None if across is None else {
                "tasks": across.tasks, "methods": across.methods, "best": across.best,
                "wilcoxon": {m: {"n": r.n, "statistic": _num(r.statistic), "p": _num(r.p_value, 8),
                                 "p_holm": _num(p, 8)} for m, (r, p) in sorted(across.wilcoxon.items())},
                "friedman": None if across.friedman is None else {
                    "n": across.friedman.n, "statistic": _num(across.friedman.statistic),
                    "p": _num(across.friedman.p_value, 8)},
                "mean_ranks": {m: _num(r) for m, r in sorted(across.mean_ranks.items())},
                "critical_difference": _num(across.critical_difference), "cliques": across.cliques,
                "reason": across.reason,
            },
        },
        "statistics_text": [{"title": t.title, "note": t.note} for t in statistics_tables(board)],
        "reproduction": [{k: _num(v) if isinstance(v, float) else v for k, v in vars(r).items()}
                         for r in board.reproduction],
        "no_mean": board.no_mean,
        "groups": board.groups,
        "hparams": [{**record, "hparams": h.hparams, "grid": _grid_points(board, h.task, h.method)}
                    for record, h in zip(_hparam_records(board), board.hparams, strict=True)],
        "metrics": _metric_records(board),
        "figures": sorted(board.plots),
        "figures_not_drawn": board.skipped_plots,
    }
    if board.efficiency:  # opt-in: absent otherwise, so a board without it keeps its bytes
        from bench.leaderboard.efficiency import SCORES

        payload["efficiency"] = {
            score: {"label": SCORES[score].label, "footnote": mark,
                    "definition": next(t for t in board.footnotes if board.footnote_mark(t) == mark),
                    "columns": [c.key for c in board.efficiency if c.score == score]}
            for score, mark in board.efficiency_notes.items()}
    return json.dumps(payload, indent=1, ensure_ascii=False, sort_keys=True, default=str) + "\n"
