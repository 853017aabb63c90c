"""LaTeX for papers: `\\input`-able tables (<stem>-table.tex, <stem>-hparams-table.tex, <stem>-metrics-table.tex;
booktabs + graphicx only) and a standalone <stem>.tex that inputs them, shows the figures (PDF) and the Statistics
section, and compiles in ONE pdflatex pass with texlive-latex-base + texlive-latex-recommended.

No longtable, cross-reference or page count (they need a second pass): long lists are split into tables of at
most ROWS_PER_TABLE rows. Numbers are right-aligned with fixed decimals (siunitx is not in those two packages);
the std sits in its own left-aligned column, so means and ± line up. Names are display names (bench.leaderboard
.names) escaped by bench.leaderboard.escape.latex.
"""

from __future__ import annotations

import re

from bench.leaderboard import names
from bench.leaderboard.board import Board, EfficiencyColumn, Entry, Row
from bench.leaderboard.escape import latex as escape
from bench.leaderboard.figures import title as figure_title
from bench.leaderboard.text import (
    StatsTable,
    caption,
    cost_text,
    efficiency_text,
    hparams_table,
    metric_digits,
    metrics_tables,
    number,
    params_text,
    statistics_tables,
)

ROWS_PER_TABLE = 36
FLOAT = r"\begin{table}[htbp]"  # 'h' first: in the standalone document a table follows its heading
PACKAGES = r"\usepackage{booktabs,graphicx}"
GAP = r"\smallskip"  # a caption above a table has no space below it in the standard classes
FIT = r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%"  # shrink to the text width, never enlarge


def _line(cells: list[str]) -> str:
    return " & ".join(cells) + r" \\"


def _marks(entry: Entry) -> str:
    out = r"\dag{}" if entry.tied else ""
    if entry.footnote:
        out += rf"\textsuperscript{{{entry.footnote}}}"
    return out


def _value(entry: Entry, row: Row) -> str:
    if entry.value is None:
        return "--"
    text = number(entry, row)
    return rf"\textbf{{{text}}}" if entry.place == 1 else rf"\underline{{{text}}}" if entry.place == 2 else text


def _efficiency(entry: Entry, column: EfficiencyColumn) -> str:
    if entry.value is None:
        return "--" + _marks(entry)
    text = efficiency_text(entry, column)
    text = rf"\textbf{{{text}}}" if entry.place == 1 else rf"\underline{{{text}}}" if entry.place == 2 else text
    return text + _marks(entry)


def _spread(entry: Entry) -> str:
    """The left-aligned half of a task cell: ± std, the seed count where it differs, then the marks."""
    text = ""
    if entry.value is not None and entry.std is not None and entry.seeds is not None:
        text = rf"{{\scriptsize$\pm${entry.std:.2f}}}"
        if entry.shown_seeds:
            text += rf"{{\scriptsize\,(n={entry.seeds})}}"
    return text + _marks(entry)


def _label(board: Board) -> dict[str, str]:
    return {c.key: c.label for c in board.columns if c.kind == "task"}


def _task_header(board: Board, index: int) -> str:
    column = board.columns[index]
    text = names.task(column.key, _label(board))
    if column.metric != "top1" and len(board.metrics) > 1:
        text += f" ({names.metric(column.metric)})"
    return escape(text)


def _row_label(row: Row) -> str:
    text = escape(names.method(row.method or row.label))
    if row.block == "reference" and row.source:
        text += rf" {{\scriptsize[{escape(row.source)}]}}"
    return text + (rf"\textsuperscript{{{row.footnote}}}" if row.footnote else "")


