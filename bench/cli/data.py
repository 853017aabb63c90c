"""`bench data fetch vtab` and `bench data status`: real data in place, and what to do for each task."""

from __future__ import annotations

import argparse
import logging
import textwrap
from pathlib import Path
from typing import Any

from bench.cli.common import add_dirs, tasks_dirs

log = logging.getLogger("bench")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="real data: `bench data fetch vtab`, `bench data status`")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("fetch", help="put a data set in place (download, or --from a local copy)")
    q.add_argument("what", choices=["vtab"])
    q.add_argument("--from", dest="source", type=Path, default=None, help="a local vtab-1k.zip or its folder")
    q.add_argument("--dest", type=Path, default=None, help="default: ${BENCH_DATA}/vtab-1k")
    add_dirs(q)
    q.set_defaults(func=fetch)
    q = data_sub.add_parser("status", help="for each task: ready, missing, incomplete or corrupt, and what to do")
    q.add_argument("--task", default=None, help="task or suite (default: every task)")
    add_dirs(q)
    q.set_defaults(func=status)


def fetch(args: argparse.Namespace) -> int:
    from bench import registry
    from bench.data.fetch import default_vtab_dest, fetch_vtab
    from bench.train.modality import data_status

    dest = fetch_vtab(args.dest or default_vtab_dest(), args.source)
    log.info("VTAB-1k is at %s", dest)
    _, tasks = registry.resolve_tasks("vtab", tasks_dirs(args))
    if args.dest is not None:
        tasks = [t.model_copy(update={"data": t.data.model_copy(update={"root": str(dest / Path(t.data.root).name)})})
                 for t in tasks]
    statuses = [data_status(t) for t in tasks]
    print_statuses(statuses)
    if args.dest is not None:
        print(f"\nThe task specs read ${{BENCH_DATA}}/vtab-1k: set BENCH_DATA={dest.parent} (or move {dest}).")
    return 0 if all(s.state == "ready" for s in statuses) else 2


def status(args: argparse.Namespace) -> int:
    from bench import registry
    from bench.train.modality import data_status

    if args.task:
        _, tasks = registry.resolve_tasks(args.task, tasks_dirs(args))
    else:
        files = registry.spec_files(tasks_dirs(args))
        tasks = [registry.load_task(f.path, n) for n, f in sorted(files.items()) if not f.is_suite]
    print_statuses([data_status(t) for t in tasks])
    return 0


def print_statuses(statuses: list[Any]) -> None:
    from tabulate import tabulate

    rows = [[s.task, s.state, textwrap.shorten(s.detail, 70), textwrap.shorten(s.fix, 80)] for s in statuses]
    print(tabulate(rows, headers=["task", "state", "detail", "what to do"]))
    todo: dict[str, list[str]] = {}
    for s in statuses:
        if s.fix and s.fix != "nothing":
            todo.setdefault(s.fix, []).append(s.task)
    for fix, tasks in todo.items():
        print(f"\n{', '.join(tasks)}:\n" + textwrap.fill(fix, 100, initial_indent="  ", subsequent_indent="  "))
