"""The run store: one immutable record per run under results/runs/<task>/<method>/<stage>/<key>/.

Records are written atomically (temp file + rename) and never rewritten; a per-run lock file keeps two
processes off the same run; checkpoints (for resume) live beside the record until it is complete.
Leaderboards and selections are rebuilt from these files, never stored instead of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.errors import BenchError

SCHEMA_VERSION = 1
RECORD = "run.json"
PREDICTIONS = "predictions.npz"  # vision: index, label, pred per test image
OUTPUTS = "outputs.jsonl"  # language: hypothesis and per-item metric statistics per test item
CHECKPOINT = "checkpoint.pt"
TRAINED = "trained.pt"  # final PEFT runs: the trained parameters (method + head), for analyses
LOCK = "lock"


def run_key(identity: dict[str, Any]) -> str:
    """Content hash of everything that changes a run's result (canonical JSON)."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        tmp = handle.name
    os.chmod(tmp, 0o666 & ~_umask())  # temp files are created 0600; finished files get the usual permissions
    os.replace(tmp, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=1, sort_keys=False, default=str) + "\n").encode())


class RunStore:
    """Finds, reads, locks and writes run records below one root folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def run_dir(self, task: str, method: str, stage: str, key: str) -> Path:
        return self.root / task / method / stage / key

    def load(self, run_dir: Path) -> dict[str, Any] | None:
        path = run_dir / RECORD
        if not path.is_file():
            return None
        try:
            record: dict[str, Any] = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise BenchError(
                f"run record is not valid JSON ({exc}).", file=path,
                hint="Records are written atomically, so this file was edited or damaged by hand; move it away "
                     "and re-run to recompute it.",
            ) from exc
        return record

    def write(self, run_dir: Path, record: dict[str, Any]) -> None:
        path = run_dir / RECORD
        if path.exists():
            raise BenchError(f"refusing to overwrite the finished run record {path}.")
        atomic_write_json(path, record)

    def records(self, task: str | None = None, method: str | None = None, stage: str | None = None
                ) -> Iterator[dict[str, Any]]:
        """All finished records, optionally filtered (reads run.json files only)."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.rglob(RECORD)):
            record = self.load(path.parent)
            if record is None:
                continue
            run = record.get("run", {})
            if task is not None and run.get("task") != task:
                continue
            if method is not None and run.get("method") != method:
                continue
            if stage is not None and run.get("stage") != stage:
                continue
            record["_dir"] = str(path.parent)
            yield record

    @contextlib.contextmanager
    def lock(self, run_dir: Path) -> Iterator[bool]:
        """Yields True when this process holds the run's lock; False when a live process holds it.

        A lock whose process is gone (crash, kill -9) is taken over.
        """
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / LOCK
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if _lock_is_stale(path):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                    continue
                yield False
                return
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{os.getpid()} {_host()}\n")
            _remove_partial_writes(run_dir)
            try:
                yield True
            finally:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            return
        yield False


def _remove_partial_writes(run_dir: Path) -> None:
    """Temp files of a writer killed mid-write (kill -9 during a checkpoint); only the lock holder writes here."""
    for partial in run_dir.glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def _host() -> str:
    return os.uname().nodename


def _lock_is_stale(path: Path) -> bool:
    try:
        pid_text, _, host = path.read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return True
    if host and host != _host():
        return False  # another machine's process: cannot check, assume alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
