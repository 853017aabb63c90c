"""Exact McNemar test: two classifiers on the same items differ only through the items exactly one gets right.

SciPy has no McNemar; the exact form is a binomial test on the discordant pairs (Dietterich 1998), valid for
the small discordant counts that small test sets give.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import stats

from bench.stats.combine import combine_seeds
from bench.stats.result import TestResult


def _correctness(values: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(values)
    if x.dtype != np.bool_:
        if not np.all((x == 0) | (x == 1)):
            raise ValueError(f"{name} must be per-item correctness (bool or 0/1)")
        x = x.astype(bool)
    return x


def _discordant(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """(A right & B wrong, A wrong & B right, exact two-sided p); p = 1 when no item separates the systems."""
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_a + only_b == 0:
        return only_a, only_b, 1.0
    return only_a, only_b, float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> TestResult:
    """Exact McNemar on one run each: binomtest(n01, n01 + n10, 0.5); statistic = n01 + n10 (discordant pairs)."""
    a = _correctness(correct_a, "correct_a")
    b = _correctness(correct_b, "correct_b")
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"correct_a and correct_b must be 1-D over the same items, got {a.shape} and {b.shape}")
    only_a, only_b, p = _discordant(a, b)
    return TestResult(test="exact McNemar", statistic=float(only_a + only_b), p_value=p, n=a.size,
                      detail={"a_only": only_a, "b_only": only_b})


def mcnemar_seeds(correct_a: np.ndarray, correct_b: np.ndarray) -> TestResult:
    """Exact McNemar per matched seed (rows of (seeds, items) arrays), combined with Fisher's method (combine_seeds).

    statistic = discordant pairs summed over seeds; detail adds a_only / b_only totals to combine_seeds' detail.
    """
    a = np.atleast_2d(_correctness(correct_a, "correct_a"))
    b = np.atleast_2d(_correctness(correct_b, "correct_b"))
    if a.ndim != 2 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"correct_a and correct_b must be (seeds, items) with matched seeds, got {a.shape} and "
                         f"{b.shape}")
    per_seed = [mcnemar_exact(row_a, row_b) for row_a, row_b in zip(a, b, strict=True)]
    combined = combine_seeds(per_seed, "exact McNemar")
    only_a = sum(r.detail["a_only"] for r in per_seed)
    only_b = sum(r.detail["b_only"] for r in per_seed)
    return replace(combined, statistic=float(only_a + only_b),
                   detail=combined.detail | {"a_only": only_a, "b_only": only_b})
