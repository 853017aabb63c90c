"""`bench perf methods|data|peft|leaderboard`: benchmarks that print ratios and write results/perf/<what>.json."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from bench.cli.common import add_dirs, methods_dirs, names, tasks_dirs
from bench.errors import BenchError

log = logging.getLogger("bench")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("perf", help="benchmarks: methods (step cost vs the frozen backbone), data (decode-once "
                       "pipeline), peft (GPT-2 Deep-share vs HF peft), leaderboard (rebuild time)")
    perf_sub = p.add_subparsers(dest="what", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--perf-dir", type=Path, default=Path("results/perf"),
                       help="where the figures are written as <what>.json (default results/perf)")

    def device(q: argparse.ArgumentParser) -> None:
        q.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
        q.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                       help="default: bf16 autocast on CUDA, fp32 on CPU")

    q = perf_sub.add_parser("methods", help="one training step of each method vs the frozen backbone")
    q.add_argument("--task", default="mini/novel_shapes", help="task whose backbone and input size are used")
    q.add_argument("--method", default="all", help="comma-separated methods or 'all'")
    q.add_argument("--batch", type=int, default=32)
    q.add_argument("--steps", type=int, default=20, help="timed steps per method (median reported)")
    q.add_argument("--compare-precision", action="store_true",
                   help="measure bf16 autocast and fp32 side by side and print the ratios")
    q.add_argument("--project", default="vtab", metavar="SUITE",
                   help="project the hours of this suite's whole protocol from the measured images/s "
                        "('' to skip; default vtab)")
    device(q)
    common(q)
    add_dirs(q)
    q.set_defaults(func=methods)

    q = perf_sub.add_parser("data", help="cached-tensor pipeline vs decoding JPEGs every epoch")
    q.add_argument("--task", default="mini/novel_shapes", help="task whose backbone and input size are used")
    q.add_argument("--method", default="deep_share", help="the method trained in the timed steps")
    q.add_argument("--batch", type=int, default=32)
    q.add_argument("--images", type=int, default=256, help="generated JPEGs to push through both paths")
    device(q)
    common(q)
    add_dirs(q)
    q.set_defaults(func=data)

    q = perf_sub.add_parser("peft", help="GPT-2 Deep-share step vs HF peft prefix tuning")
    q.add_argument("--batch", type=int, default=8)
    q.add_argument("--length", type=int, default=64, help="tokens per sequence")
    q.add_argument("--steps", type=int, default=20, help="timed steps (median reported)")
    q.add_argument("--device", default=None)
    common(q)
    q.set_defaults(func=peft)

    q = perf_sub.add_parser("leaderboard", help="rebuild time of a leaderboard from 10,000 synthetic runs")
    q.add_argument("--runs-per-pair", type=int, default=25,
                   help="grid + final runs per (task, method); 20 tasks x 20 methods (default 25)")
    q.add_argument("--items", type=int, default=2000, help="test predictions per final run")
    common(q)
    q.set_defaults(func=leaderboard)


def methods(args: argparse.Namespace) -> int:
    from bench import api, registry
    from bench.perf.methods import measure, precision_report, project_protocol, projection_report, report
    from bench.train.device import configure_threads, default_device, default_precision
    from bench.train.modality import of_modality

    task = _vision_task(args)
    classes = api.methods(("all",) if args.method == "all" else names(args.method), methods_dirs(args))
    classes = sorted(classes, key=lambda c: c.name)
    configure_threads()
    torch_device = default_device(args.device)
    precision = default_precision(args.precision, torch_device.type)
    base, costs = measure(task, classes, args.batch, args.steps, torch_device, precision)
    print(report(task, base, costs, args.batch, torch_device, precision))
    precision_ratios: dict[str, float] = {}
    if args.compare_precision:
        other = "fp32" if precision == "bf16" else "bf16"
        _, other_costs = measure(task, classes, args.batch, args.steps, torch_device, other)
        fp32, bf16 = (costs, other_costs) if precision == "fp32" else (other_costs, costs)
        print(precision_report(fp32, bf16))
        precision_ratios = {b.method: b.seconds / f.seconds for f, b in zip(fp32, bf16, strict=True)}
    payload: dict[str, Any] = {
        "task": task.name, "device": str(torch_device), "precision": precision, "batch": args.batch,
        "reference_ms": base * 1000,
        "methods": {c.method: {"step_ms": c.seconds * 1000, "ratio": c.ratio, "eval_ms": c.eval_seconds * 1000,
                               "train_images_per_s": args.batch / c.seconds,
                               "eval_images_per_s": args.batch / c.eval_seconds if c.eval_seconds else None,
                               "peak_memory_bytes": c.peak_memory_bytes,
                               "bf16_over_fp32": precision_ratios.get(c.method)} for c in costs}}
    if args.project:
        _, suite_tasks = registry.resolve_tasks(args.project, tasks_dirs(args))
        vision = of_modality(suite_tasks, "vision")
        by_name = {c.name: c for c in classes}
        projections = {c.method: project_protocol(vision, by_name[c.method], args.batch / c.seconds,  # type: ignore[arg-type]
                                                  args.batch / c.eval_seconds) for c in costs}
        suite_backbone = vision[0].backbone.model if vision else "?"
        print(projection_report(args.project, task.backbone.model, torch_device, precision, projections,
                                suite_backbone))
        payload["projection"] = {"suite": args.project, **{m: vars(p) for m, p in projections.items()}}
    write(args, payload)
    return 0


def data(args: argparse.Namespace) -> int:
    from bench import registry
    from bench.perf import data as perf_data
    from bench.train.device import configure_threads, default_device, default_precision

    task = _vision_task(args)
    configure_threads()
    torch_device = default_device(args.device)
    precision = default_precision(args.precision, torch_device.type)
    method = registry.get_method(args.method, methods_dirs(args))
    cost = perf_data.measure(task, method, args.batch, args.images, torch_device, precision)
    print(perf_data.report(task, cost, torch_device, precision))
    write(args, {"task": task.name, "device": str(torch_device), "precision": precision, **vars(cost),
                 "wait_share_cached": cost.wait_share(cost.cached_images_per_s),
                 "wait_share_decode": cost.wait_share(cost.decode_images_per_s)})
    return 0


def peft(args: argparse.Namespace) -> int:
    from bench.perf.peft import compare
    from bench.perf.peft import report as peft_report
    from bench.train.device import configure_threads, default_device

    configure_threads()
    torch_device = default_device(args.device)
    result = compare(batch=args.batch, length=args.length, steps=args.steps, device=torch_device)
    print(peft_report(result, args.batch, args.length, torch_device))
    write(args, {"device": str(torch_device), "batch": args.batch, "length": args.length,
                 "result": {k: v for k, v in vars(result).items() if isinstance(v, int | float | str)}})
    return 0


def leaderboard(args: argparse.Namespace) -> int:
    from bench.perf import leaderboard as perf_leaderboard

    if args.runs_per_pair < 6:
        raise BenchError("--runs-per-pair must be at least 6 (5 final seeds and one grid run).")
    timing = perf_leaderboard.measure(grid=args.runs_per_pair - 5, items=args.items)
    print(perf_leaderboard.report(timing))
    write(args, {"runs": timing.runs, "final_runs": timing.final_runs, "items": timing.items,
                 "seconds": timing.seconds, "total_s": timing.total, "goal_s": perf_leaderboard.GOAL_S})
    return 0


def _vision_task(args: argparse.Namespace) -> Any:
    from bench import registry
    from bench.train.modality import require

    task = registry.load_task_by_name(args.task, tasks_dirs(args))
    require(task, "vision", f"`bench perf {args.what}` measures vision tasks (`bench perf peft` measures GPT-2)")
    return task


def write(args: argparse.Namespace, payload: dict[str, Any]) -> None:
    """results/perf/<what>.json: the figures of the last `bench perf <what>`, with when and where."""
    import datetime as dt
    import platform

    from bench.store import atomic_write_json

    record = {"what": args.what, "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "platform": platform.platform(), **payload}
    path = args.perf_dir / f"{args.what}.json"
    atomic_write_json(path, record)
    log.info("wrote %s", path)
