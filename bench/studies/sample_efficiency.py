"""`bench study sample-efficiency`: does a method learn more from fewer examples? (the paper's central claim)

For each training fraction the whole protocol runs (grid selection on val at that fraction, then the final
seeds; bench run --data-fraction), and the report shows, from the stored runs only:
- accuracy vs training fraction per method (mean over the suite's tasks; band: ± std over seeds, where seed i
  is the i-th final seed of every task), as a plot and a table;
- the area under each curve (trapezoid rule over the fractions, divided by their span, so it reads as a mean
  score; higher = better across data sizes);
- at each fraction, per task, a paired bootstrap of the reference method (e.g. deep_share) against each other
  method on the same test items with seeds resampled, Holm-corrected over all comparisons of that fraction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import stats
from bench.leaderboard.collect import Cell, collect
from bench.leaderboard.examples import Examples
from bench.leaderboard.significance import bootstrap_against, paired_examples
from bench.store import RunStore
from bench.studies.report import over_tasks, protocol_note, protocol_suffix, seed_curve_point, write_report


@dataclass(frozen=True)
class Comparison:
    fraction: float
    task: str
    method: str
    result: stats.TestResult
    p_holm: float


@dataclass
class SampleEfficiency:
    suite: str
    tasks: list[str]
    methods: list[str]
    reference: str
    fractions: list[float]
    mean: dict[str, list[float | None]] = field(default_factory=dict)  # method -> per fraction
    std: dict[str, list[float | None]] = field(default_factory=dict)
    area: dict[str, float | None] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    protocol: str = "clean"


def _keep(fraction: float) -> Any:
    wanted = None if fraction >= 1.0 else fraction
    return lambda record: record["run"].get("data_fraction") == wanted


def build(store: RunStore, suite: str, tasks: list[str], methods: list[str], reference: str,
          fractions: list[float], resamples: int = 1000, seed: int = 12345,
          protocol: str = "clean") -> SampleEfficiency:
    report = SampleEfficiency(suite, tasks, methods, reference, sorted(fractions), protocol=protocol)
    per_fraction: dict[float, dict[tuple[str, str], Cell]] = {
        f: collect(store, tasks, methods, keep=_keep(f), protocol=protocol).cells for f in report.fractions}
    for method in methods:
        means: list[float | None] = []
        stds: list[float | None] = []
        for fraction in report.fractions:
            row = [per_fraction[fraction].get((t, method)) for t in tasks]
            present = [c for c in row if c is not None]
            if len(present) < len(tasks):
                report.missing.append(f"{method} at fraction {fraction:g}")
                means.append(None)
                stds.append(None)
                continue
            mean, std = seed_curve_point(present)
            means.append(mean)
            stds.append(std)
        report.mean[method], report.std[method] = means, stds
        report.area[method] = area_under(report.fractions, means)
    for fraction in report.fractions:
        results: list[tuple[str, str, stats.TestResult]] = []
        cells = per_fraction[fraction]
        for task in tasks:
            base = cells.get((task, reference))
            if base is None:
                continue
            others = {m: cells[(task, m)] for m in methods if m != reference and (task, m) in cells}
            base_examples, paired, _ = paired_examples(base, others)
            if paired and isinstance(base_examples, Examples):
                tested = bootstrap_against(base_examples, paired, base.metric, resamples, seed)
                results.extend((task, m, r) for m, r in tested.items())
        adjusted = stats.holm([r.p_value for _, _, r in results])
        report.comparisons.extend(Comparison(fraction, t, m, r, p) for (t, m, r), p in zip(results, adjusted,
                                                                                          strict=True))
    return report


def area_under(x: list[float], y: list[float | None]) -> float | None:
    """Trapezoid area over x divided by the span of x: a mean score over data sizes (None if a point is missing)."""
    if any(v is None for v in y) or len(x) < 2:
        return None
    values = [float(v) for v in y if v is not None]
    area = sum((x[i + 1] - x[i]) * (values[i] + values[i + 1]) / 2 for i in range(len(x) - 1))
    return area / (x[-1] - x[0])


def render_markdown(report: SampleEfficiency, plot_file: str | None) -> str:
    lines = [f"# Sample efficiency: {report.suite}{protocol_suffix(report.protocol)}", "",
             *protocol_note(report.protocol),
             f"Test score ({over_tasks(report.tasks)}, ± std over seeds) vs the fraction of the training "
             "data (nested class-balanced subsets; the grid is selected on val at each fraction).", ""]
    headers = ["Method", *[f"{f:g}" for f in report.fractions], "Area (mean over fractions)"]
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for method in report.methods:
        cells = [("–" if m is None else f"{m:.2f} ± {s:.2f}") for m, s in
                 zip(report.mean[method], report.std[method], strict=True)]
        area = report.area[method]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {'–' if area is None else f'{area:.2f}'} |")
    if report.missing:
        lines += ["", "Missing (no final runs yet): " + "; ".join(report.missing) + "."]
    if plot_file:
        lines += ["", f"![Score vs training fraction]({plot_file})"]
    lines += ["", f"## Tests: {report.reference} against each other method", "",
              "Paired bootstrap over test items with seeds resampled (1000 resamples, two-sided), per task and "
              "fraction; Holm over all comparisons of a fraction. Difference = "
              f"{report.reference} − method.", "",
              "| Fraction | Task | Method | n | Difference | 95% CI | p | p (Holm) |",
              "|---|---|---|---|---|---|---|---|"]
    for c in report.comparisons:
        lines.append(f"| {c.fraction:g} | {c.task} | {c.method} | {c.result.n} | {c.result.statistic:+.2f} | "
                     f"[{c.result.detail['ci_low']:+.2f}, {c.result.detail['ci_high']:+.2f}] | "
                     f"{c.result.p_value:.3f} | {c.p_holm:.3f} |")
    return "\n".join(lines) + "\n"


def write(report: SampleEfficiency, out_dir: Path) -> list[Path]:
    payload = {"suite": report.suite, "tasks": report.tasks, "methods": report.methods, "reference": report.reference,
               "fractions": report.fractions, "mean": report.mean, "std": report.std, "area": report.area,
               "missing": report.missing,
               "tests": [{"fraction": c.fraction, "task": c.task, "method": c.method, "n": c.result.n,
                          "difference": c.result.statistic, "p": c.result.p_value, "p_holm": c.p_holm}
                         for c in report.comparisons]}
    if report.protocol != "clean":
        payload["protocol"] = report.protocol
    stem = f"sample-efficiency-{report.suite.replace('/', '-')}{protocol_suffix(report.protocol)}"
    return write_report(out_dir, stem,
                        lambda plot: render_markdown(report, plot), payload, report.fractions,
                        {m: (report.mean[m], report.std[m]) for m in report.methods},
                        xlabel="Fraction of the training data", ylabel="Test score (mean over tasks)")
