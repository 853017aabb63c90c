"""The one result type every test returns, so tables can print any test the same way."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TestResult:
    """Outcome of one significance test.

    `statistic` is the observed difference (A - B) for the resampling tests, W for Wilcoxon, chi-square for
    Friedman and the number of discordant pairs for McNemar. `n` counts the paired units (items, tasks).
    `detail` carries the numbers a report may print next to the p-value (CI bounds, resamples, seeds, ...).
    """

    __test__ = False  # not a pytest test class, although the name starts with "Test"

    test: str
    statistic: float
    p_value: float
    n: int
    detail: dict[str, float] = field(default_factory=dict)
