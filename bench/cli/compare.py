"""`bench compare STORE_A STORE_B`: run by run and cell by cell, do two run stores agree (bench.ops.compare)?"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.common import add_dirs, tasks_dirs
from bench.errors import BenchError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare two run stores: identical runs, and paired tests per cell")
    p.add_argument("a", type=Path, help="first run store")
    p.add_argument("b", type=Path, help="second run store")
    p.add_argument("--suite", "--task", dest="task", default=None, help="only this suite or task")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--resamples", type=int, default=1000)
    add_dirs(p)
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    """Exit 0 when no cell differs significantly, 1 when some does."""
    from bench import api
    from bench.ops.compare import compare_stores, report

    for store in (args.a, args.b):
        if not store.is_dir():
            raise BenchError(f"{store} is not a run store folder.", hint="Give two --results folders.")
    if not 0.0 < args.alpha < 1.0 or args.resamples < 1:
        raise BenchError("--alpha must lie in (0, 1) and --resamples be at least 1.")
    tasks = [t.name for t in api.resolve(args.task, tasks_dirs(args))[1]] if args.task else None
    comparison = compare_stores(args.a, args.b, tasks, args.alpha, args.resamples)
    print(report(comparison))
    return 1 if comparison.significant else 0
