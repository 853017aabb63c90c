"""The run store: one immutable record per run under results/runs/<task>/<method>/<stage>/<key>/.

Records are written atomically (temp file + rename) and never rewritten; a per-run lease (bench.leases) keeps two
processes, on any hosts, off the same run; checkpoints (for resume) live beside the record until it is complete.
Every read checks the record (bench.records). Leaderboards and selections are rebuilt from these files, never
stored instead of them.
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
from bench.records import (  # noqa: F401 (the store's names for its files and keys, used across bench)
    CHECKPOINT,
    OUTPUTS,
    PREDICTIONS,
    RECORD,
    RECORD_SCHEMA,
    RESULT_FILES,
    TRAINED,
    file_sha256,
    problems,
    record_checksum,
    run_key,
)


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


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in a cache file; {} when it is absent, unreadable or holds something else (caches are
    rebuilt, never trusted)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class InvalidRecord(BenchError):
    """A stored record that must not be used (edited, copied, moved, damaged, or from an older version)."""

    def __init__(self, run_dir: Path, reasons: list[str]) -> None:
        super().__init__(
            f"the stored run record {run_dir / RECORD} cannot be trusted: {'; '.join(reasons)}.",
            hint="Nothing was changed. Move that run folder out of the store (`bench doctor` lists every "
            "such folder), then run the same command again to recompute it.",
        )
        self.run_dir, self.reasons = run_dir, reasons


class RunStore:
    """Finds, reads, leases and writes run records below one root folder. Every read checks the record
    (bench.records); records that fail are never returned as results, and are listed in `rejected`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise BenchError(
                f"the run store {self.root} is a file, not a folder.",
                field="--results",
                hint="Give --results (or $BENCH_RESULTS) a folder; it is created when missing.",
            )
        self.rejected: dict[Path, list[str]] = {}

    @classmethod
    def of_folder(cls, run_dir: Path) -> RunStore:
        """The store a run folder given on its own belongs to: its record's task, method, stage and key name the
        folders below the root. When they do not match the folder's path, the folder's parent stands in, and
        the record's location check then says the folder was copied or moved."""
        try:
            run = json.loads((run_dir / RECORD).read_text())["run"]
            tail = [*str(run["task"]).split("/"), str(run["method"]), str(run["stage"]), run_dir.name]
        except (OSError, ValueError, KeyError, TypeError):
            return cls(run_dir.parent)
        resolved = run_dir.resolve()
        if list(resolved.parts[-len(tail) :]) == tail and len(resolved.parts) > len(tail):
            return cls(resolved.parents[len(tail) - 1])
        return cls(run_dir.parent)

    def run_dir(self, task: str, method: str, stage: str, key: str) -> Path:
        return self.root / task / method / stage / key

    def read(self, run_dir: Path, deep: bool = False) -> tuple[dict[str, Any] | None, list[str]]:
        """(record, problems): (None, []) when there is no record; problems non-empty when it must not be used."""

        path = run_dir / RECORD
        if not path.is_file():
            return None, []
        try:
            record: Any = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return None, [f"not valid JSON ({exc})"]
        found = problems(self.root, run_dir, record, deep=deep)
        return (record if isinstance(record, dict) else None), found

    def load(self, run_dir: Path) -> dict[str, Any] | None:
        """The record of a run folder; None when there is none; InvalidRecord when there is one that fails."""
        record, found = self.read(run_dir)
        if found:
            raise InvalidRecord(run_dir, found)
        return record

    def write(self, run_dir: Path, record: dict[str, Any], holder: Any = None) -> None:
        """Write the record last, with the SHA-256 of the run's result files and of itself in it. With a lease
        `holder`, only while this process still holds the run."""

        path = run_dir / RECORD
        if path.exists():
            raise BenchError(f"refusing to overwrite the finished run record {path}.")
        if holder is not None:
            holder.check()
        record["schema_version"] = RECORD_SCHEMA
        record["files"] = {name: file_sha256(run_dir / name) for name in RESULT_FILES if (run_dir / name).is_file()}
        record["checksum"] = record_checksum(record)
        atomic_write_json(path, record)

    def check(self, run_dir: Path) -> list[str]:
        """What is wrong with one stored run folder (empty when nothing): the record's own checks, result files,
        temp files of a killed writer."""
        record, found = self.read(run_dir, deep=True)
        problems = [f"{run_dir}: {problem}" for problem in found]
        if record is not None:
            problems += [f"{p}: temp file of a killed writer" for p in run_dir.glob(".*.tmp")]
        return problems

    def records(
        self, task: str | None = None, method: str | None = None, stage: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """All trustworthy finished records, optionally filtered by the folder layout (reads run.json files
        only); the others go to `rejected` with their reasons."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.rglob(RECORD)):
            relative = path.relative_to(self.root).parts
            if len(relative) >= 5 and (
                (task is not None and "/".join(relative[:-4]) != task)
                or (method is not None and relative[-4] != method)
                or (stage is not None and relative[-3] != stage)
            ):
                continue
            record, found = self.read(path.parent)
            if found or record is None:
                self.rejected[path.parent] = found or ["empty record"]
                continue
            record["_dir"] = str(path.parent)
            yield record

    @contextlib.contextmanager
    def lock(self, run_dir: Path) -> Iterator[Any]:
        """Yields this process's lease on the run (bench.leases.Holder), or None when a live process on any host
        holds it. A lease whose holder is gone, or that was not renewed in time, is taken over."""
        from bench.leases import held

        with held(run_dir) as holder:
            if holder is not None:
                _remove_partial_writes(run_dir)
            yield holder


def _remove_partial_writes(run_dir: Path) -> None:
    """Temp files of a writer killed mid-write (kill -9 during a checkpoint); only the lease holder writes here."""
    for partial in run_dir.glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
