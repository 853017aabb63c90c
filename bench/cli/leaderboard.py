"""`bench leaderboard`: rebuild the tables, statistics and plots from stored runs."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench.cli.common import add_dirs, names, out_folder, results_dir, tasks_dirs
from bench.errors import BenchError

log = logging.getLogger("bench")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("leaderboard", help="rebuild the tables, statistics and plots from stored runs")
    p.add_argument("--suite", "--task", dest="task", default=None,
                   help="suite or task to show (default: every task with runs)")
    p.add_argument("--method", default=None, help="comma-separated methods (default: all with runs)")
    p.add_argument("--format", default="md,tex,html,csv,json",
                   help="comma-separated formats written to --out: md, tex, html, csv, json (default: all)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for <suite>.<format> and the plots <suite>-{pareto,groups,cd}.svg")
    p.add_argument("--reference", action="store_true",
                   help="add published numbers (results/reference/) as labelled rows")
    p.add_argument("--test", default="bootstrap", choices=["bootstrap", "mcnemar", "randomization"],
                   help="per-task test against the best (default: paired bootstrap over items and seeds)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--resamples", type=int, default=1000,
                   help="bootstrap resamples / randomisation trials (default 1000)")
    p.add_argument("--no-plots", action="store_true", help="skip the matplotlib figures")
    add_dirs(p, results=True)
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bench import api
    from bench import leaderboard as boards
    from bench.leaderboard.markdown import render_markdown

    formats = names(args.format)
    unknown = [f for f in formats if f not in boards.FORMATS]
    if unknown or not formats:
        raise BenchError(f"unknown --format {', '.join(unknown) or '(empty)'}.",
                         hint=f"Use a comma-separated list of {', '.join(boards.FORMATS)}.")
    out_folder(args.out)
    if args.out is not None and args.out.suffix.lstrip(".") in boards.FORMATS:
        raise BenchError(f"--out takes a folder, not a file ({args.out}).",
                         hint=f"Use e.g. `--out {args.out.parent}`; files are named <suite>.<format>.")
    board = api.leaderboard(args.task, results=results_dir(args), methods=names(args.method) if args.method else None,
                            reference=args.reference, test=args.test, alpha=args.alpha, resamples=args.resamples,
                            plots=args.out is not None and not args.no_plots, tasks_dirs=tasks_dirs(args))
    print(render_markdown(board))
    if args.out is not None:
        for path in boards.write(board, args.out, formats):
            log.info("wrote %s", path)
    return 0
