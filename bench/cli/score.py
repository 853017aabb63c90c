"""`bench score --task T --predictions F`: score your own outputs with a language task's official metrics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.cli.common import add_dirs, tasks_dirs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score your own outputs with a language task's official metrics")
    p.add_argument("--task", required=True, help="language task whose metric suite and references to use")
    p.add_argument("--predictions", required=True, type=Path, help="one output per line, in the split's item order")
    p.add_argument("--references", type=Path, default=None,
                   help="references in the E2E metrics script's format (groups separated by blank lines); "
                   "default: the task's test split")
    p.add_argument("--split", default=None, help="the split the predictions are for (default: the final eval split)")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    add_dirs(p)
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from bench import api

    scored = api.score(args.task, args.predictions, args.references, args.split, tasks_dirs(args))
    report = scored.report
    if args.json:
        print(json.dumps({"task": scored.task, "references": scored.references, "scores": report.scores,
                          "unavailable": report.unavailable, "convention": report.convention}, indent=1))
        return 0
    print(f"{scored.task}: {scored.items} items scored against {scored.references} ({report.convention})")
    print(tabulate([[k, f"{v:.4f}"] for k, v in report.scores.items()], headers=["metric", "score"],
                   disable_numparse=True))
    for name, reason in report.unavailable.items():
        print(f"{name}: not computed: {reason}")
    return 0
