"""A standalone HTML page: the sortable table (click a header), the reference block, footnotes, the plots inline
as SVG and the Statistics section. No external file, script or font, so it opens offline and in CI browsers."""

from __future__ import annotations

import html
import re

from bench.leaderboard.board import Board, Entry, Row
from bench.leaderboard.markdown import PLOT_TITLES
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

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #444; cursor: pointer; user-select: none; }
thead th.sorted-asc::after { content: " \\25B2"; } thead th.sorted-desc::after { content: " \\25BC"; }
p.note { max-width: 60em; font-size: 13px; }
figure { display: inline-block; margin: 1em; } figure svg { max-width: 640px; height: auto; }
"""

SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var desc = !th.classList.contains("sorted-desc");
      table.querySelectorAll("thead th").forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add(desc ? "sorted-desc" : "sorted-asc");
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
        var nx = parseFloat(x), ny = parseFloat(y);
        if (isNaN(nx) || isNaN(ny)) { return desc ? String(y).localeCompare(x) : String(x).localeCompare(y); }
        return desc ? ny - nx : nx - ny;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _cell(entry: Entry, row: Row) -> str:
    text = decorate(entry, html.escape(cell_text(entry, row)), bold="<strong>{}</strong>", underline="<u>{}</u>",
                    dagger=DAGGER, sup="<sup>{}</sup>")
    key = "" if entry.value is None else f"{entry.value:.6f}"
    return f'<td data-sort="{key}">{text}</td>'


def _label(row: Row) -> str:
    note = f"<sup>{row.footnote}</sup>" if row.footnote else ""
    return f'<td data-sort="{html.escape(row.label)}">{html.escape(row.label)}{note}</td>'


def _plain(value: str) -> str:
    return f'<td data-sort="{html.escape(value)}">{html.escape(value)}</td>'


def _table(headers: list[str], rows: list[str], sortable: bool = False) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    css = ' class="sortable"' if sortable else ""
    return f"<table{css}><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>"


def inline_svg(svg: str) -> str:
    """The SVG element alone (no XML declaration or doctype), to embed in the page."""
    return re.sub(r"^.*?(<svg\b)", r"\1", svg, count=1, flags=re.S).strip()


def render_html(board: Board) -> str:
    headers = ["Method", *[column_header(board, i) for i in range(len(board.columns))]]
    runs = [r for r in board.rows if r.block == "runs"]
    references = [r for r in board.rows if r.block == "reference"]
    name = html.escape(board.name)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>Leaderboard: {name}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>Leaderboard: {name}</h1>"]
    body = [f"<tr>{_label(r)}{''.join(_cell(e, r) for e in r.entries)}"
            + "".join(_plain(v) for v in (*params_text(r), cost_text(r))) + "</tr>" for r in runs]
    parts += [_table([*headers, "Params (M)", "Params (%)", "Cost (h)"], body, sortable=True),
              f'<p class="note">{html.escape(caption(board))}</p>']
    if references:
        rows = [f"<tr>{_plain(r.label)}{''.join(_cell(e, r) for e in r.entries)}</tr>" for r in references]
        parts += ["<h2>Published reference rows (not run here)</h2>", _table(headers, rows, sortable=True), "<ul>"]
        parts += [f"<li>[{html.escape(n)}] {html.escape(c)}</li>" for n, c in board.sources] + ["</ul>"]
    if board.footnotes:
        parts += ['<p class="note">' + "<br>".join(f"<sup>{board.footnote_mark(t)}</sup> {html.escape(t)}"
                                                   for t in board.footnotes) + "</p>"]
    if board.plots:
        parts.append("<h2>Plots</h2>")
        parts += [f"<figure>{inline_svg(svg)}<figcaption>{html.escape(PLOT_TITLES.get(kind, kind))}</figcaption>"
                  "</figure>" for kind, svg in board.plots.items()]
    tables = statistics_tables(board)
    if tables:
        parts.append("<h2>Statistics</h2>")
    for table in tables:
        parts.append(f"<h3>{html.escape(table.title)}</h3>")
        if table.rows:
            rows = ["<tr>" + "".join(_plain(c) for c in row) + "</tr>" for row in table.rows]
            parts.append(_table(table.headers, rows, sortable=True))
        parts.append(f'<p class="note">{html.escape(table.note)}</p>')
    parts += [f"<script>{SCRIPT}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"
