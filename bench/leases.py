"""Run leases: which process may execute a run, valid across machines that share a run store.

A lease is a small JSON file (`lock` in the run folder) naming its holder (host, pid, a random token) and when it
was last renewed. The holder renews it every `heartbeat` seconds from a background thread; a lease not renewed
for `duration` seconds has expired and any process on any host may take it over. On the holder's own host a lease
whose process is gone (kill -9) is taken over at once. Take-overs are serialised by an atomic `mkdir`, so two
processes never both win. A holder that finds its lease taken (it was paused past the expiry) stops and writes
nothing. `bench leases` lists them; `bench leases release` removes one by hand.

Durations come from BENCH_LEASE_S (default 300) and BENCH_HEARTBEAT_S (default a tenth of it).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCK = "lock"
TAKEOVER = "lock.takeover"  # a directory: whoever creates it may replace an expired lease
TAKEOVER_STALE_S = 60.0


def lease_duration() -> float:
    return float(os.environ.get("BENCH_LEASE_S", "300"))


def heartbeat_interval() -> float:
    return float(os.environ.get("BENCH_HEARTBEAT_S", str(lease_duration() / 10)))


def this_host() -> str:
    return os.environ.get("BENCH_HOST") or os.uname().nodename  # BENCH_HOST: tests play another machine


@dataclass(frozen=True)
class Lease:
    """What a lock file says, and what that means now."""

    path: Path
    host: str
    pid: int
    token: str
    renewed: float  # time.time() of the last renewal
    duration: float

    @property
    def age(self) -> float:
        return time.time() - self.renewed

    @property
    def expired(self) -> bool:
        return self.age > self.duration

    @property
    def holder_dead(self) -> bool:
        """On this host, the holder's process no longer exists (another host's process cannot be checked)."""
        if self.host != this_host():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    @property
    def stale(self) -> bool:
        return self.expired or self.holder_dead

    def describe(self) -> str:
        state = "expired" if self.expired else ("holder gone" if self.holder_dead else "held")
        return f"{state}: {self.host} pid {self.pid}, renewed {self.age:.0f} s ago (lease {self.duration:.0f} s)"


def read_lease(path: Path) -> Lease | None:
    """The lease in a lock file; None when there is none. A file that cannot be parsed (a writer died between
    creating and filling it, or an old plain 'pid host' file) counts as renewed at its modification time."""
    try:
        text = path.read_text()
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        data: dict[str, Any] = json.loads(text)
        return Lease(path, str(data["host"]), int(data["pid"]), str(data["token"]), float(data["renewed"]),
                     float(data["duration"]))
    except (ValueError, KeyError, TypeError):
        pid_text, _, host = text.strip().partition(" ")
        pid = int(pid_text) if pid_text.isdigit() else -1
        return Lease(path, host or this_host(), pid, "", modified if pid > 0 else 0.0, lease_duration())


class LeaseLost(Exception):
    """Another process took this run's lease over (this one was paused past the expiry): stop, write nothing."""


class Holder:
    """A lease this process holds: renewed in the background until released."""

    def __init__(self, path: Path, token: str) -> None:
        self.path, self.token = path, token
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_forever, name=f"lease {path.parent.name}", daemon=True)
        self._thread.start()

    def _renew_forever(self) -> None:
        while not self._stop.wait(heartbeat_interval()):
            self.renew()

    def renew(self) -> None:
        current = read_lease(self.path)
        if current is None or current.token != self.token:
            self.lost = True
            return
        _write_lease(self.path, self.token, replace=True)

    def check(self) -> None:
        """Raise LeaseLost when another process holds the run now."""
        current = read_lease(self.path)
        if self.lost or current is None or current.token != self.token:
            self.lost = True
            raise LeaseLost(f"the lease of {self.path.parent} was taken over by another process")

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        current = read_lease(self.path)
        if current is not None and current.token == self.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _write_lease(path: Path, token: str, replace: bool) -> None:
    payload = json.dumps({"host": this_host(), "pid": os.getpid(), "token": token, "renewed": time.time(),
                          "duration": lease_duration()})
    if replace:
        tmp = path.with_name(f".{path.name}.{token}.tmp")
        tmp.write_text(payload)
        os.replace(tmp, path)
        return
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    with os.fdopen(fd, "w") as handle:
        handle.write(payload)


def acquire(run_dir: Path) -> Holder | None:
    """Take the run's lease: a Holder, or None when a live process (on any host) holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    token = secrets.token_hex(8)
    for _ in range(3):
        try:
            _write_lease(path, token, replace=False)
            return Holder(path, token)
        except FileExistsError:
            pass
        current = read_lease(path)
        if current is None:
            continue  # released meanwhile: try again
        if not current.stale or not _take_over(run_dir, current):
            return None
    return None


def _take_over(run_dir: Path, stale: Lease) -> bool:
    """Remove a stale lease, unless someone else is doing so or has renewed it. True when it was removed."""
    guard = run_dir / TAKEOVER
    try:
        guard.mkdir()
    except FileExistsError:
        with contextlib.suppress(FileNotFoundError):
            if time.time() - guard.stat().st_mtime > TAKEOVER_STALE_S:  # a taker that died mid-way
                guard.rmdir()
        return False
    try:
        current = read_lease(run_dir / LOCK)
        if current is not None and current.token == stale.token and current.renewed == stale.renewed:
            (run_dir / LOCK).unlink()
        return True
    finally:
        guard.rmdir()


@contextlib.contextmanager
def held(run_dir: Path) -> Iterator[Holder | None]:
    """`with held(run_dir) as holder:` - holder None means another live process has the run."""
    holder = acquire(run_dir)
    try:
        yield holder
    finally:
        if holder is not None:
            holder.release()


def leases(root: Path) -> list[Lease]:
    """Every lease below a run store."""
    found = []
    for path in sorted(root.rglob(LOCK)) if root.is_dir() else []:
        lease = read_lease(path)
        if lease is not None:
            found.append(lease)
    return found


def release(path: Path) -> bool:
    """Remove a lease by hand (its holder, if still alive, notices and stops without writing)."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
