"""`bench analyze attention RUN` (or --task/--method): where a trained run's attention goes."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench.cli.common import add_dirs, out_folder, results_dir
from bench.errors import BenchError

log = logging.getLogger("bench")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="analyses of a trained run: `bench analyze attention RUN`")
    p.add_argument("what", choices=["attention"])
    p.add_argument("run", nargs="?", default=None,
                   help="run folder or key prefix (a completed final run of a PEFT method); or give --task/--method")
    p.add_argument("--task", default=None, help="with --method: the final run the leaderboard shows for this task")
    p.add_argument("--method", default=None, help="with --task: the method")
    p.add_argument("--seed", type=int, default=None, help="with --task/--method: which final seed (default the first)")
    p.add_argument("--examples", "--images", dest="examples", type=int, default=16,
                   help="test images or test items to analyse (default 16)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <run>/analysis)")
    add_dirs(p, results=True)
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bench import api

    if args.run is not None:
        run_dir = api.find_run(args.run, results_dir(args))[0]
    elif args.task and args.method:
        run_dir = api.leaderboard_run(args.task, args.method, args.seed, results_dir(args))
    else:
        raise BenchError("give a run (folder or key prefix), or --task and --method.",
                         hint="e.g. `bench analyze attention --task mini/novel_shapes --method deep_share`.")
    report, written = api.analyze_attention(run_dir, args.examples, out_folder(args.out))
    for path in written:
        log.info("wrote %s", path)
    for name, share, positions in zip(report.layer_names, report.prefix_share.mean(axis=1),
                                      report.prefix_positions, strict=True):
        print(f"{name}: {positions} prefix positions, {100 * share:.1f} % of the attention mass on them")
    return 0
