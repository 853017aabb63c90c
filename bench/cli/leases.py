"""`bench leases`: which processes hold which runs (on any host); `bench leases release` frees one by hand."""

from __future__ import annotations

import argparse

from bench.cli.common import add_dirs, results_dir
from bench.errors import BenchError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("leases", help="list run leases (held, expired); `release` one by hand")
    p.add_argument("action", nargs="?", choices=["list", "release"], default="list")
    p.add_argument("run", nargs="?", default=None, help="release: a run folder or key prefix")
    p.add_argument("--expired", action="store_true", help="release: every expired lease or lease of a dead process")
    add_dirs(p, results=True)
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bench.leases import leases, release

    root = results_dir(args)
    found = leases(root)
    if args.action == "list":
        for lease in found:
            print(f"{lease.path.parent.relative_to(root)}  {lease.describe()}")
        print(f"{len(found)} lease(s) in {root}; {sum(lease.stale for lease in found)} expired or of dead processes")
        return 0
    if args.expired == (args.run is not None):
        raise BenchError(
            "`bench leases release` takes a run (folder or key prefix) or --expired, not both.",
            hint="e.g. `bench leases release --expired`.",
        )
    if args.expired:
        targets = [lease.path for lease in found if lease.stale]
    else:
        matches = [
            lease.path
            for lease in found
            if lease.path.parent.name.startswith(args.run) or str(lease.path.parent) == args.run.rstrip("/")
        ]
        if len(matches) != 1:
            raise BenchError(
                f"{len(matches)} leased runs match '{args.run}' in {root}.",
                hint="`bench leases` lists them; give a longer key prefix or the run folder.",
            )
        targets = matches
    for path in targets:
        if release(path):
            print(f"released {path.parent} (its holder, if still alive, stops without writing)")
    return 0
