"""`bench study prefix-length`: score, parameters and cost against the prompt / prefix length.

Runs the protocol once per length (`bench run --num-tokens`), then reports from the stored runs the score per
method and length (mean over tasks, ± std over seeds) with the trained and stored parameters, and measures what
the paper leaves unquantified: the cost of each length for each way of sharing (None = No-share, identity =
Simple-share through the frozen projections, linear and MLP = Deep-share's two reparameterisations), as training
step time (ratio to the frozen backbone with input gradient), CUDA peak memory, and trained / stored parameters.
As in the official code, No-share and Deep-share use E = num_tokens // 2 positions, Simple-share N = num_tokens.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.leaderboard.collect import collect
from bench.method import Method
from bench.spec import TaskSpec
from bench.store import RunStore
from bench.studies.report import over_tasks, protocol_note, protocol_suffix, seed_curve_point, write_report

SHARE_TYPES: list[tuple[str, str, dict[str, Any]]] = [
    ("None (no_share)", "no_share", {}),
    ("identity (simple_share)", "simple_share", {}),
    ("linear (deep_share)", "deep_share", {"share_type": "linear"}),
    ("MLP (deep_share)", "deep_share", {"share_type": "non-linear"}),
]


@dataclass(frozen=True)
class CostRow:
    share_type: str
    length: int
    step_ms: float
    ratio: float
    peak_memory_bytes: int | None
    trainable: int
    stored: int


@dataclass
class PrefixLengthReport:
    suite: str
    tasks: list[str]
    methods: list[str]
    lengths: list[int]
    mean: dict[str, list[float | None]] = field(default_factory=dict)
    std: dict[str, list[float | None]] = field(default_factory=dict)
    trainable: dict[str, list[float | None]] = field(default_factory=dict)
    cost: list[CostRow] = field(default_factory=list)
    cost_setting: str = ""
    protocol: str = "clean"


def _keep(length: int) -> Any:
    return lambda r: r["run"].get("hparams", {}).get("num_tokens") == length and not r["run"].get("data_fraction")


def build(store: RunStore, suite: str, tasks: list[str], methods: list[str], lengths: list[int],
          protocol: str = "clean") -> PrefixLengthReport:
    report = PrefixLengthReport(suite, tasks, methods, sorted(lengths), protocol=protocol)
    per_length = {n: collect(store, tasks, methods, keep=_keep(n), protocol=protocol).cells for n in report.lengths}
    for method in methods:
        means: list[float | None] = []
        stds: list[float | None] = []
        params: list[float | None] = []
        for length in report.lengths:
            present = [per_length[length][(t, method)] for t in tasks if (t, method) in per_length[length]]
            if len(present) < len(tasks):
                means.append(None)
                stds.append(None)
                params.append(None)
                continue
            mean, std = seed_curve_point(present)
            means.append(mean)
            stds.append(std)
            params.append(statistics.mean(c.trainable for c in present))
        report.mean[method], report.std[method], report.trainable[method] = means, stds, params
    return report


def measure_cost(report: PrefixLengthReport, task: TaskSpec, methods: dict[str, type[Method]], batch: int,
                 steps: int, device: torch.device, precision: str) -> None:
    """Step time, memory and parameters of every share type at every length, in one process."""
    from bench.perf.methods import measure

    variants = [(f"{label} @ {length}", methods[name], {**hparams, "num_tokens": length})
                for length in report.lengths for label, name, hparams in SHARE_TYPES]
    _, costs = measure(task, [], batch, steps, device, precision, variants=variants)
    for cost in costs:
        label, _, length = cost.method.rpartition(" @ ")
        report.cost.append(CostRow(label, int(length), cost.seconds * 1000, cost.ratio, cost.peak_memory_bytes,
                                   cost.trainable, cost.stored))
    shape = ", ".join(f"{k}={v}" for k, v in task.backbone.model_kwargs.items())
    backbone = f"{task.backbone.model} with {shape}" if shape else task.backbone.model
    report.cost_setting = (f"{task.name} backbone ({backbone}), batch {batch}, {device} {precision}, "
                           f"median of {steps} steps")


def render_markdown(report: PrefixLengthReport, plot_file: str | None) -> str:
    lines = [f"# Prefix length: {report.suite}{protocol_suffix(report.protocol)}", "", *protocol_note(report.protocol),
             f"Test score ({over_tasks(report.tasks)}, ± std over seeds) and trainable parameters (mean over "
             "tasks) per prompt / prefix length (`num_tokens`; E = num_tokens // 2 positions for No-share and "
             "Deep-share, N = num_tokens for Simple-share).", ""]
    headers = ["Method", *[str(n) for n in report.lengths]]
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for method in report.methods:
        cells = []
        for mean, std, params in zip(report.mean[method], report.std[method], report.trainable[method], strict=True):
            shown = f"{mean:.2f} ± {std or 0.0:.2f} ({params:,.0f} trained)" if mean is not None and params else "–"
            cells.append(shown)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    if plot_file:
        lines += ["", f"![Score vs prefix length]({plot_file})"]
    if report.cost:
        lines += ["", "## Cost of the length and of the reparameterisation", "", report.cost_setting + ".", "",
                  "| Share type | num_tokens | ms/step | ratio to frozen backbone | peak MiB | trained | stored |",
                  "|---|---|---|---|---|---|---|"]
        for row in report.cost:
            peak = "n/a (cpu)" if row.peak_memory_bytes is None else f"{row.peak_memory_bytes / 2**20:.0f}"
            lines.append(f"| {row.share_type} | {row.length} | {row.step_ms:.1f} | {row.ratio:.3f} | {peak} | "
                         f"{row.trainable:,} | {row.stored:,} |")
    return "\n".join(lines) + "\n"


def write(report: PrefixLengthReport, out_dir: Path) -> list[Path]:
    payload = {"suite": report.suite, "tasks": report.tasks, "methods": report.methods, "lengths": report.lengths,
               "mean": report.mean, "std": report.std, "trainable": report.trainable,
               "cost_setting": report.cost_setting, "cost": [vars(row) for row in report.cost]}
    if report.protocol != "clean":
        payload["protocol"] = report.protocol
    return write_report(out_dir, f"prefix-length-{report.suite.replace('/', '-')}{protocol_suffix(report.protocol)}",
                        lambda plot: render_markdown(report, plot), payload, [float(n) for n in report.lengths],
                        {m: (report.mean[m], report.std[m]) for m in report.methods},
                        xlabel="num_tokens", ylabel="Test score (mean over tasks)")
