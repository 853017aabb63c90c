"""Reads system outputs and references in the E2E metrics script's text formats (measure_scores.py read_lines).

Predictions: one per line. References: one per line, the references of one item separated from the next item's by
a blank line; a file without any blank line holds one reference per item.
"""

from __future__ import annotations

from pathlib import Path

from bench.errors import BenchError


def _lines(path: Path | str) -> list[str]:
    """Stripped lines; only \\n, \\r\\n and \\r end a line (a U+2028 inside a generated text does not)."""
    try:
        with open(path, encoding="utf-8-sig", newline=None) as handle:
            return [line.strip() for line in handle]
    except FileNotFoundError:
        raise BenchError("file not found.", file=path) from None
    except UnicodeDecodeError as error:
        raise BenchError(f"not UTF-8 text ({error.reason} at byte {error.start}).", file=path) from None


def read_lines(path: Path | str) -> list[str]:
    """One prediction per line, stripped; empty lines are empty predictions."""
    return _lines(path)


def read_e2e_references(path: Path | str) -> list[list[str]]:
    """Reference groups separated by blank lines; a file with a single group is a single-reference file.

    As in measure_scores.py the single-group rule means a file that holds one item with several references reads
    as several single-reference items. Unlike it, a run of blank lines separates two groups once (E2E would make
    an empty group, which no metric can score).
    """
    groups: list[list[str]] = [[]]
    for line in _lines(path):
        if line:
            groups[-1].append(line)
        elif groups[-1]:
            groups.append([])
    if not groups[-1]:
        groups.pop()
    if not groups:
        raise BenchError("no references in the file.", file=path)
    if len(groups) == 1:
        return [[reference] for reference in groups[0]]
    return groups
