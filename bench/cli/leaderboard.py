"""`bench leaderboard`: rebuild the tables, statistics and plots from stored runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.common import add_dirs, names, out_folder, results_dir, tasks_dirs
from bench.errors import BenchError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("leaderboard", help="rebuild the tables, statistics and plots from stored runs")
    p.add_argument("--suite", "--task", dest="task", default=None,
                   help="suite or task to show (default: every task with runs)")
    p.add_argument("--method", default=None, help="comma-separated methods (default: all with runs)")
    p.add_argument("--format", default="md,tex,html,csv,json",
                   help="comma-separated formats written to --out: md, tex, html, csv, json (default: all)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for <suite>.<format>, the LaTeX tables and the figures (default: "
                        "<results>/../leaderboards/local, i.e. results/leaderboards/local/ for results/runs)")
    p.add_argument("--reference", action="store_true",
                   help="add published numbers (results/reference/) as labelled rows")
    p.add_argument("--test", default="bootstrap", choices=["bootstrap", "mcnemar", "randomization"],
                   help="per-task test against the best (default: paired bootstrap over items and seeds)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--resamples", type=int, default=1000,
                   help="bootstrap resamples / randomisation trials (default 1000)")
    p.add_argument("--no-plots", action="store_true", help="skip the matplotlib figures")
    p.add_argument("--efficiency", default="", metavar="SCORES",
                   help="comma-separated efficiency-aware scores to add as columns: ppt (V-PETL Bench's "
                        "performance-parameter trade-off), pscp (PEFT-Bench's soft cost penalties, without its FLOPs "
                        "term); none by default (docs/leaderboards.md)")
    p.add_argument("--protocol", default="clean", metavar="NAME",
                   help="show the runs of this protocol (task profile, as given to `bench run --protocol`): clean "
                        "(default) or paper; a non-clean board is named <suite>-<protocol>")
    p.add_argument("--record-commit", action="store_true",
                   help="write this checkout's git commit into the JSON's provenance (off by default, so the same "
                        "runs give the same bytes on every commit)")
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
    results = results_dir(args)
    out = args.out if args.out is not None else boards.default_out_dir(results)
    board = api.leaderboard(args.task, results=results, methods=names(args.method) if args.method else None,
                            reference=args.reference, test=args.test, alpha=args.alpha, resamples=args.resamples,
                            plots=not args.no_plots, tasks_dirs=tasks_dirs(args), protocol=args.protocol,
                            efficiency=names(args.efficiency))
    if args.record_commit:
        from bench.leaderboard.provenance import git_commit

        board.git_commit = git_commit()
    print(render_markdown(board))
    boards.write(board, out, formats)  # logs one line per file written or removed and per figure not drawn
    return 0
