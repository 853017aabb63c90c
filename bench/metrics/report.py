"""What a metric suite returns: scores, per-item statistics for significance tests, and named gaps.

A metric that cannot be computed here goes into `unavailable` with its reason; it never gets a made-up number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

PerItem = list[float] | list[list[float]]
"""Per-item values: one float per item for sentence-mean metrics, one list of sufficient statistics per item for
corpus metrics (BLEU, NIST, TER, METEOR)."""


@dataclass
class MetricReport:
    """Scores of one suite on one list of hypotheses (see bench.metrics for names and scales)."""

    scores: dict[str, float]
    per_item: dict[str, PerItem] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    convention: str = ""

    def statistics(self, metric: str) -> list[list[float]]:
        """Per-item sufficient statistics of a corpus metric (BLEU, NIST, TER, METEOR), typed as such."""
        values = self.per_item[metric]
        if not all(isinstance(v, list) for v in values):
            raise TypeError(f"{metric}: per-item scores, not statistics; use item_scores()")
        return cast(list[list[float]], values)

    def item_scores(self, metric: str) -> list[float]:
        """Per-item scores of a mean metric (ROUGE-1/2/L, ROUGE_L, CIDEr), typed as such."""
        values = self.per_item[metric]
        if any(isinstance(v, list) for v in values):
            raise TypeError(f"{metric}: per-item statistics, not scores; use statistics()")
        return cast(list[float], values)
