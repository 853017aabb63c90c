"""Which figures a board gets and what goes into each, from its rows, cells and run details; and, for every figure
not drawn, the reason (no grid runs, no per-epoch history, no rank test ...), so a missing plot is never silent.

Figures use the display names of papers (bench.leaderboard.names); drawing is bench.leaderboard.plots' job.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from bench.leaderboard import escape, names, plots
from bench.leaderboard.board import Board, Row
from bench.leaderboard.details import CellDetail

KINDS = ("pareto", "groups", "tasks", "curves", "grid", "cd")  # plus one heatmap-<task> per task
TITLES = {"pareto": "Score vs trainable parameters (error bars: std over seeds)",
          "groups": "Scores per group (per task without groups); error bars: std over seeds",
          "tasks": "Per-task scores: one dot per seed, mean and ± std",
          "curves": "Learning curves: train loss of the final runs (mean ± std over seeds) and val score per epoch (of "
                    "the selected grid run, else the final runs' mean)",
          "grid": "Val score per grid point where the grid searches one axis (ring: selected)",
          "cd": "Critical-difference diagram", "heatmap": "Val score over the lr × weight-decay grid"}


def title(kind: str) -> str:
    """'pareto' -> its caption; 'heatmap-counting' -> the heat-map caption naming the task's file part."""
    base, _, rest = kind.partition("-")
    if base == "heatmap" and rest:
        return f"{TITLES['heatmap']}: {rest}"
    return TITLES.get(base, kind)


def heatmap_kind(board: Board, task: str) -> str:
    """'heatmap-<task label>', a file-name-safe and unique key per task."""
    index = board.tasks.index(task)
    label = board.columns[index].label
    part = escape.file_part(label)
    others = [escape.file_part(c.label) for c in board.columns[:index] if c.kind == "task"]
    return f"heatmap-{part}" if part not in others else f"heatmap-{part}-{index + 1}"


def draw(board: Board) -> tuple[dict[str, plots.Rendered], dict[str, str]]:
    """(figures by kind, reasons by kind for the figures not drawn)."""
    out: dict[str, plots.Rendered] = {}
    skipped: dict[str, str] = {}
    runs = [r for r in board.rows if r.block == "runs"]
    label = {r.label: escape.plot_label(names.method(r.method or r.label)) for r in runs}

    panels = _pareto_panels(board, runs, label)
    if panels:
        out["pareto"] = plots.pareto(panels)
    else:
        skipped["pareto"] = "no row has both a score and a trainable-parameter count"

    kind = "group" if any(c.kind == "group" for c in board.columns) else "task"
    indices = [i for i, c in enumerate(board.columns) if c.kind == kind]
    if runs and indices and any(r.entries[i].value is not None for r in runs for i in indices):
        metrics = {board.columns[i].metric for i in indices}
        clusters = {}
        errors = {}
        for i in indices:
            column = board.columns[i]
            name = names.group(column.key) if kind == "group" else names.task(column.key, _labels(board))
            name = escape.plot_label(name) + ("" if len(metrics) == 1 else f" ({names.metric(column.metric)})")
            clusters[name] = [r.entries[i].value for r in runs]
            errors[name] = [_spread(board, r, i) for r in runs]
        what = "Group mean" if kind == "group" else "Score"
        ylabel = f"{what}: {names.metric(metrics.pop())}" if len(metrics) == 1 else f"{what} (metric in the label)"
        out["groups"] = plots.group_bars([label[r.label] for r in runs], clusters, errors, ylabel=ylabel)
    else:
        skipped["groups"] = "no row has a score"

    seed_panels = []
    for task in board.tasks:
        methods = [(label[r.label], board.cells[(task, r.method)].scores) for r in runs
                   if (task, r.method) in board.cells]
        if methods:
            seed_panels.append(plots.SeedPanel(escape.plot_label(names.task(task, _labels(board))),
                                               "Test " + names.metric(_metric(board, task)), methods))
    if seed_panels:
        out["tasks"] = plots.seed_points(seed_panels)
    else:
        skipped["tasks"] = "no finished final runs"

    curves = _curve_panels(board, runs, label)
    if curves:
        out["curves"] = plots.learning_curves(curves, [label[r.label] for r in runs])
    else:
        skipped["curves"] = ("no per-epoch history in the final run records" if board.details else
                             "no run details were read (build the board with leaderboard.build)")

    for task in board.tasks:
        key = heatmap_kind(board, task)
        heat = _heat_panels(board, task, runs, label)
        if heat:
            out[key] = plots.heatmaps(escape.plot_label(names.task(task, _labels(board))), heat,
                                      metric=f"val {names.metric(_metric(board, task))}")
        else:
            skipped[key] = _no_heatmap(board, task)
    lines = [panel for task in board.tasks if (panel := _grid_panel(board, task, runs, label)) is not None]
    if lines:
        out["grid"] = plots.grid_lines(lines, [label[r.label] for r in runs])
    else:
        skipped["grid"] = ("no method searched a one-axis grid of two or more points (two-axis grids are the heat "
                           "maps; single-point grids fix the hyper-parameters)")

    across = board.across
    if across is not None and across.friedman is not None:
        ranks = {label.get(m, escape.plot_label(names.method(m))): r for m, r in across.mean_ranks.items()}
        cliques = [[label.get(m, escape.plot_label(names.method(m))) for m in c] for c in across.cliques]
        out["cd"] = plots.cd_diagram(ranks, across.critical_difference, cliques)
    else:
        skipped["cd"] = "no Friedman test across tasks: " + (
            across.reason if across is not None and across.reason else "no across-task tests")
    return out, skipped


