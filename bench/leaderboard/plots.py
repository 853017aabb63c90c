r"""The leaderboard's figures as deterministic SVG and PDF: Pareto front, group bars, per-task seed points, learning
curves, lr x weight-decay heat maps, one-axis grid lines and the critical-difference diagram.

Same inputs -> byte-identical files in any process: a fixed SVG hash salt, no date, creator or producer in either
format's metadata, text kept as text in SVG (fonttype none, so names stay searchable in the HTML page) and as
TrueType in PDF (fonttype 42, which journals accept). Labels from names arrive escaped (bench.leaderboard.escape
.plot_label: `$` as `\$`), so a name never opens math text. matplotlib is imported lazily and used through Figure
objects only (no pyplot global state).
"""

from __future__ import annotations

import io
import itertools
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]  # Okabe-Ito
LINESTYLES = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "^", "D"]
HATCHES = [None, "////", "....", "xxxx"]  # bars of the 9th to 16th method, ...: the 8 colours again, hatched
RC: dict[str, Any] = {"svg.hashsalt": "peft-bench", "svg.fonttype": "none", "pdf.fonttype": 42,
                      "path.simplify": False, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                      "text.usetex": False}
METADATA = {"svg": {"Date": None, "Creator": None}, "pdf": {"CreationDate": None, "Creator": None, "Producer": None}}


@dataclass(frozen=True)
class Rendered:
    """One figure in both formats: SVG for the Markdown and HTML pages, PDF for a paper."""

    svg: str
    pdf: bytes


@dataclass(frozen=True)
class Point:
    label: str
    params: float  # trainable parameters, % of the backbone
    score: float
    std: float | None = None  # error bar (std over seeds)


@dataclass(frozen=True)
class ParetoPanel:
    title: str
    ylabel: str
    points: Sequence[Point]


@dataclass(frozen=True)
class SeedPanel:
    """One task: per method (label, its seeds' scores)."""

    title: str
    ylabel: str
    methods: Sequence[tuple[str, Sequence[float]]]


@dataclass(frozen=True)
class CurvePanel:
    """One task: train loss per epoch per method, (epochs, mean, std) over seeds; val score per epoch per method,
    (epochs, values), from the selected grid run."""

    title: str
    loss: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]]
    val: Mapping[str, tuple[Sequence[float], Sequence[float]]]
    val_label: str


@dataclass(frozen=True)
class HeatPanel:
    """One method's grid: val score per (lr, wd), None where the run diverged or was pruned; the selected point."""

    title: str
    lrs: Sequence[float]
    wds: Sequence[float]
    scores: Mapping[tuple[float, float], float | None]
    selected: tuple[float, float] | None


@dataclass(frozen=True)
class GridPanel:
    """One task's one-axis grids: per method (values of the searched axis, val score per value, None where the run
    diverged or was pruned; the selected value)."""

    title: str
    axis: str  # "lr" or "weight decay"
    ylabel: str
    lines: Mapping[str, tuple[Sequence[float], Sequence[float | None], float | None]]


