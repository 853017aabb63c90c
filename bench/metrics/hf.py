"""The shared body of the local HF `evaluate` modules in evaluate_modules/: they only forward to score().

evaluate.load(str(evaluate_module_path(suite))) loads one offline; the numbers are those of bench.metrics.score.
"""

from __future__ import annotations

from typing import Any


def metric_info(suite: str) -> Any:
    """evaluate.MetricInfo: string predictions, a list of reference strings per item."""
    import datasets
    import evaluate

    return evaluate.MetricInfo(
        description=f"peft-bench '{suite}' metric suite, reproducing the official evaluation script offline.",
        citation="See bench/metrics and docs/parity.md of peft-bench.",
        inputs_description=("predictions: list of strings; references: list of lists of strings; "
                            "groups (webnlg2017, optional): 'seen' / 'unseen' per item."),
        features=datasets.Features({"predictions": datasets.Value("string"),
                                    "references": datasets.Sequence(datasets.Value("string"))}),
    )


def compute(suite: str, predictions: list[str], references: list[list[str]], groups: list[str] | None = None
            ) -> dict[str, Any]:
    """The report's scores, plus its `unavailable` reasons and `convention` under those two keys."""
    from bench.metrics import score

    report = score(suite, list(predictions), [list(r) for r in references], groups)
    return {**report.scores, "unavailable": report.unavailable, "convention": report.convention}
