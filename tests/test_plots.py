"""The leaderboard figures: the Pareto front rule, labels that do not overlap, a legend with every method, valid SVG
with the names as text (a `$` drawn, not parsed), and byte-identical SVG and PDF within and across processes."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from bench.leaderboard import escape, plots

POINTS = [("linear", 0.0, 51.4), ("vpt", 0.17, 45.9), ("no_share", 1.39, 50.1), ("lora", 5.5, 46.5),
          ("adapter", 22.6, 54.1), ("full_ft", 100.0, 52.6), ("twin", 22.6, 54.1)]


def test_pareto_front_keeps_only_undominated_points() -> None:
    # vpt, no_share, lora: more parameters than linear and a lower score; full_ft: more than adapter, lower.
    assert plots.pareto_front(POINTS) == ["linear", "adapter", "twin"]
    assert plots.pareto_front([("a", 1.0, 1.0)]) == ["a"]
    assert plots.pareto_front([("a", 1.0, 2.0), ("b", 2.0, 3.0), ("c", 3.0, 2.5)]) == ["a", "b"]


def svgs() -> list[str]:
    return [plots.pareto_svg(POINTS),
            plots.group_bars_svg(["a", "b"], {"natural": [50.0, None], "structured": [30.0, 35.5]}),
            plots.cd_diagram_svg({"a": 1.2, "b": 1.8}, 1.5, [["a", "b"]]),
            plots.cd_diagram_svg({f"m{i:02d}": 1 + i * 0.9 for i in range(12)}, None, [["m00", "m01", "m02"]])]


def rendered() -> list[plots.Rendered]:
    """One of each leaderboard figure, with a name that would be math text if it were parsed."""
    math_name = escape.plot_label(r"$\frac{1}{0}$")
    return [
        plots.pareto([plots.ParetoPanel("", "Mean", [plots.Point(n, p, s, 1.5) for n, p, s in POINTS])]),
        plots.group_bars(["a", math_name], {"g1": [None, 2.0], "g2": [3.0, 4.0]}, {"g1": [None, 0.5], "g2": [1, 1]}),
        plots.seed_points([plots.SeedPanel("task", "Test top-1", [("a", [50.0, 52.0, 51.0]), (math_name, [40.0])])]),
        plots.learning_curves([plots.CurvePanel("task", {"a": ([0, 1, 2], [3.0, 2.0, 1.0], [0.2, 0.1, 0.1])},
                                                {"a": ([1, 2], [40.0, 45.0])}, "Val top-1")], ["a"]),
        plots.heatmaps("task", [plots.HeatPanel("a", [0.1, 1.0], [0.0, 0.01], {(0.1, 0.0): 40.0, (1.0, 0.0): 45.0,
                                                                                 (0.1, 0.01): None}, (1.0, 0.0))]),
        plots.cd_diagram({"a": 1.2, math_name: 1.8, "c": 3.0}, 1.5, [["a", math_name]]),
        plots.grid_lines([plots.GridPanel("task", "lr", "Val top-1", {"a": ([0.2, 1.0, 5.0], [50.0, 55.0, None], 1.0),
                                                                     math_name: ([0.01, 0.05], [30.0, 35.0], 0.05)})],
                         ["a", math_name]),
    ]


def test_figures_are_valid_svg_with_text_labels() -> None:
    pareto, bars, cd_small, cd_large = svgs()
    for svg in (pareto, bars, cd_small, cd_large):
        root = ET.fromstring(svg.encode())
        assert root.tag.endswith("svg")
    assert ">adapter<" in pareto and ">Pareto front<" in pareto and ">linear (0 %)<" in pareto
    assert ">–<" in bars and ">natural<" in bars
    assert ">CD = 1.50<" in cd_small and ">a (1.20)<" in cd_small
    assert ">m11 (10.90)<" in cd_large and "CD =" not in cd_large
    assert "<dc:date>" not in pareto


def test_every_figure_renders_in_both_formats_and_shows_names_as_written() -> None:
    figures = rendered()
    for figure in figures:
        assert ET.fromstring(figure.svg.encode()).tag.endswith("svg")
        assert figure.pdf.startswith(b"%PDF") and b"CreationDate" not in figure.pdf
    pareto, bars, seeds, curves, heat, cd, grid = figures
    # The legend lists every method, also b, which has no bar in the first group.
    assert bars.svg.count(r">$\frac{1}{0}$<") == 1 and bars.svg.count(">a<") == 1
    assert r">$\frac{1}{0}$<" in seeds.svg and r">$\frac{1}{0}$ (1.80)<" in cd.svg
    assert ">Pareto front<" in pareto.svg and ">linear (0 %)<" in pareto.svg
    assert ">Train loss<" in curves.svg and ">Val top-1<" in curves.svg
    assert ">45.0<" in heat.svg and ">div.<" in heat.svg and heat.svg.count(">–<") == 0
    # One axis: the union of both methods' learning rates, evenly spaced; the diverged point is named on the axis.
    assert all(f">{v}<" in grid.svg for v in ("0.01", "0.05", "0.2", "1", "5")) and r">$\frac{1}{0}$<" in grid.svg
    assert ">lr (x: diverged or pruned)<" in grid.svg


def test_a_zero_percent_point_sits_at_a_tick_labelled_0() -> None:
    """Linear probing trains 0 % of the backbone: its point is drawn left of the smallest positive value, at a tick
    that says 0 (never at a count like 0.05 % it does not have), with a break mark before the log axis goes on."""
    svg = plots.pareto_svg(POINTS)
    assert ">0<" in svg and ">//<" in svg and ">linear (0 %)<" in svg
    assert ">0.05<" not in svg  # the log ticks between the 0 position and the smallest positive value are dropped


def test_labels_do_not_overlap_when_there_is_room() -> None:
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    figure = Figure(figsize=(6.4, 4.0))
    axes = figure.add_subplot()
    xy = [(1.0 + 0.02 * (i % 3), 50.0 + 0.4 * (i // 3)) for i in range(9)]  # a tight cluster of nine points
    axes.scatter(*zip(*xy, strict=True))
    axes.set_xlim(0.5, 2.0)
    axes.set_ylim(48.0, 55.0)
    plots.place_labels(axes, xy, [f"method-{i}" for i in range(9)])
    renderer = plots._renderer(figure)
    for text in axes.texts:
        text.update_positions(renderer)
    boxes = [Text.get_window_extent(t, renderer) for t in axes.texts]  # the text alone, not its leader line
    assert len(boxes) == 9
    assert all(plots._overlap(a, b) == 0 for i, a in enumerate(boxes) for b in boxes[i + 1:])
    frame = axes.get_window_extent(renderer)
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)


@pytest.mark.slow
def test_figures_are_byte_identical_in_another_process() -> None:
    here = svgs() + [f.svg for f in rendered()]
    pdfs = [f.pdf for f in rendered()]
    assert here == svgs() + [f.svg for f in rendered()]
    code = ("import sys, tests.test_plots as t; sys.stdout.write('\\x00'.join(t.svgs() + [f.svg for f in t.rendered()]"
            " + [f.pdf.hex() for f in t.rendered()]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=180)
    parts = done.stdout.split("\x00")
    assert parts[:len(here)] == here
    assert [bytes.fromhex(p) for p in parts[len(here):]] == pdfs
