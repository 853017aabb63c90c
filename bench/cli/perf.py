"""`bench perf methods|language|data|peft|leaderboard`: benchmarks that print their figures as they are measured,
write the last run's to results/perf/<what>.json and, with --record DIR, DIR/<what>-<machine>.json + .md to commit."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from bench.cli.common import add_dirs, methods_dirs, names, tasks_dirs
from bench.errors import BenchError

CHOICES = ("task", "mini")  # bench.perf.measured.CHOICES, here so that `bench perf --help` imports no torch
LANGUAGE_METHODS = ("no_share", "simple_share", "deep_share", "lora", "full_ft")

log = logging.getLogger("bench")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("perf", help="benchmarks: methods (step cost vs the frozen backbone), language (GPT-2 / BART "
                       "training step and beam search), data (decode-once pipeline), peft (GPT-2 Deep-share vs HF "
                       "peft), leaderboard (rebuild time)")
    perf_sub = p.add_subparsers(dest="what", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--perf-dir", type=Path, default=Path("results/perf"),
                       help="where the figures are written as <what>.json (default results/perf)")
        q.add_argument("--record", type=Path, default=None, metavar="DIR",
                       help="also write DIR/<what>-<machine>.json and .md, with the machine's description, to commit "
                       "(the project keeps them in results/measurements/perf)")

    def backbone(q: argparse.ArgumentParser) -> None:
        q.add_argument("--backbone", choices=CHOICES, default="task",
                       help="task: the task's own backbone with random weights (default; nothing is downloaded); "
                       "mini: the mini suites' backbone of the same kind, a fast check")

    def device(q: argparse.ArgumentParser) -> None:
        q.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
        q.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                       help="default: bf16 autocast on CUDA, fp32 on CPU")

    q = perf_sub.add_parser("methods", help="one training step of each method vs the frozen backbone, one method at "
                            "a time, and the projected hours of a suite's protocol")
    q.add_argument("--task", default="vtab/cifar100",
                   help="vision task whose backbone, input size and protocol (batch size, hyper-parameters) are used")
    backbone(q)
    q.add_argument("--method", default="all", help="comma-separated methods or 'all'")
    q.add_argument("--batch", type=int, default=None,
                   help="batch size of the measured steps (default: the task protocol's, per method)")
    q.add_argument("--steps", type=int, default=20, help="timed steps per method (median reported)")
    q.add_argument("--warmup", type=int, default=3, help="untimed steps per method before timing")
    q.add_argument("--compare-precision", action="store_true",
                   help="measure bf16 autocast and fp32 side by side and print the ratios")
    q.add_argument("--project", default="vtab", metavar="SUITE",
                   help="project the hours of this suite's whole protocol from the measured rates "
                        "('' to skip; default vtab)")
    device(q)
    common(q)
    add_dirs(q)
    q.set_defaults(func=methods)

    q = perf_sub.add_parser("language", help="a training step and a beam-search decode of each method at a language "
                            "task's real shapes (GPT-2 medium, BART-large; random weights), with projected hours")
    q.add_argument("--task", default="nlg/e2e,nlg/xsum", help="comma-separated language tasks")
    backbone(q)
    q.add_argument("--method", default=",".join(LANGUAGE_METHODS), help="comma-separated methods")
    q.add_argument("--batch", type=int, default=None, help="training batch (default: the task protocol's)")
    q.add_argument("--decode-batch", type=int, default=None,
                   help="inputs per beam-search call (default: the task's generation.batch_size)")
    q.add_argument("--source-tokens", type=int, default=None,
                   help="source tokens per example (default: measured from the data, else typical)")
    q.add_argument("--target-tokens", type=int, default=None, help="target tokens per example (as --source-tokens)")
    q.add_argument("--steps", type=int, default=3, help="timed training steps per method (median reported)")
    q.add_argument("--warmup", type=int, default=1, help="untimed training steps (and one untimed decode) first")
    q.add_argument("--decodes", type=int, default=1, help="timed beam-search calls per method (median reported)")
    q.add_argument("--set", action="append", default=[], metavar="METHOD.NAME=VALUE",
                   help="change a hyper-parameter for the measurement (VALUE null: the method's default), e.g. "
                   "no_share.init_text=null when GPT-2's tokenizer is not on this machine; repeatable")
    device(q)
    common(q)
    add_dirs(q)
    q.set_defaults(func=language)

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

    q = perf_sub.add_parser("cli", help="CPU time of the everyday answers (help, listings, validate, input errors), "
                            "each in a fresh process")
    q.add_argument("--repeats", type=int, default=3, help="fresh processes per question (median; default 3)")
    common(q)
    q.set_defaults(func=cli_answers)

    q = perf_sub.add_parser("leaderboard", help="rebuild time of a leaderboard from 10,000 synthetic runs")
    q.add_argument("--runs-per-pair", type=int, default=25,
                   help="grid + final runs per (task, method); 20 tasks x 20 methods (default 25)")
    q.add_argument("--items", type=int, default=2000, help="test predictions per final run")
    common(q)
    q.set_defaults(func=leaderboard)


def methods(args: argparse.Namespace) -> int:
    from bench import api, registry
    from bench.perf.measured import measured_task
    from bench.perf.methods import (
        measure,
        precision_report,
        project_protocol,
        projection_report,
        report_header,
        report_row,
    )
    from bench.train.device import configure_threads, default_device, default_precision
    from bench.train.modality import of_modality

    _positive(args, "batch", "steps")
    task = _vision_task(args)
    measured, note = measured_task(task, args.backbone, tasks_dirs(args))
    classes = api.methods(("all",) if args.method == "all" else names(args.method), methods_dirs(args))
    classes = sorted((c for c in classes if task.modality in c.modalities), key=lambda c: c.name)
    configure_threads()
    torch_device = default_device(args.device)
    precision = default_precision(args.precision, torch_device.type)
    machine = describe_machine(torch_device)
    lines = [report_header(measured, note, torch_device, precision)]
    _say(lines[-1])

    def show(cost: Any) -> None:
        lines.append(report_row(cost))
        _say(lines[-1])

    base, costs = measure(measured, classes, args.batch, args.steps, torch_device, precision, warmup=args.warmup,
                          on_cost=show)
    lines.append(f"reference (frozen backbone, gradient to the input): {base * 1000:.1f} ms/step")
    _say(lines[-1])
    precision_ratios: dict[str, float] = {}
    if args.compare_precision:
        other = "fp32" if precision == "bf16" else "bf16"
        lines.append(f"again in {other}:")
        _say(lines[-1])
        _, other_costs = measure(measured, classes, args.batch, args.steps, torch_device, other,
                                 warmup=args.warmup, on_cost=show)
        fp32, bf16 = (costs, other_costs) if precision == "fp32" else (other_costs, costs)
        lines.append(precision_report(fp32, bf16))
        _say(lines[-1])
        precision_ratios = {b.method: b.seconds / f.seconds for f, b in zip(fp32, bf16, strict=True)}
    payload: dict[str, Any] = {
        "task": task.name, "backbone": measured.backbone.model_dump(mode="json"), "backbone_note": note,
        "device": str(torch_device), "precision": precision, "batch": args.batch, "reference_ms": base * 1000,
        "methods": {c.method: {"step_ms": c.seconds * 1000, "ratio": c.ratio, "eval_ms": c.eval_seconds * 1000,
                               "batch": c.batch, "reference_ms": c.reference_seconds * 1000,
                               "train_images_per_s": c.batch / c.seconds,
                               "eval_images_per_s": c.batch / c.eval_seconds if c.eval_seconds else None,
                               "head_ms": c.head_seconds * 1000 if c.head_seconds is not None else None,
                               "head_batch": c.head_batch or None,
                               "setup_s": c.setup_seconds, "peak_memory_bytes": c.peak_memory_bytes,
                               "trainable": c.trainable, "stored": c.stored, "hparams": c.hparams,
                               "bf16_over_fp32": precision_ratios.get(c.method)} for c in costs}}
    if args.project:
        from bench.train.protocol import method_settings

        _, suite_tasks = registry.resolve_tasks(args.project, tasks_dirs(args))
        vision = of_modality(suite_tasks, task.modality)
        by_name = {c.name: c for c in classes}
        projections = {c.method: project_protocol(
            vision, by_name[c.method], c.batch / c.seconds, c.batch / c.eval_seconds,
            c.head_examples_per_s, c.setup_seconds) for c in costs}
        batches = {c.method: (c.batch, method_settings(task, by_name[c.method]).batch_size) for c in costs}
        suite_backbone = vision[0].backbone.model if vision else "?"
        lines.append(projection_report(args.project, measured.backbone.model, torch_device, precision, projections,
                                       suite_backbone, batches))
        _say(lines[-1])
        first = next(iter(projections.values()), None)
        payload["projection"] = {"suite": args.project, **{m: _without_sizes(p) for m, p in projections.items()}}
        payload["projection_split_sizes"] = first.sizes if first else {}  # what the projection counted, per task
    _write(args, machine, payload, "\n".join(lines))
    return 0


def language(args: argparse.Namespace) -> int:
    from bench import api, registry
    from bench.backbones import build_backbone
    from bench.perf import language as perf_language
    from bench.perf.measured import measured_task
    from bench.perf.projection import project_language
    from bench.train.device import configure_threads, default_device, default_precision
    from bench.train.modality import require
    from bench.train.protocol import method_settings

    _positive(args, "batch", "decode_batch", "source_tokens", "target_tokens", "steps", "decodes")
    overrides = _method_overrides(args.set)
    classes = api.methods(names(args.method), methods_dirs(args))
    tasks = [registry.load_task_by_name(name, tasks_dirs(args)) for name in names(args.task)]
    for task in tasks:
        require(task, "language", "`bench perf language` measures language tasks (`bench perf methods`: vision)")
    configure_threads()
    torch_device = default_device(args.device)
    precision = default_precision(args.precision, torch_device.type)
    machine = describe_machine(torch_device)
    lines: list[str] = []
    results: dict[str, Any] = {}
    for task in tasks:
        measured, note = measured_task(task, args.backbone, tasks_dirs(args))
        applicable = [c for c in classes if task.modality in c.modalities]
        entries = perf_language.plans(task, applicable, args.batch, overrides)
        with _seeded():
            pristine = build_backbone(measured.backbone)

        def shape_of(entry: Any, positions: int, task: Any = task, pristine: Any = pristine) -> Any:
            return perf_language.choose_shape(task, pristine, entry.batch, args.decode_batch, args.source_tokens,
                                              args.target_tokens, positions)

        lines.append(perf_language.report_header(measured, note, shape_of(entries[0], 0), torch_device, precision)
                     if entries else f"{task.name}: no language method among {args.method}")
        _say(lines[-1])

        def show(cost: Any) -> None:
            lines.append(perf_language.report_row(cost))
            _say(lines[-1])

        costs = perf_language.measure(task, entries, pristine, shape_of, args.steps, args.decodes, torch_device,
                                      precision, warmup=args.warmup, on_cost=show)
        del pristine, shape_of  # the next task's backbone is built without this one in memory
        by_name = {c.name: c for c in applicable}
        measured_costs = [c for c in costs if c.skipped is None]
        projections = {c.method: project_language(task, by_name[c.method], c.train_examples_per_s,
                                                  c.decode_items_per_s, c.setup_seconds) for c in measured_costs}
        if projections:
            lines.append(f"projected {task.name} protocol (full grid, every final seed, every decode) on "
                         f"{torch_device} {precision}, from the rates measured above:")
            _say(lines[-1])
            for cost in measured_costs:
                protocol_batch = method_settings(task, by_name[cost.method]).batch_size
                lines.append(perf_language.projection_line(cost.method, projections[cost.method], cost.shape.batch,
                                                           protocol_batch))
                _say(lines[-1])
            unknown = sorted({u for p in projections.values() for u in p.unknown_sizes})
            if unknown:
                lines.append(f"  left out (sizes unknown until the data is there): {', '.join(unknown)}")
                _say(lines[-1])
        results[task.name] = {
            "backbone": measured.backbone.model_dump(mode="json"), "backbone_note": note,
            "methods": {c.method: {"skipped": c.skipped, "hparams": c.hparams, "shape": vars(c.shape),
                                   **({} if c.skipped else {
                                       "step_ms": c.step_seconds * 1000, "train_tokens_per_s": c.train_tokens_per_s,
                                       "train_examples_per_s": c.train_examples_per_s,
                                       "decode_s": c.decode_seconds, "decode_tokens_per_s": c.decode_tokens_per_s,
                                       "decode_items_per_s": c.decode_items_per_s,
                                       "peak_train_bytes": c.peak_train_bytes, "peak_decode_bytes": c.peak_decode_bytes,
                                       "setup_s": c.setup_seconds, "trainable": c.trainable, "stored": c.stored})}
                        for c in costs},
            "projection": {m: _without_sizes(p) for m, p in projections.items()},
            "split_sizes": next(iter(projections.values())).sizes.get(task.name, {}) if projections else {}}
    _write(args, machine, {"device": str(torch_device), "precision": precision, "tasks": results}, "\n".join(lines))
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
    text = perf_data.report(task, cost, torch_device, precision)
    _say(text)
    write(args, {"task": task.name, "device": str(torch_device), "precision": precision, **vars(cost),
                 "wait_share_cached": cost.wait_share(cost.cached_images_per_s),
                 "wait_share_decode": cost.wait_share(cost.decode_images_per_s)}, torch_device, text)
    return 0


def peft(args: argparse.Namespace) -> int:
    from bench.perf.peft import compare
    from bench.perf.peft import report as peft_report
    from bench.train.device import configure_threads, default_device

    configure_threads()
    torch_device = default_device(args.device)
    result = compare(batch=args.batch, length=args.length, steps=args.steps, device=torch_device)
    text = peft_report(result, args.batch, args.length, torch_device)
    _say(text)
    write(args, {"device": str(torch_device), "batch": args.batch, "length": args.length,
                 "result": {k: v for k, v in vars(result).items() if isinstance(v, int | float | str)}},
          torch_device, text)
    return 0


def leaderboard(args: argparse.Namespace) -> int:
    from bench.perf import leaderboard as perf_leaderboard

    if args.runs_per_pair < 6:
        raise BenchError("--runs-per-pair must be at least 6 (5 final seeds and one grid run).")
    timing = perf_leaderboard.measure(grid=args.runs_per_pair - 5, items=args.items)
    text = perf_leaderboard.report(timing)
    _say(text)
    write(args, {"runs": timing.runs, "final_runs": timing.final_runs, "items": timing.items,
                 "seconds": timing.seconds, "total_s": timing.total, "goal_s": perf_leaderboard.GOAL_S}, None, text)
    return 0


def cli_answers(args: argparse.Namespace) -> int:
    import platform

    from bench.perf import cli as perf_cli

    if args.repeats < 1:
        raise BenchError("--repeats must be at least 1.", field="--repeats")
    answers, cold = perf_cli.measure(args.repeats, emit=_say)
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    text = perf_cli.render_markdown(answers, cold, machine)
    write(args, {"answers": [vars(a) for a in answers], "cold_list_methods_cpu_s": cold,
                 "budget_s": perf_cli.BUDGET_S}, None, text)
    return 0


def _vision_task(args: argparse.Namespace) -> Any:
    from bench import registry
    from bench.train.modality import require

    task = registry.load_task_by_name(args.task, tasks_dirs(args))
    require(task, "vision", f"`bench perf {args.what}` measures vision tasks (`bench perf peft` measures GPT-2)")
    return task


def write(args: argparse.Namespace, payload: dict[str, Any], device: Any = None, report: str | None = None) -> None:
    """results/perf/<what>.json: the figures of the last `bench perf <what>`, with when and where (and --record)."""
    import torch

    _write(args, describe_machine(device or torch.device("cpu")), payload, report)


def _write(args: argparse.Namespace, machine: dict[str, Any], payload: dict[str, Any], report: str | None) -> None:
    """The last run's figures in --perf-dir; with --record, the committed pair DIR/<what>-<machine>.json + .md."""
    import shlex
    import sys

    from bench.perf.record import envelope, write_last, write_record

    command = "bench " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["perf"] else \
        f"bench perf {args.what}"
    record = envelope(args.what, machine, command, payload)
    log.info("wrote %s", write_last(args.perf_dir, record))
    if getattr(args, "record", None) is not None and report is not None:
        for path in write_record(args.record, record, report):
            log.info("wrote %s", path)


def _without_sizes(projection: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(projection).items() if k != "sizes"}


def _say(text: str) -> None:
    print(text, flush=True)


def describe_machine(device: Any) -> dict[str, Any]:
    from bench.perf.record import describe_machine as describe

    return describe(device)


def _positive(args: argparse.Namespace, *flags: str) -> None:
    for flag in flags:
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            raise BenchError(f"--{flag.replace('_', '-')} must be at least 1, not {value}.",
                             field=f"--{flag.replace('_', '-')}", hint="Give a positive whole number.")


def _method_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """--set METHOD.NAME=VALUE (VALUE read as YAML; null restores the method's default)."""
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or not method or not name:
            raise BenchError(f"--set '{item}' is not METHOD.NAME=VALUE.", field="--set",
                             hint="For example --set no_share.init_text=null or --set deep_share.num_tokens=20.")
        out.setdefault(method, {})[name] = yaml.safe_load(text)
    return out


def _seeded() -> Any:
    """A fixed seed for the random weights, without touching the caller's random stream."""
    import contextlib

    import torch

    @contextlib.contextmanager
    def seeded() -> Any:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            yield

    return seeded()
