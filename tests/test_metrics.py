"""bench.metrics against golden values of the official scripts on a toy set, plus the per-item statistics,
the missing-Java path, the file readers and the offline HF `evaluate` modules.

Golden values are compared at the precision they are printed with. Java-dependent tests (METEOR 1.5, PTB
tokenisation) are skipped when `java` or pycocoevalcap is missing; the METEOR jar starts once per scoring call
(about 5 s), so the Java reports are module-scoped fixtures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bench.metrics
from bench.errors import BenchError
from bench.metrics import (
    JAVA_MISSING,
    SUITES,
    MeteorProcess,
    MetricReport,
    corpus_bleu_from_stats,
    corpus_nist_from_stats,
    corpus_ter_from_stats,
    evaluate_module_path,
    java_available,
    read_e2e_references,
    read_lines,
    score,
)
from bench.metrics.bleu import bleu_statistics, reference_streams
from bench.metrics.java import coco_dir
from bench.metrics.meteor import shared_meteor, stop_shared_meteor
from bench.metrics.nist import nist_statistics
from bench.metrics.normalise import dart_text, webnlg_hypothesis, webnlg_reference

# The official scripts' values on an E2E-style toy set with 1 to 4 references per item.
TOY = [
    ("The Eagle is a family-friendly coffee shop near Burger King in the city centre.",
     ["The Eagle coffee shop is family-friendly and is located in the city centre near Burger King.",
      "Near Burger King in the city centre is The Eagle, a family friendly coffee shop.",
      "The Eagle is a child friendly coffee shop in the centre of the city, close to Burger King."]),
    ("Zizzi is a pub that serves cheap English food. It is not kid friendly.",
     ["Zizzi is a cheap pub serving English food. It is not family-friendly.",
      "The Zizzi pub serves English food at low prices but is not kid friendly."]),
    ("The Golden Curry is a 5 star Indian restaurant by the riverside, near Café Rouge.",
     ["The Golden Curry is an Indian restaurant near Café Rouge in the riverside area with a customer rating of 5 "
      "out of 5.",
      "Near Café Rouge by the riverside is The Golden Curry, a highly rated Indian restaurant.",
      "The Golden Curry serves Indian food. It is located by the riverside near Café Rouge and has a 5 star rating.",
      "With a rating of 5 out of 5, The Golden Curry is an Indian restaurant near Café Rouge in riverside."]),
    ("Aromi is a coffee shop with a low customer rating.",
     ["Aromi is a coffee shop with a low customer rating."]),
    ("Near The Bakers, there is a Chinese place called Browns Cambridge. It has a price range of £20-25.",
     ["Browns Cambridge is a Chinese restaurant near The Bakers with a price range of £20-25.",
      "There is a Chinese restaurant called Browns Cambridge near The Bakers. It costs £20-25."]),
    ("Fitzbillies serves Italian food in the moderate price range and is located in the city centre.",
     ["Fitzbillies is an Italian place in the city centre with moderate prices.",
      "In the city centre, Fitzbillies offers Italian food at moderate prices.",
      "Fitzbillies, in the city centre, serves Italian food with a moderate price range."]),
    ("The Mill is a pub.",
     ["The Mill is a pub near the river that serves fast food at high prices.",
      "There is a pub called The Mill located by the riverside. It offers fast food for more than £30."]),
    ("Blue Spice is an average rated restaurant in Riverside that is not family friendly and costs more than £30.",
     ["Blue Spice is a restaurant in Riverside with an average customer rating. It is not family-friendly and has a "
      "price range of more than £30.",
      "Blue Spice, located in riverside, is a restaurant with a price range of more than £30 and an average rating. "
      "It is not family-friendly."]),
]
HYPS = [hyp for hyp, _ in TOY]
REFS = [refs for _, refs in TOY]
MILL = [hyp if i != 6 else "The Mill" for i, hyp in enumerate(HYPS)]  # the short-hypothesis variant
GROUPS = ["seen", "unseen", "seen", "seen", "unseen", "seen", "unseen", "seen"]

java_missing = pytest.mark.skipif(not (java_available() and coco_dir()),
                                  reason="needs `java` and pycocoevalcap (METEOR 1.5 / PTB tokenizer jars)")


def needs_java(test: Any) -> Any:
    """The Java metrics' golden values: in CI's slow tier (starting the METEOR jar takes about 5 s); the BLEU /
    NIST golden values without Java stay in `make test`."""
    return pytest.mark.slow(java_missing(test))


def streams(references: list[list[str]], count: int, pad: str | None) -> Any:
    """sacrebleu's reference streams (typed Any: sacrebleu accepts None but annotates str)."""
    return reference_streams(references, count, pad)


