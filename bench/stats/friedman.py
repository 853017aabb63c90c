"""Friedman test, Nemenyi critical difference and CD-diagram cliques for k methods over N tasks (Demšar 2006).

Ranks within each task make scores of different tasks comparable; the critical difference says how far apart two
mean ranks must be before the methods count as different.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy import stats

from bench.stats.result import TestResult


def friedman(scores: np.ndarray) -> tuple[TestResult, np.ndarray]:
    """Friedman chi-square over scores (tasks, methods), higher is better; also the mean rank of each method.

    Rank 1 is the best method of a task, ties share the average rank. Needs >= 3 methods and >= 2 tasks (use
    wilcoxon for two methods). If every task ties all methods, statistic 0 and p = 1.
    """
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"scores must be a (tasks, methods) matrix, got shape {x.shape}")
    blocks, k = x.shape
    if k < 3 or blocks < 2:
        raise ValueError(f"the Friedman test needs at least 3 methods and 2 tasks, got {k} methods and {blocks} "
                         "tasks (compare two methods with wilcoxon)")
    if not np.all(np.isfinite(x)):
        raise ValueError("scores must not contain NaN or infinite values (a method without a score on a task)")
    mean_ranks = stats.rankdata(-x, axis=1).mean(axis=0)
    detail = {"methods": k, "tasks": blocks}
    if np.all(x == x[:, :1]):
        return TestResult(test="Friedman", statistic=0.0, p_value=1.0, n=blocks, detail=detail), mean_ranks
    result = stats.friedmanchisquare(*x.T)
    return (TestResult(test="Friedman", statistic=float(result.statistic), p_value=float(result.pvalue), n=blocks,
                       detail=detail), mean_ranks)


def nemenyi_critical_difference(k: int, n_blocks: int, alpha: float = 0.05) -> float:
    """Nemenyi CD = q_alpha * sqrt(k (k + 1) / (6 N)), q_alpha = studentized range quantile (k, df=inf) / sqrt(2)."""
    if k < 2 or n_blocks < 1:
        raise ValueError(f"the critical difference needs k >= 2 methods and n_blocks >= 1, got {k} and {n_blocks}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    q_alpha = float(stats.studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)
    return q_alpha * math.sqrt(k * (k + 1) / (6 * n_blocks))


def cliques(mean_ranks: Mapping[str, float], critical_difference: float) -> list[list[str]]:
    """The bars of a CD diagram: maximal runs of methods (in rank order) whose mean ranks span less than the CD.

    Methods are sorted by mean rank (name breaks ties); a run is dropped if it is a single method or lies inside
    another run.
    """
    ordered = sorted(mean_ranks, key=lambda name: (mean_ranks[name], name))
    groups: list[list[str]] = []
    furthest = -1  # last index covered by an earlier group; a run ending there or before is inside that group
    for start, name in enumerate(ordered):
        last = start
        while last + 1 < len(ordered) and mean_ranks[ordered[last + 1]] - mean_ranks[name] < critical_difference:
            last += 1
        if last > max(furthest, start):
            groups.append(ordered[start:last + 1])
        furthest = max(furthest, last)
    return groups
