"""The `bench` command: list, validate, run, show, leaderboard.

User errors (BenchError) print as one paragraph and exit with code 2; nothing stored is touched by them.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.spec import TaskSpec

log = logging.getLogger("bench")


def default_results_dir() -> Path:
    return Path(os.environ.get("BENCH_RESULTS", "results/runs"))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s",
                        stream=sys.stderr)
    logging.getLogger("timm").setLevel(logging.WARNING)
    try:
        result: int = args.func(args)
        return result
    except BenchError as exc:
        print("error: " + textwrap.fill(str(exc), width=100, break_long_words=False, break_on_hyphens=False),
              file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are stored; run the same command again to resume.", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        text = (f"could not write{where}: {exc.strerror or exc}. Nothing stored was changed: every file of the "
                "store and cache is written to a temp file and renamed into place, so the previous state is intact "
                "and the unfinished run is recomputed (or resumed from its last checkpoint) by the same command. "
                "Free space or fix the permissions, then run it again.")
        print("error: " + textwrap.fill(text, width=100, break_long_words=False, break_on_hyphens=False),
              file=sys.stderr)
        return 2


WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="peft-bench: benchmark PEFT methods reproducibly.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, results: bool = False) -> None:
        p.add_argument("--tasks-dir", type=Path, action="append", default=[], help="extra folder of task YAMLs")
        p.add_argument("--methods-dir", type=Path, action="append", default=[], help="extra folder of method files")
        if results:
            p.add_argument("--results", type=Path, default=None,
                           help="run store folder (default: $BENCH_RESULTS or results/runs)")

    p = sub.add_parser("list", help="list tasks, suites or methods")
    p.add_argument("what", choices=["tasks", "suites", "methods"])
    p.add_argument("--params", action="store_true",
                   help="methods: trained and stored parameters on --task's backbone (built without weights)")
    p.add_argument("--task", default=None, help="task for --params (default: ViT-B/16 with 100 classes)")
    common(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("validate", help="check every task/suite spec and method file")
    common(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="run the protocol (grid -> select on val -> final seeds -> test)")
    p.add_argument("--task", required=True, help="task or suite name (see `bench list tasks|suites`)")
    p.add_argument("--method", required=True, help="method name, comma-separated names, or 'all'")
    p.add_argument("--stage", choices=["grid", "final", "all"], default="all")
    p.add_argument("--seeds", type=_int_list, default=None, help="final seeds, e.g. 42,44 (default: the task's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="fix a grid axis or method hyper-parameter (repeatable), e.g. --set base_lr=0.5")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                   help="default: bf16 autocast on CUDA, fp32 on CPU")
    p.add_argument("--checkpoint-interval", type=float, default=120.0, metavar="SECONDS",
                   help="write a resume checkpoint at an epoch end when this much time has passed")
    p.add_argument("--dry-run", action="store_true", help="print the plan (runs, data, estimated cost) and stop")
    p.add_argument("--data-fraction", default=None, metavar="F[,F...]",
                   help="train grid and final runs on nested class-balanced subsets of the training data, e.g. "
                        "0.1,0.25,0.5,1.0 (val and test stay whole; 1.0 = the usual runs)")
    p.add_argument("--train-examples", type=_int_list, default=None, metavar="N[,N...]",
                   help="language tasks: train on N examples (a nested seeded subset; low-data settings), per value")
    p.add_argument("--num-tokens", type=_int_list, default=None, metavar="N[,N...]",
                   help="sweep the prompt / prefix length: the whole protocol once per value (fixes num_tokens)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model (inductor); recorded in each run's cost section")
    p.add_argument("--grid-prune", action="store_true",
                   help="successive halving over the grid on val (optuna); changes the protocol, so its runs are "
                        "marked and the leaderboard labels them")
    p.add_argument("--workers", default="1", metavar="N|auto",
                   help="run N worker processes that share the plan through the run store (auto: one per GPU)")
    p.add_argument("--shard", default=None, metavar="i/n",
                   help="run only shard i of n of the plan (split by run, stable across machines)")
    p.add_argument("--launcher", choices=["local", "slurm", "submitit-local"], default="local",
                   help="local processes (default), a Slurm job array through submitit, or submitit's local "
                        "executor (same code path as slurm, for testing)")
    p.add_argument("--slurm-jobs", type=int, default=None, help="array tasks (default: --workers)")
    p.add_argument("--slurm-partition", default=None)
    p.add_argument("--slurm-time", type=int, default=240, metavar="MINUTES", help="time limit per array task")
    p.add_argument("--slurm-gpus", type=int, default=1, help="GPUs per array task")
    p.add_argument("--slurm-parallelism", type=int, default=64, help="array tasks running at once")
    p.add_argument("--slurm-folder", type=Path, default=Path("results/slurm"), help="submitit logs and pickles")
    p.add_argument("--wait", action="store_true", help="slurm: wait for the array and print the summary")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # set by the launchers for their workers
    p.add_argument("--poll", type=float, default=5.0, help=argparse.SUPPRESS)  # seconds between worker passes
    common(p, results=True)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("perf", help="benchmarks: `bench perf methods` (step cost vs the frozen backbone), "
                       "`bench perf peft` (GPT-2 Deep-share step vs HF peft prefix tuning), "
                       "`bench perf leaderboard` (rebuild time from 10,000 synthetic runs)")
    p.add_argument("what", choices=["methods", "peft", "leaderboard", "data"])
    p.add_argument("--images", type=int, default=256, help="data: generated JPEGs to push through both paths")
    p.add_argument("--compare-precision", action="store_true",
                   help="methods: measure bf16 autocast and fp32 side by side and print the ratios")
    p.add_argument("--perf-dir", type=Path, default=Path("results/perf"),
                   help="where the figures are written as <what>.json (default results/perf)")
    p.add_argument("--runs-per-pair", type=int, default=25,
                   help="leaderboard: grid + final runs per (task, method); 20 tasks x 20 methods (default 25)")
    p.add_argument("--items", type=int, default=2000, help="leaderboard: test predictions per final run")
    p.add_argument("--project", default="vtab", metavar="SUITE",
                   help="methods: project the GPU-hours of this suite's whole protocol from the measured images/s "
                        "('' to skip; default vtab)")
    p.add_argument("--length", type=int, default=64, help="peft: tokens per sequence")
    p.add_argument("--task", default="mini/novel_shapes", help="task whose backbone and input size are used")
    p.add_argument("--method", default="all", help="comma-separated methods or 'all'")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=20, help="timed steps per method (median reported)")
    p.add_argument("--device", default=None)
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None)
    common(p)
    p.set_defaults(func=cmd_perf)

    p = sub.add_parser("doctor", help="check the environment (Python, torch/CUDA, Java, disk, data) and the store")
    common(p, results=True)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("data", help="real data: `bench data fetch vtab`, `bench data status`")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("fetch", help="put a data set in place (download, or --from a local copy)")
    q.add_argument("what", choices=["vtab"])
    q.add_argument("--from", dest="source", type=Path, default=None, help="a local vtab-1k.zip or its folder")
    q.add_argument("--dest", type=Path, default=None, help="default: ${BENCH_DATA}/vtab-1k")
    common(q)
    q.set_defaults(func=cmd_data_fetch)
    q = data_sub.add_parser("status", help="for each task: ready, missing, incomplete or corrupt, and what to do")
    q.add_argument("--task", default=None, help="task or suite (default: every task)")
    common(q)
    q.set_defaults(func=cmd_data_status)

    p = sub.add_parser("show", help="show one run record (a run folder, or a key prefix)")
    p.add_argument("run")
    p.add_argument("--json", action="store_true", help="print the whole record")
    common(p, results=True)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("score", help="score your own outputs with a language task's official metrics")
    p.add_argument("--task", required=True, help="language task whose metric suite and references to use")
    p.add_argument("--predictions", required=True, type=Path, help="one output per line, in the split's item order")
    p.add_argument("--references", type=Path, default=None,
                   help="references in the E2E metrics script's format (groups separated by blank lines); "
                   "default: the task's test split")
    p.add_argument("--split", default=None, help="the split the predictions are for (default: the final eval split)")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    common(p)
    p.set_defaults(func=cmd_score)

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
    common(p, results=True)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("study", help="studies: `bench study sample-efficiency` (score vs training fraction), "
                       "`bench study prefix-length` (score, parameters and cost vs prompt / prefix length)")
    p.add_argument("what", choices=["sample-efficiency", "prefix-length", "init"])
    p.add_argument("--words", default=" summarize, table-to-text, elephant",
                   help="init: comma-separated texts to initialise the prefix from (default ' summarize', "
                        "' table-to-text', ' elephant'; a leading space is kept as GPT-2 tokenises it)")
    p.add_argument("--examples", type=_int_list, default=[50, 100, 200, 500],
                   help="init: training-set sizes (default 50,100,200,500)")
    p.add_argument("--lengths", type=_int_list, default=[2, 10, 20, 100, 200],
                   help="prefix-length: num_tokens values (default 2,10,20,100,200)")
    p.add_argument("--seeds", type=_int_list, default=None, help="init: final seeds (default: the task's)")
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
    common(p, results=True)
    p.set_defaults(func=cmd_study)

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
    common(p, results=True)
    p.set_defaults(func=cmd_leaderboard)
    return parser


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise BenchError(f"--set expects KEY=VALUE, got {item!r}.")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, list | dict):
            raise BenchError(f"--set fixes one value, got {value!r} for {name.strip()}.",
                             hint="To search several values, put them in the task spec's protocol.grid.")
        out[name.strip()] = parsed
    return out


def _dirs(args: argparse.Namespace, name: str) -> tuple[Path, ...]:
    return tuple(getattr(args, name, []) or [])


def _results(args: argparse.Namespace) -> Path:
    return args.results if args.results is not None else default_results_dir()


# ---------------------------------------------------------------- commands


def cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from bench import registry

    if args.what == "methods" and args.params:
        return _list_method_params(args)
    if args.what == "methods":
        methods = registry.load_methods(_dirs(args, "methods_dir"))
        method_rows = []
        for name, cls in sorted(methods.items()):
            doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
            method_rows.append([name, cls.optimizer or "(task)", ", ".join(cls.HParams.model_fields) or "-", doc])
        print(tabulate(method_rows, headers=["method", "optimizer", "hyper-parameters", "description"]))
        return 0
    files = registry.spec_files(_dirs(args, "tasks_dir"))
    rows: list[list[object]] = []
    for name, entry in sorted(files.items()):
        if entry.is_suite != (args.what == "suites"):
            continue
        if entry.is_suite:
            suite = registry.load_suite(entry.path, name)
            rows.append([name, len(suite.tasks), suite.description])
        else:
            task = registry.load_task(entry.path, name)
            kind = f"{task.data.num_classes} classes" if isinstance(task, TaskSpec) else f"{task.metric} metrics"
            rows.append([name, task.group or "", kind, task.description])
    headers = ["suite", "tasks", "description"]
    if args.what == "tasks":
        headers = ["task", "group", "output", "description"]
    print(tabulate(rows, headers=headers))
    return 0


def _list_method_params(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from bench import registry
    from bench.params import count_parameters
    from bench.spec import DataSpec, ImageSpec, TaskSpec

    if args.task:
        task = registry.load_task_by_name(args.task, _dirs(args, "tasks_dir"))
    else:
        data = DataSpec(source="image_list", root="-", splits={s: "-" for s in ("train", "val", "test")},
                        num_classes=100, images=ImageSpec(resize=(224, 224)))
        task = TaskSpec(name="vit-b16 (100 classes)", data=data)
    rows = []
    for name, cls in sorted(registry.load_methods(_dirs(args, "methods_dir")).items()):
        fixed = task.protocol.methods[name].hparams if name in task.protocol.methods else {}
        count = count_parameters(task, cls, fixed)
        rows.append([name, f"{count.trained:,}", f"{count.stored:,}", f"{count.trained_percent:.3f}",
                     f"{count.head:,}"])
    output = f"{task.data.num_classes} classes" if isinstance(task, TaskSpec) else "language model head"
    print(f"{task.name}: backbone {task.backbone.model} ({count.backbone:,} parameters), "
          f"{output}; method defaults{' + task overrides' if args.task else ''}")
    print(tabulate(rows, headers=["method", "trained", "stored (inference)", "trained % of backbone", "head"],
                   disable_numparse=True))
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    from bench import registry
    from bench.perf.methods import measure, report
    from bench.train.run import configure_threads, default_device

    if args.what == "leaderboard":
        from bench.perf import leaderboard as perf_leaderboard

        if args.runs_per_pair < 6:
            raise BenchError("--runs-per-pair must be at least 6 (5 final seeds and one grid run).")
        timing = perf_leaderboard.measure(grid=args.runs_per_pair - 5, items=args.items)
        print(perf_leaderboard.report(timing))
        _write_perf(args, {"runs": timing.runs, "final_runs": timing.final_runs, "items": timing.items,
                           "seconds": timing.seconds, "total_s": timing.total, "goal_s": perf_leaderboard.GOAL_S})
        return 0
    if args.what == "peft":
        from bench.perf.peft import compare
        from bench.perf.peft import report as peft_report

        configure_threads()
        device = default_device(args.device)
        batch = args.batch if args.batch != 32 else 8
        result = compare(batch=batch, length=args.length, steps=args.steps, device=device)
        print(peft_report(result, batch, args.length, device))
        _write_perf(args, {"device": str(device), "batch": batch, "length": args.length,
                           "result": {k: v for k, v in vars(result).items() if isinstance(v, int | float | str)}})
        return 0
    task = registry.load_task_by_name(args.task, _dirs(args, "tasks_dir"))
    if not isinstance(task, TaskSpec):
        raise BenchError(f"`bench perf {args.what}` measures vision tasks; '{task.name}' is a language task.",
                         hint="Use `bench perf peft` for the GPT-2 comparison with HF peft.")
    if args.what == "data":
        from bench.perf import data as perf_data

        configure_threads()
        device = default_device(args.device)
        precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
        method_name = "deep_share" if args.method == "all" else args.method.split(",")[0].strip()
        method = registry.get_method(method_name, _dirs(args, "methods_dir"))
        cost = perf_data.measure(task, method, args.batch, args.images, device, precision)
        print(perf_data.report(task, cost, device, precision))
        _write_perf(args, {"task": task.name, "device": str(device), "precision": precision, **vars(cost),
                           "wait_share_cached": cost.wait_share(cost.cached_images_per_s),
                           "wait_share_decode": cost.wait_share(cost.decode_images_per_s)})
        return 0
    methods = registry.load_methods(_dirs(args, "methods_dir"))
    names = sorted(methods) if args.method == "all" else [m.strip() for m in args.method.split(",")]
    classes = [registry.get_method(n, _dirs(args, "methods_dir")) for n in names]
    configure_threads()
    device = default_device(args.device)
    precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    base, costs = measure(task, classes, args.batch, args.steps, device, precision)
    print(report(task, base, costs, args.batch, device, precision))
    precision_ratios: dict[str, float] = {}
    if args.compare_precision:
        from bench.perf.methods import precision_report

        other = "fp32" if precision == "bf16" else "bf16"
        _, other_costs = measure(task, classes, args.batch, args.steps, device, other)
        fp32, bf16 = (costs, other_costs) if precision == "fp32" else (other_costs, costs)
        print(precision_report(fp32, bf16))
        precision_ratios = {b.method: b.seconds / f.seconds for f, b in zip(fp32, bf16, strict=True)}
    if args.project:
        from bench.perf.methods import project_protocol, projection_report

        _, suite_tasks = registry.resolve_tasks(args.project, _dirs(args, "tasks_dir"))
        vision = [t for t in suite_tasks if isinstance(t, TaskSpec)]
        by_name = dict(zip(names, classes, strict=True))
        projections = {c.method: project_protocol(vision, by_name[c.method], args.batch / c.seconds,
                                                  args.batch / c.eval_seconds) for c in costs}
        suite_backbone = vision[0].backbone.model if vision else "?"
        print(projection_report(args.project, task.backbone.model, device, precision, projections, suite_backbone))
    payload: dict[str, Any] = {
        "task": task.name, "device": str(device), "precision": precision, "batch": args.batch,
        "reference_ms": base * 1000,
        "methods": {c.method: {"step_ms": c.seconds * 1000, "ratio": c.ratio, "eval_ms": c.eval_seconds * 1000,
                               "train_images_per_s": args.batch / c.seconds,
                               "eval_images_per_s": args.batch / c.eval_seconds if c.eval_seconds else None,
                               "peak_memory_bytes": c.peak_memory_bytes,
                               "bf16_over_fp32": precision_ratios.get(c.method)} for c in costs}}
    if args.project:
        payload["projection"] = {"suite": args.project, **{m: vars(p) for m, p in projections.items()}}
    _write_perf(args, payload)
    return 0


def _write_perf(args: argparse.Namespace, payload: dict[str, Any]) -> None:
    """results/perf/<what>.json: the figures of the last `bench perf <what>`, with when and where."""
    import datetime as dt
    import platform

    from bench.store import atomic_write_json

    record = {"what": args.what, "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "platform": platform.platform(), **payload}
    path = args.perf_dir / f"{args.what}.json"
    atomic_write_json(path, record)
    log.info("wrote %s", path)


def cmd_validate(args: argparse.Namespace) -> int:
    from bench import registry

    files = registry.spec_files(_dirs(args, "tasks_dir"))
    tasks = suites = 0
    for name, entry in sorted(files.items()):
        if entry.is_suite:
            registry.resolve_tasks(name, _dirs(args, "tasks_dir"))
            suites += 1
        else:
            registry.load_task(entry.path, name)
            tasks += 1
    methods = registry.load_methods(_dirs(args, "methods_dir"))
    print(f"ok: {tasks} tasks, {suites} suites, {len(methods)} methods")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bench import registry

    _, tasks = registry.resolve_tasks(args.task, _dirs(args, "tasks_dir"))
    methods_dirs = _dirs(args, "methods_dir")
    if args.method == "all":
        method_classes = list(registry.load_methods(methods_dirs).values())
    else:
        method_classes = [registry.get_method(m.strip(), methods_dirs) for m in args.method.split(",") if m.strip()]
    overrides = _parse_overrides(args.overrides)
    stages = ("grid", "final") if args.stage == "all" else (args.stage,)
    if args.dry_run:
        from bench.plan import print_plan

        print_plan(tasks, method_classes, stages, args.seeds, overrides, args.device,
                   skip_foreign=args.method == "all")
        return 0

    from bench.ops import launch
    from bench.store import RunStore
    from bench.train.protocol import Shard, run_protocol
    from bench.train.run import RunOptions, configure_threads, default_device

    _refuse_missing_data(tasks)
    shard = Shard(*launch.parse_fraction(args.shard, "--shard")) if args.shard else None
    workers = launch.resolve_workers(args.workers)
    # Workers get the same command plus --worker i/n, which keeps them from launching workers of their own.
    argv = list(sys.argv[1:] if args.argv is None else args.argv)
    if args.launcher != "local" and args.worker is None:
        if not _submit_array(args, argv, workers):
            return 0
    elif workers > 1 and args.worker is None:
        import torch

        code = launch.spawn_workers(argv, workers, torch.cuda.device_count())
        if code != 0:
            return code
        log.info("all %d workers finished; collecting the results", workers)
    configure_threads()
    device = default_device(args.device)
    precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    options = RunOptions(device=device, precision=precision, checkpoint_interval_s=args.checkpoint_interval,
                         progress=sys.stderr.isatty() and args.worker is None,
                         compile="inductor" if args.compile else None)
    store = RunStore(_results(args))
    log.info("run store: %s; device: %s (%s)", store.root, device, precision)
    fractions: list[float | None] = [None]
    if args.data_fraction:
        from bench.data.subsets import parse_fractions

        fractions = [f if f < 1.0 else None for f in parse_fractions(args.data_fraction)]
    lengths: list[int | None] = list(args.num_tokens) if args.num_tokens else [None]
    if args.num_tokens:
        if any(n < 1 for n in args.num_tokens):
            raise BenchError("--num-tokens values must be positive.")
        lacking = [m.name for m in method_classes if "num_tokens" not in m.HParams.model_fields]
        if lacking and args.method != "all":
            raise BenchError(f"--num-tokens sweeps prompt / prefix lengths; {', '.join(lacking)} has no num_tokens.",
                             hint="Use it with VPT or prefix methods (no_share, simple_share, deep_share, ...).")
        method_classes = [m for m in method_classes if "num_tokens" in m.HParams.model_fields]
    sizes: list[int | None] = list(args.train_examples) if args.train_examples else [None]
    if args.train_examples and min(args.train_examples) < 1:
        raise BenchError("--train-examples values must be positive.")
    # One protocol per task x method x study variant (data fraction, prompt length, training-set size).
    variants = [(f, n, e) for f in fractions for n in lengths for e in sizes]
    pairs = [(task, method_cls, variant) for variant in variants for task in tasks for method_cls in method_classes
             if not (args.method == "all" and _modality(task) not in method_cls.modalities)]
    results = {}

    def run_pair(pair: tuple[Any, Any, tuple[float | None, int | None, int | None]]) -> bool:
        task, method_cls, (fraction, length, size) = pair
        fixed = overrides if length is None else {**overrides, "num_tokens": length}
        result = run_protocol(task, method_cls, store, options, stages, args.seeds, fixed, shard,
                              args.grid_prune, fraction, size)
        results[(task.name, method_cls.name, fraction, length, size)] = result
        return result.complete

    if args.worker is not None:
        index, _ = launch.parse_fraction(args.worker, "--worker")
        launch.work_until_done(pairs, run_pair, offset=index, poll_s=args.poll)
        return 0
    for pair in pairs:
        run_pair(pair)
    if "final" in stages:
        for task, method_cls, (fraction, length, size) in pairs:
            line = results[(task.name, method_cls.name, fraction, length, size)].summary()
            extra = []
            if fraction is not None:
                extra.append(f"data fraction {fraction:g}")
            if length is not None:
                extra.append(f"num_tokens {length}")
            if size is not None:
                extra.append(f"{size} training examples")
            print(line + (f" ({', '.join(extra)})" if extra else ""))
    return 0


def _submit_array(args: argparse.Namespace, argv: list[str], workers: int) -> bool:
    """Submit the workers as a job array; True when the array has finished (waited for) here."""
    try:
        from bench import slurm
    except ImportError as exc:
        raise BenchError("--launcher slurm needs submitit, which is not installed.",
                         hint="pip install 'peft-bench[slurm]' (or pip install submitit).") from exc
    jobs = args.slurm_jobs or workers
    if jobs < 1 or args.slurm_time < 1 or args.slurm_gpus < 0 or args.slurm_parallelism < 1:
        raise BenchError("--slurm-jobs, --slurm-time and --slurm-parallelism must be positive, --slurm-gpus >= 0.")
    local = args.launcher == "submitit-local"
    settings = slurm.SlurmSettings(jobs=jobs, folder=args.slurm_folder.resolve(), partition=args.slurm_partition,
                                   time_min=args.slurm_time, gpus_per_job=0 if local else args.slurm_gpus,
                                   parallelism=args.slurm_parallelism, wait=args.wait or local)
    slurm.submit(argv, settings, cluster="local" if local else None)
    if not settings.wait:
        print(f"submitted {jobs} array tasks; logs in {settings.folder}. Run the same command again (or "
              "`bench leaderboard`) when they have finished.")
    return settings.wait


def _modality(task: Any) -> str:
    return "vision" if isinstance(task, TaskSpec) else "language"


def _refuse_missing_data(tasks: list[Any]) -> None:
    """Before hours of work: every task without an automatic `prepare` must have its data in place."""
    from bench.data.splits import missing_data

    lacking = [(t, why) for t in tasks
               if isinstance(t, TaskSpec) and not t.data.prepare and (why := missing_data(t.data))]
    if len(lacking) == 1:
        task, why = lacking[0]
        raise BenchError(f"task '{task.name}': data not found ({why}).", field="data.root", hint=task.data.hint())
    if lacking:
        lines = "; ".join(f"{t.name} ({why})" for t, why in lacking)
        hints = " ".join(dict.fromkeys(t.data.hint() for t, _ in lacking))
        raise BenchError(f"{len(lacking)} tasks have no data: {lines}.", field="data.root",
                         hint=f"{hints} `bench data status` shows every task's state.")


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from bench import registry
    from bench.data.fetch import check_task, default_vtab_dest, fetch_vtab

    dest = fetch_vtab(args.dest or default_vtab_dest(), args.source)
    log.info("VTAB-1k is at %s", dest)
    _, tasks = registry.resolve_tasks("vtab", _dirs(args, "tasks_dir"))
    if args.dest is not None:
        tasks = [t.model_copy(update={"data": t.data.model_copy(update={"root": str(dest / Path(t.data.root).name)})})
                 for t in tasks]
    statuses = [check_task(t) for t in tasks]
    _print_statuses(statuses)
    if args.dest is not None:
        print(f"\nThe task specs read ${{BENCH_DATA}}/vtab-1k: set BENCH_DATA={dest.parent} (or move {dest}).")
    return 0 if all(s.state == "ready" for s in statuses) else 2


def cmd_doctor(args: argparse.Namespace) -> int:
    from bench.ops import doctor
    from bench.spec import default_cache_dir

    checks = doctor.run_checks(_results(args), default_cache_dir(), _dirs(args, "tasks_dir"))
    for check in checks:
        print(textwrap.fill(f"{check.status:<5} {check.name}: {check.detail}", 110, subsequent_indent=" " * 6))
        for item in check.items:
            print(f"        - {item}")
        if check.fix:
            print(textwrap.fill(f"fix: {check.fix}", 110, initial_indent=" " * 6, subsequent_indent=" " * 11))
    failed = [c.name for c in checks if c.status == "FAIL"]
    print(f"\n{len(failed)} check(s) failed: {', '.join(failed)}." if failed else "\nNothing to fix.")
    return 1 if failed else 0


def cmd_data_status(args: argparse.Namespace) -> int:
    from bench import registry
    from bench.data.fetch import check_task

    if args.task:
        _, tasks = registry.resolve_tasks(args.task, _dirs(args, "tasks_dir"))
    else:
        files = registry.spec_files(_dirs(args, "tasks_dir"))
        tasks = [registry.load_task(f.path, n) for n, f in sorted(files.items()) if not f.is_suite]
    _print_statuses([check_task(t) for t in tasks])
    return 0


def _print_statuses(statuses: list[Any]) -> None:
    from tabulate import tabulate

    rows = [[s.task, s.state, textwrap.shorten(s.detail, 70), textwrap.shorten(s.fix, 80)] for s in statuses]
    print(tabulate(rows, headers=["task", "state", "detail", "what to do"]))
    todo: dict[str, list[str]] = {}
    for s in statuses:
        if s.fix and s.fix != "nothing":
            todo.setdefault(s.fix, []).append(s.task)
    for fix, names in todo.items():
        print(f"\n{', '.join(names)}:\n" + textwrap.fill(fix, 100, initial_indent="  ", subsequent_indent="  "))


def cmd_score(args: argparse.Namespace) -> int:
    from bench import registry

    task = registry.load_task_by_name(args.task, _dirs(args, "tasks_dir"))
    if isinstance(task, TaskSpec):
        raise BenchError(f"'{task.name}' is a vision task; `bench score` scores generated text.",
                         hint="Pick a language task (see `bench list tasks`).")
    from bench.metrics import read_e2e_references, read_lines, score

    hypotheses = read_lines(args.predictions)
    groups: list[str] | None = None
    if args.references is not None:
        references = read_e2e_references(args.references)
        source = str(args.references)
    else:
        from bench.data.text import read_text_split

        split = args.split or task.protocol.final_stage.eval
        items = read_text_split(task.data, split, task.name).items
        references = [list(i.references) for i in items]
        groups = [i.category for i in items] if any(i.category for i in items) else None
        source = f"{task.name} {split} split"
    if len(hypotheses) != len(references):
        raise BenchError(f"{len(hypotheses)} predictions for {len(references)} reference groups ({source}).",
                         file=args.predictions,
                         hint="Give one line per item, in the order of the references (one per unique input).")
    report = score(task.metric, hypotheses, references, groups)
    if args.json:
        print(json.dumps({"task": task.name, "references": source, "scores": report.scores,
                          "unavailable": report.unavailable, "convention": report.convention}, indent=1))
        return 0
    from tabulate import tabulate

    print(f"{task.name}: {len(hypotheses)} items scored against {source} ({report.convention})")
    print(tabulate([[k, f"{v:.4f}"] for k, v in report.scores.items()], headers=["metric", "score"],
                   disable_numparse=True))
    for name, reason in report.unavailable.items():
        print(f"{name}: not computed: {reason}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:

    _, record = _find_run(args)
    if args.json:
        print(json.dumps(record, indent=1, default=str))
        return 0
    run, metrics, params, cost = record["run"], record["metrics"], record["params"], record["cost"]
    metric = metrics.get("primary", "top1")
    score = "diverged" if record["status"] != "completed" else f"{metrics[metric]:.2f}"
    speed = (f"{(cost['train_images_per_s'] or 0):.0f} img/s" if "train_images_per_s" in cost
             else f"{(cost.get('train_tokens_per_s') or 0):.0f} target tokens/s")
    lines = [
        f"run {record['key']}  ({record['status']})",
        f"  task {run['task']}  method {run['method']}  stage {run['stage']}  seed {run['seed']}",
        f"  hparams {run['hparams']}",
        f"  optim {run['optim']}",
        f"  train on {'+'.join(run['train_splits'])}, {metrics['split']} {metric}: {score}",
        f"  trainable {params['trainable']:,} ({params['trainable_percent']:.3f}% of backbone), "
        f"head {params['head']:,}",
        f"  wall {cost['wall_s']:.1f} s on {cost['device']} ({cost['precision']}), "
        f"{speed}, peak memory {cost['peak_memory_bytes'] / 2**20:.0f} MiB",
        f"  created {record['created_at']}  commit {record['env'].get('git_commit')}",
    ]
    print("\n".join(lines))
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from bench.studies import attention as analysis

    run_dir = _leaderboard_run(args) if args.run is None else _find_run(args)[0]
    if args.examples < 1:
        raise BenchError("--examples must be at least 1.")
    report = analysis.analyze(run_dir, args.examples)
    for path in analysis.write(report, args.out or run_dir / "analysis"):
        log.info("wrote %s", path)
    for name, share, positions in zip(report.layer_names, report.prefix_share.mean(axis=1),
                                      report.prefix_positions, strict=True):
        print(f"{name}: {positions} prefix positions, {100 * share:.1f} % of the attention mass on them")
    return 0


def _leaderboard_run(args: argparse.Namespace) -> Path:
    """The final run of --task/--method (and --seed) that `bench leaderboard` shows, so analyses read that run."""
    from bench.leaderboard.collect import collect
    from bench.store import RunStore

    if not args.task or not args.method:
        raise BenchError("give a run (folder or key prefix), or --task and --method.",
                         hint="e.g. `bench analyze attention --task mini/novel_shapes --method deep_share`.")
    store = RunStore(_results(args))
    found = collect(store, [args.task], [args.method])
    cell = found.cells.get((args.task, args.method))
    if cell is None:
        reason = found.missing.get((args.task, args.method), "no runs")
        raise BenchError(f"no completed final run of {args.method} on {args.task} in {store.root} ({reason}).",
                         hint=f"Run it first: `bench run --task {args.task} --method {args.method}`.")
    seed = cell.seeds[0] if args.seed is None else args.seed
    if seed not in cell.seeds:
        raise BenchError(f"seed {seed} is not among the final seeds of {args.method} on {args.task} "
                         f"({', '.join(map(str, cell.seeds))}).", field="--seed")
    return Path(cell.run_dirs[cell.seeds.index(seed)])


def _find_run(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """`args.run` as a run folder, or the one stored run whose key starts with it: (folder, record)."""
    from bench.store import RunStore

    store = RunStore(_results(args))
    path = Path(args.run)
    record = store.load(path) if path.is_dir() else None
    if record is not None:
        return path, record
    matches = [r for r in store.records() if r["key"].startswith(args.run)]
    if len(matches) != 1:
        found = "no run matches" if not matches else f"{len(matches)} runs match"
        raise BenchError(f"{found} '{args.run}' in {store.root}.",
                         hint="Give a run folder or a longer key prefix (keys are the run folder names).")
    return Path(matches[0]["_dir"]), matches[0]


def _dir_options(args: argparse.Namespace) -> list[str]:
    """--tasks-dir / --methods-dir of this command, to pass on to the `bench run` a study starts."""
    options = [a for d in _dirs(args, "tasks_dir") for a in ("--tasks-dir", str(d))]
    return options + [a for d in _dirs(args, "methods_dir") for a in ("--methods-dir", str(d))]


def cmd_study(args: argparse.Namespace) -> int:
    from bench import registry
    from bench.data.subsets import parse_fractions
    from bench.store import RunStore
    from bench.studies import sample_efficiency as study

    fractions = parse_fractions(args.fractions)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.what == "prefix-length":
        return _study_prefix_length(args, methods)
    if args.what == "init":
        return _study_init(args, methods)
    if args.reference not in methods:
        raise BenchError(f"--reference {args.reference} is not among --methods ({', '.join(methods)}).")
    for name in methods:
        registry.get_method(name, _dirs(args, "methods_dir"))
    suite, specs = registry.resolve_tasks(args.task, _dirs(args, "tasks_dir"))
    extra = _dir_options(args)
    if not args.no_run:
        code = main(["run", "--task", args.task, "--method", ",".join(methods), "--data-fraction",
                     ",".join(f"{f:g}" for f in fractions), "--results", str(_results(args)), *extra])
        if code != 0:
            return code
    name = suite.name if suite is not None else specs[0].name
    report = study.build(RunStore(_results(args)), name, [t.name for t in specs], methods, args.reference, fractions,
                         resamples=args.resamples)
    for path in study.write(report, args.out):
        log.info("wrote %s", path)
    for method in methods:
        area = report.area[method]
        shown = "–" if area is None else f"{area:.2f}"
        print(f"{method}: area under the score-vs-fraction curve {shown} "
              f"(mean over fractions {', '.join(f'{f:g}' for f in fractions)})")
    return 0


def _study_init(args: argparse.Namespace, methods: list[str]) -> int:
    from bench import registry
    from bench.spec import TextTaskSpec
    from bench.store import RunStore
    from bench.studies import init as study_init

    if len(methods) != 1:
        raise BenchError("`bench study init` takes one method (--methods no_share).")
    method = methods[0]
    if "init_text" not in registry.get_method(method, _dirs(args, "methods_dir")).HParams.model_fields:
        raise BenchError(f"method '{method}' has no init_text hyper-parameter.", hint="Use --methods no_share.")
    task = registry.load_task_by_name(args.task, _dirs(args, "tasks_dir"))
    if not isinstance(task, TextTaskSpec):
        raise BenchError(f"`bench study init` initialises language prefixes; '{task.name}' is a vision task.")
    words = [" " + w.strip() for w in args.words.split(",") if w.strip()]  # GPT-2 words start with a space
    sizes = sorted(set(args.examples))
    if not sizes or sizes[0] < 1:
        raise BenchError("--examples must be positive integers, e.g. 50,100,200,500.")
    extra = _dir_options(args)
    if not args.no_run:
        for init in [None, *words]:
            fixed = [] if init is None else ["--set", f"init_text={json.dumps(init)}"]
            seeds = ["--seeds", ",".join(map(str, args.seeds))] if args.seeds else []
            code = main(["run", "--task", task.name, "--method", method, "--train-examples",
                         ",".join(map(str, sizes)), "--results", str(_results(args)), *fixed, *seeds, *extra])
            if code != 0:
                return code
    report = study_init.build(RunStore(_results(args)), task.name, method, words, sizes, resamples=args.resamples)
    for path in study_init.write(report, args.out):
        log.info("wrote %s", path)
    print(study_init.summary(report))
    return 0


def _study_prefix_length(args: argparse.Namespace, methods: list[str]) -> int:
    from bench import registry
    from bench.store import RunStore
    from bench.studies import prefix_length as study_length
    from bench.train.run import configure_threads, default_device

    lengths = sorted(set(args.lengths))
    if not lengths or min(lengths) < 1:
        raise BenchError("--lengths must be positive integers, e.g. 2,10,20.")
    classes = {name: registry.get_method(name, _dirs(args, "methods_dir"))
               for name in {*methods, *(n for _, n, _ in study_length.SHARE_TYPES)}}
    suite, specs = registry.resolve_tasks(args.task, _dirs(args, "tasks_dir"))
    extra = _dir_options(args)
    if not args.no_run:
        code = main(["run", "--task", args.task, "--method", ",".join(methods), "--num-tokens",
                     ",".join(map(str, lengths)), "--results", str(_results(args)), *extra])
        if code != 0:
            return code
    name = suite.name if suite is not None else specs[0].name
    report = study_length.build(RunStore(_results(args)), name, [t.name for t in specs], methods, lengths)
    vision = [t for t in specs if isinstance(t, TaskSpec)]
    if vision:
        configure_threads()
        device = default_device(args.device)
        study_length.measure_cost(report, vision[0], classes, args.cost_batch, args.cost_steps, device,
                                  "bf16" if device.type == "cuda" else "fp32")
    for path in study_length.write(report, args.out):
        log.info("wrote %s", path)
    print(study_length.render_markdown(report, None))
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from bench import leaderboard, registry
    from bench.store import RunStore

    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    unknown = [f for f in formats if f not in leaderboard.FORMATS]
    if unknown or not formats:
        raise BenchError(f"unknown --format {', '.join(unknown) or '(empty)'}.",
                         hint=f"Use a comma-separated list of {', '.join(leaderboard.FORMATS)}.")
    if args.out is not None and args.out.suffix.lstrip(".") in leaderboard.FORMATS:
        raise BenchError(f"--out takes a folder, not a file ({args.out}).",
                         hint=f"Use e.g. `--out {args.out.parent}`; files are named <suite>.<format>.")
    if not 0.0 < args.alpha < 1.0 or args.resamples < 1:
        raise BenchError("--alpha must lie in (0, 1) and --resamples be at least 1.")
    tasks, groups, name = None, None, "all"
    if args.task:
        suite, specs = registry.resolve_tasks(args.task, _dirs(args, "tasks_dir"))
        tasks = [t.name for t in specs]
        groups = suite.groups if suite is not None else None
        name = suite.name if suite is not None else specs[0].name
    methods = [m.strip() for m in args.method.split(",")] if args.method else None
    store = RunStore(_results(args))
    references = None
    if args.reference:
        from bench.reference import load_references

        references = load_references()
    settings = leaderboard.Settings(test=args.test, alpha=args.alpha, resamples=args.resamples)
    board = leaderboard.build(store, name, tasks, methods, groups, references, settings,
                              plots=args.out is not None and not args.no_plots)
    if not any(row.block == "runs" and any(e.value is not None for e in row.entries) for row in board.rows):
        scope = f" for '{args.task}'" if args.task else ""
        raise BenchError(f"no finished final runs in {store.root}{scope}.",
                         hint="Run `bench run --task ... --method ...` first.")
    from bench.leaderboard.markdown import render_markdown

    print(render_markdown(board))
    if args.out is not None:
        for path in leaderboard.write(board, args.out, formats):
            log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