def close_to(value: float, printed: float, decimals: int) -> bool:
    """value agrees with a golden number printed with `decimals` decimals."""
    return abs(value - printed) <= 0.5 * 10 ** -decimals + 1e-12


def child_meteor_processes() -> list[int]:
    """Running children of this process whose command line names the METEOR jar (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"meteor-1.5.jar" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.fixture
def no_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench.metrics, "java_available", lambda: False)


@pytest.fixture(scope="module")
def e2e_report() -> MetricReport:
    return score("e2e", HYPS, REFS)


@pytest.fixture(scope="module")
def webnlg_report() -> MetricReport:
    # metrics.md's WebNLG golden values ran the toy items, hypotheses included, through the reference
    # normalisation; score() then applies the official hypothesis normalisation, a no-op on such text up to case.
    return score("webnlg2017", [webnlg_reference(h) for h in HYPS], REFS, GROUPS)


# ---------------------------------------------------------------- E2E


@needs_java
def test_e2e_golden_values(e2e_report: MetricReport) -> None:
    scores = e2e_report.scores
    assert list(scores) == ["BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"]
    assert close_to(scores["BLEU"], 47.6440, 4)  # 0.476440 on E2E's 0-1 scale
    assert close_to(scores["NIST"], 5.8640, 4)
    assert close_to(scores["METEOR"], 42.0250, 4)  # 0.420250
    assert close_to(scores["ROUGE_L"], 61.1911, 4)  # 0.611911
    assert close_to(scores["CIDEr"], 3.596839, 6)
    assert e2e_report.unavailable == {}
    assert "e2e-metrics" in e2e_report.convention


@needs_java
def test_e2e_per_item_means_and_one_shared_jar(e2e_report: MetricReport) -> None:
    per_item = e2e_report.per_item
    assert np.mean(e2e_report.item_scores("ROUGE_L")) == pytest.approx(e2e_report.scores["ROUGE_L"], abs=1e-9)
    assert np.mean(e2e_report.item_scores("CIDEr")) == pytest.approx(e2e_report.scores["CIDEr"], abs=1e-9)
    assert len(per_item["METEOR"]) == len(HYPS)
    jars = child_meteor_processes()
    assert len(jars) == 1  # kept for the next scoring call
    again = score("e2e", HYPS[:3], REFS[:3])
    assert child_meteor_processes() == jars  # ... which reused it
    assert again.statistics("METEOR") == per_item["METEOR"][:3]  # the jar stays for the WebNLG tests below


@needs_java
@pytest.mark.slow  # in CI's slow tier: keeps `make test` within 3 minutes on 2 cores
def test_a_failed_or_interrupted_meteor_call_leaves_no_jar_behind_and_the_next_starts_afresh() -> None:
    with shared_meteor() as meteor:
        first = meteor.statistics("a cat sat", ["a cat sat on the mat"])
    with pytest.raises(KeyboardInterrupt), shared_meteor() as meteor:
        meteor._process.stdin.write(b"SCORE ||| a cat ||| a cat\n")  # type: ignore[union-attr]
        raise KeyboardInterrupt  # before its answer was read: the jar must not serve the next call
    assert child_meteor_processes() == []
    with shared_meteor() as meteor:
        meteor._process.kill()
        meteor._process.wait()
        with pytest.raises(BenchError, match="stopped without an answer"):
            meteor.statistics("a cat sat", ["a cat sat on the mat"])
    assert child_meteor_processes() == []
    with shared_meteor() as meteor:
        assert meteor.statistics("a cat sat", ["a cat sat on the mat"]) == first
    stop_shared_meteor()
    assert child_meteor_processes() == []


@needs_java
@pytest.mark.slow
def test_the_shared_jar_stops_when_the_bench_process_exits() -> None:
    code = ("from bench.metrics.meteor import shared_meteor\n"
            "with shared_meteor() as m:\n    m.statistics('a', ['a'])\n    print(m._process.pid)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    jar = Path(f"/proc/{int(done.stdout.split()[-1])}")
    deadline = time.monotonic() + 10
    while jar.exists() and b"meteor" in (jar / "cmdline").read_bytes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (jar.exists() and b"meteor" in (jar / "cmdline").read_bytes())


def test_e2e_bleu_and_nist_golden_values_without_java(no_java: None) -> None:
    report = score("e2e", HYPS, REFS)
    assert close_to(report.scores["BLEU"], 47.6440, 4)
    assert close_to(report.scores["NIST"], 5.8640, 4)
    assert close_to(score("e2e", HYPS, REFS, nist="perl").scores["NIST"], 5.6456, 4)
    cased = bleu_statistics(HYPS, streams(REFS, 4, None), lowercase=False, tokenize="13a")
    assert close_to(corpus_bleu_from_stats(cased), 45.8065, 4)  # 0.458065


def test_short_hypothesis_variant(no_java: None) -> None:
    """'The Mill' (2 tokens): pymteval counts negative n-gram totals, Perl and sacrebleu do not."""
    report = score("e2e", MILL, REFS)
    assert close_to(report.scores["BLEU"], 45.09, 2)  # Perl / sacrebleu 0.4509
    assert close_to(corpus_bleu_from_stats(report.statistics("BLEU"), "pymteval"), 45.20, 2)  # pymteval 0.4520
    assert close_to(report.scores["NIST"], 5.6101, 4)  # pymteval
    assert close_to(corpus_nist_from_stats(report.statistics("NIST"), "perl"), 5.3557, 4)
    # With 4+ tokens everywhere, the pymteval BLEU is sacrebleu's.
    full = score("e2e", HYPS, REFS).statistics("BLEU")
    assert corpus_bleu_from_stats(full, "pymteval") == pytest.approx(corpus_bleu_from_stats(full), abs=1e-9)


def test_nist_agrees_across_variants_with_equal_reference_counts() -> None:
    one = nist_statistics(HYPS, [refs[:1] for refs in REFS])
    two = nist_statistics(HYPS, [(refs * 2)[:2] for refs in REFS])  # items with one reference repeat it
    for variant in ("pymteval", "perl"):
        assert close_to(corpus_nist_from_stats(one, variant), 4.7142, 4)
        assert close_to(corpus_nist_from_stats(two, variant), 5.5015, 4)


# ---------------------------------------------------------------- per-item statistics


def test_bleu_rebuilt_from_per_item_statistics(no_java: None) -> None:
    from sacrebleu.metrics import BLEU

    report = score("e2e", HYPS, REFS)
    stats = report.statistics("BLEU")
    assert all(len(item) == 10 for item in stats)
    ref_streams = streams(REFS, 4, None)
    direct = BLEU(lowercase=True, tokenize="13a").corpus_score(HYPS, ref_streams).score
    assert corpus_bleu_from_stats(stats) == report.scores["BLEU"] == direct
    picked = [0, 2, 5, 6]  # any subset (or resample) is the corpus BLEU of those items
    picked_refs = streams([REFS[i] for i in picked], 4, None)
    subset = BLEU(lowercase=True, tokenize="13a").corpus_score([HYPS[i] for i in picked], picked_refs).score
    assert corpus_bleu_from_stats([stats[i] for i in picked]) == pytest.approx(subset, abs=1e-12)


def test_nist_rebuilt_from_per_item_statistics(no_java: None) -> None:
    stats = score("e2e", HYPS, REFS).statistics("NIST")
    assert all(len(item) == 9 for item in stats)
    assert corpus_nist_from_stats(stats) == score("e2e", HYPS, REFS).scores["NIST"]
    # Items resampled with replacement: statistics add up, the information weights stay those of the full set.
    resample = [stats[i] for i in (0, 0, 3, 7, 7, 7, 2, 5)]
    assert corpus_nist_from_stats(resample) > 0
    assert corpus_nist_from_stats(stats[:1] * 8) == pytest.approx(corpus_nist_from_stats(stats[:1]), rel=1e-12)


def test_ter_rebuilt_from_per_item_statistics(no_java: None) -> None:
    from sacrebleu.metrics import TER

    hyps = [webnlg_reference(h) for h in HYPS]
    refs = [[webnlg_reference(r) for r in item[:3]] for item in REFS]
    report = score("webnlg2017", hyps, REFS, GROUPS)
    seen = [i for i, g in enumerate(GROUPS) if g == "seen"]
    direct = TER().corpus_score([hyps[i] for i in seen], streams([refs[i] for i in seen], 3, None))
    assert report.scores["TER_seen"] == pytest.approx(direct.score, abs=1e-12)
    assert corpus_ter_from_stats([report.statistics("TER")[i] for i in seen]) == report.scores["TER_seen"]


# ---------------------------------------------------------------- WebNLG 2017 and DART


@needs_java
def test_webnlg2017_golden_values(webnlg_report: MetricReport) -> None:
    scores = webnlg_report.scores
    assert close_to(scores["BLEU"], 54.80, 2)  # multi-bleu.perl -lc, first 3 references
    assert close_to(scores["METEOR"], 40.6307, 4)  # 0.406307
    assert close_to(scores["TER"], 37.5839, 4)  # 0.375839
    assert {f"{m}{s}" for m in ("BLEU", "METEOR", "TER") for s in ("", "_seen", "_unseen")} == set(scores)


@needs_java
@pytest.mark.slow  # in CI's slow tier: keeps `make test` within 3 minutes on 2 cores
def test_meteor_statistics_subsets_padding_and_shutdown(webnlg_report: MetricReport) -> None:
    """One jar: a subset's METEOR is EVAL of its items' statistics; DART's 8-line blocks score as 3 references."""
    seen = [i for i, g in enumerate(GROUPS) if g == "seen"]
    hyps = [webnlg_hypothesis(webnlg_reference(HYPS[i])) for i in seen]
    refs = [[webnlg_reference(r) for r in REFS[i][:3]] for i in seen]
    with MeteorProcess() as meteor:
        fresh = [meteor.statistics(h, r + [""] * (3 - len(r))) for h, r in zip(hyps, refs, strict=True)]
        assert 100 * meteor.aggregate(fresh)[0] == pytest.approx(webnlg_report.scores["METEOR_seen"], abs=1e-9)
        assert 100 * meteor.aggregate(webnlg_report.statistics("METEOR"))[0] == pytest.approx(
            webnlg_report.scores["METEOR"], abs=1e-9)
        eight = [meteor.statistics(h, r + [""] * (8 - len(r))) for h, r in zip(hyps, refs, strict=True)]
        bare = [meteor.statistics(h, r) for h, r in zip(hyps, refs, strict=True)]
        assert meteor.aggregate(eight)[0] == meteor.aggregate(bare)[0] == meteor.aggregate(fresh)[0]
    assert meteor._process.poll() is not None  # a MeteorProcess of its own stops at the end of its block
    assert meteor._process.pid not in child_meteor_processes()