def style(index: int) -> dict[str, Any]:
    """Colour, line style and marker of the index-th method: 8 colours, then the next line style / marker."""
    return {"color": PALETTE[index % len(PALETTE)], "linestyle": LINESTYLES[(index // len(PALETTE)) % 4],
            "marker": MARKERS[(index // len(PALETTE)) % 4]}


@contextmanager
def _figure(width: float = 6.4, height: float = 4.0) -> Iterator[Any]:
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(RC):  # type: ignore[arg-type]
        yield Figure(figsize=(width, height))


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata=METADATA["svg"], bbox_inches="tight")
    return buffer.getvalue()


def _render(figure: Any) -> Rendered:
    """Both formats; call inside the _figure block, so the rc settings hold while drawing. The tight bounding box
    is measured once for both (bbox_inches="tight" would draw the figure again for each format)."""
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # its font subsetting logs every glyph at INFO
    bbox = figure.get_tightbbox(_renderer(figure)).padded(0.1)  # 0.1 inch: savefig's pad_inches default
    pdf, svg = io.BytesIO(), io.StringIO()
    figure.savefig(pdf, format="pdf", metadata=METADATA["pdf"], bbox_inches=bbox)
    figure.savefig(svg, format="svg", metadata=METADATA["svg"], bbox_inches=bbox)
    return Rendered(svg.getvalue(), pdf.getvalue())


def _renderer(figure: Any) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return FigureCanvasAgg(figure).get_renderer()


def _plain_log_ticks(axis: Any, decades: float) -> None:
    """A log axis labelled as plain numbers (not powers of ten): 0.1, 1, 10 over many decades, with 2 and 5 between
    over up to three; no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 3 else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _zero_tick(axes: Any, floor: float, smallest: float) -> None:
    """Points at 0 % sit at `floor` on the log axis: label that position "0", drop the ticks between it and the
    smallest positive value (they would give those points a count they do not have) and mark the break."""
    from matplotlib.ticker import FixedLocator, NullLocator

    low, high = axes.get_xlim()
    ticks = [t for t in axes.xaxis.get_major_locator().tick_values(low, high)
             if smallest / 1.6 <= t <= high]
    axes.xaxis.set_major_locator(FixedLocator([floor, *ticks]))
    axes.xaxis.set_minor_locator(NullLocator())
    axes.xaxis.set_major_formatter(lambda value, _: "0" if value == floor else f"{value:g}")
    middle = math.sqrt(floor * smallest)
    axes.text(middle, 0, "//", transform=axes.get_xaxis_transform(), ha="center", va="center", fontsize=8,
              clip_on=False, backgroundcolor="white")


def _grid(count: int, columns: int) -> tuple[int, int]:
    columns = max(1, min(columns, count))
    return math.ceil(count / columns), columns


# Pareto front -----------------------------------------------------------------------------------------------------


def pareto_front(points: Sequence[tuple[str, float, float]]) -> list[str]:
    """Labels of the points no other point dominates (no more parameters and no lower score, one strictly),
    ordered by parameters."""
    front = []
    for label, params, score in points:
        dominated = any(p <= params and s >= score and (p < params or s > score) for _, p, s in points)
        if not dominated:
            front.append((params, -score, label))
    return [label for _, _, label in sorted(front)]


_NEAR = [(6, 0, "left", "center"), (-6, 0, "right", "center"), (0, 6, "center", "bottom"),
         (0, -6, "center", "top"), (5, 5, "left", "bottom"), (5, -5, "left", "top"), (-5, 5, "right", "bottom"),
         (-5, -5, "right", "top")]
_FAR = [(round(r * math.cos(a), 1), round(r * math.sin(a), 1), "left" if math.cos(a) > 0.3 else "right"
         if math.cos(a) < -0.3 else "center", "bottom" if math.sin(a) > 0.3 else "top" if math.sin(a) < -0.3
         else "center") for r in (16, 26, 38, 52) for a in [k * math.pi / 4 + math.pi / 8 for k in range(8)]]


def _overlap(a: Any, b: Any) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width * height if width > 0 and height > 0 else 0.0


def place_labels(axes: Any, xy: Sequence[tuple[float, float]], labels: Sequence[str], fontsize: float = 7,
                 lines: Sequence[tuple[float, float, float, float]] = ()) -> None:
    """Label every point without overlaps where possible: for each label (highest point first), the first of a
    fixed list of positions around its point that overlaps no placed label, no point, no drawn line (`lines`:
    horizontal or vertical segments x0, y0, x1, y1 in data coordinates, such as error bars and the Pareto step
    line) and stays inside the axes; further positions get a thin leader line; if none is free, the
    least-overlapping one. Deterministic."""
    from matplotlib.transforms import Bbox

    figure = axes.figure
    renderer = _renderer(figure)
    shown = axes.transData.transform(list(xy)) if xy else []
    marks = [Bbox.from_bounds(px - 4, py - 4, 8, 8) for px, py in shown]
    bars = []
    for x0, y0, x1, y1 in lines:
        (px0, py0), (px1, py1) = axes.transData.transform([(x0, y0), (x1, y1)])
        bars.append(Bbox.from_extents(min(px0, px1) - 2.5, min(py0, py1) - 2.5, max(px0, px1) + 2.5,
                                      max(py0, py1) + 2.5))
    frame = axes.get_window_extent(renderer)
    placed: list[Any] = []
    order = sorted(range(len(xy)), key=lambda i: (-xy[i][1], xy[i][0], labels[i]))
    for i in order:
        best: tuple[float, int, tuple[Any, ...]] | None = None
        for n, (dx, dy, ha, va) in enumerate(_NEAR + _FAR):
            text = axes.annotate(labels[i], xy[i], xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                                 fontsize=fontsize)
            box = text.get_window_extent(renderer)
            text.remove()
            outside = (max(0.0, frame.x0 - box.x0) + max(0.0, box.x1 - frame.x1) + max(0.0, frame.y0 - box.y0)
                       + max(0.0, box.y1 - frame.y1)) * 1000
            cost = outside + sum(_overlap(box, other) for other in placed) + sum(
                _overlap(box, mark) for j, mark in enumerate(marks) if j != i) + sum(_overlap(box, bar) for bar in bars)
            if best is None or cost < best[0]:
                best = (cost, n, (dx, dy, ha, va, box))
            if cost == 0:
                break
        assert best is not None
        _, n, (dx, dy, ha, va, box) = best
        leader = {"arrowprops": {"arrowstyle": "-", "color": "#888888", "linewidth": 0.5,
                                 "shrinkA": 0, "shrinkB": 2}} if n >= len(_NEAR) else {}
        axes.annotate(labels[i], xy[i], xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                      fontsize=fontsize, **leader)
        placed.append(box)


def _pareto_axes(axes: Any, points: Sequence[Point], xlabel: str, ylabel: str, title: str = "") -> None:
    positive = [p.params for p in points if p.params > 0]
    floor = min(positive) / 3 if positive else 1e-3  # 0 % (linear probing) sits just left of the smallest
    clipped = [Point(p.label, max(p.params, floor), p.score, p.std) for p in points]  # labels say "0 %" (below)
    front = pareto_front([(p.label, p.params, p.score) for p in clipped])
    for p in clipped:
        on_front = p.label in front
        colour = PALETTE[0] if on_front else "#888888"
        if p.std:
            axes.errorbar([p.params], [p.score], yerr=[p.std], fmt="none", ecolor=colour, elinewidth=0.8, capsize=2,
                          zorder=2)
        axes.scatter([p.params], [p.score], s=36 if on_front else 20, color=colour, zorder=3)
    by_label = {p.label: p for p in clipped}
    xs, ys = [by_label[label].params for label in front], [by_label[label].score for label in front]
    axes.step(xs, ys, where="post", color=PALETTE[0], linewidth=1, zorder=1, label="Pareto front")
    axes.set_xscale("log")
    low = min((p.score - (p.std or 0) for p in clipped), default=0.0)
    high = max((p.score + (p.std or 0) for p in clipped), default=1.0)
    pad = max(high - low, 1.0) * 0.12
    axes.set_ylim(low - pad, high + pad)
    left, right = min(p.params for p in clipped), max(p.params for p in clipped)
    axes.set_xlim(left / 2.5, right * 2.5)
    _plain_log_ticks(axes.xaxis, math.log10(right * 6.25 / left))
    if positive and any(p.params <= 0 for p in points):
        _zero_tick(axes, floor, min(positive))
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if title:
        axes.set_title(title, fontsize=9)
    axes.legend(loc="lower right", frameon=False, fontsize=7)
    axes.grid(alpha=0.3)


def _label_points(axes: Any, points: Sequence[Point]) -> None:
    """After the layout is final (label positions are measured on the page). Labels keep off the error bars and
    the Pareto step line."""
    positive = [p.params for p in points if p.params > 0]
    floor = min(positive) / 3 if positive else 1e-3
    xy = [(max(p.params, floor), p.score) for p in points]
    bars = [(x, y - p.std, x, y + p.std) for (x, y), p in zip(xy, points, strict=True) if p.std]
    on_front = set(pareto_front([(p.label, x, y) for (x, y), p in zip(xy, points, strict=True)]))
    front = sorted((x, y) for (x, y), p in zip(xy, points, strict=True) if p.label in on_front)
    steps = [seg for (xa, ya), (xb, yb) in itertools.pairwise(front) for seg in ((xa, ya, xb, ya), (xb, ya, xb, yb))]
    place_labels(axes, xy, [p.label + (" (0 %)" if p.params <= 0 else "") for p in points], lines=[*bars, *steps])


def pareto(panels: Sequence[ParetoPanel], *,
           xlabel: str = "Trainable parameters (% of backbone, log scale)") -> Rendered:
    """Score against trainable parameters on a log axis, one panel per score (the mean, or each task when tasks
    use different metrics), error bars = std over seeds, the Pareto front joined by a step line. Points at 0 %
    are drawn at a third of the smallest positive value."""
    rows, columns = _grid(len(panels), 2)
    with _figure(6.4 if columns == 1 else 5.2 * columns, 4.2 * rows) as figure:
        axes = [figure.add_subplot(rows, columns, n + 1) for n in range(len(panels))]
        for ax, panel in zip(axes, panels, strict=True):
            _pareto_axes(ax, panel.points, xlabel, panel.ylabel, panel.title)
        figure.tight_layout()
        for ax, panel in zip(axes, panels, strict=True):
            _label_points(ax, panel.points)
        return _render(figure)


def pareto_svg(points: Sequence[tuple[str, float, float]], *,
               xlabel: str = "Trainable parameters (% of backbone, log scale)", ylabel: str = "Mean score") -> str:
    """One panel without error bars, as SVG text."""
    with _figure() as figure:
        axes = figure.add_subplot()
        _pareto_axes(axes, [Point(*p) for p in points], xlabel, ylabel)
        figure.tight_layout()
        _label_points(axes, [Point(*p) for p in points])
        return _svg(figure)


# Group bars -------------------------------------------------------------------------------------------------------


def _bars(figure: Any, methods: Sequence[str], groups: Mapping[str, Sequence[float | None]],
          errors: Mapping[str, Sequence[float | None]] | None, ylabel: str) -> None:
    from matplotlib.patches import Patch

    names = list(groups)
    width = 0.8 / max(1, len(methods))
    axes = figure.add_subplot()
    for m in range(len(methods)):  # one bar and one error-bar call per method (hundreds of bars stay fast)
        colour, hatch = PALETTE[m % len(PALETTE)], HATCHES[(m // len(PALETTE)) % len(HATCHES)]
        xs = [g - 0.4 + (m + 0.5) * width for g in range(len(names))]
        values = [groups[name][m] for name in names]
        for x, value in zip(xs, values, strict=True):
            if value is None:
                axes.text(x, 0, "–", ha="center", va="bottom", fontsize=7)
        shown = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
        if shown:
            axes.bar([x for x, _ in shown], [v for _, v in shown], width=width, color=colour, hatch=hatch,
                     edgecolor="white", linewidth=0)  # the hatch takes the edge colour: white lines on the colour
        spread = [(x, v, e) for x, v, name in zip(xs, values, names, strict=True)
                  if v is not None and errors is not None and (e := errors[name][m])]
        if spread:
            axes.errorbar([x for x, _, _ in spread], [v for _, v, _ in spread], yerr=[e for _, _, e in spread],
                          fmt="none", ecolor="#333333", elinewidth=0.7, capsize=1.5)
    # The legend is built from every method, so a method missing from the first group is still listed.
    handles = [Patch(facecolor=PALETTE[m % len(PALETTE)], hatch=HATCHES[(m // len(PALETTE)) % len(HATCHES)],
                     edgecolor="white", linewidth=0, label=method)
               for m, method in enumerate(methods)]
    rotate = len(names) > 6 or max((len(n) for n in names), default=0) > 16
    axes.set_xticks(range(len(names)), names, rotation=30 if rotate else 0, ha="right" if rotate else "center")
    axes.set_ylabel(ylabel)
    axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=7)
    axes.grid(axis="y", alpha=0.3)


def group_bars(methods: Sequence[str], groups: Mapping[str, Sequence[float | None]],
               errors: Mapping[str, Sequence[float | None]] | None = None, *, ylabel: str = "Mean score") -> Rendered:
    """One cluster per group (or task), one bar per method with its error bar when given; a missing value leaves
    its slot empty with '–'. The legend lists every method."""
    with _figure(max(6.4, 0.5 * len(groups) * max(1, len(methods)) ** 0.5 + 3), 4.0) as figure:
        _bars(figure, methods, groups, errors, ylabel)
        return _render(figure)


def group_bars_svg(methods: Sequence[str], groups: Mapping[str, Sequence[float | None]], *,
                   ylabel: str = "Mean score") -> str:
    with _figure(max(6.4, 0.5 * len(groups) * max(1, len(methods)) ** 0.5 + 3), 4.0) as figure:
        _bars(figure, methods, groups, None, ylabel)
        return _svg(figure)


# Per-task seed points ---------------------------------------------------------------------------------------------


def seed_points(panels: Sequence[SeedPanel]) -> Rendered:
    """One panel per task: a dot per seed for every method, the mean as a bar across them and ± one std. Every
    panel places the methods at the same x (a method without runs on a task leaves a gap), so only the panels at
    the bottom of each column name them."""
    methods = list(dict.fromkeys(label for panel in panels for label, _ in panel.methods))
    place = {label: i for i, label in enumerate(methods)}
    width = max(3.2, 0.24 * len(methods) + 1.2)
    rows, columns = _grid(len(panels), max(1, int(13 // width)))
    with _figure(width * columns, 2.6 * rows + 1.2) as figure:
        for n, panel in enumerate(panels):
            axes = figure.add_subplot(rows, columns, n + 1)
            xs, ys, colours, centres, means, stds = [], [], [], [], [], []  # one call per kind of mark
            for label, scores in panel.methods:
                m, k = place[label], len(scores)
                if not k:
                    continue
                xs += [m + (0.24 * (j / (k - 1) - 0.5) if k > 1 else 0.0) for j in range(k)]
                ys += list(scores)
                colours += [PALETTE[m % len(PALETTE)]] * k
                mean = sum(scores) / k
                centres.append(m)
                means.append(mean)
                stds.append(math.sqrt(sum((s - mean) ** 2 for s in scores) / (k - 1)) if k > 1 else 0.0)
            axes.scatter(xs, ys, s=10, c=colours, alpha=0.75, linewidths=0, zorder=3)
            axes.hlines(means, [c - 0.22 for c in centres], [c + 0.22 for c in centres], color="black",
                        linewidth=1.2, zorder=4)
            axes.vlines(centres, [m - s for m, s in zip(means, stds, strict=True)],
                        [m + s for m, s in zip(means, stds, strict=True)], color="black", linewidth=0.8, zorder=4)
            bottom = n + columns >= len(panels)  # no panel below this one
            axes.set_xticks(range(len(methods)), methods if bottom else [], rotation=45, ha="right", fontsize=7)
            axes.set_xlim(-0.6, len(methods) - 0.4)
            axes.set_ylabel(panel.ylabel)
            axes.set_title(panel.title, fontsize=9)
            axes.grid(axis="y", alpha=0.3)
        figure.tight_layout()
        return _render(figure)


# Learning curves --------------------------------------------------------------------------------------------------


def learning_curves(panels: Sequence[CurvePanel], methods: Sequence[str]) -> Rendered:
    """Per task, train loss per epoch (mean over seeds, band = ± std) and, below it when any run evaluated on val
    during training, the val score per epoch of the selected grid run. One legend for all panels."""
    from matplotlib.ticker import MaxNLocator

    with_val = any(p.val for p in panels)
    block = 2 if with_val else 1
    rows, columns = _grid(len(panels), 3)
    with _figure(4.2 * columns, (2.6 * block) * rows + 0.4 + 0.18 * math.ceil(len(methods) / 5)) as figure:
        index = {method: i for i, method in enumerate(methods)}
        for n, panel in enumerate(panels):
            row, column = divmod(n, columns)
            loss_axes = figure.add_subplot(rows * block, columns, row * block * columns + column + 1)
            for method, (epochs, mean, std) in panel.loss.items():
                look = style(index[method])
                loss_axes.plot(list(epochs), list(mean), color=look["color"], linestyle=look["linestyle"],
                               linewidth=1.1)
                loss_axes.fill_between(list(epochs), [m - s for m, s in zip(mean, std, strict=True)],
                                       [m + s for m, s in zip(mean, std, strict=True)], color=look["color"],
                                       alpha=0.15, linewidth=0)
            loss_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            loss_axes.set_title(panel.title, fontsize=9)
            loss_axes.set_ylabel("Train loss")
            loss_axes.grid(alpha=0.3)
            if with_val:
                val_axes = figure.add_subplot(rows * block, columns, (row * block + 1) * columns + column + 1)
                for method, (epochs, values) in panel.val.items():
                    look = style(index[method])
                    val_axes.plot(list(epochs), list(values), color=look["color"], linestyle=look["linestyle"],
                                  marker=look["marker"], markersize=3, linewidth=1.1)
                if panel.val:
                    val_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
                    val_axes.set_ylabel(panel.val_label)
                    val_axes.set_xlabel("Epoch")
                    val_axes.grid(alpha=0.3)
                else:  # an empty frame would read as a plot of nothing: say it in words instead
                    val_axes.set_axis_off()
                    val_axes.text(0.5, 0.5, f"{panel.val_label}: no per-epoch val evaluations recorded",
                                  transform=val_axes.transAxes, ha="center", va="center", fontsize=7, color="#666666")
                    loss_axes.set_xlabel("Epoch")
            else:
                loss_axes.set_xlabel("Epoch")
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], label=method, color=style(i)["color"], linestyle=style(i)["linestyle"],
                          marker=style(i)["marker"] if with_val else None, markersize=3)
                   for i, method in enumerate(methods)]
        figure.legend(handles=handles, loc="upper center", ncol=min(5, len(methods)), frameon=False, fontsize=7,
                      bbox_to_anchor=(0.5, 1.0))
        figure.tight_layout(rect=(0, 0, 1, 1 - (0.25 + 0.18 * math.ceil(len(methods) / 5)) / figure.get_figheight()))
        return _render(figure)


# Heat maps ----------------------------------------------------------------------------------------------------------


def heatmaps(title: str, panels: Sequence[HeatPanel], *, metric: str = "val score") -> Rendered:
    """One panel per method: the val score of every (lr, wd) grid point (colour per panel, value written in the
    cell, 'div.' where the run diverged or was pruned); the selected point is boxed."""
    import matplotlib
    import numpy as np
    from matplotlib.patches import Rectangle

    cell_w = max(max((len(p.lrs) for p in panels), default=1) * 0.62, 1.6) + 1.4
    cell_h = max((len(p.wds) for p in panels), default=1) * 0.42 + 1.2
    rows, columns = _grid(len(panels), max(1, int(13 // cell_w)))
    with _figure(cell_w * columns, cell_h * rows + 0.5) as figure:
        for n, panel in enumerate(panels):
            axes = figure.add_subplot(rows, columns, n + 1)
            values = [[panel.scores.get((lr, wd)) for lr in panel.lrs] for wd in panel.wds]
            known = [v for row in values for v in row if v is not None]
            low, high = (min(known), max(known)) if known else (0.0, 1.0)

            grid = np.array([[np.nan if v is None else v for v in row] for row in values], dtype=float)
            cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")
            axes.pcolormesh(np.arange(len(panel.lrs) + 1) - 0.5, np.arange(len(panel.wds) + 1) - 0.5,
                            np.ma.masked_invalid(grid), cmap=cmap, vmin=low, vmax=high if high > low else low + 1)
            for r, wd in enumerate(panel.wds):
                for c, lr in enumerate(panel.lrs):
                    value = values[r][c]
                    if (lr, wd) not in panel.scores:
                        text, colour = "", "black"
                    elif value is None:
                        text, colour = "div.", "#444444"
                    else:
                        share = (value - low) / (high - low) if high > low else 1.0
                        text, colour = f"{value:.1f}", "white" if share < 0.6 else "black"
                    axes.text(c, r, text, ha="center", va="center", fontsize=7, color=colour)
            if panel.selected in [(lr, wd) for wd in panel.wds for lr in panel.lrs]:
                lr, wd = panel.selected
                axes.add_patch(Rectangle((panel.lrs.index(lr) - 0.44, panel.wds.index(wd) - 0.42), 0.88, 0.84,
                                         fill=False, edgecolor="#D55E00", linewidth=3, zorder=5))
            axes.set_xticks(range(len(panel.lrs)), [f"{v:g}" for v in panel.lrs], fontsize=7)
            axes.set_yticks(range(len(panel.wds)), [f"{v:g}" for v in panel.wds], fontsize=7)
            axes.set_xlabel("lr", fontsize=8)
            axes.set_ylabel("weight decay", fontsize=8)
            axes.set_title(panel.title, fontsize=9)
            for side in ("top", "right"):
                axes.spines[side].set_visible(True)
        figure.suptitle(f"{title}: {metric} per grid point (box: selected)", fontsize=9)
        figure.tight_layout()
        return _render(figure)


# One-axis grids ---------------------------------------------------------------------------------------------------


def grid_lines(panels: Sequence[GridPanel], methods: Sequence[str]) -> Rendered:
    """Per task, the val score of every grid point of the methods whose grid searched one axis: the axis's values
    evenly spaced (methods with their own lr range share one axis), a line per method, a ring on the selected
    point, an x at the bottom where a run diverged or was pruned. One legend for all panels."""
    from matplotlib.lines import Line2D

    index = {method: i for i, method in enumerate(methods)}
    shown = [m for m in methods if any(m in p.lines for p in panels)]
    rows, columns = _grid(len(panels), 3)
    legend_rows = math.ceil(len(shown) / 5)
    with _figure(4.2 * columns, 2.9 * rows + 0.3 + 0.18 * legend_rows) as figure:
        for n, panel in enumerate(panels):
            axes = figure.add_subplot(rows, columns, n + 1)
            values = sorted({x for xs, _, _ in panel.lines.values() for x in xs})
            place = {x: i for i, x in enumerate(values)}
            failed = []
            for method, (xs, scores, selected) in panel.lines.items():
                look = style(index[method])
                done = [(place[x], y) for x, y in zip(xs, scores, strict=True) if y is not None]
                if done:
                    axes.plot([x for x, _ in done], [y for _, y in done], color=look["color"],
                              linestyle=look["linestyle"], marker=look["marker"], markersize=4, linewidth=1.1)
                ring = [(place[x], y) for x, y in zip(xs, scores, strict=True) if x == selected and y is not None]
                if ring:
                    axes.scatter(*zip(*ring, strict=True), s=90, facecolors="none", edgecolors=look["color"],
                                 linewidths=1.4, zorder=4)
                failed += [(place[x], look["color"]) for x, y in zip(xs, scores, strict=True) if y is None]
            if failed:
                axes.scatter([x for x, _ in failed], [0.0] * len(failed), c=[c for _, c in failed], marker="x",
                             s=30, transform=axes.get_xaxis_transform(), clip_on=False, zorder=4)
            axes.set_xticks(range(len(values)), [f"{v:g}" for v in values], fontsize=7)
            axes.set_xlim(-0.4, len(values) - 0.6)
            axes.set_xlabel(panel.axis + (" (x: diverged or pruned)" if failed else ""))
            axes.set_ylabel(panel.ylabel)
            axes.set_title(panel.title, fontsize=9)
            axes.grid(alpha=0.3)
        handles = [Line2D([], [], label=m, color=style(index[m])["color"], linestyle=style(index[m])["linestyle"],
                          marker=style(index[m])["marker"], markersize=4) for m in shown]
        figure.legend(handles=handles, loc="upper center", ncol=min(5, len(shown)), frameon=False, fontsize=7,
                      bbox_to_anchor=(0.5, 1.0))
        figure.tight_layout(rect=(0, 0, 1, 1 - (0.2 + 0.18 * legend_rows) / figure.get_figheight()))
        return _render(figure)


# Critical-difference diagram --------------------------------------------------------------------------------------


def _cd(figure: Any, mean_ranks: Mapping[str, float], critical_difference: float | None,
        cliques: Sequence[Sequence[str]], title: str) -> None:
    ordered = sorted(mean_ranks.items(), key=lambda kv: (kv[1], kv[0]))
    k = len(ordered)
    half = (k + 1) // 2
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


def cd_diagram(mean_ranks: Mapping[str, float], critical_difference: float | None,
               cliques: Sequence[Sequence[str]], *, title: str = "") -> Rendered:
    """Demšar's critical-difference diagram: rank axis (1 = best, left), methods hung on both sides, the CD bar,
    and a thick line joining each clique of methods not significantly different."""
    with _figure(6.4, 1.2 + 0.28 * ((len(mean_ranks) + 1) // 2)) as figure:
        _cd(figure, mean_ranks, critical_difference, cliques, title)
        return _render(figure)


def cd_diagram_svg(mean_ranks: Mapping[str, float], critical_difference: float | None,
                   cliques: Sequence[Sequence[str]], *, title: str = "") -> str:
    with _figure(6.4, 1.2 + 0.28 * ((len(mean_ranks) + 1) // 2)) as figure:
        _cd(figure, mean_ranks, critical_difference, cliques, title)
        return _svg(figure)


# Study curves -----------------------------------------------------------------------------------------------------


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