def render_table(board: Board, stem: str) -> str:
    """The leaderboard as a table float: group headers over their tasks (\\cmidrule), mean and ± std aligned."""
    tasks = [i for i, c in enumerate(board.columns) if c.kind == "task"]
    computed = [i for i, c in enumerate(board.columns) if c.kind != "task"]
    extra = len(board.efficiency)  # the opt-in efficiency-aware score columns, after Params and Cost
    spec = "@{}l" + "r@{\\,}l" * len(tasks) + "r" * len(computed) + "r@{}l" * 3 + "r" * extra + "@{}"
    width = 1 + 2 * len(tasks) + len(computed) + 2 * 3 + extra
    lines = [f"% {stem}-table.tex, written by `bench leaderboard`: \\input{{{stem}-table}} in a document with",
             f"% {PACKAGES}.", FLOAT, r"\centering",
             rf"\caption{{{escape(caption(board))}}}", rf"\label{{tab:{stem}}}", GAP, FIT,
             r"\begin{tabular}{" + spec + "}", r"\toprule"]
    if board.groups:
        head, rules, column = [""], [], 2
        ordered = [board.columns[i].key for i in tasks]
        position = 0
        while position < len(ordered):
            group = next((g for g, members in board.groups.items() if ordered[position] in members), None)
            span = 1
            if group is not None:
                while position + span < len(ordered) and ordered[position + span] in board.groups[group]:
                    span += 1
                head.append(rf"\multicolumn{{{2 * span}}}{{c}}{{{escape(names.group(group))}}}")
                rules.append(rf"\cmidrule(lr){{{column}-{column + 2 * span - 1}}}")
            else:
                head += ["", ""]
            column += 2 * span
            position += span
        groups = [i for i in computed if board.columns[i].kind == "group"]
        if groups:
            head.append(rf"\multicolumn{{{len(groups)}}}{{c}}{{Group means}}")
            rules.append(rf"\cmidrule(lr){{{column}-{column + len(groups) - 1}}}")
        head += [""] * (width - sum(_span(h) for h in head))
        lines += [_line(head), "".join(rules)]
    header = ["Method", *[rf"\multicolumn{{2}}{{c}}{{{_task_header(board, i)}}}" for i in tasks]]
    header += [escape(names.group(board.columns[i].key)) if board.columns[i].kind == "group" else "Mean"
               for i in computed]
    header += [rf"\multicolumn{{2}}{{c}}{{{h}}}" for h in ("Params (M)", r"Params (\%)", "Cost (h)")]
    header += [escape(c.label) + rf"\textsuperscript{{{board.efficiency_notes[c.score]}}}" for c in board.efficiency]
    lines += [_line(header), r"\midrule"]

    def cells(row: Row) -> list[str]:
        out = []
        for i, entry in enumerate(row.entries):
            if board.columns[i].kind == "task":
                out += [_value(entry, row), _spread(entry)]
            else:
                out.append(_value(entry, row) + _marks(entry))
        return out

    for row in (r for r in board.rows if r.block == "runs"):
        lines.append(_line([_row_label(row), *cells(row),
                            *[part for text in (*params_text(row), cost_text(row)) for part in _decimal(text)],
                            *[_efficiency(e, c) for e, c in zip(row.efficiency, board.efficiency, strict=True)]]))
    references = [r for r in board.rows if r.block == "reference"]
    if references:
        lines += [r"\midrule", rf"\multicolumn{{{width}}}{{@{{}}l}}{{\emph{{Published (not run here)}}}} \\"]
        lines += [_line([_row_label(row), *cells(row), *[""] * (6 + extra)]) for row in references]
    lines += [r"\bottomrule", r"\end{tabular}}"]
    notes = [rf"\textsuperscript{{{board.footnote_mark(t)}}}\,{escape(t)}" for t in board.footnotes]
    notes += [rf"[{escape(name)}] {escape(citation)}" for name, citation in board.sources]
    if notes:
        lines += [r"\par\smallskip\parbox{\linewidth}{\footnotesize " + r"\\ ".join(notes) + "}"]
    lines += [r"\end{table}"]
    return "\n".join(lines) + "\n"


def _decimal(text: str) -> tuple[str, str]:
    """'0.0333' -> ('0', '.0333'): the halves of an r@{}l column pair, so numbers of any precision line up on the
    decimal point (what siunitx's S column does, without siunitx)."""
    whole, dot, fraction = text.partition(".")
    return whole, dot + fraction


def _span(cell: str) -> int:
    if cell.startswith(r"\multicolumn{"):
        return int(cell[len(r"\multicolumn{"):].split("}", 1)[0])
    return 1


def _chunks(rows: list[list[str]]) -> list[list[list[str]]]:
    return [rows[i:i + ROWS_PER_TABLE] for i in range(0, len(rows), ROWS_PER_TABLE)] or [[]]


