"""`bench doctor`: the environment (Python, torch/CUDA, Java, disk, data) and the store's integrity."""

from __future__ import annotations

import argparse
import textwrap

from bench.cli.common import add_dirs, results_dir, tasks_dirs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check the environment (Python, torch/CUDA, Java, disk, data) and the store")
    add_dirs(p, results=True)
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bench.ops import doctor
    from bench.spec import default_cache_dir

    checks = doctor.run_checks(results_dir(args), default_cache_dir(), tasks_dirs(args))
    for check in checks:
        print(textwrap.fill(f"{check.status:<5} {check.name}: {check.detail}", 110, subsequent_indent=" " * 6))
        for item in check.items:
            print(f"        - {item}")
        if check.fix:
            print(textwrap.fill(f"fix: {check.fix}", 110, initial_indent=" " * 6, subsequent_indent=" " * 11))
    failed = [c.name for c in checks if c.status == "FAIL"]
    print(f"\n{len(failed)} check(s) failed: {', '.join(failed)}." if failed else "\nNothing to fix.")
    return 1 if failed else 0
