"""The leaderboard as data: columns, rows, marks, footnotes and tests, before any output format.

Every renderer (Markdown, LaTeX, HTML, CSV, JSON) reads a Board, so the formats never disagree. Rules:
cells are mean ± sample std over the final seeds, with the seed count when it is not the protocol's; the best
of a column is bold and the second underlined (our runs only; ties share the mark); † marks a method not
significantly worse than the task's best after Holm correction; a group mean or the mean is shown only when
every task it needs is present, otherwise "–" with a footnote, like any other missing cell.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Literal

from bench.leaderboard.collect import Collected
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
    plots: dict[str, str] = field(default_factory=dict)
    reproduction: list[Reproduction] = field(default_factory=list)

    @property
    def metrics(self) -> list[str]:
        return sorted({c.metric for c in self.columns if c.kind == "task"})

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


def build_board(name: str, collected: Collected, tasks: list[str], methods: list[str],
                groups: dict[str, list[str]], references: dict[str, ReferenceTable], task_tests: TaskTests,
                across: AcrossTasks | None, settings: Settings) -> Board:
    metric_of = {t: c.metric for (t, _), c in collected.cells.items()}
    labels = short_labels(tasks)
    columns = [Column(t, labels[t], "task", metric_of.get(t, "top1")) for t in tasks]
    columns += [Column(g, g.capitalize(), "group", "mean") for g in groups]
    columns.append(Column("mean", "Mean", "mean", "mean"))
    board = Board(name=name, columns=columns, rows=[], settings=settings, task_tests=task_tests, across=across)
    board.devices = sorted({d for (t, m), ds in collected.devices.items() if t in tasks and m in methods for d in ds})
    runs = [_run_row(board, collected, method, tasks, groups) for method in methods]
    runs.sort(key=lambda r: (r.entries[-1].value is None, -(r.entries[-1].value or 0.0), r.label))
    _mark_places(runs, len(columns))
    board.rows.extend(runs)
    board.reproduction = reproduction(collected, references, tasks)
    for ref_name, table in references.items():
        rows = [_reference_row(board, ref_name, method, values, tasks, groups)
                for method, values in table.methods.items() if any(t in values for t in tasks)]
        if rows:
            board.rows.extend(rows)
            suffix = " (values read from a figure)" if table.kind == "figure" else ""
            board.sources.append((ref_name, table.citation + suffix))
    return board


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


def _run_row(board: Board, collected: Collected, method: str, tasks: list[str], groups: dict[str, list[str]]
             ) -> Row:
    entries, means, percents, trainables = [], {}, [], []
    for task in tasks:
        cell = collected.cells.get((task, method))
        if cell is None:
            reason = collected.missing.get((task, method), "not run")
            entries.append(Entry(None, footnote=board.footnote_mark(reason)))
            continue
        entry = Entry(cell.mean, cell.std, len(cell.scores),
                      shown_seeds=cell.protocol_seeds is None or len(cell.scores) != cell.protocol_seeds)
        if cell.data_fraction:
            entry.footnote = board.footnote_mark(
                f"trained on {cell.data_fraction:g} of the training data (--data-fraction); no full-data runs yet")
        if cell.diverged_seeds:
            entry.footnote = board.footnote_mark(
                f"seeds {', '.join(map(str, cell.diverged_seeds))} diverged; the mean is over the others")
        comparison = board.task_tests.comparisons.get((task, method))
        entry.tied = comparison is not None and comparison.p_holm >= board.settings.alpha
        entries.append(entry)
        means[task] = cell.mean
        percents.append(cell.trainable_percent)
        trainables.append(cell.trainable)
    entries.extend(_mean_entries(board, means, tasks, groups))
    cost = sum(s for (t, m), s in collected.wall_s.items() if m == method and t in tasks)
    pruned = [t for t in tasks if (t, method) in collected.cells and collected.cells[(t, method)].grid_pruned]
    note = None if not pruned else board.footnote_mark(
        f"hyper-parameters chosen by a pruned grid (--grid-prune: successive halving on val) on {len(pruned)} of "
        f"{len(tasks)} tasks, not the paper's full grid")
    return Row(method, "runs", entries, footnote=note,
               trainable_m=statistics.mean(trainables) / 1e6 if trainables else None,
               trainable_percent=statistics.mean(percents) if percents else None,
               cost_h=cost / 3600.0 if any((t, method) in collected.wall_s for t in tasks) else None)


def _reference_row(board: Board, ref_name: str, method: str, values: dict[str, float], tasks: list[str],
                   groups: dict[str, list[str]]) -> Row:
    entries = []
    for task in tasks:
        if task in values:
            entries.append(Entry(values[task]))
        else:
            entries.append(Entry(None, footnote=board.footnote_mark(f"not reported by {ref_name}")))
    entries.extend(_mean_entries(board, {t: values[t] for t in tasks if t in values}, tasks, groups))
    return Row(f"{method} [{ref_name}]", "reference", entries, source=ref_name)


def _mean_entries(board: Board, means: dict[str, float], tasks: list[str], groups: dict[str, list[str]]
                  ) -> list[Entry]:
    """Group means, then the mean (of the group means when there are groups: the VTAB convention)."""
    out = []
    group_values: list[float] = []
    value: float | None
    for group, members in groups.items():
        have = [t for t in members if t in means]
        if len(have) == len(members):
            group_mean = statistics.mean(means[t] for t in members)
            group_values.append(group_mean)
            out.append(Entry(group_mean, computed=True))
        else:
            out.append(Entry(None, footnote=board.footnote_mark(
                f"incomplete {group}: a mean needs all {len(members)} tasks, this row has {len(have)}")))
    if groups:
        complete = len(group_values) == len(groups)
        value = statistics.mean(group_values) if complete else None
    else:
        complete = all(t in means for t in tasks)
        value = statistics.mean(means[t] for t in tasks) if complete else None
    if value is None:
        count = sum(t in means for t in tasks)
        out.append(Entry(None, footnote=board.footnote_mark(
            f"incomplete row: the mean needs all {len(tasks)} tasks, this row has {count}")))
    else:
        out.append(Entry(value, computed=True))
    return out


def _mark_places(rows: list[Row], n_columns: int) -> None:
    for index in range(n_columns):
        present = [r.entries[index].value for r in rows]
        values = sorted({round(v, 9) for v in present if v is not None}, reverse=True)
        for row in rows:
            entry = row.entries[index]
            if entry.value is None:
                continue
            value = round(entry.value, 9)
            entry.place = 1 if value == values[0] else 2 if len(values) > 1 and value == values[1] else 0
