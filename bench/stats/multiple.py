"""Multiple-comparison control: many tasks x method pairs inflate false positives, Holm keeps the family-wise rate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values in input order.

    Step-down: the i-th smallest p (0-based) is multiplied by m - i, then a running maximum keeps the adjusted
    values monotone, and they are capped at 1 (the same numbers as statsmodels' multipletests(method="holm")).
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"holm() needs a flat sequence of p-values, got shape {p.shape}")
    if p.size == 0:
        return []
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"p-values must lie in [0, 1] (no NaN), got {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * np.arange(m, 0, -1))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return [float(x) for x in adjusted]
