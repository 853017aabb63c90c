"""The leaderboard figures: the Pareto front rule, valid SVG with the method names as text, and byte-identical
output within and across processes."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

from bench.leaderboard import plots

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


def test_figures_are_valid_svg_with_text_labels() -> None:
    pareto, bars, cd_small, cd_large = svgs()
    for svg in (pareto, bars, cd_small, cd_large):
        root = ET.fromstring(svg.encode())
        assert root.tag.endswith("svg")
    assert ">adapter<" in pareto and ">Pareto front<" in pareto
    assert ">–<" in bars and ">natural<" in bars
    assert ">CD = 1.50<" in cd_small and ">a (1.20)<" in cd_small
    assert ">m11 (10.90)<" in cd_large and "CD =" not in cd_large
    assert "<dc:date>" not in pareto


def test_figures_are_byte_identical_in_another_process() -> None:
    here = svgs()
    assert here == svgs()
    code = "import sys, tests.test_plots as t; sys.stdout.write('\\x00'.join(t.svgs()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.split("\x00") == here
