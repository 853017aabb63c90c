"""bench.stats against hand-computed values, explicit slow loops with the same RNG draws, scipy, sacrebleu's
PairedTest (exact p-values) and Demšar's (2006) table of Nemenyi critical values."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps

from bench.stats import (
    TestResult,
    _arrays,
    bleu_from_stats,
    cliques,
    combine_seeds,
    friedman,
    holm,
    mcnemar_exact,
    mcnemar_seeds,
    nemenyi_critical_difference,
    paired_bootstrap,
    paired_bootstrap_many,
    paired_randomization,
    sacrebleu_paired_bleu,
    wilcoxon,
)

# --- Holm -----------------------------------------------------------------------------------------------------------


def test_holm_matches_the_step_down_formula():
    # sorted: 0.005 (x4) = 0.02, 0.01 (x3) = 0.03, 0.03 (x2) = 0.06, 0.04 (x1) = 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # monotone: 0.2 x 2 = 0.4 > 0.3 x 1, so the larger p is raised to 0.4
    assert holm([0.3, 0.2]) == pytest.approx([0.4, 0.4])
    # capped at 1
    assert holm([0.6, 0.5, 0.001]) == pytest.approx([1.0, 1.0, 0.003])
    assert holm([0.01, 0.01]) == pytest.approx([0.02, 0.02])
    assert holm([]) == []
    with pytest.raises(ValueError):
        holm([0.5, float("nan")])


# --- paired bootstrap -----------------------------------------------------------------------------------------------


def slow_bootstrap(a: np.ndarray, b: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """The documented RNG protocol, one resample at a time: item draws from one stream, seed draws for A then B
    from another."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    seeds_rng = np.random.default_rng([seed, 1])
    seeds_a = seeds_rng.integers(0, len(a), size=(n_resamples, len(a)))
    seeds_b = seeds_rng.integers(0, len(b), size=(n_resamples, len(b)))
    items = np.random.default_rng([seed, 0]).integers(0, a.shape[1], size=(n_resamples, a.shape[1]))
    return np.array([np.mean([a[s, idx].mean() for s in sa]) - np.mean([b[s, idx].mean() for s in sb])
                     for idx, sa, sb in zip(items, seeds_a, seeds_b, strict=True)])


def centred_p(diffs: np.ndarray, observed: float) -> float:
    return (np.sum(np.abs(diffs - diffs.mean()) >= abs(observed)) + 1) / (len(diffs) + 1)


def test_paired_bootstrap_one_seed_equals_a_slow_loop():
    rng = np.random.default_rng(1)
    a = rng.random(60)
    b = a - 0.03 + rng.normal(0, 0.2, 60)
    result = paired_bootstrap(a, b, n_resamples=400, seed=7)
    diffs = slow_bootstrap(a, b, 400, 7)
    assert result.statistic == pytest.approx(a.mean() - b.mean())
    assert result.p_value == pytest.approx(centred_p(diffs, a.mean() - b.mean()))
    assert [result.detail["ci_low"], result.detail["ci_high"]] == pytest.approx(np.percentile(diffs, [2.5, 97.5]))
    assert result.detail["ci_low"] < result.statistic < result.detail["ci_high"]
    assert 0.01 < result.p_value < 1  # a small, noisy difference: neither extreme
    assert (result.n, result.detail["resamples"], result.detail["seeds_a"]) == (60, 400, 1)


def test_paired_bootstrap_seeds_equal_a_slow_loop_across_blocks(monkeypatch):
    monkeypatch.setattr(_arrays, "CHUNK_ELEMENTS", 7 * 40)  # 7 resamples per block: exercises the blocks
    rng = np.random.default_rng(2)
    a = rng.random((3, 40))
    b = rng.random((2, 40)) + 0.1
    result = paired_bootstrap(a, b, n_resamples=150, seed=3)
    diffs = slow_bootstrap(a, b, 150, 3)
    observed = a.mean() - b.mean()
    assert result.statistic == pytest.approx(observed)
    assert result.p_value == pytest.approx(centred_p(diffs, observed))
    assert [result.detail["ci_low"], result.detail["ci_high"]] == pytest.approx(np.percentile(diffs, [2.5, 97.5]))
    assert (result.detail["seeds_a"], result.detail["seeds_b"]) == (3, 2)


