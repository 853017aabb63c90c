"""`bench perf methods`: the cost of one training step of each method on a vision task's backbone, as a ratio to
the frozen backbone, its peak memory, and the hours of a suite's whole protocol at the measured rates.

The reference step is the frozen backbone with gradient to the input (what any method that changes the
computation inside the backbone must at least pay). Methods are measured one at a time: each gets a clean device
(the previous model freed, the allocator's cache emptied, the peak statistics reset), is built the way a run builds
it (a copy of the pristine backbone, the method attached, the task's hyper-parameters and batch size), and its
steps alternate with reference steps in rounds, so machine noise hits both sides alike; medians are reported, and
each method's figures are handed to `on_cost` as soon as they are measured. A benchmark, not a test.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

from bench.method import Method
from bench.perf.projection import Projection, project_protocol
from bench.perf.timing import PeakMemory, parameter_bytes, release, sync, timed
from bench.spec import TaskSpec

PREFIX_METHODS = ("no_share", "simple_share", "deep_share", "no_share_shallow", "simple_share_shallow",
                  "deep_share_shallow")
PREFIX_BUDGET = 1.15  # a prefix method's step may cost at most this times the reference step

__all__ = ["PREFIX_BUDGET", "PREFIX_METHODS", "MethodPlan", "Projection", "StepCost", "measure", "plans",
           "precision_report", "project_protocol", "projection_report", "report", "report_header", "report_row"]


@dataclass(frozen=True)
class MethodPlan:
    """What one measured entry trains: a label, the method with its hyper-parameters, the batch and optimizer, and
    the batch the protocol trains at (a head-only method's head steps are measured at that one: they are cheap)."""

    label: str
    method: type[Method]
    hparams: dict[str, Any]
    batch: int
    optimizer: Literal["sgd", "adamw"]
    protocol_batch: int = 0


@dataclass(frozen=True)
class StepCost:
    method: str
    seconds: float
    ratio: float
    eval_seconds: float = 0.0  # one no-grad forward of the same batch
    peak_memory_bytes: int | None = None  # CUDA only: this method's model, optimizer state, batch and activations
    trainable: int = 0
    stored: int = 0
    batch: int = 0
    reference_seconds: float = 0.0  # the frozen backbone's step at the same batch, in the same rounds
    setup_seconds: float = 0.0  # copy the backbone, attach the method, move to the device, build the optimizer
    head_seconds: float | None = None  # head-only methods: one head step on cached features, at head_batch
    head_batch: int = 0
    hparams: dict[str, Any] = field(default_factory=dict)

    @property
    def head_examples_per_s(self) -> float | None:
        return self.head_batch / self.head_seconds if self.head_seconds else None


def plans(task: TaskSpec, method_classes: list[type[Method]], batch: int | None = None) -> list[MethodPlan]:
    """Each method as the task's protocol trains it: its fixed hyper-parameters (protocol.methods.<name>.hparams;
    where the grid searches a hyper-parameter, its first value), batch size and optimizer; `batch` overrides the
    batch size (a small one for a CPU)."""
    from bench.train.config import OPTIM_KEYS
    from bench.train.protocol import grid_points, method_settings

    out = []
    for cls in method_classes:
        settings = method_settings(task, cls)
        point = grid_points(settings)[0]
        hparams = {k: v for k, v in point.items() if k not in OPTIM_KEYS}
        optimizer: Literal["sgd", "adamw"] = "adamw" if settings.optimizer == "adamw" else "sgd"
        out.append(MethodPlan(cls.name, cls, hparams, batch or settings.batch_size, optimizer, settings.batch_size))
    return out


def measure(task: TaskSpec, method_classes: list[type[Method]], batch: int | None, steps: int, device: torch.device,
            precision: str = "fp32", warmup: int = 3,
            variants: list[tuple[str, type[Method], dict[str, Any]]] | None = None,
            on_cost: Callable[[StepCost], None] | None = None) -> tuple[float, list[StepCost]]:
    """Median seconds of the reference step (at the first entry's batch), and each entry's costs, measured one at a
    time on `task`'s backbone with random weights. Entries: `variants` (label, method, hyper-parameters) when
    given, else `plans(task, method_classes, batch)`."""
    from bench.backbones import build_backbone

    torch.manual_seed(0)
    if variants is not None:
        entries = [MethodPlan(label, cls, hparams, batch or task.protocol.batch_size, cls.optimizer or "sgd",
                              task.protocol.batch_size) for label, cls, hparams in variants]
    else:
        entries = plans(task, method_classes, batch)
    spec = task.backbone.model_copy(update={"pretrained": False, "weights": None})
    size = task.data.images.crop or task.data.images.resize
    side = size if isinstance(size, int) else size[0]
    autocast = precision == "bf16"
    classes = task.data.num_classes
    inputs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def batch_of(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        if n not in inputs:
            generator = torch.Generator().manual_seed(n)
            inputs[n] = (torch.randn(n, 3, side, side, generator=generator).to(device),
                         torch.randint(0, classes, (n,), generator=generator).to(device))
        return inputs[n]

    pristine = build_backbone(spec)  # on the host, copied for each method as a run copies it
    reference_backbone = copy.deepcopy(pristine).to(device).eval()
    for parameter in reference_backbone.parameters():
        parameter.requires_grad_(False)
    reference_head = torch.nn.Linear(reference_backbone.hidden_size, classes).to(device)
    resident = parameter_bytes(reference_backbone) + parameter_bytes(reference_head)

    def reference_step(n: int) -> None:
        images, labels = batch_of(n)
        x = images.clone().requires_grad_(True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(reference_head(reference_backbone(x)).float(), labels)
        loss.backward()

    for _ in range(warmup):  # the process's first steps pay one-off costs: not the first method's
        for n in dict.fromkeys(entry.batch for entry in entries):
            reference_step(n)
    costs: list[StepCost] = []
    for entry in entries:
        release(device)
        cost = _measure_one(entry, pristine, batch_of, reference_step, resident, steps, warmup, device, autocast,
                            classes)
        costs.append(cost)
        if on_cost is not None:
            on_cost(cost)
    release(device)
    first = costs[0].batch if costs else 0
    base = statistics.median([c.reference_seconds for c in costs if c.batch == first]) if costs else 0.0
    return base, costs


def _measure_one(entry: MethodPlan, pristine: Any, batch_of: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
                 reference_step: Callable[[int], None], resident: int, steps: int, warmup: int,
                 device: torch.device, autocast: bool, classes: int) -> StepCost:
    from bench.train.model import PeftModel
    from bench.train.optim import build_optimizer

    cls = entry.method
    images, labels = batch_of(entry.batch)
    sync(device)
    start = time.perf_counter()
    method = cls(cls.parse_hparams(entry.hparams)) if entry.hparams else cls()
    model = PeftModel(copy.deepcopy(pristine), method, classes).to(device).train()
    optimizer = build_optimizer(model, entry.optimizer, lr=1e-6, weight_decay=0.0)
    sync(device)
    setup = time.perf_counter() - start
    peak = PeakMemory(device, resident)

    def method_step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(model(images).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def method_eval() -> None:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            model(images)

    for _ in range(warmup):
        reference_step(entry.batch)
        peak(method_step)
    reference: list[float] = []
    timings: list[float] = []
    evals: list[float] = []
    for _ in range(steps):
        reference.append(timed(lambda: reference_step(entry.batch), device))
        timings.append(timed(lambda: peak(method_step), device))
        evals.append(timed(method_eval, device))
    head_batch = entry.protocol_batch or entry.batch
    head = _head_step_seconds(model.backbone.hidden_size, classes, entry.optimizer, head_batch, device) \
        if cls.head_only else None
    seconds, base = statistics.median(timings), statistics.median(reference)
    return StepCost(entry.label, seconds, seconds / base, statistics.median(evals), peak.bytes,
                    model.method_trainable, model.method_stored, entry.batch, base, setup, head,
                    head_batch if cls.head_only else 0, entry.hparams)


def _head_step_seconds(hidden: int, classes: int, optimizer_name: Literal["sgd", "adamw"], batch: int,
                       device: torch.device) -> float:
    """One training step of a linear head on cached features (what linear probing trains after its feature pass),
    median of 20."""
    from bench.train.optim import build_optimizer

    head = torch.nn.Linear(hidden, classes).to(device)
    optimizer = build_optimizer(head, optimizer_name, lr=1e-6, weight_decay=0.0)
    features = torch.randn(batch, hidden, device=device)
    labels = torch.randint(0, classes, (batch,), device=device)

    def step() -> None:
        loss = F.cross_entropy(head(features), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    return statistics.median(timed(step, device) for _ in range(20))


# ---------------------------------------------------------------- reports, printed a row at a time

COLUMNS = (("method", 22, "<"), ("batch", 5, ">"), ("ms/step", 9, ">"), ("ref ms", 9, ">"), ("ratio", 6, ">"),
           (f"prefix budget {PREFIX_BUDGET}x", 20, "<"), ("train img/s", 11, ">"), ("eval img/s", 10, ">"),
           ("peak MiB", 9, ">"), ("set-up s", 8, ">"))


def _line(cells: list[str]) -> str:
    return "  ".join(f"{cell:{align}{width}}" for cell, (_, width, align) in zip(cells, COLUMNS, strict=True)).rstrip()


def report_header(task: TaskSpec, backbone_note: str, device: torch.device, precision: str) -> str:
    model = task.backbone.model
    shape = f" {task.backbone.model_kwargs}" if task.backbone.model_kwargs else ""
    size = task.data.images.crop or task.data.images.resize
    return (f"{task.name}: backbone {model}{shape} ({backbone_note}), input {size}, {device} {precision}; "
            f"each method measured alone, median of its steps\n" + _line([c[0] for c in COLUMNS]) + "\n"
            + _line(["-" * c[1] for c in COLUMNS]))


def report_row(cost: StepCost) -> str:
    verdict = ""
    if cost.method in PREFIX_METHODS:
        verdict = "ok" if cost.ratio <= PREFIX_BUDGET else f"over {PREFIX_BUDGET}x"
    peak = "n/a (cpu)" if cost.peak_memory_bytes is None else f"{cost.peak_memory_bytes / 2**20:.0f}"
    return _line([cost.method, str(cost.batch), f"{cost.seconds * 1000:.1f}", f"{cost.reference_seconds * 1000:.1f}",
                  f"{cost.ratio:.3f}", verdict, f"{cost.batch / cost.seconds:.1f}",
                  f"{cost.batch / cost.eval_seconds:.1f}" if cost.eval_seconds else "", peak,
                  f"{cost.setup_seconds:.2f}"])


def report(task: TaskSpec, base: float, costs: list[StepCost], batch: int | None, device: torch.device,
           precision: str, backbone_note: str = "random weights") -> str:
    rows = [report_row(cost) for cost in costs]
    return "\n".join([report_header(task, backbone_note, device, precision), *rows,
                      f"reference (frozen backbone, gradient to the input): {base * 1000:.1f} ms/step"])


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
                      projections: dict[str, Projection], suite_backbone: str,
                      batches: dict[str, tuple[int, int]] | None = None) -> str:
    """One line per method; `batches` (method -> (measured, protocol)) notes rates measured at another batch."""
    first = next(iter(projections.values()))
    lines = [f"projected {suite} protocol ({first.tasks} tasks, full grid, every final seed, every split) on "
             f"{device} {precision}, from the rates measured above:"]
    for method, p in projections.items():
        parts = [f"{p.train_images / 1e6:.1f} M training images", f"{p.eval_images / 1e6:.2f} M evaluated"]
        if p.feature_images:
            parts.append(f"features of {p.feature_images / 1e3:.1f} k images once + {p.head_examples / 1e6:.1f} M "
                         "head examples")
        parts.append(f"{p.runs} runs, set-up {p.overhead_hours:.2f} h")
        lines.append(f"  {method:<22} {p.hours:10.2f} h  ({', '.join(parts)})")
    if first.unknown_sizes:
        lines.append(f"  left out (split sizes unknown until the data is there): {', '.join(first.unknown_sizes)}")
    if batches:
        groups: dict[tuple[int, int], list[str]] = {}
        for method, pair in batches.items():
            if pair[0] != pair[1]:
                groups.setdefault(pair, []).append(method)
        if groups:
            shown = "; ".join(f"batch {m} instead of {p} for "
                              + (", ".join(names) if len(names) < 4 else f"{len(names)} methods")
                              for (m, p), names in sorted(groups.items()))
            lines.append(f"  note: rates measured at a smaller batch than the protocol's ({shown}); per-image rates "
                         "usually rise with the batch on a GPU, so these hours are an upper bound there")
    if backbone != suite_backbone:
        lines.append(f"  note: measured on {backbone}, while {suite} uses {suite_backbone}; measure with the "
                     "task's own backbone (the default `--backbone task`) for a meaningful projection")
    return "\n".join(lines)
