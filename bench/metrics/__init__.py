"""Language metrics that reproduce the official evaluation scripts offline.

`score(suite, hypotheses, references, groups)` runs one suite:

- "e2e": BLEU, NIST, METEOR, ROUGE_L, CIDEr as E2E's measure_scores.py (NIST: pymteval, or nist="perl").
- "webnlg2017": BLEU, METEOR, TER as the DART repo's run_eval_on_webnlg.sh, for all items and, with `groups`
  ("seen" / "unseen" or WebNLG category names), as BLEU_seen, BLEU_unseen, METEOR_seen, ...
- "dart": BLEU, METEOR, TER as run_eval_on_dart.sh; MoverScore / BERTScore / BLEURT only named as unavailable
  when asked for through `learned`.
- "xsum": ROUGE-1, ROUGE-2, ROUGE-L as Li & Liang's calculate_rouge (bootstrap mid F1, seeded).

Variants of a metric (score's keywords, a task's metric_options) follow other official scripts where the clean
default differs from what the paper's numbers came from (bench.metrics.variants, docs/parity.md).

Scales: BLEU, METEOR, ROUGE (E2E's ROUGE_L too) and TER are percentages (0-100) for one convention across tasks,
although the E2E script prints BLEU / METEOR / ROUGE_L on 0-1 (0.476440 is stored as 47.6440); NIST and CIDEr are
raw. Java (METEOR 1.5, and the PTB tokenizer under E2E's METEOR / ROUGE_L / CIDEr) missing: those metrics are
listed in `unavailable` with the reason; no substitute number is ever reported.

`per_item` (all items, whatever `groups`; typed access: report.statistics(name) / report.item_scores(name)):
for corpus metrics the sufficient statistics per item, which corpus_bleu_from_stats / corpus_nist_from_stats /
corpus_ter_from_stats / corpus_meteor_from_stats turn back into the exact corpus score of any subset or resample
(BLEU [hyp_len, ref_len, correct_1..4, total_1..4]; NIST [hyp_len, mean_ref_len, ref_words, nonempty_refs,
info_1..5], information weights held fixed; TER [edits, mean_ref_len]; METEOR the jar's SCORE statistics, whose
aggregation needs Java). For mean metrics (E2E ROUGE_L, CIDEr with its IDF held fixed, XSUM ROUGE F1) the per-item
scores, on the scale of the score.

Text: WebNLG 2017 hypotheses and references go through the official script's two normalisations, DART's through
the split-and-lowercase of its reference files (bench.metrics.normalise); E2E and XSUM text is scored as given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.errors import BenchError, did_you_mean
from bench.metrics.bleu import corpus_bleu_from_stats
from bench.metrics.files import read_e2e_references, read_lines
from bench.metrics.java import JAVA_MISSING, java_available
from bench.metrics.meteor import MeteorProcess, corpus_meteor_from_stats
from bench.metrics.nist import NistVariant, corpus_nist_from_stats
from bench.metrics.report import MetricReport, PerItem
from bench.metrics.ter import corpus_ter_from_stats
from bench.metrics.variants import VARIANTS, BleuVariant, DartText, RougeAggregation, TerVariant, check_variant
from bench.spec import SUITE_METRICS

__all__ = [
    "JAVA_MISSING",
    "SUITES",
    "SUITE_METRICS",
    "VARIANTS",
    "MeteorProcess",
    "MetricReport",
    "PerItem",
    "corpus_bleu_from_stats",
    "corpus_meteor_from_stats",
    "corpus_nist_from_stats",
    "corpus_ter_from_stats",
    "evaluate_module_path",
    "java_available",
    "read_e2e_references",
    "read_lines",
    "score",
]

SUITES: tuple[str, ...] = ("e2e", "webnlg2017", "dart", "xsum")


def _check(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], groups: Sequence[str] | None
) -> list[list[str]]:
    """The references without empty strings; raises when the input cannot be scored."""
    if len(hypotheses) != len(references):
        raise BenchError(
            f"{len(hypotheses)} hypotheses for {len(references)} reference lists.",
            hint="Give one list of references per hypothesis, in the same order.",
        )
    if not hypotheses:
        raise BenchError("nothing to score: no hypotheses.")
    if groups is not None and len(groups) != len(hypotheses):
        raise BenchError(f"{len(groups)} groups for {len(hypotheses)} hypotheses.", field="groups")
    if isinstance(references[0], str):
        raise BenchError(
            "references[i] must be the list of references of item i, not a string.",
            hint="Wrap single references: [[ref] for ref in refs].",
        )
    kept = [[r for r in refs if r.strip()] for refs in references]
    lacking = [i for i, refs in enumerate(kept) if not refs]
    if lacking:
        raise BenchError(f"{len(lacking)} items have no non-empty reference (first: item {lacking[0]}).")
    return kept


def score(
    suite: str,
    hypotheses: list[str],
    references: list[list[str]],
    groups: list[str] | None = None,
    *,
    learned: dict[str, str] | None = None,
    nist: NistVariant = "pymteval",
    bleu: BleuVariant = "perl",
    rouge: RougeAggregation = "global",
    rouge_batch_size: int = 8,
    rouge_seed: int | None = None,
    dart_text: DartText = "normalised",
    ter: TerVariant = "sacrebleu",
) -> MetricReport:
    """Score hypotheses[i] against references[i] (a list, any length) with one suite's official metrics.

    groups[i] is item i's WebNLG category ("seen" / "unseen" or a category name), used by webnlg2017 and
    ignored by the other suites. learned (dart only): metric name -> local model path; such metrics are not
    computed offline and appear in `unavailable`.

    Metric variants (a task's metric_options, passed as keywords; each applies to its suite, the others ignore
    it; the defaults are the clean protocol's): nist / bleu (e2e): "pymteval" = measure_scores.py -p, "perl" =
    mteval-v13a-sig.pl; rouge (xsum): "global" one bootstrap mid, "batch_mean" the mean of per-batch mids over
    batches of rouge_batch_size items, numpy seeded with rouge_seed (default: bench.metrics.rouge.BOOTSTRAP_SEED);
    dart_text (dart): "normalised" or "raw" hypotheses; ter (webnlg2017, dart): "sacrebleu" or "tercom".
    """
    from bench.metrics import suites

    if suite not in SUITES:
        raise BenchError(f"unknown metric suite '{suite}'.{did_you_mean(suite, SUITES)}")
    if learned and suite != "dart":
        raise BenchError(f"learned metrics are defined for the dart suite only, not '{suite}'.", field="learned")
    for option, value in (("nist", nist), ("bleu", bleu), ("rouge", rouge), ("dart_text", dart_text), ("ter", ter)):
        check_variant(option, value)
    if rouge_batch_size < 1:
        raise BenchError(
            f"rouge_batch_size must be positive, not {rouge_batch_size}.", field="metric_options.rouge_batch_size"
        )
    refs = _check(hypotheses, references, groups)
    hyps = list(hypotheses)
    if suite == "e2e":
        return suites.e2e(hyps, refs, java=java_available(), nist=nist, bleu_variant=bleu)
    if suite == "webnlg2017":
        return suites.webnlg2017(hyps, refs, groups, java=java_available(), ter=ter)
    if suite == "dart":
        return suites.dart(hyps, refs, java=java_available(), learned=learned, text=dart_text, ter=ter)
    return suites.xsum(hyps, refs, aggregation=rouge, batch_size=rouge_batch_size, seed=rouge_seed)


def evaluate_module_path(suite: str) -> Path:
    """The folder of the local HF `evaluate` module of a suite: evaluate.load(str(path)) works offline."""
    if suite not in SUITES:
        raise BenchError(f"unknown metric suite '{suite}'.{did_you_mean(suite, SUITES)}")
    return Path(__file__).resolve().parent / "evaluate_modules" / suite
