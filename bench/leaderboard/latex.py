"""A LaTeX document (booktabs) that compiles with a plain TeX Live: the table, reference block, footnotes and the
Statistics section (longtable, so long per-task lists break across pages). Copy the tabular into a paper as is."""

from __future__ import annotations

from bench.leaderboard.board import Board, Entry, Row
from bench.leaderboard.text import (
    caption,
    cell_text,
    column_header,
    cost_text,
    decorate,
    params_text,
    statistics_tables,
)

_REPLACEMENTS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"\ensuremath{\pm}", "†": r"\dag{}",
    "–": "--", "−": r"\ensuremath{-}", "χ": r"\ensuremath{\chi}", "²": r"\textsuperscript{2}",
    "α": r"\ensuremath{\alpha}", "≥": r"\ensuremath{\geq}", "<": r"\ensuremath{<}", ">": r"\ensuremath{>}",
    "š": r"\v{s}", "×": r"\ensuremath{\times}",
}


def escape(text: str) -> str:
    """Plain text (with the few symbols our wording uses) to LaTeX that needs no extra package."""
    return "".join(_REPLACEMENTS.get(char, char) for char in text)


def _cell(entry: Entry, row: Row) -> str:
    return decorate(entry, escape(cell_text(entry, row)), bold=r"\textbf{{{}}}", underline=r"\underline{{{}}}",
                    dagger=r"\dag{}", sup=r"\textsuperscript{{{}}}")


def _line(cells: list[str]) -> str:
    return " & ".join(cells) + r" \\"


def render_latex(board: Board) -> str:
    headers = ["Method", *[column_header(board, i) for i in range(len(board.columns))], "Params (M)", "Params (%)",
               "Cost (h)"]
    width = len(headers)
    lines = [
        r"\documentclass[10pt]{article}",
        r"\usepackage[T1]{fontenc}",
        r"\usepackage{booktabs}",
        r"\usepackage{graphicx}",
        r"\usepackage{longtable}",
        r"\usepackage[margin=1.5cm,landscape]{geometry}",
        r"\begin{document}",
        r"\begin{table}[ht]",
        r"\centering",
        rf"\caption{{Leaderboard: {escape(board.name)}. {escape(caption(board))}}}",
        r"\resizebox{\textwidth}{!}{%",
        r"\begin{tabular}{l" + "r" * (width - 1) + "}",
        r"\toprule",
        _line([escape(h) for h in headers]),
        r"\midrule",
    ]
    for row in (r for r in board.rows if r.block == "runs"):
        label = escape(row.label) + (rf"\textsuperscript{{{row.footnote}}}" if row.footnote else "")
        lines.append(_line([label, *[_cell(e, row) for e in row.entries], *params_text(row),
                            cost_text(row)]))
    references = [r for r in board.rows if r.block == "reference"]
    if references:
        lines += [r"\midrule", rf"\multicolumn{{{width}}}{{l}}{{\emph{{Published (not run here)}}}} \\"]
        for row in references:
            lines.append(_line([escape(row.label), *[_cell(e, row) for e in row.entries], "", "", ""]))
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}", ""]
    notes = [rf"\textsuperscript{{{board.footnote_mark(t)}}} {escape(t)}" for t in board.footnotes]
    notes += [rf"[{escape(name)}] {escape(citation)}" for name, citation in board.sources]
    if notes:
        lines += [r"\noindent{\footnotesize", r"\par ".join(notes), "}", ""]
    tables = statistics_tables(board)
    if tables:
        lines.append(r"\section*{Statistics}")
    for table in tables:
        lines.append(rf"\subsection*{{{escape(table.title)}}}")
        if table.rows:
            lines += [r"\begin{longtable}{" + "l" * len(table.headers) + "}", r"\toprule",
                      _line([escape(h) for h in table.headers]), r"\midrule", r"\endhead"]
            lines += [_line([escape(c) for c in row]) for row in table.rows]
            lines += [r"\bottomrule", r"\end{longtable}"]
        lines += [r"\noindent " + escape(table.note), ""]
    lines.append(r"\end{document}")
    return "\n".join(lines) + "\n"
