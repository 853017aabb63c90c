"""`bench import ARCHIVE`: check an archive from `bench pack` run by run and add what passes to a store."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.common import add_dirs, methods_dirs, results_dir


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="check the runs of an archive from `bench pack` and add them to a store")
    p.add_argument("archive", type=Path, help="the .tar.gz that `bench pack` wrote")
    p.add_argument("--allow-other-code", action="store_true",
                   help="also import runs made by another runner version or another version of a method's code")
    add_dirs(p, results=True)
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    """Exit 0 when every run was imported or already present, 1 when any was refused."""
    from bench import api

    report = api.import_archive(args.archive, results_dir(args), allow_other_code=args.allow_other_code,
                                methods_dirs=methods_dirs(args))
    for outcome in report.outcomes:
        print(outcome.line())
    for note in report.notes:
        print(f"note: {note}")
    print(report.summary())
    return 0 if report.ok else 1