def test_webnlg_normalisations() -> None:
    assert webnlg_reference("It costs £20-25 at Café Rouge.") == "it costs PS 20 - 25 at cafe rouge ."
    assert webnlg_hypothesis("It costs £20-25 at Café Rouge.") == "it costs ps20 - 25 at cafe rouge ."
    assert dart_text("Piñero's  rating: 5.5\n") == "piñero ' s rating : 5 . 5"


def test_webnlg2017_raw_hypotheses_and_groups(no_java: None) -> None:
    from sacrebleu.metrics import BLEU

    report = score("webnlg2017", HYPS, REFS, ["Astronaut", "Artist"] * 4)  # category names map to seen / unseen
    hyps = [webnlg_hypothesis(h) for h in HYPS]
    refs = [[webnlg_reference(r) for r in item[:3]] for item in REFS]
    direct = BLEU(tokenize="none", lowercase=True, force=True).corpus_score(hyps, streams(refs, 3, ""))
    assert report.scores["BLEU"] == pytest.approx(direct.score, abs=1e-12)
    assert report.scores["BLEU"] != pytest.approx(54.80, abs=0.5)  # '£' -> 'ps20' in hypotheses, 'PS 20' in refs
    seen_refs = streams(refs[::2], 3, "")
    seen = BLEU(tokenize="none", lowercase=True, force=True).corpus_score(hyps[::2], seen_refs)
    assert report.scores["BLEU_seen"] == pytest.approx(seen.score, abs=1e-12)
    assert set(report.unavailable) == {"METEOR", "METEOR_seen", "METEOR_unseen"}
    with pytest.raises(BenchError, match="unknown WebNLG group"):
        score("webnlg2017", HYPS, REFS, ["seen"] * 7 + ["sen"])


