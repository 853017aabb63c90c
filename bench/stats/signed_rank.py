"""Wilcoxon signed-rank test across tasks: Demšar's (2006) choice for two methods over many data sets, because it
uses per-task differences without assuming they are normal or comparable in scale."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from bench.stats.result import TestResult


def wilcoxon(a: Sequence[float], b: Sequence[float]) -> TestResult:
    """Two-sided Wilcoxon signed-rank on paired values (e.g. per-task means); n = number of pairs.

    scipy's defaults (zero differences dropped, exact distribution for small n). All differences zero means no
    evidence either way: p = 1, statistic 0 (scipy would warn and return NaN there).
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size == 0:
        raise ValueError(f"a and b must be paired 1-D sequences of the same length, got {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("a and b must not contain NaN or infinite values")
    nonzero = int(np.count_nonzero(x - y))
    detail = {"nonzero": nonzero, "mean_difference": float(np.mean(x - y))}
    if nonzero == 0:
        return TestResult(test="Wilcoxon signed-rank", statistic=0.0, p_value=1.0, n=x.size, detail=detail)
    result = stats.wilcoxon(x, y)
    return TestResult(test="Wilcoxon signed-rank", statistic=float(result.statistic), p_value=float(result.pvalue),
                      n=x.size, detail=detail)
