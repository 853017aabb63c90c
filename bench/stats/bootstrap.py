"""Paired bootstrap over test items and seeds: is A better than B on this test set, and by how much (CI)?

Resampling items answers "would another test set of this size agree" (Koehn 2004); resampling seeds as well folds
the training-run variance into the same interval, so one number covers both sources of noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from bench.stats import _arrays
from bench.stats._arrays import count_matrix, seeds_items_k
from bench.stats.result import TestResult

Score = Callable[[np.ndarray], np.ndarray]


def _scores(score: Score, sums: np.ndarray) -> np.ndarray:
    """score() over summed statistics (..., k) -> (...), checked because a non-vectorised score fails silently."""
    out = np.asarray(score(sums), dtype=np.float64)
    if out.shape != sums.shape[:-1]:
        raise ValueError(f"score must map an array (..., k) to (...); got {sums.shape} -> {out.shape}")
    return out


def paired_bootstrap(a: np.ndarray, b: np.ndarray, *, score: Score | None = None, n_resamples: int = 1000,
                     seed: int = 12345) -> TestResult:
    """Paired bootstrap test of score(A) - score(B) on the same test items.

    a, b: per-item values, (seeds, items) or (items,) for one seed; with `score`, per-item sufficient statistics
    (seeds, items, k) or (items, k), and score maps summed statistics (..., k) to a corpus score (...).
    Seed counts may differ between the systems; the items must be the same, in the same order.

    RNG protocol (fixed, so results are reproducible and testable): item indices come from
    default_rng([seed, 0]).integers(0, items, (n_resamples, items)), drawn in blocks of rows (the same numbers as
    one draw); seed indices from a separate default_rng([seed, 1]): integers(0, seeds_a, (n_resamples, seeds_a)),
    then likewise for B. A system's resampled score is the mean over its drawn seeds of score(items drawn), items
    shared by A and B. Separate streams let paired_bootstrap_many share the item draws between comparisons.

    p-value: two-sided, resampled differences d* centred on their mean as the null distribution,
    p = (#{|d* - mean(d*)| >= |d_obs|} + 1) / (n_resamples + 1); CI: 2.5 / 97.5 percentiles of d*.
    """
    return paired_bootstrap_many(a, [b], score=score, n_resamples=n_resamples, seed=seed)[0]


def paired_bootstrap_many(a: np.ndarray, others: Sequence[np.ndarray], *, score: Score | None = None,
                          n_resamples: int = 1000, seed: int = 12345) -> list[TestResult]:
    """paired_bootstrap(a, b) for every b in others, with one pass over the item draws (a leaderboard compares
    every method with the best of a task; on large test sets the item resampling is the whole cost).
    Each result equals the single call's: the same draws and p-value; CI bounds to float rounding (BLAS order)."""
    statistics = score is not None
    x = seeds_items_k(a, statistics=statistics, name="a")
    ys = [seeds_items_k(b, statistics=statistics, name=f"others[{i}]") for i, b in enumerate(others)]
    for i, y in enumerate(ys):
        if x.shape[1:] != y.shape[1:]:
            raise ValueError(f"a and others[{i}] must cover the same items: per-seed shapes {x.shape[1:]} and "
                             f"{y.shape[1:]}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    seeds_a, n_items, k = x.shape

    def fn(sums: np.ndarray) -> np.ndarray:
        return sums[..., 0] / n_items if score is None else _scores(score, sums)

    observed_a = float(fn(x.sum(axis=1)).mean())
    observed_b = [float(fn(y.sum(axis=1)).mean()) for y in ys]
    weights = []
    for y in ys:
        seeds_rng = np.random.default_rng([seed, 1])
        weights_a = count_matrix(seeds_rng.integers(0, seeds_a, size=(n_resamples, seeds_a)), seeds_a) / seeds_a
        seeds_b = y.shape[0]
        weights_b = count_matrix(seeds_rng.integers(0, seeds_b, size=(n_resamples, seeds_b)), seeds_b) / seeds_b
        weights.append((weights_a, weights_b))
    offsets = np.cumsum([seeds_a, *[y.shape[0] for y in ys]])
    # (items, all seeds * k): one matrix product turns item counts into every seed's summed statistics.
    table = np.concatenate([x, *ys]).transpose(1, 0, 2).reshape(n_items, -1)
    diffs = np.empty((len(ys), n_resamples))
    items_rng = np.random.default_rng([seed, 0])
    rows = max(1, _arrays.CHUNK_ELEMENTS // n_items)
    for start in range(0, n_resamples, rows):
        stop = min(n_resamples, start + rows)
        counts = count_matrix(items_rng.integers(0, n_items, size=(stop - start, n_items)), n_items)
        per_seed = fn((counts @ table).reshape(stop - start, int(offsets[-1]), k))
        for i, (weights_a, weights_b) in enumerate(weights):
            score_a = (per_seed[:, :seeds_a] * weights_a[start:stop]).sum(axis=1)
            score_b = (per_seed[:, offsets[i]:offsets[i + 1]] * weights_b[start:stop]).sum(axis=1)
            diffs[i, start:stop] = score_a - score_b

    results = []
    for i, y in enumerate(ys):
        observed = observed_a - observed_b[i]
        centred = np.abs(diffs[i] - diffs[i].mean())
        # The relative slack keeps float noise from breaking ties such as d_obs = 0 with all d* = 0.
        extreme = int(np.sum(centred >= abs(observed) * (1 - 1e-12)))
        low, high = np.percentile(diffs[i], [2.5, 97.5])
        results.append(TestResult(
            test="paired bootstrap (items x seeds)", statistic=observed, p_value=(extreme + 1) / (n_resamples + 1),
            n=n_items,
            detail={"ci_low": float(low), "ci_high": float(high), "resamples": n_resamples, "seeds_a": seeds_a,
                    "seeds_b": y.shape[0], "score_a": observed_a, "score_b": observed_b[i]},
        ))
    return results
