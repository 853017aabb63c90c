"""Wording and number formats shared by every output format: cell texts, notes and the Statistics section.

Renderers only add markup (bold, underline, superscripts) around these strings, so the Markdown, LaTeX and HTML
tables say exactly the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.leaderboard import names
from bench.leaderboard.board import Board, EfficiencyColumn, Entry, HparamRow, MetricTable, Row, provenance_text

DAGGER = "†"
TEST_WORDS = {
    "bootstrap": "paired bootstrap over test items with the seeds of each method resampled",
    "mcnemar": "exact McNemar test per matched seed, combined over seeds with Fisher's method",
    "randomization": "approximate randomisation per matched seed (sacrebleu's test for BLEU), combined over "
    "seeds with Fisher's method",
}


@dataclass(frozen=True)
class StatsTable:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str


def number(entry: Entry, row: Row) -> str:
    """Published values as printed; our cells and every computed mean with two decimals."""
    assert entry.value is not None
    return f"{entry.value:g}" if row.block == "reference" and not entry.computed else f"{entry.value:.2f}"


def cell_text(entry: Entry, row: Row) -> str:
    """'88.50 ± 0.71 (n=2)' without markup; '–' when missing."""
    if entry.value is None:
        return "–"
    text = number(entry, row)
    if entry.std is not None and entry.seeds is not None:
        text += f" ± {entry.std:.2f}"
    if entry.shown_seeds and entry.seeds is not None:
        text += f" (n={entry.seeds})"
    return text


def decorate(entry: Entry, text: str, *, bold: str, underline: str, dagger: str, sup: str) -> str:
    """A cell's text with the format's markup: bold / underline by place, the dagger, the footnote mark
    (bold etc. are format strings with one {} slot)."""
    if entry.place == 1:
        text = bold.format(text)
    elif entry.place == 2:
        text = underline.format(text)
    if entry.tied:
        text += dagger
    if entry.footnote:
        text += sup.format(entry.footnote)
    return text


def params_text(row: Row) -> tuple[str, str]:
    if row.trainable_m is None or row.trainable_percent is None:
        return "", ""
    return f"{row.trainable_m:.3g}", f"{row.trainable_percent:.3g}"


def cost_text(row: Row) -> str:
    return "" if row.cost_h is None else f"{row.cost_h:.3g}"


def efficiency_text(entry: Entry, column: EfficiencyColumn) -> str:
    """An efficiency-aware score with its score's decimals (PPT 3, a fraction; PSCP 2, in the score's unit)."""
    from bench.leaderboard.efficiency import SCORES

    return "–" if entry.value is None else f"{entry.value:.{SCORES[column.score].digits}f}"


def efficiency_caption(board: Board) -> str:
    """The caption's sentence on the efficiency-aware score columns ('' when none was asked for)."""
    if not board.efficiency:
        return ""
    from bench.leaderboard.efficiency import SCORES

    named = "; ".join(f"{SCORES[s].label}: footnote {mark}" for s, mark in board.efficiency_notes.items())
    return (" Efficiency-aware scores (higher is better; bold and underline as above, over our runs): "
            f"{named}.")


def column_header(board: Board, index: int) -> str:
    column = board.columns[index]
    if column.kind == "task" and column.metric != "top1":
        return f"{column.label} ({column.metric})"
    return column.label


def caption(board: Board) -> str:
    metrics = board.metrics
    what = (
        "Test top-1 (%) at the last epoch"
        if metrics == ["top1"]
        else "Test scores (top-1 % for vision tasks; the metric in the column header for language tasks)"
    )
    # Groups of one task have no column, and with only those the mean of the group means is the plain mean.
    grouped = any(c.kind == "group" for c in board.columns)
    if board.mean_index is not None:
        means = "Means are unweighted and shown only when every task they need is present" + (
            "; the overall mean is the mean of the group means." if grouped else "."
        )
    else:
        means = (
            "Group means are unweighted and shown only when every task they need is present. " if grouped else ""
        ) + f"{board.no_mean}."
    return (
        f"{what}, mean ± sample std over the final seeds (n = seed count, shown only where it differs from the "
        f"protocol's); {provenance_text(board)}. Bold: best of our runs in the column; "
        f"underlined: second; {DAGGER}: not significantly worse than the task's best "
        f"(α = {board.settings.alpha:g}, Holm; see Statistics). {means}"
        + " Params: trainable parameters of the method (M, and % of the backbone; classifier head excluded), "
        "averaged over tasks. Cost: wall-clock hours of all grid and final runs of the row on "
        + (", ".join(board.devices) or "the recorded device")
        + "."
        + efficiency_caption(board)
    )


