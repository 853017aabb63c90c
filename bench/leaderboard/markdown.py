"""GitHub-flavoured Markdown: the table, published reference rows as a second table, footnotes, the selected
hyper-parameters, every metric of the language tasks, the figures (and why any is missing), Statistics.

Every name is escaped (bench.leaderboard.escape.markdown): a name can add no markup and never split a row.
"""

from __future__ import annotations

from bench.leaderboard.board import Board, EfficiencyColumn, Entry, Row
from bench.leaderboard.escape import file_part
from bench.leaderboard.escape import markdown as md
from bench.leaderboard.figures import title as figure_title
from bench.leaderboard.text import (
    DAGGER,
    StatsTable,
    caption,
    cell_text,
    column_header,
    cost_text,
    decorate,
    efficiency_text,
    hparams_table,
    metrics_tables,
    params_text,
    statistics_tables,
)


def _cell(entry: Entry, row: Row) -> str:
    return decorate(entry, md(cell_text(entry, row)), bold="**{}**", underline="<ins>{}</ins>", dagger=DAGGER,
                    sup="<sup>{}</sup>")


def _efficiency(entry: Entry, column: EfficiencyColumn) -> str:
    return decorate(entry, md(efficiency_text(entry, column)), bold="**{}**", underline="<ins>{}</ins>",
                    dagger=DAGGER, sup="<sup>{}</sup>")


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Cells are Markdown already (escaped names plus our markup); every row has the header's column count."""
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    assert all(len(r) == len(headers) for r in rows)
    return "\n".join([line(headers), "|" + "|".join("---" for _ in headers) + "|", *map(line, rows)])


def _text_table(data: StatsTable) -> list[str]:
    parts = [f"### {md(data.title)}", ""]
    if data.rows:
        parts += [table([md(h) for h in data.headers], [[md(c) for c in row] for row in data.rows]), ""]
    return [*parts, md(data.note), ""]


def render_markdown(board: Board, plot_files: dict[str, str] | None = None) -> str:
    headers = ["Method", *[md(column_header(board, i)) for i in range(len(board.columns))]]
    runs = [r for r in board.rows if r.block == "runs"]
    references = [r for r in board.rows if r.block == "reference"]
    parts = [f"# Leaderboard: {md(board.name)}", ""]
    body = [[md(r.label) + (f"<sup>{r.footnote}</sup>" if r.footnote else ""), *[_cell(e, r) for e in r.entries],
             *params_text(r), cost_text(r), *[_efficiency(e, c) for e, c in zip(r.efficiency, board.efficiency,
                                                                                 strict=True)]] for r in runs]
    efficiency = [md(c.label) + f"<sup>{board.efficiency_notes[c.score]}</sup>" for c in board.efficiency]
    parts += [table([*headers, "Params (M)", "Params (%)", "Cost (h)", *efficiency], body), "", md(caption(board)),
              ""]
    if references:
        parts += ["Published reference rows (not run here; labelled with their source):", "",
                  table(headers, [[md(r.label), *[_cell(e, r) for e in r.entries]] for r in references]), ""]
        parts += [f"- \\[{md(name)}\\]: {md(citation)}" for name, citation in board.sources] + [""]
    if board.footnotes:
        parts += [f"<sup>{board.footnote_mark(text)}</sup> {md(text)}  " for text in board.footnotes] + [""]
    chosen = hparams_table(board)
    if chosen is not None:
        parts += ["## Selected hyper-parameters", "", *_text_table(chosen)[2:]]
    metrics = metrics_tables(board)
    if metrics:
        parts += ["## All test metrics", ""]
        for data in metrics:
            parts += _text_table(data)
    if plot_files or board.skipped_plots:
        parts += ["## Figures", ""]
        for kind, filename in (plot_files or {}).items():
            parts += [f"![{md(figure_title(kind))}]({file_part(filename)})", ""]
        if board.skipped_plots:
            parts += ["Not drawn:", ""]
            parts += [f"- {md(kind)}: {md(reason)}" for kind, reason in board.skipped_plots.items()] + [""]
    tables = statistics_tables(board)
    if tables:
        parts += ["## Statistics", ""]
        for data in tables:
            parts += _text_table(data)
    return "\n".join(parts).rstrip() + "\n"
