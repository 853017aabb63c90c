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
            precision: str = "fp32", warmup: int = 3) -> tuple[float, list[StepCost]]:
    """Median seconds of the reference step, and each method's median step with its ratio."""
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
    for method_cls in method_classes:
        model = PeftModel(build_backbone(spec), method_cls(), task.data.num_classes).to(device).train()
        optimizer = build_optimizer(model, method_cls.optimizer or "sgd", lr=1e-6, weight_decay=0.0)

        def method_step(model: PeftModel = model, optimizer: torch.optim.Optimizer = optimizer) -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = F.cross_entropy(model(images).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        runners.append((method_cls.name, method_step))

    for _ in range(warmup):
        reference_step()
        for _, step in runners:
            step()
    reference: list[float] = []
    timings: dict[str, list[float]] = {name: [] for name, _ in runners}
    for _ in range(steps):
        reference.append(_time(reference_step, device))
        for name, step in runners:
            timings[name].append(_time(step, device))
    base = statistics.median(reference)
    costs = [StepCost(name, statistics.median(t), statistics.median(t) / base) for name, t in timings.items()]
    return base, costs


def report(task: TaskSpec, base: float, costs: list[StepCost], batch: int, device: torch.device, precision: str
           ) -> str:
    from tabulate import tabulate

    rows = []
    for cost in costs:
        verdict = ""
        if cost.method in PREFIX_METHODS:
            verdict = "ok" if cost.ratio <= PREFIX_BUDGET else f"over {PREFIX_BUDGET}x"
        rows.append([cost.method, f"{cost.seconds * 1000:.1f}", f"{cost.ratio:.3f}", verdict])
    header = (f"{task.name}: backbone {task.backbone.model} {task.backbone.model_kwargs or ''}, batch {batch}, "
              f"{device} {precision}\nreference (frozen backbone, gradient to the input): {base * 1000:.1f} ms/step")
    table = tabulate(rows, headers=["method", "ms/step", "ratio", f"prefix budget {PREFIX_BUDGET}x"])
    return f"{header}\n{table}"