def value_text(value: Any) -> str:
    """A hyper-parameter value as the command line takes it: 0.05, 1e-05, 8, non-linear, None."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def selection_text(row: HparamRow) -> str:
    """How the point was chosen, in a few words; the full rule is in the note and the JSON."""
    if row.metric is None:
        return row.rule
    text = f"best val {row.metric} of {row.candidates} grid points" if row.candidates else f"best val {row.metric}"
    if row.diverged:
        text += f" ({row.diverged} diverged)"
    if row.pruned:
        text += ", grid pruned (successive halving)"
    return text


HPARAM_HEADERS = ["Task", "Method", "lr", "wd", "Method hyper-parameters", "Selected by", "Val score"]


def hparams_table(board: Board) -> StatsTable | None:
    """Per task and method: the lr, weight decay and method hyper-parameters of the final runs, and how they were
    chosen (None when no run detail was read). The val score column only where some grid was searched."""
    if not board.hparams:
        return None
    searched = any(h.val_score is not None for h in board.hparams)
    headers = HPARAM_HEADERS if searched else HPARAM_HEADERS[:-1]
    rows = [
        [
            h.task,
            h.method,
            value_text(h.lr),
            value_text(h.wd),
            ", ".join(f"{k}={value_text(v)}" for k, v in h.hparams.items()),
            selection_text(h),
            "" if h.val_score is None else f"{h.val_score:.2f}",
        ][: len(headers)]
        for h in board.hparams
    ]
    rules = sorted({h.rule for h in board.hparams if h.metric is not None})
    note = "lr: the base learning rate of the grid (before any batch-size scaling); wd: weight decay. " + (
        "Selected by: the grid search on val (train split only), then the final seeds train at that point; val "
        "score: the selected grid run's." if rules else
        "Selected by: how the point was chosen; no grid was searched here, so there is no val score."
    )
    if rules:
        note += " Rule: " + "; ".join(rules) + "."
    return StatsTable("Selected hyper-parameters", headers, rows, note)


def metric_digits(table: MetricTable) -> dict[str, int]:
    """Decimals per metric column: 2, or 3 for a metric below 1 everywhere (NIST, CIDEr on weak systems)."""
    return {
        m: 2 if max((abs(r.values[m][0]) for r in table.rows if m in r.values), default=1.0) >= 1 else 3
        for m in table.metrics
    }


def metrics_tables(board: Board) -> list[StatsTable]:
    """Every test metric of the language tasks' final runs, mean ± sample std over seeds, one table per task."""
    out = []
    for table in board.metric_tables:
        rows = []
        most = max(v[2] for r in table.rows for v in r.values.values())
        digits = metric_digits(table)
        for row in table.rows:
            cells = [row.method]
            for metric in table.metrics:
                if metric not in row.values:
                    cells.append("–")
                    continue
                mean, std, n = row.values[metric]
                d = digits[metric]
                cells.append(f"{mean:.{d}f} ± {std:.{d}f}" + (f" (n={n})" if n < most else ""))
            rows.append(cells)
        note = (
            f"Test scores of the final runs, mean ± sample std over seeds (n where a method has fewer seeds). "
            f"The leaderboard ranks on {names.metric(table.primary)}; the others are computed on the same "
            "outputs and never averaged with it."
        )
        if any(names.lower_is_better(m) for m in table.metrics):
            note += " ↓: lower is better (an error rate)."
        out.append(
            StatsTable(f"All test metrics: {table.task}", ["Method", *map(names.metric, table.metrics)], rows, note)
        )
    return out