def test_paired_bootstrap_with_a_corpus_score_equals_a_slow_loop():
    # sufficient statistics [correct, attempted]; the corpus score is their ratio, not a mean of per-item ratios
    rng = np.random.default_rng(4)
    attempted = rng.integers(1, 10, size=(2, 50)).astype(float)
    correct = np.floor(attempted * rng.random((2, 50)))
    values = np.stack([correct, attempted], axis=-1)
    a, b = values[0], values[1]

    def ratio(s: np.ndarray) -> np.ndarray:
        return s[..., 0] / s[..., 1]

    result = paired_bootstrap(a, b, score=ratio, n_resamples=200, seed=5)
    items = np.random.default_rng([5, 0]).integers(0, 50, size=(200, 50))
    diffs = np.array([ratio(a[idx].sum(0)) - ratio(b[idx].sum(0)) for idx in items])
    observed = float(ratio(a.sum(0)) - ratio(b.sum(0)))
    assert result.statistic == pytest.approx(observed)
    assert result.p_value == pytest.approx(centred_p(diffs, observed))
    assert result.detail["ci_low"] == pytest.approx(np.percentile(diffs, 2.5))


def test_paired_bootstrap_many_equals_single_calls(monkeypatch):
    monkeypatch.setattr(_arrays, "CHUNK_ELEMENTS", 11 * 30)
    rng = np.random.default_rng(8)
    best = rng.random((3, 30))
    others = [rng.random((3, 30)), rng.random((2, 30)) - 0.2, rng.random(30)]
    many = paired_bootstrap_many(best, others, n_resamples=120, seed=9)
    single = [paired_bootstrap(best, other, n_resamples=120, seed=9) for other in others]
    # Same draws, same p-values; the BLAS may order one product's sums differently for a wider table, so the
    # CI bounds agree to the last bits, not bit for bit.
    assert [(r.test, r.statistic, r.p_value, r.n) for r in many] == [(r.test, r.statistic, r.p_value, r.n)
                                                                    for r in single]
    for got, want in zip(many, single, strict=True):
        assert got.detail == pytest.approx(want.detail, rel=1e-12, abs=1e-12)
    assert len({r.p_value for r in many}) > 1


def test_paired_bootstrap_clear_and_null_cases():
    rng = np.random.default_rng(6)
    better = (rng.random((3, 500)) < 0.9).astype(float)
    worse = (rng.random((3, 500)) < 0.6).astype(float)
    clear = paired_bootstrap(better, worse)
    assert clear.p_value < 0.01
    assert clear.detail["ci_low"] > 0.2
    assert paired_bootstrap(better[0], better[0]).p_value == 1.0
    assert paired_bootstrap(better, better).p_value == 1.0  # d_obs = 0: every resample is as extreme
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap(better, worse[:, :-1])


# --- approximate randomisation --------------------------------------------------------------------------------------


def test_paired_randomization_equals_a_slow_loop_across_blocks(monkeypatch):
    rng = np.random.default_rng(8)
    a = rng.random(45)
    b = a - 0.08 + rng.normal(0, 0.2, 45)
    swaps = np.random.default_rng(9).integers(2, size=(500, 45), dtype=bool)
    null = np.array([abs(np.where(k, a, b).mean() - np.where(k, b, a).mean()) for k in swaps])
    observed = a.mean() - b.mean()
    expected = (np.sum(null >= abs(observed) - 1e-12) + 1) / 501
    assert 0.001 < expected < 0.9
    assert paired_randomization(a, b, n_trials=500, seed=9).p_value == pytest.approx(expected)
    monkeypatch.setattr(_arrays, "CHUNK_ELEMENTS", 64 * 45)  # blocks of 64 trials give the same draws
    result = paired_randomization(a, b, n_trials=500, seed=9)
    assert result.p_value == pytest.approx(expected)
    assert result.statistic == pytest.approx(observed)


