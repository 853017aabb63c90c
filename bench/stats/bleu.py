"""Paired BLEU tests that give sacrebleu's PairedTest p-values exactly, from stored per-item statistics.

Stored statistics avoid re-tokenising the outputs for every comparison; replaying sacrebleu's RNG draws and float
precision keeps our numbers identical to what `sacrebleu --paired-bs / --paired-ar` prints.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from bench.stats import _arrays
from bench.stats._arrays import count_matrix
from bench.stats.randomization import swapped_sums
from bench.stats.result import TestResult

ORDER = 4
WIDTH = 2 + 2 * ORDER  # [hyp_len, ref_len, correct_1..4, total_1..4], sacrebleu's BLEU._extract_corpus_statistics

# sacrebleu computes a resample's precisions as `100. * correct[n] / total[n]` on float32 sums; under NumPy 2's
# promotion rules that stays float32 (NumPy 1 promoted to float64). Asking NumPy replays whichever applies.
_RESAMPLE_PRECISION = (100.0 * np.float32(1.0)).dtype


def _bleu(stats: np.ndarray, precision: np.dtype) -> np.ndarray:
    """sacrebleu BLEU.compute_bleu(smooth_method="exp") vectorised over leading axes, precisions in `precision`."""
    sys_len, ref_len = stats[..., 0], stats[..., 1]
    correct = stats[..., 2:2 + ORDER].astype(precision)
    total = stats[..., 2 + ORDER:WIDTH].astype(precision)
    valid = np.all(total > 0, axis=-1) & np.any(correct > 0, axis=-1)  # else sacrebleu returns 0.0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        bp = np.where(sys_len < ref_len, np.exp(1 - ref_len / np.where(sys_len > 0, sys_len, 1.0)), 1.0)
        bp = np.where(sys_len > 0, bp, 0.0)
        zero = correct == 0
        # 'exp' smoothing: the m-th order without matches gets precision 100 / (2**m * total).
        smooth = np.cumprod(np.where(zero, 2.0, 1.0), axis=-1).astype(precision)
        hundred = precision.type(100.0)
        precisions = np.where(zero, hundred / (smooth * total), (hundred * correct) / total)
        logs = np.log(np.where(valid[..., None], precisions, 1.0).astype(np.float64))
        mean_log = (((logs[..., 0] + logs[..., 1]) + logs[..., 2]) + logs[..., 3]) / ORDER  # sacrebleu's order
        return np.where(valid, bp * np.exp(mean_log), 0.0)


def bleu_from_stats(stats: np.ndarray) -> np.ndarray:
    """Corpus BLEU (0-100, sacrebleu defaults) of summed statistics (..., 10) -> (...); a `score` for the tests."""
    x = np.asarray(stats, dtype=np.float64)
    if x.shape[-1:] != (WIDTH,):
        raise ValueError(f"BLEU statistics need a last axis of {WIDTH}, got shape {x.shape}")
    return _bleu(x, np.dtype(np.float64))


def _item_stats(stats: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(stats, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != WIDTH or x.shape[0] == 0:
        raise ValueError(f"{name} must be per-item BLEU statistics of shape (items, {WIDTH}), got {x.shape}")
    if not np.all((x >= 0) & (x == np.round(x))):
        raise ValueError(f"{name} must hold non-negative integer counts")
    return x


def sacrebleu_paired_bleu(stats_base: np.ndarray, stats_system: np.ndarray, test: Literal["bs", "ar"], n: int,
                          seed: int = 12345) -> TestResult:
    """sacrebleu's PairedTest on BLEU (baseline first) from per-item statistics, same seed -> same p-value.

    test="bs": paired bootstrap as sacrebleu's _paired_bs_test (Moses): resample items, d* = |BLEU_sys* -
    BLEU_base*|, p = (#{d* - mean(d*) > |d_obs|} + 1) / (n + 1). test="ar": approximate randomisation as
    _paired_ar_test: swap items with probability 0.5, p = (#{|BLEU_a* - BLEU_b*| > |d_obs|} + 1) / (n + 1).
    `seed` plays SACREBLEU_SEED; sacrebleu runs unseeded for 0, so 0 is refused.
    statistic = BLEU(system) - BLEU(base); for "bs", detail also has sacrebleu's system mean and CI half-width.
    """
    base = _item_stats(stats_base, "stats_base")
    system = _item_stats(stats_system, "stats_system")
    if base.shape != system.shape:
        raise ValueError(f"stats_base and stats_system must cover the same items: {base.shape} vs {system.shape}")
    if test not in ("bs", "ar"):
        raise ValueError(f"test must be 'bs' (paired bootstrap) or 'ar' (approximate randomization), got {test!r}")
    if n < 1:
        raise ValueError(f"n (resamples or trials) must be >= 1, got {n}")
    if seed == 0:
        raise ValueError("seed 0 makes sacrebleu run unseeded (SACREBLEU_SEED=0); use a non-zero seed")
    n_items = base.shape[0]
    bleu_base = float(bleu_from_stats(base.sum(axis=0)))
    bleu_system = float(bleu_from_stats(system.sum(axis=0)))
    observed = abs(bleu_base - bleu_system)
    rng = np.random.default_rng(seed)
    detail: dict[str, float] = {"bleu_base": bleu_base, "bleu_system": bleu_system, "seed": seed}

    if test == "bs":
        # rng.choice(items, (n, items)) draws exactly rng.integers(0, items, ...), which can come in blocks.
        table = np.concatenate([base, system], axis=1)
        resampled = np.empty((n, 2))
        rows = max(1, _arrays.CHUNK_ELEMENTS // n_items)
        for start in range(0, n, rows):
            counts = count_matrix(rng.integers(0, n_items, size=(min(rows, n - start), n_items)), n_items)
            sums = (counts @ table).reshape(-1, 2, WIDTH).astype(np.float32)  # sacrebleu sums in float32
            resampled[start:start + len(sums)] = _bleu(sums.astype(np.float64), _RESAMPLE_PRECISION)
        sample = np.abs(resampled[:, 1] - resampled[:, 0])
        extreme = int(np.sum(sample - sample.mean() > observed))
        ordered = np.sort(resampled[:, 1])
        lower = n // 40  # sacrebleu.significance.estimate_ci
        low, high = np.percentile(resampled[:, 1] - resampled[:, 0], [2.5, 97.5])
        detail |= {"resamples": n, "system_mean": float(ordered.mean()),
                   "system_ci": float(0.5 * (ordered[n - lower - 1] - ordered[lower])),
                   "ci_low": float(low), "ci_high": float(high)}
        name = "paired bootstrap (sacrebleu)"
    else:
        extreme = sum(int(np.sum(np.abs(bleu_from_stats(sa) - bleu_from_stats(sb)) > observed))
                      for sa, sb in swapped_sums(base, system, n, rng))
        detail["trials"] = n
        name = "approximate randomization (sacrebleu)"
    return TestResult(test=name, statistic=bleu_system - bleu_base, p_value=(extreme + 1) / (n + 1), n=n_items,
                      detail=detail)
