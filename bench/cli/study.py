"""`bench study sample-efficiency|prefix-length|init`: studies over the protocol, with their reports."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench.cli.common import add_dirs, int_list, methods_dirs, names, out_folder, results_dir, tasks_dirs
from bench.errors import BenchError

log = logging.getLogger("bench")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="studies: `bench study sample-efficiency` (score vs training fraction), "
                       "`bench study prefix-length` (score, parameters and cost vs prompt / prefix length), "
                       "`bench study init` (random vs word-initialised language prefixes)")
    p.add_argument("what", choices=["sample-efficiency", "prefix-length", "init"])
    p.add_argument("--words", default=" summarize, table-to-text, elephant",
                   help="init: comma-separated texts to initialise the prefix from (default ' summarize', "
                        "' table-to-text', ' elephant'; a leading space is kept as GPT-2 tokenises it)")
    p.add_argument("--examples", type=int_list, default=[50, 100, 200, 500],
                   help="init: training-set sizes (default 50,100,200,500)")
    p.add_argument("--lengths", type=int_list, default=[2, 10, 20, 100, 200],
                   help="prefix-length: num_tokens values (default 2,10,20,100,200)")
    p.add_argument("--seeds", type=int_list, default=None, help="init: final seeds (default: the task's)")
    p.add_argument("--cost-batch", type=int, default=8, help="prefix-length: batch of the cost measurement")
    p.add_argument("--cost-steps", type=int, default=5, help="prefix-length: timed steps per variant")
    p.add_argument("--device", default=None, help="prefix-length: device of the cost measurement")
    p.add_argument("--suite", "--task", dest="task", required=True, help="suite or task")
    p.add_argument("--methods", required=True, help="comma-separated methods, the reference among them")
    p.add_argument("--reference", default="deep_share",
                   help="sample-efficiency: method tested against the others (default deep_share)")
    p.add_argument("--fractions", default="0.1,0.25,0.5,1.0", help="training fractions (default 0.1,0.25,0.5,1.0)")
    p.add_argument("--out", type=Path, default=Path("results/studies"), help="report folder (default results/studies)")
    p.add_argument("--no-run", action="store_true", help="only write the report from the runs already stored")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--protocol", default="clean", metavar="NAME",
                   help="task profile of the study's runs (as `bench run --protocol`): clean (default), paper, demo; "
                        "a non-clean report is named <study>-<suite>-<protocol>")
    add_dirs(p, results=True)
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bench import api

    methods = names(args.methods)
    out_folder(args.out)
    common = {"results": results_dir(args), "out": args.out, "run_missing": not args.no_run,
              "tasks_dirs": tasks_dirs(args), "methods_dirs": methods_dirs(args), "protocol": args.protocol}
    if args.what == "prefix-length":
        from bench.studies import prefix_length

        report, written = api.study_prefix_length(args.task, methods, args.lengths, cost_batch=args.cost_batch,
                                                  cost_steps=args.cost_steps, device=args.device, **common)
        _wrote(written)
        print(prefix_length.render_markdown(report, None))
        return 0
    if args.what == "init":
        from bench.studies import init

        if len(methods) != 1:
            raise BenchError("`bench study init` takes one method (--methods no_share).")
        words = [" " + w.strip() for w in args.words.split(",") if w.strip()]  # GPT-2 words start with a space
        report, written = api.study_init(args.task, methods[0], words, args.examples, seeds=args.seeds,
                                         resamples=args.resamples, **common)
        _wrote(written)
        print(init.summary(report))
        return 0
    from bench.data.subsets import parse_fractions

    fractions = parse_fractions(args.fractions)
    report, written = api.study_sample_efficiency(args.task, methods, reference=args.reference, fractions=fractions,
                                                  resamples=args.resamples, **common)
    _wrote(written)
    for method in methods:
        area = report.area[method]
        shown = "–" if area is None else f"{area:.2f}"
        print(f"{method}: area under the score-vs-fraction curve {shown} "
              f"(mean over fractions {', '.join(f'{f:g}' for f in fractions)})")
    return 0


def _wrote(paths: list[Path]) -> None:
    for path in paths:
        log.info("wrote %s", path)
