"""Combining one test per seed into one verdict (Fisher's method), for tests that pair runs of the same seed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from bench.stats.result import TestResult


def combine_seeds(results: Sequence[TestResult], test: str) -> TestResult:
    """Fisher's combination of per-seed results of one test on the same items.

    p: scipy.stats.combine_pvalues(method="fisher"); statistic: mean of the per-seed statistics; detail: seeds,
    fisher_chi2 and p_seed0, p_seed1, ... Fisher assumes independent p-values, while seeds share the test items:
    read the combined p as a summary of agreement across seeds, not an exact error rate.
    """
    if not results:
        raise ValueError("combine_seeds needs at least one per-seed result")
    sizes = {r.n for r in results}
    if len(sizes) != 1:
        raise ValueError(f"per-seed results must cover the same items, got item counts {sorted(sizes)}")
    combined = stats.combine_pvalues([r.p_value for r in results], method="fisher")
    detail: dict[str, float] = {"seeds": len(results), "fisher_chi2": float(combined.statistic)}
    detail |= {f"p_seed{i}": r.p_value for i, r in enumerate(results)}
    return TestResult(test=f"{test} (seeds combined, Fisher)",
                      statistic=float(np.mean([r.statistic for r in results])),
                      p_value=min(1.0, float(combined.pvalue)), n=sizes.pop(), detail=detail)
