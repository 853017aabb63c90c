"""Corpus BLEU through sacrebleu, with the per-item sufficient statistics that rebuild it exactly.

Per item: [hyp_len, ref_len, correct_1..4, total_1..4] (sacrebleu's segment statistics; ref_len is the closest
reference length, ties to the shorter). Summing them over any subset of items and calling corpus_bleu_from_stats
gives that subset's corpus BLEU, which is what paired bootstrap / randomisation tests need.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

MAX_ORDER = 4


def reference_streams(references: Sequence[Sequence[str]], count: int, pad: str | None) -> list[list[str | None]]:
    """sacrebleu's layout, streams[j][i] = reference j of item i, filling missing ones with `pad`.

    pad=None drops them (sacrebleu's multi-reference rule); pad="" reproduces multi-bleu.perl, where an empty
    reference line still counts as a 0-length reference for the brevity penalty.
    """
    return [[refs[j] if j < len(refs) else pad for refs in references] for j in range(count)]


def streams_with_none(streams: Sequence[Sequence[str | None]]) -> Any:
    """sacrebleu accepts None for a missing reference although its annotations say str."""
    return [list(s) for s in streams]


def bleu_statistics(hypotheses: Sequence[str], streams: Sequence[Sequence[str | None]], *, lowercase: bool,
                    tokenize: str) -> list[list[float]]:
    """Per-item statistics of sacrebleu BLEU(lowercase, tokenize, force=True) (see the module docstring)."""
    from sacrebleu.metrics import BLEU

    metric = BLEU(lowercase=lowercase, tokenize=tokenize, force=True)
    # The public corpus_score sums exactly these statistics (sacrebleu.metrics.base.Metric.corpus_score).
    stats = metric._extract_corpus_statistics(list(hypotheses), streams_with_none(streams))
    return [[float(x) for x in item] for item in stats]


def corpus_bleu_from_stats(stats: Sequence[Sequence[float]],
                           variant: Literal["sacrebleu", "pymteval"] = "sacrebleu") -> float:
    """Corpus BLEU (0-100) from per-item statistics.

    "sacrebleu" is sacrebleu's BLEU (= mteval-v13a.pl and multi-bleu.perl; 'exp' smoothing only when an order has
    no match). "pymteval" is E2E's measure_scores.py -p: it counts len(hyp) - n + 1 hypothesis n-grams even when
    that is negative (hypotheses shorter than n tokens) and floors zero counts at 1e-15 / 1e-9.
    """
    totals = [sum(item[k] for item in stats) for k in range(2 + 2 * MAX_ORDER)]
    sys_len, ref_len = totals[0], totals[1]
    correct = totals[2:2 + MAX_ORDER]
    if variant == "sacrebleu":
        from sacrebleu.metrics import BLEU

        total = totals[2 + MAX_ORDER:]
        return float(BLEU.compute_bleu(correct=[int(c) for c in correct], total=[int(t) for t in total],
                                       sys_len=int(sys_len), ref_len=int(ref_len), smooth_method="exp").score)
    if variant != "pymteval":
        raise ValueError(f"unknown BLEU variant {variant!r}")
    candidates = [sum(item[0] - n for item in stats) for n in range(MAX_ORDER)]
    penalty = 1.0
    if candidates[0] <= ref_len:
        penalty = math.exp(1.0 - ref_len / (candidates[0] if candidates[0] else 1e-5))
    log_sum = sum(math.log(max(hits, 1e-15) / max(count, 1e-9))
                  for hits, count in zip(correct, candidates, strict=True))
    return 100.0 * penalty * math.exp(log_sum / MAX_ORDER)
