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
from bench.ops import faults

SCHEMA_VERSION = 1
RECORD = "run.json"
PREDICTIONS = "predictions.npz"  # vision: index, label, pred per test image
OUTPUTS = "outputs.jsonl"  # language: hypothesis and per-item metric statistics per test item
CHECKPOINT = "checkpoint.pt"
TRAINED = "trained.pt"  # final PEFT runs: the trained parameters (method + head), for analyses
LOCK = "lock"


RESULT_FILES = (PREDICTIONS, OUTPUTS, TRAINED, "subset.json")  # checksummed in the record


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_key(identity: dict[str, Any]) -> str:
    """Content hash of everything that changes a run's result (canonical JSON)."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path) as handle:
        handle.write(data)


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[Any]:
    """A binary file handle whose content replaces `path` when the block ends: temp file + fsync + rename, so
    readers see the old file or the new one, never a part. A failed write (a full disk) removes its temp file
    and leaves the old file as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)  # noqa: SIM115 (closed below)
    tmp = Path(handle.name)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # temp files are created 0600; finished files get the usual permissions
        faults.point(f"write:{path.name}")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def write_checked(path: Path, data: bytes) -> None:
    """Write a file and, after it, its SHA-256 beside it (<name>.sha256). A reader trusts the file only when the
    two agree, so a kill between the writes, a truncated copy or a flipped bit is caught, not loaded."""
    atomic_write_bytes(path, data)
    atomic_write_bytes(checksum_path(path), (hashlib.sha256(data).hexdigest() + "\n").encode())


def stored_checksum(path: Path) -> str | None:
    """The SHA-256 that write_checked put beside `path`; None when there is none."""
    sidecar = checksum_path(path)
    return sidecar.read_text().strip() if sidecar.is_file() else None


def read_checked(path: Path) -> bytes | None:
    """The file's bytes when present and matching its checksum; None when absent; CorruptFile otherwise."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    expected = stored_checksum(path)
    if expected != hashlib.sha256(data).hexdigest():
        reason = "has no checksum file" if expected is None else "does not match its checksum"
        raise CorruptFile(path, reason)
    return data


class CorruptFile(Exception):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path} {reason}")
        self.path, self.reason = path, reason

    def discard(self) -> None:
        """Remove the damaged file and its checksum, so that it is rebuilt and never used."""
        self.path.unlink(missing_ok=True)
        checksum_path(self.path).unlink(missing_ok=True)


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
        """Write the record last, with the SHA-256 of the run's result files in it (`bench doctor` checks them)."""
        path = run_dir / RECORD
        if path.exists():
            raise BenchError(f"refusing to overwrite the finished run record {path}.")
        record["files"] = {name: _sha256(run_dir / name) for name in RESULT_FILES if (run_dir / name).is_file()}
        atomic_write_json(path, record)

    def check(self, run_dir: Path) -> list[str]:
        """What is wrong with one stored run folder (empty when nothing): an unreadable record, a result file
        missing or not matching the record's checksum, temp files of a killed writer."""
        problems = []
        try:
            record = self.load(run_dir)
        except BenchError:
            return [f"{run_dir / RECORD}: not valid JSON"]
        for name, digest in (record or {}).get("files", {}).items():
            if not (run_dir / name).is_file():
                problems.append(f"{run_dir / name}: missing (the record lists it)")
            elif _sha256(run_dir / name) != digest:
                problems.append(f"{run_dir / name}: does not match the checksum in its record")
        if record is not None:
            problems += [f"{p}: temp file of a killed writer" for p in run_dir.glob(".*.tmp")]
        return problems

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
                if lock_is_stale(path):
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


def lock_is_stale(path: Path) -> bool:
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
