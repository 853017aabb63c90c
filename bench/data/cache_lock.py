"""A waiting lock for building one cache file: the first process builds it, the others on the node wait and then
open the finished file. It must never be used for run records (bench.store's lock skips instead of waiting).

The lock is an advisory `flock` on a small file beside the cache entry: the kernel releases it when its holder
dies (crash, kill -9), so a dead holder's lock is taken over at once and never needs cleaning up. The file holds
the holder's pid and host, for the message a waiting process prints. On a file system without locks the build
goes on unlocked with a warning: the writes are atomic, so the worst case is the same file built twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("bench.cache")

POLL_S = 0.1
REPORT_EVERY_S = 60.0


@contextlib.contextmanager
def build_lock(path: Path, what: str) -> Iterator[None]:
    """Hold the lock file `path` for the block, waiting while another live process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
    try:
        if not _acquire(fd, path, what):
            yield
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {os.uname().nodename}\n".encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, what: str) -> bool:
    """True once the lock is held; False when the file system has no locks (the caller goes on unlocked)."""
    waited_since, reported = time.monotonic(), 0.0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        except OSError as exc:  # ENOLCK / EOPNOTSUPP: no flock on this file system
            log.warning("cannot lock %s (%s): building %s without a lock", path, exc, what)
            return False
        waited = time.monotonic() - waited_since
        if waited - reported >= REPORT_EVERY_S or reported == 0.0:
            holder = _holder(path)
            log.info("waiting for %s to build %s", holder, what)
            reported = max(waited, 1e-9)
        time.sleep(POLL_S)


def _holder(path: Path) -> str:
    try:
        pid, _, host = path.read_text().strip().partition(" ")
    except OSError:
        return "another process"
    return f"process {pid} on {host}" if pid else "another process"