def test_paired_randomization_clear_and_null_cases():
    rng = np.random.default_rng(10)
    better = (rng.random(400) < 0.9).astype(float)
    worse = (rng.random(400) < 0.6).astype(float)
    assert paired_randomization(better, worse, n_trials=2000).p_value < 0.01
    assert paired_randomization(better, better, n_trials=2000).p_value == 1.0
    with pytest.raises(ValueError, match="one run"):
        paired_randomization(np.stack([better, better]), np.stack([worse, worse]))


# --- BLEU, exactly as sacrebleu ---------------------------------------------------------------------------------------


def synthetic_corpus(seed: int, n: int = 200, rates: tuple[float, float] = (0.3, 0.27)):
    """References are random word sequences; each system replaces / drops words at its own rate."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(60)]
    refs: list[str] = []
    hyps: list[list[str]] = [[] for _ in rates]
    for _ in range(n):
        words = [str(w) for w in rng.choice(vocab, size=int(rng.integers(2, 18)))]
        refs.append(" ".join(words))
        for out, rate in zip(hyps, rates, strict=True):
            kept = [w if rng.random() > rate else str(rng.choice(vocab)) for w in words if rng.random() > rate / 3]
            out.append(" ".join(kept))
    return refs, hyps[0], hyps[1]


def test_bleu_from_stats_matches_compute_bleu():
    from sacrebleu.metrics import BLEU

    rng = np.random.default_rng(11)
    rows = [rng.integers(0, 40, size=10) for _ in range(300)]
    rows += [np.array([3, 5, 2, 0, 0, 0, 3, 2, 1, 0]), np.array([0, 4, 0, 0, 0, 0, 0, 0, 0, 0]),
             np.array([9, 7, 0, 0, 0, 0, 9, 8, 7, 6]), np.array([9, 12, 5, 0, 1, 0, 9, 8, 7, 6])]
    for row in rows:
        row[6:] = np.maximum(row[6:], row[2:6])  # total >= correct
    got = bleu_from_stats(np.array(rows))
    want = [BLEU.compute_bleu(correct=[int(x) for x in r[2:6]], total=[int(x) for x in r[6:]], sys_len=int(r[0]),
                              ref_len=int(r[1]), smooth_method="exp").score for r in rows]
    assert got == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert got[-4:-2].tolist() == [0.0, 0.0] and got[-2] == 0.0  # no total 4-grams / no matches -> 0


@pytest.mark.parametrize("corpus_seed", [0, 1])
@pytest.mark.parametrize(("test", "n"), [("bs", 1000), ("ar", 2000)])
def test_sacrebleu_paired_bleu_equals_paired_test_exactly(monkeypatch, corpus_seed, test, n):
    pytest.importorskip("sacrebleu")
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest, Result

    refs, base, system = synthetic_corpus(corpus_seed)
    for seed in (12345, 7):
        monkeypatch.setenv("SACREBLEU_SEED", str(seed))  # PairedTest reads it in its constructor
        _, scores = PairedTest([("base", base), ("sys", system)], {"BLEU": BLEU()}, [refs], test_type=test,
                               n_samples=n)()
        metric = BLEU()
        stats_base = np.array(metric._extract_corpus_statistics(base, [refs]))
        stats_system = np.array(metric._extract_corpus_statistics(system, [refs]))
        result = sacrebleu_paired_bleu(stats_base, stats_system, test, n, seed=seed)
        want, base_result = scores["BLEU"][1], scores["BLEU"][0]
        assert isinstance(want, Result) and isinstance(base_result, Result)
        assert result.p_value == want.p_value  # exactly
        assert 0.02 < result.p_value < 0.9  # a mid-range p: an off-by-one draw would show
        assert result.statistic == pytest.approx(want.score - base_result.score, rel=1e-12)
        if test == "bs":
            assert result.detail["system_mean"] == pytest.approx(want.mean, rel=1e-12)
            assert result.detail["system_ci"] == pytest.approx(want.ci, rel=1e-9)
        if test == "ar" and seed == 7:  # blocks of 64 trials must replay sacrebleu's single draw
            monkeypatch.setattr(_arrays, "CHUNK_ELEMENTS", 64 * len(refs))
            assert sacrebleu_paired_bleu(stats_base, stats_system, test, n, seed=seed).p_value == want.p_value
            monkeypatch.undo()


@pytest.mark.parametrize(("test", "n"), [("bs", 1000), ("ar", 2000)])
def test_sacrebleu_paired_bleu_ties_count_as_sacrebleu(monkeypatch, test, n):
    """Systems that differ on 4 sentences only: many resamples tie with the observed difference, and sacrebleu
    counts strictly greater ones (identical systems get p = 1 / (n + 1), not 1)."""
    pytest.importorskip("sacrebleu")
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest, Result

    refs, base, other = synthetic_corpus(2, n=60)
    system = other[:4] + base[4:]
    monkeypatch.setenv("SACREBLEU_SEED", "12345")
    metric = BLEU()
    stats_base = np.array(metric._extract_corpus_statistics(base, [refs]))
    for hyps in (system, base):
        _, scores = PairedTest([("base", base), ("sys", hyps)], {"BLEU": BLEU()}, [refs], test_type=test,
                               n_samples=n)()
        want = scores["BLEU"][1]
        assert isinstance(want, Result)
        stats_system = np.array(metric._extract_corpus_statistics(hyps, [refs]))
        assert sacrebleu_paired_bleu(stats_base, stats_system, test, n).p_value == want.p_value
    assert want.p_value == 1 / (n + 1)


def test_sacrebleu_paired_bleu_rejects_bad_input():
    stats = np.ones((5, 10))
    with pytest.raises(ValueError, match="non-zero seed"):
        sacrebleu_paired_bleu(stats, stats, "bs", 100, seed=0)
    with pytest.raises(ValueError, match="shape"):
        sacrebleu_paired_bleu(stats[:, :9], stats[:, :9], "ar", 100)


# --- McNemar ----------------------------------------------------------------------------------------------------------


def mcnemar_arrays(a_only: int, b_only: int, both: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1] * a_only + [0] * b_only + [1] * both + [0] * neither, dtype=bool)
    b = np.array([0] * a_only + [1] * b_only + [1] * both + [0] * neither, dtype=bool)
    return a, b


def test_mcnemar_exact_on_known_counts():
    a, b = mcnemar_arrays(3, 12, 70, 15)
    result = mcnemar_exact(a, b)
    # 2 * P(X <= 3), X ~ Bin(15, 1/2) = 2 * (1 + 15 + 105 + 455) / 2**15
    assert result.p_value == pytest.approx(2 * 576 / 2**15)
    assert result.p_value == pytest.approx(sps.binomtest(3, 15, 0.5).pvalue)
    assert (result.statistic, result.n, result.detail["a_only"], result.detail["b_only"]) == (15, 100, 3, 12)
    assert mcnemar_exact(*mcnemar_arrays(0, 5, 10, 0)).p_value == pytest.approx(2 / 32)
    assert mcnemar_exact(*mcnemar_arrays(0, 0, 10, 3)).p_value == 1.0


def test_mcnemar_seeds_combines_with_fisher():
    a1, b1 = mcnemar_arrays(3, 12, 70, 15)
    a2, b2 = mcnemar_arrays(6, 9, 75, 10)
    p1, p2 = sps.binomtest(3, 15, 0.5).pvalue, sps.binomtest(6, 15, 0.5).pvalue
    result = mcnemar_seeds(np.stack([a1, a2]), np.stack([b1, b2]))
    chi2 = -2 * (math.log(p1) + math.log(p2))
    assert result.p_value == pytest.approx(math.exp(-chi2 / 2) * (1 + chi2 / 2))  # chi-square sf with 4 df
    assert result.statistic == 30
    assert (result.n, result.detail["seeds"], result.detail["a_only"]) == (100, 2, 9)
    assert result.test == "exact McNemar (seeds combined, Fisher)"
    assert mcnemar_seeds(a1[None], b1[None]).p_value == pytest.approx(p1)


def test_combine_seeds_uses_fisher_and_averages_statistics():
    parts = [TestResult("t", 0.2, 0.04, 10, {}), TestResult("t", 0.4, 0.3, 10, {})]
    result = combine_seeds(parts, "t")
    chi2 = -2 * (math.log(0.04) + math.log(0.3))
    assert result.p_value == pytest.approx(math.exp(-chi2 / 2) * (1 + chi2 / 2))
    assert result.statistic == pytest.approx(0.3)
    assert result.detail["p_seed1"] == 0.3
    with pytest.raises(ValueError, match="same items"):
        combine_seeds([parts[0], TestResult("t", 0.1, 0.5, 11, {})], "t")


# --- Wilcoxon / Friedman / Nemenyi ---------------------------------------------------------------------------------


def test_wilcoxon_against_exact_values_and_scipy():
    five = wilcoxon([1.0, 2, 3, 4, 5], [0.0, 0, 0, 0, 0])
    assert (five.statistic, five.p_value, five.n) == (0.0, pytest.approx(2 / 2**5), 5)  # smallest p with 5 pairs
    rng = np.random.default_rng(12)
    a = rng.random(24)
    b = a - 0.05 + rng.normal(0, 0.1, 24)
    want = sps.wilcoxon(a, b)
    got = wilcoxon(a.tolist(), b.tolist())
    assert (got.statistic, got.p_value) == pytest.approx((want.statistic, want.pvalue))
    assert 0 < got.p_value < 1


def test_wilcoxon_all_zero_differences_is_p_one_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = wilcoxon([0.5, 0.7, 0.9], [0.5, 0.7, 0.9])
    assert (result.statistic, result.p_value, result.n) == (0.0, 1.0, 3)


def test_friedman_hand_example_and_scipy():
    scores = np.array([[3, 2, 1], [3, 1, 2], [2, 3, 1], [3, 2, 1]], dtype=float)
    result, ranks = friedman(scores)
    # rank sums 5, 8, 11: 12 / (n k (k+1)) * sum(R^2) - 3 n (k+1) = 0.25 * 210 - 48 = 4.5; sf(4.5, 2 df) = e^-2.25
    assert ranks == pytest.approx([1.25, 2.0, 2.75])
    assert result.statistic == pytest.approx(4.5)
    assert result.p_value == pytest.approx(math.exp(-2.25))
    rng = np.random.default_rng(13)
    tied = np.round(rng.random((24, 5)), 1)
    result, ranks = friedman(tied)
    want = sps.friedmanchisquare(*tied.T)
    assert (result.statistic, result.p_value, result.n) == (pytest.approx(want.statistic),
                                                            pytest.approx(want.pvalue), 24)
    assert ranks == pytest.approx(sps.rankdata(-tied, axis=1).mean(axis=0))
    assert ranks.sum() == pytest.approx(15)  # 1 + 2 + ... + 5 per task, ties averaged
    assert friedman(np.ones((4, 3)))[0].p_value == 1.0


def test_friedman_needs_three_methods_and_two_tasks():
    with pytest.raises(ValueError, match="at least 3 methods"):
        friedman(np.ones((5, 2)))
    with pytest.raises(ValueError, match="2 tasks"):
        friedman(np.ones((1, 4)))


DEMSAR_Q05 = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]  # Demšar 2006, Table 5, k = 2..10


def test_nemenyi_critical_difference_against_demsar_table():
    for k, q in enumerate(DEMSAR_Q05, start=2):
        scale = math.sqrt(k * (k + 1) / (6 * 24))
        assert nemenyi_critical_difference(k, 24) / scale == pytest.approx(q, abs=1e-3)
    # alpha = 0.10 row of the same table, k = 2 and 5
    assert nemenyi_critical_difference(2, 10, alpha=0.10) / math.sqrt(1 / 10) == pytest.approx(1.645, abs=1e-3)
    assert nemenyi_critical_difference(5, 10, alpha=0.10) / math.sqrt(1 / 2) == pytest.approx(2.459, abs=1e-3)


def test_cliques_hand_examples():
    ranks = {"e": 3.3, "a": 1.0, "c": 2.0, "b": 1.5, "d": 3.2}
    assert cliques(ranks, 1.1) == [["a", "b", "c"], ["d", "e"]]
    assert cliques(ranks, 1.0) == [["a", "b"], ["b", "c"], ["d", "e"]]  # c - a = 1.0 is not < CD
    assert cliques({"a": 1.0, "b": 1.8, "c": 2.6, "d": 3.4}, 1.0) == [["a", "b"], ["b", "c"], ["c", "d"]]
    assert cliques(ranks, 5.0) == [["a", "b", "c", "d", "e"]]
    assert cliques(ranks, 0.05) == []