def test_dart(no_java: None) -> None:
    from sacrebleu.metrics import BLEU, TER

    report = score("dart", HYPS, REFS, learned={"BERTScore": "/models/roberta", "BLEURT": "/models/bleurt"})
    hyps = [dart_text(h) for h in HYPS]
    refs = [[dart_text(r) for r in item[:3]] for item in REFS]
    bleu = BLEU(tokenize="none", force=True).corpus_score(hyps, streams(refs, 3, ""))
    ter = TER().corpus_score(hyps, streams(refs, 3, None))
    assert report.scores == {"BLEU": pytest.approx(bleu.score, abs=1e-12), "TER": pytest.approx(ter.score, abs=1e-12)}
    learned = "needs a local model; not computed offline (never faked)"
    # learned metrics appear only when asked for (no MoverScore here)
    assert report.unavailable == {"METEOR": JAVA_MISSING, "BERTScore": learned, "BLEURT": learned}


def test_learned_metrics_errors(no_java: None) -> None:
    with pytest.raises(BenchError, match="unknown learned metric 'BertScore'.*Allowed: BERTScore"):
        score("dart", HYPS, REFS, learned={"BertScore": "/m"})
    with pytest.raises(BenchError, match="dart suite only"):
        score("e2e", HYPS, REFS, learned={"BERTScore": "/m"})


