"""`[k/N]` and an overall ETA on the log line of each finished run of one `bench run` process (or worker).

It changes the text of log lines only, never what runs: the protocol asks `step(record, fresh)` for the prefix and
suffix of a run's line; outside `tracking(...)` both are empty.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


def duration(seconds: float | None) -> str:
    """'45 s', '3.2 min', '1.5 h'; None: unknown."""
    if seconds is None:
        return "unknown (no stored runs on this device)"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


@dataclass
class Progress:
    """Runs counted out of a plan: k = runs trained or found recorded by this process (each key once), N = the runs
    of its plan.

    ETA = runs left x the mean wall time of the runs this process trained so far, or the plan's calibrated time per
    run (bench.estimate) before the first; divided by `sharing` when that many workers share what is left. Runs left
    = N - k, less the runs the plan found recorded already that this process has not reached yet."""

    total: int
    done_at_start: int = 0
    seconds_per_run: float | None = None  # the calibrated estimate (None: unknown)
    sharing: int = 1  # worker processes passing over the same plan
    seen: set[str] = field(default_factory=set)
    trained: list[float] = field(default_factory=list)
    found: int = 0

    def count(self, record: dict[str, Any], fresh: bool) -> tuple[str, str]:
        """('[k/N] ', '; ETA ...') for a run's log line; a run counted before (a protocol revisited) keeps k."""
        key = str(record["key"])
        if key not in self.seen:
            self.seen.add(key)
            if fresh:
                self.trained.append(float(record.get("cost", {}).get("wall_s", 0.0)))
            else:
                self.found += 1
        k = len(self.seen)
        self.total = max(self.total, k)
        return f"[{k}/{self.total}] ", self.eta()

    @property
    def left(self) -> int:
        """Runs of the plan still to train (not counting those the plan found recorded and not reached yet)."""
        return max(0, self.total - len(self.seen) - max(0, self.done_at_start - self.found))

    def eta(self) -> str:
        left = self.left
        if not left:
            return "; nothing left to train"
        if self.trained:
            per_run, basis = sum(self.trained) / len(self.trained), f"mean of {len(self.trained)} trained here"
        elif self.seconds_per_run is not None:
            per_run, basis = self.seconds_per_run, "calibrated estimate"
        else:
            return f"; {left} run{'s' if left != 1 else ''} left, ETA after the first trained run"
        shared = f", {self.sharing} workers" if self.sharing > 1 else ""
        runs = f"{left} run{'s' if left != 1 else ''}"
        return f"; ETA {duration(left * per_run / self.sharing)} for {runs} left ({basis}{shared})"


_CURRENT: contextvars.ContextVar[Progress | None] = contextvars.ContextVar("bench_progress", default=None)


@contextlib.contextmanager
def tracking(progress: Progress) -> Iterator[Progress]:
    """Count the runs logged inside the block (bench.train.protocol) with `progress`."""
    token = _CURRENT.set(progress)
    try:
        yield progress
    finally:
        _CURRENT.reset(token)


def step(record: dict[str, Any], fresh: bool) -> tuple[str, str]:
    """The prefix and suffix of a finished run's log line: ('[k/N] ', '; ETA ...'), or ('', '') when no plan is
    tracked."""
    progress = _CURRENT.get()
    return progress.count(record, fresh) if progress is not None else ("", "")