def _labels(board: Board) -> dict[str, str]:
    return {c.key: c.label for c in board.columns if c.kind == "task"}


def _metric(board: Board, task: str) -> str:
    return board.columns[board.tasks.index(task)].metric


def _weights(board: Board, index: int) -> dict[str, float]:
    """How much each task weighs in the computed column at index (a group mean, or the mean of group means)."""
    column = board.columns[index]
    if column.kind == "task":
        return {column.key: 1.0}
    if column.kind == "group":
        members = board.groups.get(column.key, [])
        return {t: 1 / len(members) for t in members}
    if board.groups:
        weights: dict[str, float] = {}
        for members in board.groups.values():
            for t in members:
                weights[t] = weights.get(t, 0.0) + 1 / (len(board.groups) * len(members))
        return weights
    return {t: 1 / len(board.tasks) for t in board.tasks}


def _spread(board: Board, row: Row, index: int) -> float | None:
    """The std over seeds of a cell, or of a computed mean (propagated from its tasks' stds, the tasks being
    independent runs): sqrt(sum of (weight x std)^2)."""
    if row.entries[index].value is None:
        return None
    total = 0.0
    for task, weight in _weights(board, index).items():
        std = row.entries[board.tasks.index(task)].std
        if std is None:
            return None
        total += (weight * std) ** 2
    return math.sqrt(total)


def _pareto_panels(board: Board, runs: list[Row], label: dict[str, str]) -> list[plots.ParetoPanel]:
    """One panel of the Mean; one panel per task when the tasks use different metrics or no row has every task."""
    index = board.mean_index
    if index is not None:
        points = [plots.Point(label[r.label], r.trainable_percent, value, _spread(board, r, index))
                  for r in runs if (value := r.entries[index].value) is not None and r.trainable_percent is not None]
        metric = names.metric(board.columns[index].metric)
        grouped = any(c.kind == "group" for c in board.columns)  # as the caption says (text.caption)
        what = "Mean of group means" if grouped else "Mean" if len(board.tasks) > 1 else "Score"
        if points:
            return [plots.ParetoPanel("", f"{what}: {metric}", points)]
    panels = []
    for task in board.tasks:  # one panel each, never a mean over different metrics or an incomplete row
        cells = [(r, board.cells[(task, r.method)]) for r in runs if (task, r.method) in board.cells]
        points = [plots.Point(label[r.label], c.trainable_percent, c.mean, c.std) for r, c in cells]
        if points:
            panels.append(plots.ParetoPanel(escape.plot_label(names.task(task, _labels(board))),
                                            names.metric(_metric(board, task)), points))
    return panels