# ---------------------------------------------------------------- XSUM


def test_xsum_deterministic_and_restores_numpy_state() -> None:
    np.random.seed(7)
    before = np.random.get_state()[1].copy()  # type: ignore[index]
    first = score("xsum", HYPS, [r[:1] for r in REFS])
    assert np.array_equal(np.random.get_state()[1], before)  # type: ignore[index]
    second = score("xsum", HYPS, [r[:1] for r in REFS])
    assert first.scores == second.scores
    assert list(first.scores) == ["ROUGE-1", "ROUGE-2", "ROUGE-L"]


def test_xsum_per_item_is_rouge_score() -> None:
    from rouge_score import rouge_scorer

    report = score("xsum", HYPS, [r[:1] for r in REFS])
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    for i, (hyp, refs) in enumerate(TOY):
        direct = scorer.score(refs[0], hyp)
        assert report.item_scores("ROUGE-1")[i] == pytest.approx(100 * direct["rouge1"].fmeasure, abs=1e-12)
        assert report.item_scores("ROUGE-2")[i] == pytest.approx(100 * direct["rouge2"].fmeasure, abs=1e-12)
        assert report.item_scores("ROUGE-L")[i] == pytest.approx(100 * direct["rougeL"].fmeasure, abs=1e-12)
    for name in ("ROUGE-1", "ROUGE-2", "ROUGE-L"):  # bootstrap mid: near the mean, not equal to it
        assert report.scores[name] == pytest.approx(np.mean(report.item_scores(name)), abs=3)


# ---------------------------------------------------------------- Java missing, input errors


def test_missing_java_reports_unavailable(no_java: None) -> None:
    report = score("e2e", HYPS, REFS)
    assert set(report.scores) == {"BLEU", "NIST"}
    assert report.unavailable == dict.fromkeys(("METEOR", "ROUGE_L", "CIDEr"), JAVA_MISSING)
    assert "default-jre-headless" in JAVA_MISSING


def test_java_available_is_cached() -> None:
    assert isinstance(java_available(), bool)
    assert java_available.cache_info().currsize == 1


def test_input_errors() -> None:
    with pytest.raises(BenchError, match="Did you mean 'e2e'"):
        score("e22", HYPS, REFS)
    with pytest.raises(BenchError, match="8 hypotheses for 7"):
        score("xsum", HYPS, REFS[:7])
    with pytest.raises(BenchError, match="no non-empty reference"):
        score("xsum", HYPS, [*REFS[:7], ["  "]])
    with pytest.raises(BenchError, match="not a string"):
        score("xsum", ["a"], ["a"])  # type: ignore[list-item]
    assert set(SUITES) == {"e2e", "webnlg2017", "dart", "xsum"}


# ---------------------------------------------------------------- files


