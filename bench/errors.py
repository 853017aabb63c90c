"""User-facing errors: one exception type carrying where the problem is and how to fix it.

The CLI prints these as one paragraph and exits with code 2; nothing else should be caught that broadly.
"""

from __future__ import annotations


class BenchError(Exception):
    """A problem the user can fix: bad spec, unknown name, missing data or weights."""

    exit_code = 2

    def __init__(self, message: str, *, file: object = None, field: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = None if file is None else str(file)
        self.field = field
        self.hint = hint

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.field:
            where.append(f"field '{self.field}'")
        text = f"{': '.join(where)}: {self.message}" if where else self.message
        if self.hint:
            text += f" {self.hint}"
        return text


def did_you_mean(name: str, choices: list[str] | tuple[str, ...] | set[str]) -> str:
    """A 'did you mean' suffix for unknown names, listing the allowed values when there are few."""
    import difflib

    close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    text = f" Did you mean '{close[0]}'?" if close else ""
    allowed = sorted(choices)
    if len(allowed) <= 30:
        text += " Allowed: " + ", ".join(allowed) + "."
    return text
