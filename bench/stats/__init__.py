"""Significance tests for comparing PEFT methods across test items, seeds and tasks (numpy / scipy only).

Which test for which question (docs/leaderboards.md):
- one task, per-item outputs stored: paired_bootstrap (items x seeds, CI; paired_bootstrap_many: one system
  against several), paired_randomization (one run each), sacrebleu_paired_bleu (BLEU exactly as sacrebleu's
  PairedTest; bleu_from_stats as a `score`), mcnemar_exact /
  mcnemar_seeds (accuracy); combine_seeds (one test per matched seed -> Fisher);
- two methods over many tasks: wilcoxon on per-task means;
- k methods over many tasks: friedman, nemenyi_critical_difference and cliques (the bars of a CD diagram);
- many comparisons at once: holm.
"""

from bench.stats.bleu import bleu_from_stats, sacrebleu_paired_bleu
from bench.stats.bootstrap import paired_bootstrap, paired_bootstrap_many
from bench.stats.combine import combine_seeds
from bench.stats.friedman import cliques, friedman, nemenyi_critical_difference
from bench.stats.mcnemar import mcnemar_exact, mcnemar_seeds
from bench.stats.multiple import holm
from bench.stats.randomization import paired_randomization
from bench.stats.result import TestResult
from bench.stats.signed_rank import wilcoxon

__all__ = [
    "TestResult",
    "bleu_from_stats",
    "cliques",
    "combine_seeds",
    "friedman",
    "holm",
    "mcnemar_exact",
    "mcnemar_seeds",
    "nemenyi_critical_difference",
    "paired_bootstrap",
    "paired_bootstrap_many",
    "paired_randomization",
    "sacrebleu_paired_bleu",
    "wilcoxon",
]
