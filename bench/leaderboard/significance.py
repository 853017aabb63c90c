"""Which differences in a leaderboard are real: per-task paired tests against the best method, and across-task
rank tests (docs/leaderboards.md).

Per task, every method is compared with the task's best on the same test items, with all seeds: a paired
bootstrap over items with seeds resampled (default), exact McNemar per matched seed combined with Fisher's method
(0/1 vision scores), or approximate randomisation per matched seed combined the same way (sacrebleu's test for
BLEU). The p-values of one task are Holm-corrected together. Across tasks (methods with every task): Wilcoxon
signed-rank of each method against the best on per-task means (Holm), and Friedman with the Nemenyi critical
difference and its cliques for the CD diagram.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from bench import stats
from bench.leaderboard.collect import Cell
from bench.leaderboard.examples import Examples, load_examples, same_items

TestName = Literal["bootstrap", "mcnemar", "randomization"]


@dataclass(frozen=True)
class Settings:
    test: TestName = "bootstrap"
    alpha: float = 0.05
    resamples: int = 1000
    seed: int = 12345


@dataclass(frozen=True)
class Comparison:
    """One method against the best of its task."""

    task: str
    method: str
    best: str
    result: stats.TestResult
    p_holm: float


@dataclass
class TaskTests:
    comparisons: dict[tuple[str, str], Comparison] = field(default_factory=dict)
    skipped: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass
class AcrossTasks:
    """Rank tests over the tasks of the table, on the methods that have all of them."""

    tasks: list[str]
    methods: list[str]
    best: str | None = None
    wilcoxon: dict[str, tuple[stats.TestResult, float]] = field(default_factory=dict)
    friedman: stats.TestResult | None = None
    mean_ranks: dict[str, float] = field(default_factory=dict)
    critical_difference: float | None = None
    cliques: list[list[str]] = field(default_factory=list)
    reason: str = ""


def best_method(cells: dict[str, Cell]) -> str:
    """Highest mean; ties go to the alphabetically first method, so the choice is deterministic."""
    return min(cells, key=lambda m: (-round(cells[m].mean, 9), m))


def per_task_tests(cells: dict[tuple[str, str], Cell], tasks: list[str], settings: Settings) -> TaskTests:
    out = TaskTests()
    for task in tasks:
        row = {m: c for (t, m), c in cells.items() if t == task}
        if len(row) < 2:
            continue
        best = best_method(row)
        best_examples, paired, skipped = paired_examples(row[best], {m: row[m] for m in sorted(row) if m != best})
        out.skipped.update({(task, m): why for m, why in skipped.items()})
        results: dict[str, stats.TestResult] = {}
        if paired and isinstance(best_examples, Examples):
            if settings.test == "bootstrap":
                results = bootstrap_against(best_examples, paired, row[best].metric, settings.resamples,
                                            settings.seed)
            else:
                for method, other in paired.items():
                    result = compare(best_examples, other, row[best].metric, settings)
                    if isinstance(result, str):
                        out.skipped[(task, method)] = result
                    else:
                        results[method] = result
        adjusted = stats.holm([r.p_value for r in results.values()])
        for (method, result), p_holm in zip(results.items(), adjusted, strict=True):
            out.comparisons[(task, method)] = Comparison(task, method, best, result, p_holm)
    return out


def paired_examples(reference: Cell, others: dict[str, Cell]
                    ) -> tuple[Examples | str, dict[str, Examples], dict[str, str]]:
    """Per-example values of a reference cell and of the others (in their order) that can be paired with it on
    the same test items; the others get the reason they cannot."""
    base = load_examples(reference.run_dirs, reference.seeds, reference.metric)
    paired: dict[str, Examples] = {}
    skipped: dict[str, str] = {}
    for method in others:
        if isinstance(base, str):
            skipped[method] = base
            continue
        cell = others[method]
        other = load_examples(cell.run_dirs, cell.seeds, cell.metric)
        reason = other if isinstance(other, str) else _unpairable(base, other, reference.metric)
        if reason is not None:
            skipped[method] = reason
        elif isinstance(other, Examples):
            paired[method] = other
    return base, paired, skipped


def bootstrap_against(reference: Examples, others: dict[str, Examples], metric: str, resamples: int, seed: int
                      ) -> dict[str, stats.TestResult]:
    """reference − each other on the same items: the paired bootstrap (items and seeds resampled), with corpus
    metrics recomputed from summed statistics per resample; one pass over the item draws for all of them."""
    score = CORPUS_SCORES.get(metric) if reference.is_corpus else None
    results = stats.paired_bootstrap_many(reference.values, [e.values for e in others.values()], score=score,
                                          n_resamples=resamples, seed=seed)
    return dict(zip(others, results, strict=True))


def _unpairable(best: Examples, other: Examples, metric: str) -> str | None:
    if not same_items(best.items, other.items):
        return "the two methods were scored on different test items"
    if best.is_corpus and metric not in CORPUS_SCORES:
        return f"no resampling rule for the corpus metric {metric}"
    return None


def compare(best: Examples, other: Examples, metric: str, settings: Settings) -> stats.TestResult | str:
    """best − other on the same items; a reason string when the two cannot be paired."""
    reason = _unpairable(best, other, metric)
    if reason is not None:
        return reason
    score = CORPUS_SCORES.get(metric) if best.is_corpus else None
    if settings.test == "bootstrap":
        return stats.paired_bootstrap(best.values, other.values, score=score, n_resamples=settings.resamples,
                                      seed=settings.seed)
    common = sorted(set(best.seeds) & set(other.seeds))
    if not common:
        return f"{settings.test} pairs runs of the same seed, and these methods share none"
    rows_best = best.values[[best.seeds.index(s) for s in common]]
    rows_other = other.values[[other.seeds.index(s) for s in common]]
    if settings.test == "mcnemar":
        if best.is_corpus or not np.isin(best.values, (0.0, 100.0)).all() or not np.isin(other.values,
                                                                                            (0.0, 100.0)).all():
            return "McNemar needs right/wrong per item (classification accuracy)"
        return stats.mcnemar_seeds(rows_best > 0, rows_other > 0)
    per_seed = []
    for a, b in zip(rows_best, rows_other, strict=True):
        if metric == "BLEU" and best.is_corpus:
            per_seed.append(stats.sacrebleu_paired_bleu(b, a, "ar", n=settings.resamples, seed=settings.seed))
        else:
            per_seed.append(stats.paired_randomization(a, b, score=score, n_trials=settings.resamples,
                                                       seed=settings.seed))
    return stats.combine_seeds(per_seed, "approximate randomisation")


# Corpus metrics whose score a resample can recompute from summed per-item statistics.
CORPUS_SCORES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"BLEU": stats.bleu_from_stats}


def across_tasks(cells: dict[tuple[str, str], Cell], tasks: list[str], methods: list[str], settings: Settings
                 ) -> AcrossTasks:
    complete = [m for m in methods if all((t, m) in cells for t in tasks)]
    out = AcrossTasks(tasks=list(tasks), methods=complete)
    if len(tasks) < 2 or len(complete) < 2:
        out.reason = (f"needs at least 2 tasks and 2 methods with every task; have {len(tasks)} tasks and "
                      f"{len(complete)} complete methods")
        return out
    means = np.asarray([[cells[(t, m)].mean for m in complete] for t in tasks])
    if len({cells[(t, complete[0])].metric for t in tasks}) > 1:
        # Tasks scored with different metrics (BLEU, ROUGE-2) are never averaged: the best has the best mean rank.
        import scipy.stats

        overall = dict(zip(complete, (-scipy.stats.rankdata(-means, axis=1).mean(axis=0)).tolist(), strict=True))
    else:
        overall = dict(zip(complete, means.mean(axis=0).tolist(), strict=True))
    out.best = min(complete, key=lambda m: (-round(overall[m], 9), m))
    column = complete.index(out.best)
    others = [m for m in complete if m != out.best]
    results = [stats.wilcoxon(means[:, column].tolist(), means[:, complete.index(m)].tolist()) for m in others]
    for method, result, p_holm in zip(others, results, stats.holm([r.p_value for r in results]), strict=True):
        out.wilcoxon[method] = (result, p_holm)
    if len(complete) >= 3:
        friedman, ranks = stats.friedman(means)
        out.friedman = friedman
        out.mean_ranks = dict(zip(complete, ranks.tolist(), strict=True))
        out.critical_difference = stats.nemenyi_critical_difference(len(complete), len(tasks), settings.alpha)
        out.cliques = stats.cliques(out.mean_ranks, out.critical_difference)
    else:
        out.reason = "Friedman needs at least 3 methods with every task"
    return out
