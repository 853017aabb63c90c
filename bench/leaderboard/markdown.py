"""GitHub-flavoured Markdown: the table, published reference rows as a second table, footnotes, Statistics."""

from __future__ import annotations

from bench.leaderboard.board import Board, Entry, Row
from bench.leaderboard.text import (
    DAGGER,
    caption,
    cell_text,
    column_header,
    cost_text,
    decorate,
    params_text,
    statistics_tables,
)

PLOT_TITLES = {"pareto": "Mean score vs trainable parameters", "groups": "Group means",
               "cd": "Critical-difference diagram"}


def _cell(entry: Entry, row: Row) -> str:
    return decorate(entry, cell_text(entry, row), bold="**{}**", underline="<ins>{}</ins>", dagger=DAGGER,
                    sup="<sup>{}</sup>")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(headers), "|" + "|".join("---" for _ in headers) + "|", *map(line, rows)])


def render_markdown(board: Board, plot_files: dict[str, str] | None = None) -> str:
    headers = ["Method", *[column_header(board, i) for i in range(len(board.columns))]]
    runs = [r for r in board.rows if r.block == "runs"]
    references = [r for r in board.rows if r.block == "reference"]
    parts = [f"# Leaderboard: {board.name}", ""]
    body = [[r.label + (f"<sup>{r.footnote}</sup>" if r.footnote else ""), *[_cell(e, r) for e in r.entries],
             *params_text(r), cost_text(r)] for r in runs]
    parts += [_table([*headers, "Params (M)", "Params (%)", "Cost (h)"], body), "", caption(board), ""]
    if references:
        parts += ["Published reference rows (not run here; labelled with their source):", "",
                  _table(headers, [[r.label, *[_cell(e, r) for e in r.entries]] for r in references]), ""]
        parts += [f"- [{name}]: {citation}" for name, citation in board.sources] + [""]
    if board.footnotes:
        parts += [f"<sup>{board.footnote_mark(text)}</sup> {text}  " for text in board.footnotes] + [""]
    for kind, filename in (plot_files or {}).items():
        parts += [f"![{PLOT_TITLES.get(kind, kind)}]({filename})", ""]
    tables = statistics_tables(board)
    if tables:
        parts += ["## Statistics", ""]
        for table in tables:
            parts += [f"### {table.title}", ""]
            if table.rows:
                parts += [_table(table.headers, table.rows), ""]
            parts += [table.note, ""]
    return "\n".join(parts).rstrip() + "\n"
