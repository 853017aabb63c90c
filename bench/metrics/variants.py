"""The named variants of the language metrics (clean protocol vs the official scripts), and their validation.

Each variant reproduces one official script's behaviour; the defaults are the clean protocol's, which the committed
leaderboards were scored with. docs/parity.md says which script each variant follows.
"""

from __future__ import annotations

from typing import Literal, get_args

from bench.errors import BenchError, did_you_mean

BleuVariant = Literal["perl", "pymteval"]  # E2E BLEU: mteval-v13a-sig.pl, or measure_scores.py -p
RougeAggregation = Literal["global", "batch_mean"]  # XSum: one bootstrap mid, or the mean of per-batch mids
DartText = Literal["normalised", "raw"]  # DART hypotheses: split + lowercased, or as generated
TerVariant = Literal["sacrebleu", "tercom"]  # WebNLG / DART TER: sacrebleu's port, or bench's port of tercom

VARIANTS: dict[str, tuple[str, ...]] = {
    "bleu": get_args(BleuVariant),
    "nist": ("pymteval", "perl"),
    "rouge": get_args(RougeAggregation),
    "dart_text": get_args(DartText),
    "ter": get_args(TerVariant),
}


def check_variant(option: str, value: str) -> None:
    """A BenchError naming the option and its allowed values when `value` is not one of them."""
    allowed = VARIANTS[option]
    if value not in allowed:
        raise BenchError(f"unknown {option} variant '{value}'.{did_you_mean(value, allowed)}",
                         field=f"metric_options.{option}")
