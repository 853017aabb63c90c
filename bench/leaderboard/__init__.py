"""Leaderboards rebuilt from the run store only: collect cells, test differences, lay out a Board, render it.

Same runs -> byte-identical files: everything is sorted, random tests are seeded, plots carry no dates, and no
timestamp or path of this machine is written. A new layout or test never needs a re-run.
"""

from __future__ import annotations

from pathlib import Path

from bench.leaderboard.board import Board, build_board
from bench.leaderboard.collect import Cell, Collected, collect
from bench.leaderboard.html import render_html
from bench.leaderboard.latex import render_latex
from bench.leaderboard.machine import render_csv, render_json
from bench.leaderboard.markdown import render_markdown
from bench.leaderboard.significance import Settings, across_tasks, per_task_tests
from bench.reference import ReferenceTable
from bench.store import RunStore, atomic_write_bytes

FORMATS = ("md", "tex", "html", "csv", "json")
__all__ = ["FORMATS", "Board", "Cell", "Collected", "Settings", "build", "collect", "write"]


def build(store: RunStore, name: str, tasks: list[str] | None, methods: list[str] | None,
          groups: dict[str, list[str]] | None = None, references: dict[str, ReferenceTable] | None = None,
          settings: Settings | None = None, plots: bool = True) -> Board:
    """The board for these tasks (None: every task with runs) and methods (None: every method with runs)."""
    settings = settings or Settings()
    collected = collect(store, tasks, methods)
    task_names = tasks or sorted({t for t, _ in [*collected.cells, *collected.missing]})
    method_names = methods or collected.methods
    task_tests = per_task_tests(collected.cells, task_names, settings)
    across = across_tasks(collected.cells, task_names, method_names, settings)
    board = build_board(name, collected, task_names, method_names, groups or {}, references or {}, task_tests,
                        across, settings)
    if plots:
        board.plots = draw_plots(board)
    return board


def draw_plots(board: Board) -> dict[str, str]:
    """Pareto front (mean vs trainable %), group (or task) bars, and the CD diagram when Friedman ran."""
    import bench.leaderboard.plots as plots

    runs = [r for r in board.rows if r.block == "runs"]
    out = {}
    points = [(r.label, r.trainable_percent, r.entries[-1].value) for r in runs
              if r.entries[-1].value is not None and r.trainable_percent is not None]
    if points:
        out["pareto"] = plots.pareto_svg([(label, float(p), float(v)) for label, p, v in points])
    kind = "group" if any(c.kind == "group" for c in board.columns) else "task"
    indices = [i for i, c in enumerate(board.columns) if c.kind == kind]
    if runs and indices:
        bars = {board.columns[i].label: [r.entries[i].value for r in runs] for i in indices}
        out["groups"] = plots.group_bars_svg([r.label for r in runs], bars)
    across = board.across
    if across is not None and across.friedman is not None:
        out["cd"] = plots.cd_diagram_svg(across.mean_ranks, across.critical_difference, across.cliques)
    return out


def file_stem(name: str) -> str:
    return name.replace("/", "-")


def write(board: Board, out_dir: Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write the requested formats and the plots into out_dir as <name>.<ext> and <name>-<plot>.svg."""
    stem = file_stem(board.name)
    written = []
    plot_files = {kind: f"{stem}-{kind}.svg" for kind in board.plots}
    for kind, svg in board.plots.items():
        written.append(_write(out_dir / plot_files[kind], svg))
    renderers = {"md": lambda: render_markdown(board, plot_files), "tex": lambda: render_latex(board),
                 "html": lambda: render_html(board), "csv": lambda: render_csv(board),
                 "json": lambda: render_json(board)}
    for fmt in formats:
        written.append(_write(out_dir / f"{stem}.{fmt}", renderers[fmt]()))
    return written


def _write(path: Path, text: str) -> Path:
    atomic_write_bytes(path, text.encode())
    return path
