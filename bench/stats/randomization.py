"""Approximate randomisation (Noreen 1989; Riezler & Maxwell 2005): under H0 the two systems' outputs for an item
are exchangeable, so randomly swapping them per item gives the null distribution of the score difference.

Swaps follow sacrebleu's _paired_ar_test draws, so the same seed gives the same pseudo-systems as sacrebleu.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from bench.stats import _arrays
from bench.stats._arrays import seeds_items_k
from bench.stats.bootstrap import Score, _scores
from bench.stats.result import TestResult


def swapped_sums(x: np.ndarray, y: np.ndarray, n_trials: int,
                 rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Summed statistics (trials, k) of the two pseudo-systems, in blocks of trials.

    As sacrebleu: keep = rng.integers(2, size=(n_trials, items), dtype=bool); pseudo-A takes x where keep, y
    elsewhere; pseudo-B the opposite. Blocks have a multiple of 32 rows: numpy draws 32 booleans per 32-bit word
    and drops the rest of a word at the end of a call, so such blocks give exactly the numbers of one big draw.
    """
    n_items = x.shape[0]
    rows = max(32, (_arrays.CHUNK_ELEMENTS // n_items) // 32 * 32)
    for start in range(0, n_trials, rows):
        keep = rng.integers(2, size=(min(rows, n_trials - start), n_items), dtype=bool)
        kept = keep.astype(np.float64)
        swapped = 1.0 - kept
        yield kept @ x + swapped @ y, swapped @ x + kept @ y


def paired_randomization(a: np.ndarray, b: np.ndarray, *, score: Score | None = None, n_trials: int = 10000,
                         seed: int = 12345) -> TestResult:
    """Two-sided approximate randomisation test of score(A) - score(B) on one run of each system.

    a, b: per-item scores (items,) -- the system score is their mean -- or, with `score`, per-item sufficient
    statistics (items, k) with score mapping summed statistics (..., k) to (...). A leading seed axis of
    length 1 is accepted. Statistic |score_a - score_b|; p = (c + 1) / (n_trials + 1) with c the number of trials
    at least as extreme as observed (sacrebleu counts strictly greater; ">=" keeps identical systems at p = 1).
    """
    x = seeds_items_k(a, statistics=score is not None, name="a")
    y = seeds_items_k(b, statistics=score is not None, name="b")
    if x.shape[0] != 1 or y.shape[0] != 1:
        raise ValueError(f"paired_randomization compares one run of each system; got {x.shape[0]} and "
                         f"{y.shape[0]} seeds (use paired_bootstrap for several seeds)")
    if x.shape != y.shape:
        raise ValueError(f"a and b must cover the same items: shapes {x.shape[1:]} and {y.shape[1:]}")
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    x, y = x[0], y[0]
    n_items = x.shape[0]

    def fn(sums: np.ndarray) -> np.ndarray:
        return sums[..., 0] / n_items if score is None else _scores(score, sums)

    observed = float(fn(x.sum(axis=0)) - fn(y.sum(axis=0)))
    threshold = abs(observed) * (1 - 1e-12)  # float noise must not break exact ties
    rng = np.random.default_rng(seed)
    extreme = sum(int(np.sum(np.abs(fn(sa) - fn(sb)) >= threshold)) for sa, sb in swapped_sums(x, y, n_trials, rng))
    return TestResult(
        test="approximate randomization",
        statistic=observed,
        p_value=(extreme + 1) / (n_trials + 1),
        n=n_items,
        detail={"trials": n_trials},
    )