def statistics_tables(board: Board) -> list[StatsTable]:
    settings = board.settings
    out = []
    comparisons = sorted(board.task_tests.comparisons.values(), key=lambda c: (c.task, c.p_holm, c.method))
    rows = [
        [
            c.task,
            c.best,
            c.method,
            str(c.result.n),
            f"{c.result.statistic:+.2f}",
            _ci(c.result.detail),
            _p(c.result.p_value),
            _p(c.p_holm),
            "yes" if c.p_holm >= settings.alpha else "no",
        ]
        for c in comparisons
    ]
    if rows or board.task_tests.skipped:
        resamples = (
            f"{settings.resamples} resamples"
            if settings.test == "bootstrap"
            else f"{settings.resamples} trials"
            if settings.test == "randomization"
            else "exact"
        )
        scored = {
            "top1": "top-1 from each image's right/wrong",
            "BLEU": "corpus BLEU recomputed from per-item sufficient statistics (sacrebleu's formula)",
            "ROUGE": "the mean of per-item ROUGE F1 (close to, not equal to, the bootstrap-aggregated ROUGE "
            "in the table)",
        }
        used = [text for key, text in scored.items() if any(m.startswith(key) for m in board.metrics)]
        note = (
            f"Test: {TEST_WORDS[settings.test]} ({resamples}, seed {settings.seed}), two-sided, on the "
            f"task's primary metric ({'; '.join(used) or 'as stored'}). n = paired test items. "
            "Difference = best − method. p (Holm): corrected over the comparisons of the task."
        )
        if board.task_tests.skipped:
            note += (
                " Not tested: "
                + "; ".join(f"{t} {m} ({why})" for (t, m), why in sorted(board.task_tests.skipped.items()))
                + "."
            )
        out.append(
            StatsTable(
                "Per task: each method against the task's best",
                ["Task", "Best", "Method", "n", "Difference", "95% CI", "p", "p (Holm)", f"{DAGGER} (not worse)"],
                rows,
                note,
            )
        )
    if board.reproduction:
        rows = [
            [
                r.method,
                r.task,
                r.source,
                f"{r.ours:.2f}",
                f"{r.published:g}",
                f"{r.difference:+.2f}",
                "" if r.ci_low is None or r.ci_high is None else f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]",
                str(r.seeds),
            ]
            for r in board.reproduction
        ]
        out.append(
            StatsTable(
                "Reproduced vs published",
                ["Method", "Task", "Source", "Ours", "Published", "Difference", "95% CI", "Seeds"],
                rows,
                "Difference = our mean − the published number, with a 95% Student-t interval over our seeds (the "
                "published number is taken as exact: papers print no spread). An interval that excludes 0 means the "
                "reproduction differs from the publication beyond our seed noise.",
            )
        )
    across = board.across
    if across is None:
        return out
    if across.wilcoxon:
        rows = [
            [across.best or "", method, str(result.n), f"{result.statistic:g}", _p(result.p_value), _p(p_holm)]
            for method, (result, p_holm) in sorted(across.wilcoxon.items(), key=lambda kv: (kv[1][1], kv[0]))
        ]
        out.append(
            StatsTable(
                "Across tasks: Wilcoxon signed-rank against the best mean" + (" rank" if board.no_mean else ""),
                ["Best", "Method", "n (tasks)", "W", "p", "p (Holm)"],
                rows,
                f"Two-sided Wilcoxon signed-rank on per-task means (scipy), over the {len(across.tasks)} tasks every "
                f"listed method has; Holm over the {len(across.wilcoxon)} comparisons. With n tasks the smallest "
                f"possible p is 2/2^n ({2 / 2 ** len(across.tasks):.3g} here)."
                + (
                    " The tasks use different metrics, so the best is the method with the best mean rank, and the "
                    "signed ranks mix the metrics' scales; the Friedman ranks below do not."
                    if board.no_mean
                    else ""
                ),
            )
        )
    if across.friedman is not None:
        friedman = across.friedman
        rows = [
            [method, f"{rank:.2f}"] for method, rank in sorted(across.mean_ranks.items(), key=lambda kv: (kv[1], kv[0]))
        ]
        cliques = "; ".join("{" + ", ".join(c) + "}" for c in across.cliques) or "none"
        out.append(
            StatsTable(
                "Across tasks: Friedman test and Nemenyi critical difference",
                ["Method", "Mean rank"],
                rows,
                f"Friedman χ² = {friedman.statistic:.3f}, k = {len(across.mean_ranks)} methods, "
                f"N = {friedman.n} tasks, p = {_p(friedman.p_value)} (scipy). Nemenyi critical difference at "
                f"α = {settings.alpha:g}: "
                f"CD = {across.critical_difference:.3f} mean ranks; groups not significantly different: {cliques}. "
                "Mean-rank post-hoc verdicts depend on which methods are in the table (Benavoli et al. 2016); the "
                "Wilcoxon–Holm rows above do not.",
            )
        )
    elif across.reason:
        out.append(StatsTable("Across tasks", [], [], f"No rank test: {across.reason}."))
    return out


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _ci(detail: dict[str, float]) -> str:
    if "ci_low" not in detail or "ci_high" not in detail:
        return ""
    return f"[{detail['ci_low']:+.2f}, {detail['ci_high']:+.2f}]"
