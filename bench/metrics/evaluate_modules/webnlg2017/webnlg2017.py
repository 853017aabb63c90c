"""HF `evaluate` module of the WebNLG 2017 metrics: forwards to bench.metrics.score; loads offline by folder.

Plain `import` statements one per line: evaluate's import scanner misreads "import a, b".
"""

from typing import Any

import evaluate

from bench.metrics.hf import compute, metric_info

SUITE = "webnlg2017"


class Webnlg2017(evaluate.Metric):
    """bench.metrics.score("webnlg2017", predictions, references, groups)."""

    def _info(self) -> Any:
        return metric_info(SUITE)

    def _compute(self, predictions: Any = None, references: Any = None, groups: Any = None) -> dict[str, Any]:
        return compute(SUITE, predictions, references, groups)
