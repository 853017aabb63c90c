"""CSV (one line per row × column, long format) and JSON (the whole board) for scripts and other tools."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from bench.leaderboard.board import Board
from bench.leaderboard.text import statistics_tables

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
    return out


def render_csv(board: Board) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in _records(board):
        writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return buffer.getvalue()


def render_json(board: Board) -> str:
    across = board.across
    payload = {
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
    }
    return json.dumps(payload, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