def render_hparams_table(board: Board, stem: str) -> str | None:
    """The selected hyper-parameters as table floats of at most ROWS_PER_TABLE rows; the task named once."""
    data = hparams_table(board)
    if data is None:
        return None
    labels = _label(board)
    rows, previous = [], None
    for h, cells in zip(board.hparams, data.rows, strict=True):
        task = "" if h.task == previous else escape(names.task(h.task, labels))
        lr, wd, *rest = cells[2:]
        rows.append([task, escape(names.method(h.method)), *_decimal(escape(lr)), *_decimal(escape(wd)),
                     *[escape(c) for c in rest]])
        previous = h.task
    header = [escape(h) for h in data.headers]
    header[2:4] = [rf"\multicolumn{{2}}{{c}}{{{h}}}" for h in header[2:4]]  # lr, wd: on the decimal point
    lines = [f"% {stem}-hparams-table.tex, written by `bench leaderboard`: \\input{{{stem}-hparams-table}} with",
             f"% {PACKAGES}."]
    for n, chunk in enumerate(_chunks(rows)):
        more = " (continued)" if n else ""
        lines += [FLOAT, r"\centering",
                  rf"\caption{{{escape(data.title)}{more}. {escape(data.note)}}}" if not n else
                  rf"\caption{{{escape(data.title)}{more}.}}",
                  *([rf"\label{{tab:{stem}-hparams}}"] if not n else []), GAP, FIT,
                  rf"\begin{{tabular}}{{@{{}}llr@{{}}lr@{{}}lll{'r' * (len(header) - 6)}@{{}}}}", r"\toprule",
                  _line(header), r"\midrule"]
        lines += [_line(r) if not (r[0] and i) else r"\addlinespace" + "\n" + _line(r) for i, r in enumerate(chunk)]
        lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def render_metrics_table(board: Board, stem: str) -> str | None:
    """Every test metric of each language task, one table float per task."""
    if not board.metric_tables:
        return None
    labels = _label(board)
    lines = [f"% {stem}-metrics-table.tex, written by `bench leaderboard`: \\input{{{stem}-metrics-table}} with",
             f"% {PACKAGES}."]
    for table, data in zip(board.metric_tables, metrics_tables(board), strict=True):
        digits = metric_digits(table)
        spec = "@{}l" + "r@{\\,}l" * len(table.metrics) + "@{}"
        header = ["Method", *[rf"\multicolumn{{2}}{{c}}{{{escape(names.metric(m))}}}" for m in table.metrics]]
        lines += [FLOAT, r"\centering",
                  rf"\caption{{All test metrics: {escape(names.task(table.task, labels))}. {escape(data.note)}}}",
                  GAP, FIT, r"\begin{tabular}{" + spec + "}", r"\toprule", _line(header), r"\midrule"]
        for row in table.rows:
            cells = [escape(names.method(row.method))]
            for metric in table.metrics:
                if metric not in row.values:
                    cells += ["--", ""]
                    continue
                mean, std, _ = row.values[metric]
                d = digits[metric]
                cells += [f"{mean:.{d}f}", rf"{{\scriptsize$\pm${std:.{d}f}}}"]
            lines.append(_line(cells))
        lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


NAMED = {"Task": names.task, "Best": names.method, "Method": names.method}  # statistics columns of identifiers


def _numeric(cells: list[str]) -> bool:
    return all(re.fullmatch(r"[-+<>\[\](),.\d ]*", c) for c in cells) and any(c.strip() for c in cells)


def _statistics(data: StatsTable) -> list[str]:
    """A Statistics table with display names in its task and method columns and numbers right-aligned."""
    lines = [rf"\subsection*{{{escape(data.title)}}}"]
    display = [NAMED.get(h) for h in data.headers]
    rows = [[escape(show(c) if show else c) for show, c in zip(display, row, strict=True)] for row in data.rows]
    spec = "".join("r" if _numeric([row[i] for row in data.rows]) else "l" for i in range(len(data.headers)))
    for chunk in _chunks(rows) if rows else []:
        lines += [r"\noindent{\small", r"\begin{tabular}{@{}" + spec + "@{}}", r"\toprule",
                  _line([escape(h) for h in data.headers]), r"\midrule"]
        lines += [_line(row) for row in chunk]
        lines += [r"\bottomrule", r"\end{tabular}}\par\medskip", ""]
    return [*lines, r"\noindent " + escape(data.note), ""]


def latex_files(board: Board, stem: str, figures: dict[str, str] | None = None) -> dict[str, str]:
    """{file name: text}: the standalone <stem>.tex and the tables it inputs; figures = {kind: PDF file name}."""
    files = {f"{stem}-table.tex": render_table(board, stem)}
    for suffix, text in (("hparams-table", render_hparams_table(board, stem)),
                         ("metrics-table", render_metrics_table(board, stem))):
        if text is not None:
            files[f"{stem}-{suffix}.tex"] = text
    lines = [r"\documentclass[10pt]{article}", PACKAGES, r"\usepackage[a4paper,landscape,margin=1.5cm]{geometry}",
             r"\renewcommand{\label}[1]{}  % no cross-references here: one pdflatex pass, no rerun warning",
             r"\begin{document}", rf"\section*{{Leaderboard: {escape(board.name)}}}"]
    lines += [rf"\input{{{name[:-4]}}}" for name in files] + [r"\clearpage"]
    for kind, filename in (figures or {}).items():
        lines += [rf"\IfFileExists{{{filename}}}{{\begin{{center}}",
                  rf"\includegraphics[width=\linewidth,height=0.8\textheight,keepaspectratio]{{{filename}}}\\",
                  rf"{{\small {escape(figure_title(kind))}}}\end{{center}}}}{{}}"]
    tables = statistics_tables(board)
    if tables:
        lines += [r"\clearpage", r"\section*{Statistics}"]
        for data in tables:
            lines += _statistics(data)
    lines.append(r"\end{document}")
    files[f"{stem}.tex"] = "\n".join(lines) + "\n"
    return files


def render_latex(board: Board, stem: str = "leaderboard") -> str:
    """The table file alone (what a paper \\inputs)."""
    return render_table(board, stem)
