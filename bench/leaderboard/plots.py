"""The leaderboard's figures as deterministic SVG text: Pareto front, group bars, critical-difference diagram.

Same inputs -> byte-identical SVG in any process: a fixed hash salt for element ids, no date or creator in the
metadata, text kept as text (svg.fonttype none, which also keeps method names searchable in the HTML page).
matplotlib is imported lazily and used through Figure objects only (no pyplot global state).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]  # Okabe-Ito
RC: dict[str, Any] = {"svg.hashsalt": "peft-bench", "svg.fonttype": "none", "path.simplify": False, "font.size": 9,
      "axes.spines.top": False, "axes.spines.right": False}


@contextmanager
def _figure(width: float = 6.4, height: float = 4.0) -> Iterator[Any]:
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(RC):  # type: ignore[arg-type]
        yield Figure(figsize=(width, height))


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    return buffer.getvalue()


def pareto_front(points: Sequence[tuple[str, float, float]]) -> list[str]:
    """Labels of the points no other point dominates (no more parameters and no lower score, one strictly),
    ordered by parameters."""
    front = []
    for label, params, score in points:
        dominated = any(p <= params and s >= score and (p < params or s > score) for _, p, s in points)
        if not dominated:
            front.append((params, -score, label))
    return [label for _, _, label in sorted(front)]


def pareto_svg(points: Sequence[tuple[str, float, float]], *,
               xlabel: str = "Trainable parameters (% of backbone, log scale)", ylabel: str = "Mean score") -> str:
    """Score against trainable parameters on a log axis; the Pareto front joined by a step line. Points at 0 %
    are drawn at a third of the smallest positive value."""
    positive = [params for _, params, _ in points if params > 0]
    floor = min(positive) / 3 if positive else 1e-3  # 0 % (linear probing) sits just left of the smallest
    clipped = [(label, max(params, floor), score) for label, params, score in points]
    front = pareto_front(clipped)
    with _figure() as figure:
        axes = figure.add_subplot()
        for label, params, score in clipped:
            on_front = label in front
            axes.scatter([params], [score], s=36 if on_front else 20, color=PALETTE[0] if on_front else "#999999",
                         zorder=3)
            axes.annotate(label, (params, score), xytext=(4, 3), textcoords="offset points", fontsize=7)
        by_label = {label: (params, score) for label, params, score in clipped}
        xs, ys = [by_label[label][0] for label in front], [by_label[label][1] for label in front]
        axes.step(xs, ys, where="post", color=PALETTE[0], linewidth=1, zorder=2, label="Pareto front")
        axes.set_xscale("log")
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.legend(loc="lower right", frameon=False)
        axes.grid(alpha=0.3)
        return _svg(figure)


def group_bars_svg(methods: Sequence[str], groups: Mapping[str, Sequence[float | None]], *,
                   ylabel: str = "Mean score") -> str:
    """One cluster per group (or task), one bar per method; a missing value leaves its slot empty with '–'."""
    names = list(groups)
    width = 0.8 / max(1, len(methods))
    with _figure(max(6.4, 0.5 * len(names) * max(1, len(methods)) ** 0.5 + 3), 4.0) as figure:
        axes = figure.add_subplot()
        for m, method in enumerate(methods):
            for g, name in enumerate(names):
                value = groups[name][m]
                x = g - 0.4 + (m + 0.5) * width
                if value is None:
                    axes.text(x, 0, "–", ha="center", va="bottom", fontsize=7)
                else:
                    axes.bar([x], [value], width=width, color=PALETTE[m % len(PALETTE)],
                             hatch="//" if m >= len(PALETTE) else None, label=method if g == 0 else None)
            if all(groups[name][m] is None for name in names):
                axes.bar([0], [0], width=0, color=PALETTE[m % len(PALETTE)], label=method)
        axes.set_xticks(range(len(names)), names, rotation=30 if len(names) > 6 else 0, ha="right"
                        if len(names) > 6 else "center")
        axes.set_ylabel(ylabel)
        axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=7)
        axes.grid(axis="y", alpha=0.3)
        return _svg(figure)


def cd_diagram_svg(mean_ranks: Mapping[str, float], critical_difference: float | None,
                   cliques: Sequence[Sequence[str]], *, title: str = "") -> str:
    """Demšar's critical-difference diagram: rank axis (1 = best, left), methods hung on both sides, the CD bar,
    and a thick line joining each clique of methods not significantly different."""
    ordered = sorted(mean_ranks.items(), key=lambda kv: (kv[1], kv[0]))
    k = len(ordered)
    half = (k + 1) // 2
    height = 1.2 + 0.28 * half
    with _figure(6.4, height) as figure:
        axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
        axes.set_axis_off()
        low, high = 1, max(k, 2)
        axes.set_xlim(low - 1.6, high + 1.6)
        top = 0.0
        axes.set_ylim(-(half + 1.2) * 0.28 - 0.1, 0.75)
        axes.hlines(top, low, high, color="black", linewidth=1)
        for r in range(low, high + 1):
            axes.vlines(r, top, top + 0.08, color="black", linewidth=1)
            axes.text(r, top + 0.12, str(r), ha="center", va="bottom", fontsize=8)
        if critical_difference is not None:
            axes.hlines(top + 0.55, low, low + critical_difference, color="black", linewidth=1.5)
            axes.vlines([low, low + critical_difference], top + 0.5, top + 0.6, color="black", linewidth=1)
            axes.text(low + critical_difference / 2, top + 0.62, f"CD = {critical_difference:.2f}", ha="center",
                      va="bottom", fontsize=8)
        for i, (method, rank) in enumerate(ordered):
            left = i < half
            row = (i if left else k - 1 - i) + 1
            y = -row * 0.28
            x_end = low - 0.4 if left else high + 0.4
            axes.plot([rank, rank, x_end], [top, y, y], color="black", linewidth=0.8)
            axes.text(x_end - 0.05 if left else x_end + 0.05, y, f"{method} ({rank:.2f})",
                      ha="right" if left else "left", va="center", fontsize=8)
        for j, clique in enumerate(cliques):
            ranks = [mean_ranks[m] for m in clique]
            y = -0.12 - 0.09 * j
            axes.hlines(y, min(ranks) - 0.03, max(ranks) + 0.03, color=PALETTE[0], linewidth=3)
        if title:
            axes.text((low + high) / 2, 0.72, title, ha="center", va="top", fontsize=9)
        return _svg(figure)


def curves_svg(x: Sequence[float], series: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
               *, xlabel: str, ylabel: str) -> str:
    """One line per method over x (e.g. training fraction), with a shaded band (e.g. ± std over seeds):
    series[method] = (mean, low, high)."""
    with _figure() as figure:
        axes = figure.add_subplot()
        for i, (method, (mean, low, high)) in enumerate(series.items()):
            colour = PALETTE[i % len(PALETTE)]
            axes.plot(list(x), list(mean), marker="o", color=colour, label=method)
            axes.fill_between(list(x), list(low), list(high), color=colour, alpha=0.2, linewidth=0)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.set_xticks(list(x), [f"{v:g}" for v in x])
        axes.legend(loc="lower right", frameon=False)
        axes.grid(alpha=0.3)
        return _svg(figure)
