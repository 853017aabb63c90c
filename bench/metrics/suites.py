"""The four language suites: which metrics run on which text with which settings, each as its official script.

Every function takes validated input (one hypothesis and at least one non-empty reference per item) and whether
Java works, and returns a MetricReport; bench.metrics.score is the entry point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.errors import BenchError, did_you_mean
from bench.metrics.bleu import bleu_statistics, corpus_bleu_from_stats, reference_streams
from bench.metrics.java import java_missing_reason
from bench.metrics.nist import NistVariant, corpus_nist_from_stats, nist_statistics
from bench.metrics.report import MetricReport
from bench.metrics.ter import corpus_ter_from_stats, ter_statistics
from bench.metrics.variants import BleuVariant, DartText, RougeAggregation, TerVariant

# webnlg-automatic-evaluation/evaluation.py: the 5 categories absent from training are "new" (unseen).
WEBNLG_UNSEEN = frozenset(["MeanOfTransportation", "CelestialBody", "Politician", "Athlete", "Artist"])
WEBNLG_SEEN = frozenset(["Astronaut", "Airport", "Monument", "University", "Food", "SportsTeam", "City",
                         "Building", "WrittenWork", "ComicsCharacter"])
LEARNED_METRICS = ("MoverScore", "BERTScore", "BLEURT")
LEARNED_REASON = "needs a local model; not computed offline (never faked)"


def e2e(hypotheses: list[str], references: list[list[str]], *, java: bool, nist: NistVariant = "pymteval",
        bleu_variant: BleuVariant = "perl") -> MetricReport:
    """measure_scores.py: BLEU (mteval 13a, lowercased), NIST, then COCO METEOR / ROUGE_L / CIDEr on PTB tokens.

    bleu_variant "perl" is mteval-v13a-sig.pl (the script without -p); "pymteval" is the script's -p route, which
    Li & Liang ran (it differs only when a hypothesis is shorter than 4 tokens).
    """
    nist_name = "pymteval (measure_scores.py -p)" if nist == "pymteval" else "mteval-v13a-sig.pl"
    bleu_name = "mteval-v13a lowercased (sacrebleu)" if bleu_variant == "perl" else \
        "pymteval lowercased (measure_scores.py -p)"
    report = MetricReport(scores={}, convention=(
        f"E2E measure_scores.py (tuetschek/e2e-metrics@1b9c4d8): BLEU {bleu_name}, "
        f"NIST {nist_name}, METEOR 1.5 / ROUGE_L / CIDEr-D (pycocoevalcap) on PTB tokens; "
        "BLEU, METEOR, ROUGE_L x100"))
    bleu = bleu_statistics(hypotheses, reference_streams(references, max(map(len, references)), None),
                           lowercase=True, tokenize="13a")
    nist_stats = nist_statistics(hypotheses, references)
    report.scores["BLEU"] = corpus_bleu_from_stats(bleu, "pymteval" if bleu_variant == "pymteval" else "sacrebleu")
    report.scores["NIST"] = corpus_nist_from_stats(nist_stats, nist)
    report.per_item.update({"BLEU": bleu, "NIST": nist_stats})
    reason = java_missing_reason(java)
    if reason is not None:
        report.unavailable.update(dict.fromkeys(("METEOR", "ROUGE_L", "CIDEr"), reason))
        return report

    from bench.metrics.coco import coco_cider, coco_rouge_l, ptb_tokenize
    from bench.metrics.meteor import shared_meteor

    with shared_meteor() as meteor:  # a jar started here loads its tables while the tokenizer runs
        tokens = ptb_tokenize([*hypotheses, *(r for refs in references for r in refs)])
        hyp_tokens, ref_tokens = tokens[:len(hypotheses)], []
        start = len(hypotheses)
        for refs in references:
            ref_tokens.append(tokens[start:start + len(refs)])
            start += len(refs)
        meteor_stats = [meteor.statistics(h, refs) for h, refs in zip(hyp_tokens, ref_tokens, strict=True)]
        meteor_score = meteor.aggregate(meteor_stats)[0]
    rouge = coco_rouge_l(hyp_tokens, ref_tokens)
    cider = coco_cider(hyp_tokens, ref_tokens)
    report.scores.update({"METEOR": 100.0 * meteor_score, "ROUGE_L": 100.0 * float(np.mean(rouge)),
                          "CIDEr": float(np.mean(cider))})
    report.per_item.update({"METEOR": meteor_stats, "ROUGE_L": [100.0 * x for x in rouge], "CIDEr": cider})
    return report


def webnlg_subsets(groups: Sequence[str] | None, size: int) -> dict[str, list[int]]:
    """Score-name suffix -> item indices: "" for all, "_seen" / "_unseen" when groups are given.

    A group is "seen" / "unseen", or a WebNLG 2017 category name, mapped as the official evaluation does. A
    subset without items gets no scores.
    """
    subsets = {"": list(range(size))}
    if groups is None:
        return subsets
    seen, unseen = [], []
    for index, group in enumerate(groups):
        if group == "seen" or group in WEBNLG_SEEN:
            seen.append(index)
        elif group == "unseen" or group in WEBNLG_UNSEEN:
            unseen.append(index)
        else:
            allowed = ("seen", "unseen", *WEBNLG_SEEN, *WEBNLG_UNSEEN)
            raise BenchError(f"item {index}: unknown WebNLG group {group!r}.{did_you_mean(group, allowed)}",
                             field="groups")
    subsets.update({suffix: indices for suffix, indices in (("_seen", seen), ("_unseen", unseen)) if indices})
    return subsets


def _subset(stats: list[list[float]], indices: list[int]) -> list[list[float]]:
    return [stats[i] for i in indices]


def _ter_name(variant: TerVariant) -> str:
    return "tercom 0.7.25 (sacrebleu's port)" if variant == "sacrebleu" else "tercom 0.7.25 (bench's port)"


def _triple_metrics(hypotheses: list[str], references: list[list[str]], subsets: dict[str, list[int]], *,
                    java: bool, lowercase_bleu: bool, meteor_refs: int, report: MetricReport,
                    ter: TerVariant = "sacrebleu") -> None:
    """BLEU (first 3 refs, "" padding), METEOR 1.5 (-norm, meteor_refs padded with ""), TER (first 3, None)."""
    first3 = [refs[:3] for refs in references]
    bleu = bleu_statistics(hypotheses, reference_streams(first3, 3, ""), lowercase=lowercase_bleu, tokenize="none")
    ter_stats = ter_statistics(hypotheses, reference_streams(first3, 3, None), variant=ter)
    report.per_item.update({"BLEU": bleu, "TER": ter_stats})
    for suffix, indices in subsets.items():
        report.scores[f"BLEU{suffix}"] = corpus_bleu_from_stats(_subset(bleu, indices))
    reason = java_missing_reason(java)
    if reason is not None:
        report.unavailable.update({f"METEOR{suffix}": reason for suffix in subsets})
    else:
        from bench.metrics.meteor import shared_meteor

        with shared_meteor() as meteor:
            padded = [refs[:meteor_refs] + [""] * (meteor_refs - len(refs[:meteor_refs])) for refs in references]
            meteor_stats = [meteor.statistics(h, refs) for h, refs in zip(hypotheses, padded, strict=True)]
            for suffix, indices in subsets.items():
                report.scores[f"METEOR{suffix}"] = 100.0 * meteor.aggregate(_subset(meteor_stats, indices))[0]
        report.per_item["METEOR"] = meteor_stats
    for suffix, indices in subsets.items():
        report.scores[f"TER{suffix}"] = corpus_ter_from_stats(_subset(ter_stats, indices))


def webnlg2017(hypotheses: list[str], references: list[list[str]], groups: Sequence[str] | None, *, java: bool,
               ter: TerVariant = "sacrebleu") -> MetricReport:
    """DART repo's run_eval_on_webnlg.sh: WebNLG normalisation, first 3 references, all / seen / unseen."""
    from bench.metrics.normalise import webnlg_hypothesis, webnlg_reference

    report = MetricReport(scores={}, convention=(
        "WebNLG 2017 by Yale-LILY/dart@bb644b1 run_eval_on_webnlg.sh: WebNLG normalisation, first 3 references; "
        f"BLEU multi-bleu.perl -lc (sacrebleu, '' padding), METEOR 1.5 -norm -r 3, TER {_ter_name(ter)}; "
        "all x100"))
    subsets = webnlg_subsets(groups, len(hypotheses))
    hyps = [webnlg_hypothesis(h) for h in hypotheses]
    refs = [[webnlg_reference(r) for r in item[:3]] for item in references]
    _triple_metrics(hyps, refs, subsets, java=java, lowercase_bleu=True, meteor_refs=3, report=report, ter=ter)
    return report


