"""NIST as E2E's pymteval.NISTScore computes it (measure_scores.py -p), and the edited mteval-v13a-sig.pl variant.

No library matches the E2E script on multi-reference data (NLTK and HF nist_mt score each sentence against one
reference), so this is an own implementation. Tokens: mteval 13a, lowercased.

Per-item statistics: [hyp_len, mean_ref_len, ref_words, nonempty_refs, info_1..info_5], where info_n is the
information-weighted count of clipped hypothesis n-gram matches. The information weights come from all references
of all items scored together and stay fixed when items are resampled; corpus_nist_from_stats rebuilds the score.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Literal

MAX_ORDER = 5
BETA = -math.log(0.5) / math.log(1.5) ** 2

NistVariant = Literal["pymteval", "perl"]


def _tokenize(text: str) -> list[str]:
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()(text.lower().rstrip()).split()


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def nist_statistics(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> list[list[float]]:
    """Per-item statistics (see the module docstring); references[i] lists item i's references."""
    hyps = [_tokenize(h) for h in hypotheses]
    refs = [[_tokenize(r) for r in item] for item in references]
    # Information weights: info(g) = log2(count(g[:-1]) / count(g)) over every reference token sequence.
    counts: Counter[tuple[str, ...]] = Counter()
    for item in refs:
        for ref in item:
            counts[()] += len(ref)
            for n in range(1, MAX_ORDER + 1):
                counts.update(_ngrams(ref, n))

    def info(gram: tuple[str, ...]) -> float:
        return math.log2(counts[gram[:-1]] / counts[gram]) if counts[gram] else 0.0

    stats = []
    for hyp, item in zip(hyps, refs, strict=True):
        infos = []
        for n in range(1, MAX_ORDER + 1):
            merged: Counter[tuple[str, ...]] = Counter()
            for ref in item:
                merged |= _ngrams(ref, n)
            hits = _ngrams(hyp, n) & merged
            infos.append(sum(info(gram) * count for gram, count in hits.items()))
        ref_words = sum(len(ref) for ref in item)
        nonempty = sum(1 for ref in item if ref)
        stats.append([float(len(hyp)), ref_words / len(item), float(ref_words), float(nonempty), *infos])
    return stats


def _length_penalty(ratio: float) -> float:
    if ratio >= 1:
        return 1.0
    if ratio <= 0:
        return 0.0
    return math.exp(-BETA * math.log(ratio) ** 2)


def corpus_nist_from_stats(stats: Sequence[Sequence[float]], variant: NistVariant = "pymteval") -> float:
    """Corpus NIST (raw scale) from per-item statistics.

    "pymteval" (E2E measure_scores.py -p): counts len(hyp) - n + 1 hypothesis n-grams even when negative, and the
    reference length is the sum of each item's mean reference length. "perl" (E2E's edited mteval-v13a-sig.pl):
    counts max(0, len(hyp) - n + 1), and the reference length is total reference words divided by the mean number
    of (non-empty) references per item. Both agree when every item has the same number of references.
    """
    if variant not in ("pymteval", "perl"):
        raise ValueError(f"unknown NIST variant {variant!r}")
    sys_len = sum(item[0] for item in stats)
    score = 0.0
    for n in range(1, MAX_ORDER + 1):
        info = sum(item[3 + n] for item in stats)
        if variant == "pymteval":
            count = sum(item[0] - n + 1 for item in stats)
            score += info / count if count else 0.0
        else:
            count = sum(max(0.0, item[0] - n + 1) for item in stats)
            score += info / max(count, 1.0)
    if variant == "pymteval":
        ref_len = sum(item[1] for item in stats)
    else:
        refs_per_item = sum(item[3] for item in stats) / len(stats) if stats else 0.0
        ref_len = sum(item[2] for item in stats) / refs_per_item if refs_per_item else 0.0
    return score * (_length_penalty(sys_len / ref_len) if ref_len else 0.0)
