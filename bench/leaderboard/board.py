"""The leaderboard as data: columns, rows, marks, footnotes and tests, before any output format.

Every renderer (Markdown, LaTeX, HTML, CSV, JSON) reads a Board, so the formats never disagree. Rules:
cells are mean ± sample std over the final seeds, with the seed count when it is not the protocol's; the best
of a column is bold and the second underlined (our runs only; ties share the mark); † marks a method not
significantly worse than the task's best after Holm correction; a group mean or the mean is shown only when
every task it needs is present, otherwise "–" with a footnote, like any other missing cell. Different metrics are
never averaged: a group column needs one metric over its tasks, the Mean column one metric over all tasks. A group
of one task gets no column (it would repeat the task's), but still counts as a group in the mean of group means.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.leaderboard.collect import Cell, Collected
from bench.leaderboard.details import CellDetail
from bench.leaderboard.plots import Rendered
from bench.leaderboard.significance import AcrossTasks, Settings, TaskTests
from bench.reference import ReferenceTable


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: Literal["task", "group", "mean"]
    metric: str


@dataclass
class Entry:
    value: float | None
    std: float | None = None
    seeds: int | None = None
    shown_seeds: bool = False
    place: int = 0
    tied: bool = False
    footnote: str | None = None
    computed: bool = False  # a group mean or the mean, computed here (also on reference rows)


@dataclass
class Row:
    label: str
    block: Literal["runs", "reference"]
    entries: list[Entry]
    trainable_m: float | None = None
    trainable_percent: float | None = None
    cost_h: float | None = None
    source: str | None = None
    footnote: str | None = None  # on the row label (e.g. a pruned grid)
    method: str = ""  # the method identifier (label is "<method> [<source>]" on reference rows)
    efficiency: list[Entry] = field(default_factory=list)  # one per Board.efficiency column (runs rows only)


@dataclass(frozen=True)
class EfficiencyColumn:
    """An opt-in efficiency-aware score column (bench.leaderboard.efficiency): the row's value, taken like the Mean
    (task None), or, on a board without a Mean (tasks of different metrics), one column per task."""

    key: str  # 'ppt', or 'ppt:<task>'
    label: str
    score: str
    task: str | None = None


@dataclass(frozen=True)
class HparamRow:
    """The hyper-parameters a cell's final runs used, and how they were chosen (from the record's selection)."""

    task: str
    method: str
    lr: float
    wd: float
    hparams: dict[str, Any]
    rule: str  # the selection rule as recorded ("max val top1; ties -> ...", "fixed (single-point grid)")
    metric: str | None = None  # the val metric of the grid search (None: no search)
    val_score: float | None = None  # the selected grid point's val score
    candidates: int | None = None  # grid points searched
    diverged: int = 0
    pruned: bool = False


@dataclass(frozen=True)
class MetricRow:
    method: str
    values: dict[str, tuple[float, float, int]]  # metric -> (mean, sample std, seeds)


@dataclass(frozen=True)
class MetricTable:
    """Every test metric the final runs of a task computed (E2E: BLEU, NIST, METEOR, ROUGE-L, CIDEr), one row per
    method, mean and std over the seeds: the leaderboard shows the primary metric only."""

    task: str
    primary: str
    metrics: list[str]
    rows: list[MetricRow]


@dataclass(frozen=True)
class Reproduction:
    """Our cell against a published number for the same method and task: difference and its 95% CI over seeds
    (Student t on our seeds; the published number is taken as exact, as papers print no spread)."""

    method: str
    task: str
    source: str
    ours: float
    published: float
    difference: float
    ci_low: float | None
    ci_high: float | None
    seeds: int


@dataclass
class Board:
    name: str
    columns: list[Column]
    rows: list[Row]
    footnotes: list[str] = field(default_factory=list)
    sources: list[tuple[str, str]] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    settings: Settings = field(default_factory=Settings)
    task_tests: TaskTests = field(default_factory=TaskTests)
    across: AcrossTasks | None = None
    plots: dict[str, Rendered] = field(default_factory=dict)
    skipped_plots: dict[str, str] = field(default_factory=dict)  # figure -> why it was not drawn
    rejected: dict[str, list[str]] = field(default_factory=dict)  # run folder -> why its record was left out
    reproduction: list[Reproduction] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    details: dict[tuple[str, str], CellDetail] = field(default_factory=dict)
    hparams: list[HparamRow] = field(default_factory=list)
    metric_tables: list[MetricTable] = field(default_factory=list)
    no_mean: str | None = None  # why the board has no Mean column
    store_root: str = ""  # the run store read (only its folder name is ever written)
    protocol: str = "clean"  # the task profile of every run shown
    set_aside: dict[str, int] = field(default_factory=dict)  # runs of other protocols and smoke runs, not shown
    git_commit: str | None = None  # of the code that built the board, when asked for (provenance.git_commit)
    efficiency: list[EfficiencyColumn] = field(default_factory=list)  # opt-in score columns after Params and Cost
    efficiency_cells: dict[tuple[str, str], dict[str, Entry]] = field(default_factory=dict)  # (task, method) -> score
    efficiency_notes: dict[str, str] = field(default_factory=dict)  # score -> footnote mark of its formula and source

    @property
    def metrics(self) -> list[str]:
        return sorted({c.metric for c in self.columns if c.kind == "task"})

    @property
    def mean_index(self) -> int | None:
        """The index of the Mean column (None when the tasks use different metrics)."""
        return next((i for i, c in enumerate(self.columns) if c.kind == "mean"), None)

    @property
    def tasks(self) -> list[str]:
        return [c.key for c in self.columns if c.kind == "task"]

    def footnote_mark(self, text: str) -> str:
        """A stable letter per distinct footnote text, in order of first use."""
        if text not in self.footnotes:
            self.footnotes.append(text)
        index = self.footnotes.index(text)
        letters = "abcdefghijklmnopqrstuvwxyz"
        return letters[index] if index < 26 else f"{letters[index // 26 - 1]}{letters[index % 26]}"


def short_labels(tasks: list[str]) -> dict[str, str]:
    """'vtab/cifar100' -> 'cifar100' when the last parts are unique, so 19-column tables stay readable."""
    tails = [t.rsplit("/", 1)[-1] for t in tasks]
    return {t: tail if tails.count(tail) == 1 else t for t, tail in zip(tasks, tails, strict=True)}


def grouped_order(tasks: list[str], groups: Mapping[str, list[str]]) -> list[str]:
    """The tasks group by group (in the suite's group order), then those in no group: every group's tasks are
    adjacent columns, so a table can head them with the group's name."""
    ordered = [t for members in groups.values() for t in members if t in tasks]
    ordered = list(dict.fromkeys(ordered))
    return ordered + [t for t in tasks if t not in ordered]


def build_board(
    name: str,
    collected: Collected,
    tasks: list[str],
    methods: list[str],
    groups: dict[str, list[str]],
    references: dict[str, ReferenceTable],
    task_tests: TaskTests,
    across: AcrossTasks | None,
    settings: Settings,
    details: Mapping[tuple[str, str], CellDetail] | None = None,
    declared: Mapping[str, str] | None = None,
    efficiency: Sequence[str] = (),
) -> Board:
    """`declared`: the primary metric of tasks without runs, from their specs (a task's runs say it otherwise);
    `efficiency`: the efficiency-aware scores to add as columns (bench.leaderboard.efficiency.SCORES keys)."""
    tasks = grouped_order(tasks, groups)
    metric_of = {t: m for t, m in (declared or {}).items() if t in tasks}
    metric_of.update({t: c.metric for (t, _), c in sorted(collected.cells.items()) if t in tasks})
    known = sorted(set(metric_of.values()))
    shared = known[0] if len(known) == 1 else None
    labels = short_labels(tasks)
    columns = [Column(t, labels[t], "task", metric_of.get(t, shared or "top1")) for t in tasks]
    kept_groups = {}
    for group, members in groups.items():
        metrics = {metric_of[t] for t in members if t in metric_of}
        if len(metrics) <= 1:
            kept_groups[group] = members
            if len([t for t in members if t in tasks]) > 1:  # a one-task group's mean would repeat its task column
                columns.append(Column(group, group.capitalize(), "group", next(iter(metrics), shared or "top1")))
    if shared is not None or not known:
        columns.append(Column("mean", "Mean", "mean", shared or "top1"))
    board = Board(
        name=name,
        columns=columns,
        rows=[],
        settings=settings,
        task_tests=task_tests,
        across=across,
        groups={g: [t for t in members if t in tasks] for g, members in kept_groups.items()},
    )
    if shared is None and known:
        board.no_mean = (
            f"No mean over tasks: they are scored with different metrics ({', '.join(known)}), which are never averaged"
        )
    board.devices = sorted({d for (t, m), ds in collected.devices.items() if t in tasks and m in methods for d in ds})
    board.cells = {pair: cell for pair, cell in collected.cells.items() if pair[0] in tasks and pair[1] in methods}
    board.rejected = dict(collected.rejected)
    board.protocol, board.set_aside = collected.protocol, dict(collected.set_aside)
    board.details = {pair: d for pair, d in (details or {}).items() if pair in board.cells}
    runs = [_run_row(board, collected, method, tasks, kept_groups) for method in methods]
    runs.sort(key=_row_order(board, runs))
    _mark_places(runs, len(columns))
    board.rows.extend(runs)
    board.reproduction = reproduction(collected, references, tasks)
    for ref_name, table in references.items():
        rows = [
            _reference_row(board, ref_name, method, values, tasks, kept_groups)
            for method, values in table.methods.items()
            if any(t in values for t in tasks)
        ]
        if rows:
            board.rows.extend(rows)
            suffix = " (values read from a figure)" if table.kind == "figure" else ""
            board.sources.append((ref_name, table.citation + suffix))
    board.hparams = hparam_rows(board)
    board.metric_tables = metric_tables(board, [r.method for r in runs])
    if efficiency:
        add_efficiency(board, efficiency, runs, tasks, kept_groups)
    return board


def add_efficiency(board: Board, scores: Sequence[str], runs: list[Row], tasks: list[str],
                   groups: dict[str, list[str]]) -> None:
    """The efficiency-aware score columns: a value per cell (a missing one says why), and the row's value taken
    like the Mean column; without a Mean, one column per task. Best and second of each column are marked."""
    from bench.leaderboard.efficiency import SCORES

    labels = {c.key: c.label for c in board.columns if c.kind == "task"}
    layout = (". A row's value is the mean of its cells' values, taken like the Mean column"
              if board.mean_index is not None else
              ". One column per task: the tasks use different metrics, whose scores are never averaged")
    for score in scores:
        spec = SCORES[score]
        board.efficiency_notes[score] = board.footnote_mark(spec.note(board.cells.values()) + layout)
        if board.mean_index is not None:
            board.efficiency.append(EfficiencyColumn(score, spec.label, score))
        else:
            board.efficiency += [EfficiencyColumn(f"{score}:{t}", f"{spec.label} {labels[t]}", score, t) for t in tasks]
    for row in runs:
        for index, task in enumerate(tasks):  # task columns come first, in this order
            cell = board.cells.get((task, row.method))
            entries = board.efficiency_cells.setdefault((task, row.method), {})
            for score in scores:
                if cell is None:  # no result: the reason the score's cell gives
                    entries[score] = Entry(None, footnote=row.entries[index].footnote)
                    continue
                value, why = SCORES[score].value(cell)
                entries[score] = Entry(value, footnote=None if value is not None else board.footnote_mark(str(why)))
        for column in board.efficiency:
            if column.task is not None:
                row.efficiency.append(board.efficiency_cells[(column.task, row.method)][column.score])
                continue
            cells = {t: board.efficiency_cells[(t, row.method)][column.score] for t in tasks}
            values = {t: e.value for t, e in cells.items() if e.value is not None}
            mean = _row_mean(values, tasks, groups)
            row.efficiency.append(Entry(mean, computed=True) if mean is not None else Entry(None, footnote=(
                board.footnote_mark(f"incomplete row: the mean needs all {len(tasks)} tasks, this row has "
                                    f"{len(values)}"))))
    for task in tasks:
        for score in scores:
            _mark_column([board.efficiency_cells[(task, r.method)][score] for r in runs])
    for index, column in enumerate(board.efficiency):
        if column.task is None:
            _mark_column([r.efficiency[index] for r in runs])


def cell_notes(cell: Cell) -> list[str]:
    """What a reader must know about a cell: how its point was chosen when not on val, study variants, diverged
    seeds, other configurations of the same pair in the store."""
    notes = []
    chosen = cell.chosen_by or {}
    fixed = chosen.get("set") or {}
    if chosen.get("how") == "set" or fixed:
        values = ", ".join(f"{k}={v}" for k, v in fixed.items())
        rest = "nothing selected on val" if chosen.get("how") == "set" else "the rest selected on val"
        notes.append(f"{values} fixed on the command line (--set / --num-tokens), {rest}")
    if cell.data_fraction:
        notes.append(f"trained on {cell.data_fraction:g} of the training data (--data-fraction); no full-data runs yet")
    lost = [f"{', '.join(map(str, seeds))} {what}" for seeds, what in
            ((cell.diverged_seeds, "diverged"), (cell.failed_seeds, "failed (`bench show` says why)")) if seeds]
    if lost:
        notes.append(f"seeds {'; '.join(lost)}; the mean is over the others")
    if cell.alternatives:
        notes.append(
            f"{cell.alternatives} other configuration{'s' if cell.alternatives > 1 else ''} of this "
            "method on this task in the store (an edited spec, method, precision or --set): not shown, "
            "never mixed in"
        )
    return notes


def provenance_text(board: Board) -> str:
    """How the cells' hyper-parameters were chosen, and which stored records were left out and why."""
    hows = {(c.chosen_by or {}).get("how", "val") for c in board.cells.values()}
    if hows <= {"val"}:
        chosen = "hyper-parameters selected on val only"
    elif hows == {"spec"}:
        chosen = "hyper-parameters fixed by the task specs (single-point grids), not searched"
    else:
        chosen = "hyper-parameters selected on val, or fixed where a footnote says so"
    precisions = sorted({c.precision for c in board.cells.values()})
    if precisions:
        chosen += "; trained in " + (precisions[0] if len(precisions) == 1 else
                                     "mixed precision: " + ", ".join(
                                         f"{p} ({sum(c.precision == p for c in board.cells.values())} cells)"
                                         for p in precisions))
    if board.protocol != "clean":
        chosen = (f"protocol '{board.protocol}' (the task profile's settings; for 'paper' the official code's, "
                  f"docs/parity.md): {chosen}")
    if board.set_aside:
        kinds = ", ".join(f"{n} {kind} run{'s' if n > 1 else ''}" for kind, n in sorted(board.set_aside.items()))
        chosen += f" ({kinds} in the store not shown)"
    if not board.rejected:
        return chosen
    reasons = sorted({reason for problems in board.rejected.values() for reason in problems})
    shown = "; ".join(reasons[:3]) + (f"; and {len(reasons) - 3} other reasons" if len(reasons) > 3 else "")
    return (
        f"{chosen}. {len(board.rejected)} stored record{'s were' if len(board.rejected) > 1 else ' was'} left "
        f"out because {'they' if len(board.rejected) > 1 else 'it'} cannot be trusted ({shown}); "
        "`bench doctor` lists each"
    )


def _row_order(board: Board, runs: list[Row]) -> Any:
    """By the mean (best first); without a Mean column, by the mean rank over the tasks the row has."""
    index = board.mean_index
    if index is not None:
        return lambda r: (r.entries[index].value is None, -(r.entries[index].value or 0.0), r.label)
    ranks: dict[str, list[float]] = {r.label: [] for r in runs}
    for i, column in enumerate(board.columns):
        if column.kind != "task":
            continue
        values = sorted((v for r in runs if (v := r.entries[i].value) is not None), reverse=True)
        for r in runs:
            value = r.entries[i].value
            if value is not None:
                ranks[r.label].append(1 + values.index(value) + (values.count(value) - 1) / 2)
    return lambda r: (not ranks[r.label], statistics.mean(ranks[r.label]) if ranks[r.label] else 0.0, r.label)


def hparam_rows(board: Board) -> list[HparamRow]:
    """One row per cell with details, in task-column order then the table's row order."""
    order = {r.method: i for i, r in enumerate(board.rows) if r.block == "runs"}
    out = []
    for task in board.tasks:
        for method in sorted((m for t, m in board.details if t == task), key=lambda m: (order.get(m, 0), m)):
            detail = board.details[(task, method)]
            selection = detail.selection or {}
            metric = selection.get("metric")
            value = selection.get(f"val_{metric}") if metric else None
            out.append(
                HparamRow(
                    task=task,
                    method=method,
                    lr=detail.lr,
                    wd=detail.wd,
                    hparams=detail.hparams,
                    rule=str(selection.get("rule", "not recorded (the run record has no selection)")),
                    metric=metric,
                    val_score=None if value is None else float(value),
                    candidates=selection.get("candidates"),
                    diverged=int(selection.get("diverged") or 0),
                    pruned="grid_prune" in selection,
                )
            )
    return out


def metric_tables(board: Board, methods: list[str]) -> list[MetricTable]:
    """A table per task whose final runs computed more than the primary metric (the language tasks)."""
    out = []
    for task in board.tasks:
        details = [board.details[(task, m)] for m in methods if (task, m) in board.details]
        names = list(dict.fromkeys(n for d in details for n in d.metric_names))
        if len(names) < 2:
            continue
        rows = []
        for detail in details:
            values = {}
            for name in names:
                scores = [run.metrics[name] for run in detail.seeds if name in run.metrics]
                if scores:
                    std = statistics.stdev(scores) if len(scores) > 1 else 0.0
                    values[name] = (statistics.mean(scores), std, len(scores))
            rows.append(MetricRow(detail.method, values))
        out.append(MetricTable(task, details[0].metric, names, rows))
    return out


def reproduction(collected: Collected, references: dict[str, ReferenceTable], tasks: list[str]) -> list[Reproduction]:
    from scipy import stats as scipy_stats

    out = []
    for source, table in sorted(references.items()):
        for method, values in sorted(table.methods.items()):
            for task in tasks:
                cell = collected.cells.get((task, method))
                if cell is None or task not in values:
                    continue
                n = len(cell.scores)
                difference = cell.mean - values[task]
                low = high = None
                if n > 1:
                    half = float(scipy_stats.t.ppf(0.975, n - 1)) * cell.std / math.sqrt(n)
                    low, high = difference - half, difference + half
                out.append(Reproduction(method, task, source, cell.mean, values[task], difference, low, high, n))
    return out


def _run_row(board: Board, collected: Collected, method: str, tasks: list[str], groups: dict[str, list[str]]) -> Row:
    entries, means, percents, trainables = [], {}, [], []
    for task in tasks:
        cell = collected.cells.get((task, method))
        if cell is None:
            reason = collected.missing.get((task, method), "not run")
            entries.append(Entry(None, footnote=board.footnote_mark(reason)))
            continue
        entry = Entry(
            cell.mean,
            cell.std,
            len(cell.scores),
            shown_seeds=cell.protocol_seeds is None or len(cell.scores) != cell.protocol_seeds,
        )
        notes = cell_notes(cell)
        if notes:
            entry.footnote = board.footnote_mark("; ".join(notes))
        comparison = board.task_tests.comparisons.get((task, method))
        entry.tied = comparison is not None and comparison.p_holm >= board.settings.alpha
        entries.append(entry)
        means[task] = cell.mean
        percents.append(cell.trainable_percent)
        trainables.append(cell.trainable)
    entries.extend(_mean_entries(board, means, tasks, groups))
    cost = sum(s for (t, m), s in collected.wall_s.items() if m == method and t in tasks)
    pruned = [t for t in tasks if (t, method) in collected.cells and collected.cells[(t, method)].grid_pruned]
    note = (
        None
        if not pruned
        else board.footnote_mark(
            f"hyper-parameters chosen by a pruned grid (--grid-prune: successive halving on val) on {len(pruned)} of "
            f"{len(tasks)} tasks, not the paper's full grid"
        )
    )
    return Row(
        method,
        "runs",
        entries,
        footnote=note,
        method=method,
        trainable_m=statistics.mean(trainables) / 1e6 if trainables else None,
        trainable_percent=statistics.mean(percents) if percents else None,
        cost_h=cost / 3600.0 if any((t, method) in collected.wall_s for t in tasks) else None,
    )


def _reference_row(
    board: Board, ref_name: str, method: str, values: dict[str, float], tasks: list[str], groups: dict[str, list[str]]
) -> Row:
    entries = []
    for task in tasks:
        if task in values:
            entries.append(Entry(values[task]))
        else:
            entries.append(Entry(None, footnote=board.footnote_mark(f"not reported by {ref_name}")))
    entries.extend(_mean_entries(board, {t: values[t] for t in tasks if t in values}, tasks, groups))
    return Row(f"{method} [{ref_name}]", "reference", entries, source=ref_name, method=method)


def _mean_entries(board: Board, means: dict[str, float], tasks: list[str], groups: dict[str, list[str]]) -> list[Entry]:
    """Group means, then the mean (of the group means when there are groups: the VTAB convention), when the board
    has a Mean column."""
    out = []
    group_values: list[float] = []
    value: float | None
    shown = {c.key for c in board.columns if c.kind == "group"}
    for group, members in groups.items():
        have = [t for t in members if t in means]
        if len(have) == len(members):
            group_mean = statistics.mean(means[t] for t in members)
            group_values.append(group_mean)
            if group in shown:
                out.append(Entry(group_mean, computed=True))
        elif group in shown:
            out.append(
                Entry(
                    None,
                    footnote=board.footnote_mark(
                        f"incomplete {group}: a mean needs all {len(members)} tasks, this row has {len(have)}"
                    ),
                )
            )
    if board.mean_index is None:
        return out
    if groups:
        complete = len(group_values) == len(groups)
        value = statistics.mean(group_values) if complete else None
    else:
        complete = all(t in means for t in tasks)
        value = statistics.mean(means[t] for t in tasks) if complete else None
    if value is None:
        count = sum(t in means for t in tasks)
        out.append(
            Entry(
                None,
                footnote=board.footnote_mark(
                    f"incomplete row: the mean needs all {len(tasks)} tasks, this row has {count}"
                ),
            )
        )
    else:
        out.append(Entry(value, computed=True))
    return out


def _row_mean(values: dict[str, float], tasks: list[str], groups: dict[str, list[str]]) -> float | None:
    """The Mean column's rule over other per-task values: the mean of the group means when there are groups, else
    the plain mean; None unless every task it needs has a value."""
    if groups:
        means = [statistics.mean(values[t] for t in members) for members in groups.values()
                 if all(t in values for t in members)]
        return statistics.mean(means) if len(means) == len(groups) else None
    return statistics.mean(values[t] for t in tasks) if all(t in values for t in tasks) else None


def _mark_places(rows: list[Row], n_columns: int) -> None:
    for index in range(n_columns):
        _mark_column([r.entries[index] for r in rows])


def _mark_column(entries: list[Entry]) -> None:
    """Best (place 1) and second (place 2) of one column's values; ties share the mark."""
    values = sorted({round(e.value, 9) for e in entries if e.value is not None}, reverse=True)
    for entry in entries:
        if entry.value is None:
            continue
        value = round(entry.value, 9)
        entry.place = 1 if value == values[0] else 2 if len(values) > 1 and value == values[1] else 0
