"""Names written into outputs, made safe per format: one function per format, applied to every string that comes
from a run record or the command line (task, method, hyper-parameter values, footnotes, device names).

A name can never add markup, split a table row, start a spreadsheet formula, break a TeX run or a plot's math
text. Numbers and our own markup are added by the renderers after escaping, never passed through here.
"""

from __future__ import annotations

import html as _html
import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


def one_line(text: str) -> str:
    """Newlines, tabs and other control characters as one space: a name is a single line in every format."""
    return _CONTROL.sub(" ", text)


# Markdown (GitHub-flavoured) --------------------------------------------------------------------------------------

_MD_PUNCTUATION = {"\\": "\\\\", "`": "\\`", "*": "\\*", "|": "\\|", "~": "\\~", "$": "\\$", "<": "&lt;",
                   ">": "&gt;", "&": "&amp;"}


def markdown(text: str) -> str:
    """Text for a Markdown table cell or paragraph: no HTML tag or entity, emphasis, code span, link, image, math
    or strikethrough can start, `|` cannot end the cell and a newline cannot end the row. Kept readable: an
    underscore inside a word stays (`deep_share`: GitHub never reads it as emphasis), and a bracket only gets a
    backslash where it could close a link (`](`, `][`, `]:`), so `vpt_deep [vpt_2022]` reads as it is."""
    text = one_line(text)
    out = []
    for i, char in enumerate(text):
        after = text[i + 1:i + 2]
        if char == "_":
            inside = 0 < i < len(text) - 1 and text[i - 1].isalnum() and after.isalnum()
            out.append("_" if inside else "\\_")
        elif char == "]":
            out.append("\\]" if after in ("(", "[", ":") else "]")
        else:
            out.append(_MD_PUNCTUATION.get(char, char))
    return "".join(out)


# CSV ----------------------------------------------------------------------------------------------------------------

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    """A text cell a spreadsheet shows as text: a leading = + - @ tab or carriage return gets a single quote in
    front (OWASP's CSV-injection rule). Quoting of commas, quotes and newlines is left to the csv module."""
    return "'" + text if text.startswith(FORMULA_START) else text


# LaTeX --------------------------------------------------------------------------------------------------------------

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\ensuremath{<}", ">": r"\ensuremath{>}",
    "|": r"\ensuremath{|}", "[": "{[}", "]": "{]}", '"': "''",
}
# Symbols of our own wording and common letters, in commands the default OT1 encoding typesets.
_LATEX_SYMBOLS = {
    "±": r"\ensuremath{\pm}", "†": r"\dag{}", "–": "--", "—": "---", "−": r"\ensuremath{-}",
    "×": r"\ensuremath{\times}", "↓": r"\ensuremath{\downarrow}", "³": r"\ensuremath{^3}",
    "χ": r"\ensuremath{\chi}", "α": r"\ensuremath{\alpha}", "²": r"\ensuremath{^2}", "≥": r"\ensuremath{\geq}",
    "≤": r"\ensuremath{\leq}", "…": r"\dots{}", "‘": "`", "’": "'", "“": "``", "”": "''", "·": r"\ensuremath{\cdot}",
    "ß": r"\ss{}", "æ": r"\ae{}", "Æ": r"\AE{}", "œ": r"\oe{}", "Œ": r"\OE{}", "ø": r"\o{}", "Ø": r"\O{}",
    "ł": r"\l{}", "Ł": r"\L{}", "ı": r"\i{}", "\u00a0": "~", "β": r"\ensuremath{\beta}",
}
# Combining accents (after NFD decomposition) -> the accent command of plain LaTeX.
_LATEX_ACCENTS = {"\u0300": "`", "\u0301": "'", "\u0302": "^", "\u0303": "~", "\u0304": "=", "\u0306": "u",
                  "\u0307": ".", "\u0308": '"', "\u030a": "r", "\u030b": "H", "\u030c": "v", "\u0327": "c"}


def latex(text: str) -> str:
    """Plain text to LaTeX that compiles with texlive-latex-base alone (default OT1 encoding, no inputenc
    declarations needed): the ten special characters escaped, accented Latin letters as accent commands (é ->
    \\'{e}), and any other character pdflatex cannot typeset written as its code point, [U+6771]."""
    out: list[str] = []
    chars = unicodedata.normalize("NFD", one_line(text))
    for i, char in enumerate(chars):
        if char == "-" and chars[i + 1:i + 2] == "-":
            out.append("-{}")  # no -- or --- ligature (en / em dash) from a name
        elif char in _LATEX_SPECIAL:
            out.append(_LATEX_SPECIAL[char])
        elif char.isascii():
            out.append(char)
        elif char in _LATEX_SYMBOLS:
            out.append(_LATEX_SYMBOLS[char])
        elif char in _LATEX_ACCENTS and out:
            base = out.pop()
            base = r"\i" if base == "i" else r"\j" if base == "j" else base
            out.append(f"\\{_LATEX_ACCENTS[char]}{{{base}}}")
        else:
            composed = unicodedata.normalize("NFC", char)
            out.append(_LATEX_SYMBOLS.get(composed, f"{{[}}U+{ord(char):04X}{{]}}"))
    return "".join(out)


# HTML ---------------------------------------------------------------------------------------------------------------


def html(text: str) -> str:
    """Text for HTML content or a quoted attribute value: & < > " ' escaped, control characters as spaces."""
    return _html.escape(one_line(text), quote=True)


# Plot labels -------------------------------------------------------------------------------------------------------


def plot_label(text: str) -> str:
    r"""A label matplotlib draws as it reads: one line, every `$` escaped (`\$`), so no name opens math text
    ($\frac{1}{0}$ would otherwise be parsed, or stop the figure with a parse error)."""
    return one_line(text).replace("$", r"\$")


# File names --------------------------------------------------------------------------------------------------------


def file_part(text: str) -> str:
    """A piece of a file name that is safe in a shell, a URL and a Markdown link: letters, digits, '.', '_', '-'."""
    part = re.sub(r"[^A-Za-z0-9._-]+", "-", unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode())
    return part.strip("-.") or "x"
