"""`bench validate`: load every task, suite and method file; the first problem is reported with its fix."""

from __future__ import annotations

import argparse

from bench.cli.common import add_dirs, methods_dirs, tasks_dirs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check every task/suite spec and method file")
    add_dirs(p)
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bench import api

    tasks, suites, methods = api.validate(tasks_dirs(args), methods_dirs(args))
    print(f"ok: {tasks} tasks, {suites} suites, {methods} methods")
    return 0
