"""Fault injection for the hardening tests (tests/test_faults.py): at a named point the process kills itself
with SIGKILL, or a write fails as on a full disk, so the tests can prove that a run interrupted anywhere resumes
to exactly the uninterrupted result and that a failed write changes nothing stored.

`BENCH_KILL_AT=<point>:<n>` kills the process the n-th time it reaches a point matching <point> (a shell
pattern); `BENCH_FAIL_AT=<point>:<n>` raises OSError(ENOSPC) there instead; `BENCH_FAULT_LOG=<file>` appends every
point reached to <file>, which is how a test learns the points of an uninterrupted run. Points: `train_step`
(after an optimizer step), `cache_write` (an image cache about to be written) and `write:<file name>` (any
atomic write of the store or cache, e.g. `write:run.json`: the temp file is complete, the rename has not
happened). When none of the three variables is set, a point costs three dictionary lookups.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import signal
from collections import Counter

_reached: Counter[str] = Counter()


def point(name: str) -> None:
    kill_at, fail_at, log = (os.environ.get(v) for v in ("BENCH_KILL_AT", "BENCH_FAIL_AT", "BENCH_FAULT_LOG"))
    if not kill_at and not fail_at and not log:
        return
    if log:
        with open(log, "a") as handle:
            handle.write(f"{name}\n")
    for spec, action in ((kill_at, "kill"), (fail_at, "fail")):
        if not spec:
            continue
        pattern, _, count = spec.rpartition(":")
        if not fnmatch.fnmatchcase(name, pattern):
            continue
        _reached[spec] += 1
        if _reached[spec] != int(count):
            continue
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise OSError(errno.ENOSPC, "No space left on device (simulated by BENCH_FAIL_AT)", name.removeprefix("write:"))