def test_read_e2e_references_and_lines(tmp_path: Path) -> None:
    grouped = tmp_path / "refs.txt"
    grouped.write_text("\ufeffa one\n a two \n\nb one\n\n\nc one\nc two\n\n", encoding="utf-8")
    assert read_e2e_references(grouped) == [["a one", "a two"], ["b one"], ["c one", "c two"]]
    single = tmp_path / "single.txt"
    single.write_text("x\ny\nz\n", encoding="utf-8")
    assert read_e2e_references(single) == [["x"], ["y"], ["z"]]
    predictions = tmp_path / "out.txt"
    predictions.write_text("first \r\n\nthird\u2028still third\n", encoding="utf-8")
    assert read_lines(predictions) == ["first", "", "third\u2028still third"]
    with pytest.raises(BenchError, match="file not found"):
        read_lines(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    with pytest.raises(BenchError, match="no references"):
        read_e2e_references(tmp_path / "empty.txt")


# ---------------------------------------------------------------- HF evaluate modules


@pytest.fixture(scope="module")
def modules_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hf_modules")


def test_evaluate_modules_load_offline(modules_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       no_java: None) -> None:
    evaluate = pytest.importorskip("evaluate")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)
    monkeypatch.setattr(evaluate.config, "HF_MODULES_CACHE", modules_cache)
    modules = {suite: evaluate.load(str(evaluate_module_path(suite)), cache_dir=str(tmp_path)) for suite in SUITES}
    refs = [r[:1] for r in REFS]
    for suite in ("xsum", "e2e"):
        expected = score(suite, HYPS, refs)
        got = modules[suite].compute(predictions=HYPS, references=refs)
        assert {k: got[k] for k in expected.scores} == expected.scores
        assert got["unavailable"] == expected.unavailable
    got = modules["webnlg2017"].compute(predictions=HYPS, references=REFS, groups=GROUPS)
    assert got["BLEU_unseen"] == score("webnlg2017", HYPS, REFS, GROUPS).scores["BLEU_unseen"]
    with pytest.raises(BenchError):
        evaluate_module_path("rouge")


# ---------------------------------------------------------------- metric variants (paper profile)


def test_e2e_bleu_variant_pymteval(no_java: None) -> None:
    """measure_scores.py -p (Li & Liang): 0.4520 on the 'The Mill' set, where Perl / sacrebleu give 0.4509."""
    assert close_to(score("e2e", MILL, REFS).scores["BLEU"], 45.09, 2)
    report = score("e2e", MILL, REFS, bleu="pymteval")
    assert close_to(report.scores["BLEU"], 45.20, 2)
    assert "pymteval lowercased" in report.convention
    assert report.statistics("BLEU") == score("e2e", MILL, REFS).statistics("BLEU")  # same sufficient statistics


def test_unknown_variant_names_the_option() -> None:
    with pytest.raises(BenchError, match="unknown bleu variant 'pymteva'.*Allowed: perl, pymteval") as info:
        score("e2e", HYPS, REFS, bleu="pymteva")  # type: ignore[arg-type]
    assert info.value.field == "metric_options.bleu"
    with pytest.raises(BenchError, match="rouge_batch_size"):
        score("xsum", HYPS, [r[:1] for r in REFS], rouge="batch_mean", rouge_batch_size=0)


def test_xsum_batch_mean_is_the_mean_of_per_batch_mids() -> None:
    refs = [r[:1] for r in REFS]
    clean = score("xsum", HYPS, refs)
    # One batch holding every item: the rounded global mid (same seed, same draws).
    whole = score("xsum", HYPS, refs, rouge="batch_mean", rouge_batch_size=len(HYPS), rouge_seed=12345)
    for name in ("ROUGE-1", "ROUGE-2", "ROUGE-L"):
        assert whole.scores[name] == pytest.approx(round(clean.scores[name], 4), abs=1e-12)
    # Batches of one item: each bootstrap mid is that item's F1, so the number is the mean of the rounded F1s.
    single = score("xsum", HYPS, refs, rouge="batch_mean", rouge_batch_size=1)
    for name in ("ROUGE-1", "ROUGE-2", "ROUGE-L"):
        expected = np.mean([round(v, 4) for v in clean.item_scores(name)])
        assert single.scores[name] == pytest.approx(expected, abs=1e-9)
    # Official setting: batches of 8 (the last one shorter), seed 101; deterministic, numpy state untouched.
    np.random.seed(3)
    before = np.random.get_state()[1].copy()  # type: ignore[index]
    official = score("xsum", HYPS * 2, refs * 2, rouge="batch_mean", rouge_batch_size=8, rouge_seed=101)
    assert np.array_equal(np.random.get_state()[1], before)  # type: ignore[index]
    assert official.scores == score("xsum", HYPS * 2, refs * 2, rouge="batch_mean", rouge_batch_size=8,
                                    rouge_seed=101).scores
    assert "mean over batches of 8" in official.convention and "seed 101" in official.convention
    assert official.per_item == score("xsum", HYPS * 2, refs * 2).per_item