def _mean_curve(histories: Sequence[Sequence[Mapping[str, Any]]], key: str
                ) -> tuple[list[float], list[float], list[float]] | None:
    """(epochs, mean, std) of history[key] over the runs, on the epochs every run recorded."""
    per_run = [{int(h["epoch"]): float(h[key]) for h in history if h.get(key) is not None and "epoch" in h}
               for history in histories]
    per_run = [run for run in per_run if run]
    if not per_run:
        return None
    epochs = sorted(set.intersection(*(set(run) for run in per_run)))
    if not epochs:
        return None
    values = [[run[e] for run in per_run] for e in epochs]
    means = [statistics.mean(v) for v in values]
    stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
    return [float(e) for e in epochs], means, stds


def _curve_panels(board: Board, runs: list[Row], label: dict[str, str]) -> list[plots.CurvePanel]:
    panels = []
    for task in board.tasks:
        loss, val = {}, {}
        metric = _metric(board, task)
        for r in runs:
            detail = board.details.get((task, r.method))
            if detail is None:
                continue
            curve = _mean_curve([run.history for run in detail.seeds], "train_loss")
            if curve is not None:
                loss[label[r.label]] = curve
            selected = detail.selected_grid
            source = [selected.history] if selected is not None else [run.history for run in detail.seeds]
            val_curve = _mean_curve(source, f"val_{metric}")
            if val_curve is not None:
                val[label[r.label]] = (val_curve[0], val_curve[1])
        if loss or val:
            panels.append(plots.CurvePanel(escape.plot_label(names.task(task, _labels(board))), loss, val,
                                           f"Val {names.metric(metric)}"))
    return panels


def _axes(detail: CellDetail) -> tuple[list[float], list[float]]:
    """The distinct learning rates and weight decays of a cell's grid runs."""
    return sorted({p.lr for p in detail.grid}), sorted({p.wd for p in detail.grid})


def _heat_panels(board: Board, task: str, runs: list[Row], label: dict[str, str]) -> list[plots.HeatPanel]:
    """The methods whose grid searched both lr and weight decay (two or more values of each)."""
    panels = []
    for r in runs:
        detail: CellDetail | None = board.details.get((task, r.method))
        if detail is None:
            continue
        lrs, wds = _axes(detail)
        if len(lrs) < 2 or len(wds) < 2:
            continue
        scores = {(p.lr, p.wd): p.score for p in detail.grid}
        panels.append(plots.HeatPanel(label[r.label], lrs, wds, scores, (detail.lr, detail.wd)))
    return panels


def _grid_panel(board: Board, task: str, runs: list[Row], label: dict[str, str]) -> plots.GridPanel | None:
    """The methods whose grid searched one axis only (the other fixed): val score per value of that axis."""
    lines: dict[str, tuple[list[float], list[float | None], float | None]] = {}
    searched = set()
    for r in runs:
        detail = board.details.get((task, r.method))
        if detail is None:
            continue
        lrs, wds = _axes(detail)
        if (len(lrs) >= 2) == (len(wds) >= 2):
            continue  # a heat map (both axes) or a single point (neither)
        axis = "lr" if len(lrs) >= 2 else "weight decay"
        searched.add(axis)
        points = sorted(detail.grid, key=lambda p: p.lr if axis == "lr" else p.wd)
        lines[label[r.label]] = ([p.lr if axis == "lr" else p.wd for p in points], [p.score for p in points],
                                 detail.lr if axis == "lr" else detail.wd)
    if not lines:
        return None
    axis = " / ".join(sorted(searched))
    return plots.GridPanel(escape.plot_label(names.task(task, _labels(board))), axis,
                           f"Val {names.metric(_metric(board, task))}", lines)


def _no_heatmap(board: Board, task: str) -> str:
    details = [d for (t, _), d in sorted(board.details.items()) if t == task]
    if not details:
        return f"no run details for {task}"
    fixed = all(str((d.selection or {}).get("rule", "")).startswith("fixed") for d in details)
    one_axis = any(len(lrs) >= 2 or len(wds) >= 2 for lrs, wds in map(_axes, details))
    why = ("the protocol fixes the hyper-parameters (single-point grid)" if fixed else
           "the grids search one axis only (see the grid figure)" if one_axis else
           "the grid runs are not in this store")
    return f"no method searched two or more values of both lr and weight decay on {task}: {why}"
