"""`bench pack`: a store's runs (or some tasks' / methods') as one checked archive to share, via bench.share."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.cli.common import add_dirs, methods_dirs, names, results_dir, tasks_dirs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pack", help="write a store's runs to one archive (records, result files, manifest)")
    p.add_argument("--out", type=Path, required=True, help="the archive to write, e.g. my-runs.tar.gz")
    p.add_argument("--suite", "--task", dest="task", default=None, help="only this task or suite")
    p.add_argument("--method", default=None, help="only these comma-separated methods")
    add_dirs(p, results=True)
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bench import api

    packed = api.pack(args.out, results_dir(args), task=args.task,
                      methods=names(args.method) if args.method else None, tasks_dirs=tasks_dirs(args),
                      methods_dirs=methods_dirs(args))
    for folder, reasons in sorted(packed.left_out.items()):
        print(f"left out {folder}: {'; '.join(reasons)}", file=sys.stderr)
    left = (f"; {len(packed.left_out)} run(s) left out (failed their checks, listed on stderr)"
            if packed.left_out else "")
    print(f"packed {len(packed.runs)} runs into {packed.archive}{left}")
    return 0
