"""Corpus TER through sacrebleu (tercom 0.7.25's algorithm when missing references are given as None), or through
bench's step-by-step port of tercom (variant "tercom", bench.metrics.tercom), with per-item statistics
[edits, mean reference length] whose sums rebuild the corpus score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from bench.metrics.bleu import streams_with_none


def ter_statistics(hypotheses: Sequence[str], streams: Sequence[Sequence[str | None]],
                   variant: Literal["sacrebleu", "tercom"] = "sacrebleu") -> list[list[float]]:
    """Per-item [edits, mean reference length] of sacrebleu TER() defaults (case-insensitive, punctuation kept),
    or of tercom 0.7.25 itself (variant "tercom"; same defaults)."""
    if variant == "tercom":
        from bench.metrics.tercom import tercom_statistics

        return tercom_statistics(hypotheses, streams)
    from sacrebleu.metrics import TER

    stats = TER()._extract_corpus_statistics(list(hypotheses), streams_with_none(streams))
    return [[float(x) for x in item] for item in stats]


def corpus_ter_from_stats(stats: Sequence[Sequence[float]]) -> float:
    """Corpus TER (0-100): total edits over total mean reference length, as sacrebleu / tercom compute it."""
    edits = sum(item[0] for item in stats)
    length = sum(item[1] for item in stats)
    if length > 0:
        return 100.0 * edits / length
    return 100.0 if edits > 0 else 0.0
