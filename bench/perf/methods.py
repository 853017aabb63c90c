"""`bench perf methods`: the cost of one training step of each method, as a ratio to the frozen backbone.

The reference step is the frozen backbone with gradient to the input (what any method that changes the
computation inside the backbone must at least pay). Steps of the reference and of a method alternate in
rounds, and the median is taken, so machine noise hits both sides alike. A benchmark, not a test.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from bench.method import Method
from bench.spec import TaskSpec

PREFIX_METHODS = ("no_share", "simple_share", "deep_share", "no_share_shallow", "simple_share_shallow",
                  "deep_share_shallow")
PREFIX_BUDGET = 1.15  # a prefix method's step may cost at most this times the reference step


@dataclass(frozen=True)
class StepCost:
    method: str
    seconds: float
    ratio: float
    eval_seconds: float = 0.0  # one no-grad forward of the same batch
    peak_memory_bytes: int | None = None  # CUDA only: peak allocated during this method's steps
    trainable: int = 0
    stored: int = 0


@dataclass(frozen=True)
class Projection:
    """Training and evaluation images of a suite's whole protocol (full grid, every final seed) for one
    method, and the hours they take at measured images/s."""

    tasks: int
    train_images: int
    eval_images: int
    unknown_sizes: list[str]
    hours: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(step: Callable[[], None], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    step()
    _sync(device)
    return time.perf_counter() - start


def measure(task: TaskSpec, method_classes: list[type[Method]], batch: int, steps: int, device: torch.device,
            precision: str = "fp32", warmup: int = 3,
            variants: list[tuple[str, type[Method], dict[str, Any]]] | None = None) -> tuple[float, list[StepCost]]:
    """Median seconds of the reference step, and each method's median step with its ratio. `variants`
    (label, method, hyper-parameters) replaces the methods' defaults, e.g. one entry per prefix length."""
    from bench.backbones import build_backbone
    from bench.train.model import PeftModel
    from bench.train.optim import build_optimizer

    torch.manual_seed(0)
    spec = task.backbone.model_copy(update={"pretrained": False, "weights": None})
    size = task.data.images.crop or task.data.images.resize
    side = size if isinstance(size, int) else size[0]
    images = torch.randn(batch, 3, side, side, device=device)
    labels = torch.randint(0, task.data.num_classes, (batch,), device=device)
    autocast = precision == "bf16"

    reference_backbone = build_backbone(spec).to(device).eval()
    for parameter in reference_backbone.parameters():
        parameter.requires_grad_(False)
    reference_head = torch.nn.Linear(reference_backbone.hidden_size, task.data.num_classes).to(device)

    def reference_step() -> None:
        x = images.clone().requires_grad_(True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(reference_head(reference_backbone(x)).float(), labels)
        loss.backward()

    runners: list[tuple[str, Callable[[], None]]] = []
    evaluators: dict[str, Callable[[], None]] = {}
    counts: dict[str, tuple[int, int]] = {}
    for label, method_cls, hparams in variants or [(m.name, m, {}) for m in method_classes]:
        method = method_cls(method_cls.parse_hparams(hparams)) if hparams else method_cls()
        model = PeftModel(build_backbone(spec), method, task.data.num_classes).to(device).train()
        counts[label] = (model.method_trainable, model.method_stored)
        optimizer = build_optimizer(model, method_cls.optimizer or "sgd", lr=1e-6, weight_decay=0.0)

        def method_step(model: PeftModel = model, optimizer: torch.optim.Optimizer = optimizer) -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = F.cross_entropy(model(images).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        def method_eval(model: PeftModel = model) -> None:
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                model(images)

        runners.append((label, method_step))
        evaluators[label] = method_eval

    peaks: dict[str, int | None] = {}
    for _ in range(warmup):
        reference_step()
        for name, step in runners:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            step()
            peaks[name] = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    reference: list[float] = []
    timings: dict[str, list[float]] = {name: [] for name, _ in runners}
    eval_timings: dict[str, list[float]] = {name: [] for name, _ in runners}
    for _ in range(steps):
        reference.append(_time(reference_step, device))
        for name, step in runners:
            timings[name].append(_time(step, device))
            eval_timings[name].append(_time(evaluators[name], device))
    base = statistics.median(reference)
    costs = [StepCost(name, statistics.median(t), statistics.median(t) / base, statistics.median(eval_timings[name]),
                      peaks.get(name), *counts[name]) for name, t in timings.items()]
    return base, costs


def project_protocol(tasks: list[TaskSpec], method_cls: type[Method], train_per_s: float, eval_per_s: float
                     ) -> Projection:
    """Count the images the protocol trains and evaluates on (from the specs: grid size, epochs, splits, seeds;
    eval_every for val; test once per final run) and divide by the measured rates. Splits whose size is unknown
    until the data is there are listed and left out."""
    from bench.data.splits import count_examples
    from bench.train.protocol import grid_points, method_settings

    train = evaluated = 0
    unknown: list[str] = []

    def size(task: TaskSpec, split: str) -> int:
        count = count_examples(task, split)
        if count is None:
            unknown.append(f"{task.name}:{split}")
        return count or 0

    for task in tasks:
        settings = method_settings(task, method_cls)
        points = len(grid_points(settings))
        protocol = task.protocol
        grid_runs = points if points > 1 else 0
        seeds = len(protocol.seeds)
        evals_per_grid_run = len({e for e in range(settings.epochs)
                                  if e == settings.epochs - 1 or (e + 1) % protocol.eval_every == 0})
        train += settings.epochs * (grid_runs * sum(size(task, s) for s in protocol.grid_stage.train)
                                    + seeds * sum(size(task, s) for s in protocol.final_stage.train))
        evaluated += grid_runs * evals_per_grid_run * size(task, protocol.grid_stage.eval)
        evaluated += seeds * size(task, protocol.final_stage.eval)
    hours = (train / train_per_s + evaluated / eval_per_s) / 3600.0
    return Projection(len(tasks), train, evaluated, unknown, hours)


def report(task: TaskSpec, base: float, costs: list[StepCost], batch: int, device: torch.device, precision: str
           ) -> str:
    from tabulate import tabulate

    rows = []
    for cost in costs:
        verdict = ""
        if cost.method in PREFIX_METHODS:
            verdict = "ok" if cost.ratio <= PREFIX_BUDGET else f"over {PREFIX_BUDGET}x"
        peak = "n/a (cpu)" if cost.peak_memory_bytes is None else f"{cost.peak_memory_bytes / 2**20:.0f}"
        rows.append([cost.method, f"{cost.seconds * 1000:.1f}", f"{cost.ratio:.3f}", verdict,
                     f"{batch / cost.seconds:.0f}", f"{batch / cost.eval_seconds:.0f}" if cost.eval_seconds else "",
                     peak])
    header = (f"{task.name}: backbone {task.backbone.model} {task.backbone.model_kwargs or ''}, batch {batch}, "
              f"{device} {precision}\nreference (frozen backbone, gradient to the input): {base * 1000:.1f} ms/step")
    table = tabulate(rows, headers=["method", "ms/step", "ratio", f"prefix budget {PREFIX_BUDGET}x", "train img/s",
                                    "eval img/s", "peak MiB"])
    return f"{header}\n{table}"


def precision_report(fp32: list[StepCost], bf16: list[StepCost]) -> str:
    """bf16 autocast against fp32, method by method (same batch, same process)."""
    lines = ["bf16 autocast vs fp32 (training step time ratio; < 1 means bf16 is faster):"]
    by_name = {c.method: c for c in fp32}
    for cost in bf16:
        base = by_name[cost.method]
        lines.append(f"  {cost.method:<22} fp32 {base.seconds * 1000:8.1f} ms   bf16 {cost.seconds * 1000:8.1f} ms"
                     f"   ratio {cost.seconds / base.seconds:.2f}")
    return "\n".join(lines)


def projection_report(suite: str, backbone: str, device: torch.device, precision: str,
                      projections: dict[str, Projection], suite_backbone: str) -> str:
    first = next(iter(projections.values()))
    lines = [f"projected {suite} protocol ({first.tasks} tasks, full grid, every final seed) on {device} "
             f"{precision}, from the images/s measured above:"]
    for method, p in projections.items():
        lines.append(f"  {method:<22} {p.hours:10.2f} h  ({p.train_images / 1e6:.1f} M training images, "
                     f"{p.eval_images / 1e6:.2f} M evaluated)")
    if first.unknown_sizes:
        lines.append(f"  left out (split sizes unknown until the data is there): {', '.join(first.unknown_sizes)}")
    if backbone != suite_backbone:
        lines.append(f"  note: measured on {backbone}, while {suite} uses {suite_backbone}; measure with "
                     f"`--task` set to one of its tasks for a meaningful projection")
    return "\n".join(lines)