def dart(hypotheses: list[str], references: list[list[str]], *, java: bool,
         learned: dict[str, str] | None = None, text: DartText = "normalised", ter: TerVariant = "sacrebleu"
         ) -> MetricReport:
    """DART repo's run_eval_on_dart.sh: cased BLEU, METEOR 1.5 -r 8, TER, against references split and lowercased
    as its reference files are (bench.metrics.normalise.dart_text). text "normalised" applies the same to the
    hypotheses; "raw" scores them as generated (stripped), which is what the script does with an output file.

    The script builds METEOR's 8-line reference blocks from its 3 reference files, so METEOR sees the first 3
    references; the 5 padding lines do not change the score. Learned metrics are named in `unavailable` when asked.
    """
    from bench.metrics.normalise import dart_text

    hypothesis_text = "split + lowercased hypotheses" if text == "normalised" else "raw hypotheses"
    report = MetricReport(scores={}, convention=(
        f"DART by Yale-LILY/dart@bb644b1 run_eval_on_dart.sh: {hypothesis_text}, split + lowercased references, "
        "first 3 references; BLEU multi-bleu.perl cased (sacrebleu, '' padding), METEOR 1.5 -norm -r 8, "
        f"TER {_ter_name(ter)}; all x100"))
    hyps = [dart_text(h) if text == "normalised" else h.strip() for h in hypotheses]
    refs = [[dart_text(r) for r in item[:3]] for item in references]
    _triple_metrics(hyps, refs, {"": list(range(len(hyps)))}, java=java, lowercase_bleu=False, meteor_refs=8,
                    report=report, ter=ter)
    for name in learned or {}:
        if name not in LEARNED_METRICS:
            raise BenchError(f"unknown learned metric {name!r}.{did_you_mean(name, LEARNED_METRICS)}",
                             field="learned")
        report.unavailable[name] = LEARNED_REASON
    return report


def xsum(hypotheses: list[str], references: list[list[str]], *, aggregation: RougeAggregation = "global",
         batch_size: int = 8, seed: int | None = None) -> MetricReport:
    """Li & Liang's calculate_rouge (see bench.metrics.rouge): one mid over all items ("global"), or the mean of
    per-batch mids over batches of `batch_size` items ("batch_mean", the official test number)."""
    from bench.metrics.rouge import BOOTSTRAP_SEED, rouge_scores

    seed = BOOTSTRAP_SEED if seed is None else seed
    scores, per_item = rouge_scores(hypotheses, references, seed=seed,
                                    batch_size=batch_size if aggregation == "batch_mean" else None)
    how = "mid F1 x100" if aggregation == "global" else \
        f"mean over batches of {batch_size} of each batch's mid F1 x100 (rounded to 4 decimals)"
    return MetricReport(scores=scores, per_item=dict(per_item), convention=(
        "XSUM by Li & Liang seq2seq calculate_rouge: rouge_score 0.1.2 stemmed rouge1/rouge2/rougeL, "
        f"BootstrapAggregator {how} (numpy seed {seed})"))
