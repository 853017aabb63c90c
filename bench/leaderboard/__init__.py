"""Leaderboards rebuilt from the run store only: collect cells, test differences, lay out a Board, render it.

Same runs -> byte-identical files: everything is sorted, random tests are seeded, plots carry no dates, and no
timestamp or path of this machine is written. A new layout or test never needs a re-run. `write` owns the files
of its suite in the output folder: it removes those an earlier write left and this one does not produce.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from bench.leaderboard.board import Board, build_board
from bench.leaderboard.collect import Cell, Collected, collect
from bench.leaderboard.details import read_details
from bench.leaderboard.efficiency import parse as parse_efficiency
from bench.leaderboard.escape import file_part
from bench.leaderboard.html import render_html
from bench.leaderboard.latex import latex_files, render_latex
from bench.leaderboard.machine import render_csv, render_hparams_csv, render_json, render_metrics_csv
from bench.leaderboard.markdown import render_markdown
from bench.leaderboard.plots import Rendered
from bench.leaderboard.significance import Settings, across_tasks, per_task_tests
from bench.reference import ReferenceTable
from bench.store import RunStore, atomic_write_bytes

FORMATS = ("md", "tex", "html", "csv", "json")
__all__ = ["FORMATS", "Board", "Cell", "Collected", "Settings", "Written", "build", "collect", "default_out_dir",
           "render_html", "render_latex", "render_markdown", "write"]
log = logging.getLogger(__name__)


def build(store: RunStore, name: str, tasks: list[str] | None, methods: list[str] | None,
          groups: dict[str, list[str]] | None = None, references: dict[str, ReferenceTable] | None = None,
          settings: Settings | None = None, plots: bool = True, protocol: str = "clean",
          efficiency: Sequence[str] = ()) -> Board:
    """The board for these tasks (None: every task with runs) and methods (None: every method with runs), from
    the runs of one protocol (task profile); a board of another protocol than 'clean' is named <name>-<protocol>,
    so its files never replace the clean board's. `efficiency`: opt-in efficiency-aware score columns ('ppt',
    'pscp'; bench.leaderboard.efficiency)."""
    settings = settings or Settings()
    scores = parse_efficiency(efficiency)  # an unknown name fails before any record is read
    collected = collect(store, tasks, methods, protocol=protocol)
    if protocol != "clean":
        name = f"{name}-{protocol}"
    task_names = tasks or sorted({t for t, _ in [*collected.cells, *collected.missing]})
    method_names = methods or collected.methods
    task_tests = per_task_tests(collected.cells, task_names, settings)
    across = across_tasks(collected.cells, task_names, method_names, settings)
    details = read_details(store.root, {pair: cell for pair, cell in collected.cells.items()
                                        if pair[0] in task_names and pair[1] in method_names})
    with_runs = {task for task, _ in collected.cells}
    declared = {task: metric for task in task_names if task not in with_runs
                and (metric := declared_metric(task)) is not None}
    board = build_board(name, collected, task_names, method_names, groups or {}, references or {}, task_tests,
                        across, settings, details, declared, efficiency=scores)
    board.store_root = str(store.root)
    if plots:
        board.plots = draw_plots(board)
    else:
        board.skipped_plots = {"all": "plots not requested (--no-plots)"}
    return board


def declared_metric(task: str) -> str | None:
    """The primary metric a task's spec declares, for a column without runs yet (so an XSum column never reads
    as BLEU, and no Mean is laid over two metrics); None when the spec cannot be loaded."""
    from bench import registry
    from bench.errors import BenchError

    try:
        return str(registry.load_task_by_name(task).primary_metric)
    except (BenchError, ValueError, KeyError, OSError):
        return None


def draw_plots(board: Board) -> dict[str, Rendered]:
    """The figures (bench.leaderboard.figures); the reasons for those not drawn go to board.skipped_plots."""
    from bench.leaderboard.figures import draw

    figures, board.skipped_plots = draw(board)
    return figures


def file_stem(name: str) -> str:
    """'vtab' -> 'vtab', 'mini/counting' -> 'mini-counting': safe in a file name, a URL and a TeX \\input."""
    return file_part(name)


def default_out_dir(results_root: Path) -> Path:
    """Where `bench leaderboard` writes when no --out is given: <results root>/../leaderboards/local, i.e.
    results/leaderboards/local/ for the default store results/runs. Never results/leaderboards/ itself, where the
    committed example boards live, so a first run cannot overwrite them (and the folder is for git to ignore)."""
    return results_root.parent / "leaderboards" / "local"


_PLOT_KINDS = "pareto|groups|tasks|curves|grid|cd|heatmap-[A-Za-z0-9._-]+"


def owned(out_dir: Path, stem: str) -> list[Path]:
    """The files in out_dir that a write of this suite produces in some configuration (any format, any plot)."""
    pattern = re.compile(re.escape(stem) + r"(\.(md|tex|html|csv|json)|-(table|hparams-table|metrics-table)\.tex"
                         r"|-(hparams|metrics)\.csv|-(" + _PLOT_KINDS + r")\.(svg|pdf))")
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.iterdir() if p.is_file() and pattern.fullmatch(p.name))


class Written(list[Path]):
    """The files written (iterate it as a list), the stale files removed, and one line per figure not drawn."""

    def __init__(self, paths: Iterable[Path], removed: list[Path], skipped: list[str]) -> None:
        super().__init__(paths)
        self.removed = removed
        self.skipped = skipped


def write(board: Board, out_dir: Path, formats: tuple[str, ...] = FORMATS) -> Written:
    """Write the requested formats and the figures into out_dir: <stem>.<format>, the LaTeX tables
    <stem>-{table,hparams-table,metrics-table}.tex, <stem>-{hparams,metrics}.csv, figures <stem>-<kind>.{svg,pdf}.
    Files of this suite from an earlier write that this one does not produce are removed. One INFO line per file
    written and removed, and per figure not drawn with its reason (also returned in .skipped)."""
    stem = file_stem(board.name)
    files: dict[str, bytes] = {}
    plot_files = {}
    for kind, rendered in board.plots.items():
        files[f"{stem}-{kind}.svg"] = rendered.svg.encode()
        files[f"{stem}-{kind}.pdf"] = rendered.pdf
        plot_files[kind] = f"{stem}-{kind}"
    renderers: dict[str, Callable[[], dict[str, str]]] = {
        "md": lambda: {f"{stem}.md": render_markdown(board, {k: f"{v}.svg" for k, v in plot_files.items()})},
        "tex": lambda: latex_files(board, stem, {k: f"{v}.pdf" for k, v in plot_files.items()}),
        "html": lambda: {f"{stem}.html": render_html(board)},
        "csv": lambda: {f"{stem}.csv": render_csv(board), f"{stem}-hparams.csv": render_hparams_csv(board),
                        **({f"{stem}-metrics.csv": render_metrics_csv(board)} if board.metric_tables else {})},
        "json": lambda: {f"{stem}.json": render_json(board)},
    }
    for fmt in formats:
        files.update({name: text.encode() for name, text in renderers[fmt]().items()})
    removed = [path for path in owned(out_dir, stem) if path.name not in files]
    for path in removed:
        path.unlink()
        log.info("removed %s (an earlier leaderboard's file this one does not produce)", path)
    written = []
    for name, data in files.items():
        atomic_write_bytes(out_dir / name, data)
        written.append(out_dir / name)
        log.info("wrote %s", out_dir / name)
    skipped = [f"{kind}: {reason}" for kind, reason in board.skipped_plots.items()]
    for line in skipped:
        log.info("figure not drawn, %s", line)
    return Written(written, removed, skipped)
