"""What the study reports share: a score curve over tasks with its seed spread, and the files they write
(<stem>.md, <stem>.json and the <stem>.svg plot of the curves)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.leaderboard.collect import Cell
from bench.store import atomic_write_bytes

Curve = tuple[list[float | None], list[float | None]]  # mean and std at each x; None where runs are missing


def over_tasks(tasks: Sequence[str]) -> str:
    """'mean over 3 tasks', or the task's name when a study ran on one."""
    return f"mean over {len(tasks)} tasks" if len(tasks) != 1 else f"on {tasks[0]}"


def protocol_suffix(protocol: str) -> str:
    """'' for the clean protocol, '-<name>' for another: its report never overwrites the clean one."""
    return "" if protocol == "clean" else f"-{protocol}"


def protocol_note(protocol: str) -> list[str]:
    """The Markdown lines that say a report is not of the clean protocol (none for the clean one)."""
    if protocol == "clean":
        return []
    return [f"Runs of the '{protocol}' protocol (the task profile of that name, `--protocol {protocol}`), "
            "never mixed with clean runs.", ""]


def seed_curve_point(cells: Sequence[Cell]) -> tuple[float, float]:
    """Mean over tasks for each seed (seed i = the i-th final seed of every task), then the mean and sample std of
    those over seeds: the band shows training noise, not the spread between tasks."""
    seeds = min(len(c.scores) for c in cells)
    by_seed = [statistics.mean(c.scores[i] for c in cells) for i in range(seeds)]
    return statistics.mean(by_seed), statistics.stdev(by_seed) if len(by_seed) > 1 else 0.0


def write_report(out_dir: Path, stem: str, markdown: Callable[[str | None], str], payload: dict[str, Any],
                 x: Sequence[float], curves: dict[str, Curve], xlabel: str, ylabel: str) -> list[Path]:
    """The plot of the complete curves (mean ± std band), the Markdown that links it, and the JSON payload."""
    from bench.leaderboard import plots

    series = {}
    for label, (means, stds) in curves.items():
        if all(v is not None for v in means):
            mean = [float(v or 0.0) for v in means]
            std = [float(v or 0.0) for v in stds]
            series[label] = (mean, [m - d for m, d in zip(mean, std, strict=True)],
                             [m + d for m, d in zip(mean, std, strict=True)])
    written, plot_file = [], None
    if series:
        plot_file = f"{stem}.svg"
        svg = plots.curves_svg(list(x), series, xlabel=xlabel, ylabel=ylabel)
        atomic_write_bytes(out_dir / plot_file, svg.encode())
        written.append(out_dir / plot_file)
    atomic_write_bytes(out_dir / f"{stem}.md", markdown(plot_file).encode())
    atomic_write_bytes(out_dir / f"{stem}.json", (json.dumps(payload, indent=1, sort_keys=True) + "\n").encode())
    return [*written, out_dir / f"{stem}.md", out_dir / f"{stem}.json"]
