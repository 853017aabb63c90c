"""`bench export`: every stored run as one row of a flat table (CSV, parquet, JSON lines), via bench.export."""

from __future__ import annotations

import argparse
import sys

from bench.cli.common import add_dirs, methods_dirs, names, results_dir, tasks_dirs
from bench.errors import BenchError

DEFAULT_OUT = "results/export/"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write every stored run as one row of a table (csv, parquet, jsonl)")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help="a folder (gets runs.<format>) or a file stem such as results/export/mini "
                   f"(gets mini.csv, mini.parquet, ...); default {DEFAULT_OUT}")
    p.add_argument("--suite", "--task", dest="task", default=None, help="only this task or suite")
    p.add_argument("--method", default=None, help="only these comma-separated methods")
    p.add_argument("--format", default="csv,parquet,jsonl",
                   help="comma-separated: csv, parquet, jsonl (default: all three)")
    add_dirs(p, results=True)
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bench import api
    from bench.export import check_formats, output_stem

    formats = check_formats(names(args.format))
    if not args.out:
        raise BenchError("--out is empty.", field="--out",
                         hint=f"Give a folder or a file stem (default {DEFAULT_OUT}).")
    output_stem(args.out)  # refuse a bad --out before reading the store
    export = api.export(results_dir(args), task=args.task, methods=names(args.method) if args.method else None,
                        tasks_dirs=tasks_dirs(args), methods_dirs=methods_dirs(args))
    for folder, reasons in sorted(export.left_out.items()):
        print(f"left out {folder}: {'; '.join(reasons)}", file=sys.stderr)
    if not export.rows:
        raise BenchError(f"no stored runs to export in {results_dir(args)}"
                         + (f" ({len(export.left_out)} left out, listed above)" if export.left_out else "") + ".",
                         field="--results", hint="Check --results, --task and --method.")
    written = api.write_export(export, args.out, formats)
    left = (f"; {len(export.left_out)} record(s) left out (failed their checks, listed on stderr)"
            if export.left_out else "")
    print(f"exported {len(export.rows)} runs, {len(export.columns)} columns{left}: "
          + ", ".join(str(p) for p in written))
    return 0