def test_dart_raw_hypotheses(no_java: None) -> None:
    """run_eval_on_dart.sh scores the output file as generated; the references stay split and lowercased."""
    normalised = score("dart", HYPS, REFS)
    raw = score("dart", HYPS, REFS, dart_text="raw")
    assert raw.scores["BLEU"] < normalised.scores["BLEU"] - 10  # cased words and attached punctuation miss
    # Raw scoring of already normalised text is the normalised scoring.
    pre = score("dart", [dart_text(h) for h in HYPS], REFS, dart_text="raw")
    assert pre.scores == normalised.scores
    assert "raw hypotheses" in raw.convention


# Two items where sacrebleu's TER and tercom 0.7.25 differ: (hypothesis, references, tercom's edits and mean
# reference length, sacrebleu's edits). The tercom numbers come from the classes shipped with the official
# evaluation (Yale-LILY/dart evaluation/tercom-0.7.25, `TERtest -o ter`), run on these lines.
TERCOM_CASES = [
    ("river is a centre a it mat centre near cat and mat serves river a near mat dog food dog . is is with"
     " the food and with dog serves the mat mat food cheap dog mat is city on the a on . the city",
         [("river is a food and with centre a it dog serves the mat mat food cheap dog is city on dog . is is "
           "with the the food a on cat and mat serves cat river mat centre near mat dog and a near . the city")],
         16.0, 47.0, 17.0),
    ("river food on is is and pub a serves river cheap a is sat the centre serves river on near centre is "
     "it pub centre food pub and on mat the a river on sat city food river food river , , RIVER city a it "
     "cat serves sat cat dog . mat the pub mat river . pub dog near pub . mat near on is on and",
         [("river food dog . mat the pub river . pub on is is and city pub a serves river cheap a is sat the "
           "centre serves river on near centre is it pub centre food pub and on and mat the a river on sat city "
           "river , , city a it cat food food serves sat cat dog near pub . mat near on is on and"),
          ("river food dog . mat the pub river . pub on is is and pub a serves river near pub . on river cheap a"
           " is sat the centre serves it pub centre food pub and on a river on sat city food river food river , "
           ", mat the city city a it cat serves sat cat a dog on near centre is is mat near on and")],
         10.0, 68.5, 9.0),
]


@pytest.mark.parametrize("hypothesis, references, edits, length, sacrebleu_edits", TERCOM_CASES)
def test_tercom_port_matches_tercom_where_sacrebleu_does_not(hypothesis: str, references: list[str], edits: float,
                                                              length: float, sacrebleu_edits: float) -> None:
    from bench.metrics.ter import ter_statistics

    refs: Any = [[r] for r in references]
    assert ter_statistics([hypothesis], refs, variant="tercom") == [[edits, length]]
    assert ter_statistics([hypothesis], refs) == [[sacrebleu_edits, length]]


def test_tercom_variant_golden_value_and_edge_cases(no_java: None) -> None:
    from bench.metrics.tercom import sentence_ter, tercom_statistics

    hyps = [webnlg_reference(h) for h in HYPS]
    report = score("webnlg2017", hyps, REFS, GROUPS, ter="tercom")
    assert close_to(report.scores["TER"], 37.5839, 4)  # tercom 0.7.25: 56 edits / 149 reference words
    assert "bench's port" in report.convention
    assert sentence_ter("", "a b c") == (3.0, 3.0)  # tercom's TERnullstr: all deletions
    assert sentence_ter("a b", "") == (2.0, 0.0)
    assert sentence_ter("The CAT", "the cat") == (0.0, 2.0)  # case-insensitive
    assert sentence_ter("b c a", "a b c") == (1.0, 3.0)  # one shift
    assert tercom_statistics(["a b"], [["a b"], [None], ["a c d e"]]) == [[0.0, 3.0]]  # fewest edits, mean length
