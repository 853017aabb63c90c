"""A standalone HTML page: the sortable table (click a header), the reference block, footnotes, the selected
hyper-parameters, every metric of the language tasks, the plots inline as SVG and the Statistics section. No
external file, script or font, so it opens offline and in CI browsers.

Every name goes through bench.leaderboard.escape.html (text and attribute values); the inline SVG is
matplotlib's, whose text it escapes itself.
"""

from __future__ import annotations

import re

from bench.leaderboard.board import Board, EfficiencyColumn, Entry, Row
from bench.leaderboard.escape import html as esc
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

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
th:first-child, td:first-child, td.t, th.t { text-align: left; }
thead th { border-bottom: 2px solid #444; cursor: pointer; user-select: none; }
thead th.sorted-asc::after { content: " \\25B2"; } thead th.sorted-desc::after { content: " \\25BC"; }
p.note, ul.note { max-width: 60em; font-size: 13px; }
h2 { margin-top: 1.5em; }
figure { display: inline-block; margin: 1em; vertical-align: top; } figure svg { max-width: 900px; height: auto; }
figcaption { font-size: 13px; max-width: 640px; }
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
    text = decorate(entry, esc(cell_text(entry, row)), bold="<strong>{}</strong>", underline="<u>{}</u>",
                    dagger=DAGGER, sup="<sup>{}</sup>")
    key = "" if entry.value is None else f"{entry.value:.6f}"
    return f'<td data-sort="{key}">{text}</td>'


def _efficiency(entry: Entry, column: EfficiencyColumn) -> str:
    text = decorate(entry, esc(efficiency_text(entry, column)), bold="<strong>{}</strong>", underline="<u>{}</u>",
                    dagger=DAGGER, sup="<sup>{}</sup>")
    key = "" if entry.value is None else f"{entry.value:.6f}"
    return f'<td data-sort="{key}">{text}</td>'


def _label(row: Row) -> str:
    note = f"<sup>{esc(row.footnote)}</sup>" if row.footnote else ""
    return f'<td data-sort="{esc(row.label)}">{esc(row.label)}{note}</td>'


def _is_number(value: str) -> bool:
    return re.fullmatch(r"[-+<>\[\](),.\d ±n=e%–]*", value) is not None


def _plain(value: str) -> str:
    align = "" if _is_number(value) else ' class="t"'  # text left, numbers right
    return f'<td data-sort="{esc(value)}"{align}>{esc(value)}</td>'


def _table(headers: list[str], rows: list[str], sortable: bool = False, text: set[int] | None = None) -> str:
    """`text`: the columns of text, whose headers sit left like their cells (numbers and their headers right)."""
    head = "".join(f'<th class="t">{esc(h)}</th>' if i in (text or set()) else f"<th>{esc(h)}</th>"
                   for i, h in enumerate(headers))
    css = ' class="sortable"' if sortable else ""
    return f"<table{css}><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>"


def _text_table(data: StatsTable, level: str = "h3") -> list[str]:
    parts = [f"<{level}>{esc(data.title)}</{level}>"]
    if data.rows:
        rows = ["<tr>" + "".join(_plain(c) for c in row) + "</tr>" for row in data.rows]
        text = {i for i in range(len(data.headers)) if not all(_is_number(row[i]) for row in data.rows)}
        parts.append(_table(data.headers, rows, sortable=True, text=text))
    return [*parts, f'<p class="note">{esc(data.note)}</p>']


def inline_svg(svg: str) -> str:
    """The SVG element alone (no XML declaration or doctype), to embed in the page."""
    return re.sub(r"^.*?(<svg\b)", r"\1", svg, count=1, flags=re.S).strip()


def render_html(board: Board) -> str:
    headers = ["Method", *[column_header(board, i) for i in range(len(board.columns))]]
    runs = [r for r in board.rows if r.block == "runs"]
    references = [r for r in board.rows if r.block == "reference"]
    name = esc(board.name)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>Leaderboard: {name}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>Leaderboard: {name}</h1>"]
    body = [f"<tr>{_label(r)}{''.join(_cell(e, r) for e in r.entries)}"
            + "".join(_plain(v) for v in (*params_text(r), cost_text(r)))
            + "".join(_efficiency(e, c) for e, c in zip(r.efficiency, board.efficiency, strict=True)) + "</tr>"
            for r in runs]
    efficiency = [f"{c.label} ({board.efficiency_notes[c.score]})" for c in board.efficiency]
    parts += [_table([*headers, "Params (M)", "Params (%)", "Cost (h)", *efficiency], body, sortable=True),
              f'<p class="note">{esc(caption(board))}</p>']
    if references:
        rows = [f"<tr>{_plain(r.label)}{''.join(_cell(e, r) for e in r.entries)}</tr>" for r in references]
        parts += ["<h2>Published reference rows (not run here)</h2>", _table(headers, rows, sortable=True), "<ul>"]
        parts += [f"<li>[{esc(n)}] {esc(c)}</li>" for n, c in board.sources] + ["</ul>"]
    if board.footnotes:
        parts += ['<p class="note">' + "<br>".join(f"<sup>{board.footnote_mark(t)}</sup> {esc(t)}"
                                                   for t in board.footnotes) + "</p>"]
    chosen = hparams_table(board)
    if chosen is not None:
        parts += _text_table(chosen, "h2")
    metrics = metrics_tables(board)
    if metrics:
        parts.append("<h2>All test metrics</h2>")
        for data in metrics:
            parts += _text_table(data)
    if board.plots or board.skipped_plots:
        parts.append("<h2>Figures</h2>")
        parts += [f"<figure>{inline_svg(rendered.svg)}<figcaption>{esc(figure_title(kind))}</figcaption></figure>"
                  for kind, rendered in board.plots.items()]
        if board.skipped_plots:
            parts += ['<p class="note">Not drawn:</p><ul class="note">']
            parts += [f"<li>{esc(kind)}: {esc(reason)}</li>" for kind, reason in board.skipped_plots.items()]
            parts.append("</ul>")
    tables = statistics_tables(board)
    if tables:
        parts.append("<h2>Statistics</h2>")
    for data in tables:
        parts += _text_table(data)
    parts += [f"<script>{SCRIPT}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"
