"""Collect the GPU check's figures (scripts/gpu_check.sh) into one JSON file per machine, printing each as it comes.

Reads only what `bench perf methods|data` and `bench run` wrote; measures nothing and never imports torch, so each
call takes a fraction of a second. Usage (the script calls it; it is not meant to be run by hand):

    figures.py start SUMMARY --machine M --device-name D --size S --task T ...
    figures.py methods SUMMARY PRECISION PERF_JSON      # bench perf methods --precision PRECISION
    figures.py data SUMMARY PRECISION PERF_JSON         # bench perf data --precision PRECISION
    figures.py smoke SUMMARY RESULTS_DIR PROCESS_WALL_S # bench run ... --limit N --epochs E
    figures.py step SUMMARY NAME SECONDS TIMEOUT_S      # how long a step took
    figures.py finish SUMMARY TOTAL_S                   # check that every section is there; mark complete
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
PRECISIONS = ("bf16", "fp32")
# What a complete summary holds (tests/test_gpu_check.py checks the same keys).
SECTIONS = ("schema_version", "complete", "check", "methods", "bf16_over_fp32", "projection", "data", "smoke",
            "steps", "total_s")
METHOD_KEYS = ("step_ms", "ratio", "eval_ms", "train_images_per_s", "eval_images_per_s", "peak_memory_bytes",
               "projected_hours")
DATA_KEYS = ("images", "batch", "method", "step_s", "cached_images_per_s", "decode_images_per_s",
             "wait_share_cached", "wait_share_decode")
SMOKE_KEYS = ("task", "method", "precision", "device", "limit", "epochs", "train_examples", "eval_examples",
              "wall_s", "process_wall_s", "train_images_per_s", "peak_memory_bytes", "peak_memory_kind")
PEAK_MEMORY_NOTE = ("methods.*.per_method.*.peak_memory_bytes is torch.cuda.max_memory_allocated during that method's "
                    "steps, measured one method at a time (the previous model freed first) with the frozen "
                    "reference model's bytes subtracted; smoke.peak_memory_bytes is one run alone")
RANDOM_WEIGHTS = ("random (pretrained: false): the check runs with no network, so no hub weights; throughput and "
                  "memory do not depend on the weights, accuracy does and is not reported")

Summary = dict[str, Any]


def _load(path: Path) -> Summary:
    loaded: Summary = json.loads(path.read_text())
    return loaded


def _save(path: Path, summary: Summary) -> None:
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(json.dumps(summary, indent=1) + "\n")
    os.replace(staging, path)


def _mib(value: int | None) -> str:
    return "n/a (cpu)" if value is None else f"{value / 2**20:,.0f} MiB"


def _say(line: str) -> None:
    print(f"figure: {line}", flush=True)


def start(args: argparse.Namespace) -> None:
    summary: Summary = {
        "schema_version": SCHEMA_VERSION,
        "complete": False,
        "check": {"machine": args.machine, "device_name": args.device_name, "device": args.device,
                  "size": args.size, "task": args.task, "backbone": args.backbone, "image_size": args.image_size,
                  "batch": args.batch, "steps": args.steps, "methods": args.methods.split(","),
                  "weights": RANDOM_WEIGHTS, "peak_memory": PEAK_MEMORY_NOTE},
        "methods": {}, "bf16_over_fp32": {}, "projection": {}, "data": {}, "smoke": {}, "steps": {},
    }
    _save(args.summary, summary)
    _say(f"machine {args.machine} ({args.device_name}), {args.size} size: {args.backbone} at "
         f"{args.image_size}x{args.image_size}, batch {args.batch}; weights {RANDOM_WEIGHTS}")


def methods(args: argparse.Namespace) -> None:
    summary = _load(args.summary)
    perf = json.loads(args.perf_json.read_text())
    projection = perf.get("projection") or {}
    per_method = {}
    for name, figures in perf["methods"].items():
        hours = projection.get(name, {}).get("hours")
        per_method[name] = {**{k: figures.get(k) for k in METHOD_KEYS if k != "projected_hours"},
                            "projected_hours": hours}
        _say(f"{args.precision} {name}: {figures['train_images_per_s']:,.0f} train img/s, "
             f"{figures['eval_images_per_s'] or 0:,.0f} eval img/s, step {figures['step_ms']:.1f} ms = "
             f"{figures['ratio']:.3f}x the frozen backbone, peak {_mib(figures['peak_memory_bytes'])}"
             + (f", projected {projection.get('suite', '?')} protocol {hours:,.2f} h" if hours is not None else ""))
    summary["methods"][args.precision] = {"device": perf["device"], "reference_ms": perf["reference_ms"],
                                          "measured_at": perf.get("created_at"), "per_method": per_method}
    if projection:
        first = next((p for k, p in projection.items() if isinstance(p, dict)), {})
        summary["projection"] = {"suite": projection.get("suite"), "tasks": first.get("tasks"),
                                 "left_out": first.get("unknown_sizes", []),
                                 **{p: {m: f["projected_hours"] for m, f in s["per_method"].items()}
                                    for p, s in summary["methods"].items()}}
    if all(p in summary["methods"] for p in PRECISIONS):
        bf16, fp32 = (summary["methods"][p]["per_method"] for p in PRECISIONS)
        summary["bf16_over_fp32"] = {m: bf16[m]["step_ms"] / fp32[m]["step_ms"] for m in bf16 if m in fp32}
        for name, ratio in summary["bf16_over_fp32"].items():
            _say(f"bf16 / fp32 step time {name}: {ratio:.3f} (< 1: bf16 is faster)")
    _save(args.summary, summary)


def data(args: argparse.Namespace) -> None:
    summary = _load(args.summary)
    perf = json.loads(args.perf_json.read_text())
    summary["data"][args.precision] = {k: perf[k] for k in DATA_KEYS}
    _say(f"data {args.precision}: cached {perf['cached_images_per_s']:,.0f} img/s "
         f"({perf['wait_share_cached']:.1%} of a {perf['method']} step of {perf['step_s'] * 1000:.1f} ms), "
         f"decode every epoch {perf['decode_images_per_s']:,.0f} img/s ({perf['wait_share_decode']:.1%})")
    _save(args.summary, summary)


def smoke(args: argparse.Namespace) -> None:
    summary = _load(args.summary)
    records = sorted(args.results.rglob("run.json"))
    if len(records) != 1:
        sys.exit(f"gpu-check: expected one run record under {args.results}, found {len(records)}")
    record = json.loads(records[0].read_text())
    if record.get("status") != "completed":
        sys.exit(f"gpu-check: the smoke run's record says status {record.get('status')!r}: {records[0]}")
    run, cost, counts, env = record["run"], record["cost"], record["data"], record.get("env", {})
    summary["check"].update({"bench_commit": env.get("git_commit"), "versions": env.get("versions"),
                             "cuda": env.get("exactness", {}).get("cuda"), "platform": env.get("platform")})
    summary["smoke"] = {"task": run["task"], "method": run["method"], "precision": cost["precision"],
                        "device": cost["device"], "limit": run["smoke"]["limit"], "epochs": run["smoke"]["epochs"],
                        "batch": run["optim"]["batch_size"], "train_examples": counts["train_examples"],
                        "eval_examples": counts["eval_examples"], "wall_s": cost["wall_s"],
                        "process_wall_s": args.process_wall_s, "train_images_per_s": cost["train_images_per_s"],
                        "peak_memory_bytes": cost["peak_memory_bytes"], "peak_memory_kind": cost["peak_memory_kind"]}
    _say(f"smoke run {run['method']} ({counts['train_examples']} training + {counts['eval_examples']} test images, "
         f"{run['smoke']['epochs']} epoch, batch {run['optim']['batch_size']}, {cost['precision']}): "
         f"run {cost['wall_s']:.1f} s, whole command {args.process_wall_s:.1f} s, "
         f"{cost['train_images_per_s']:,.0f} train img/s, "
         f"peak {cost['peak_memory_bytes'] / 2**20:,.0f} MiB ({cost['peak_memory_kind']})")
    _save(args.summary, summary)


def step(args: argparse.Namespace) -> None:
    summary = _load(args.summary)
    summary["steps"][args.name] = {"seconds": round(args.seconds, 1), "timeout_s": args.timeout_s}
    _save(args.summary, summary)


def missing(summary: Summary) -> list[str]:
    """Sections and keys a complete summary must hold and this one lacks."""
    gaps = [s for s in SECTIONS if s not in summary]
    for precision in PRECISIONS:
        measured = summary.get("methods", {}).get(precision, {}).get("per_method", {})
        if not measured:
            gaps.append(f"methods.{precision}")
        gaps += [f"methods.{precision}.{m}.{k}" for m, f in measured.items() for k in METHOD_KEYS if k not in f]
        if precision not in summary.get("projection", {}):
            gaps.append(f"projection.{precision}")
        gaps += [f"data.{precision}.{k}" for k in DATA_KEYS if k not in summary.get("data", {}).get(precision, {})]
    gaps += [f"smoke.{k}" for k in SMOKE_KEYS if k not in summary.get("smoke", {})]
    return gaps


def finish(args: argparse.Namespace) -> None:
    summary = _load(args.summary)
    summary["total_s"] = round(args.total_s, 1)
    gaps = missing(summary)
    if gaps:
        sys.exit(f"gpu-check: the summary lacks {', '.join(gaps)}")
    summary["complete"] = True
    _save(args.summary, summary)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    q = sub.add_parser("start")
    q.add_argument("summary", type=Path)
    for flag in ("--machine", "--device-name", "--device", "--size", "--task", "--backbone", "--methods"):
        q.add_argument(flag, required=True)
    for flag in ("--image-size", "--batch", "--steps"):
        q.add_argument(flag, type=int, required=True)
    q.set_defaults(func=start)
    for name, func in (("methods", methods), ("data", data)):
        q = sub.add_parser(name)
        q.add_argument("summary", type=Path)
        q.add_argument("precision", choices=PRECISIONS)
        q.add_argument("perf_json", type=Path)
        q.set_defaults(func=func)
    q = sub.add_parser("smoke")
    q.add_argument("summary", type=Path)
    q.add_argument("results", type=Path)
    q.add_argument("process_wall_s", type=float)
    q.set_defaults(func=smoke)
    q = sub.add_parser("step")
    q.add_argument("summary", type=Path)
    q.add_argument("name")
    q.add_argument("seconds", type=float)
    q.add_argument("timeout_s", type=int)
    q.set_defaults(func=step)
    q = sub.add_parser("finish")
    q.add_argument("summary", type=Path)
    q.add_argument("total_s", type=float)
    q.set_defaults(func=finish)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
