"""`bench pack` / `bench import`: a store's runs as one archive, and an archive's runs into another store, checked.

An archive is a tar.gz of `manifest.json` and `runs/<task>/<method>/<stage>/<key>/` folders holding each run's record
and the result files it lists. Importing never trusts the archive: members are read one by one (no links, no absolute
or `..` paths, bounded sizes) into a temp folder inside the target store; every run is checked as a stored run is
(key, checksum, folder, result files) and against the manifest; each that passes is renamed into place whole. Nothing
already in the store is ever changed or overwritten.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from bench.errors import BenchError
from bench.export import require_store, trusted_records
from bench.records import RECORD, RESULT_FILES, file_problems, file_sha256, problems
from bench.store import RunStore, atomic_writer

PACK_FORMAT = "peft-bench-pack"
PACK_SCHEMA = 1
MANIFEST = "manifest.json"
RUNS = "runs"
# Bounds on what an archive may ask to write: one file, all files, and the number of members. A full fine-tuning
# trained.pt of ViT-B is about 350 MB; the bounds leave room for far larger models and stores.
MAX_FILE_BYTES = 16 << 30
MAX_TOTAL_BYTES = 512 << 30
MAX_MEMBERS = 1_000_000
MAX_MANIFEST_BYTES = 256 << 20
HEADER_BYTES = 16 << 20  # one member's header, pax and long-name records included
PENDING = ".pending"  # a record waiting in the temp folder is named run.json.pending, so no store reader sees it
NAME_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
KEY = re.compile(r"^[0-9a-f]{16}$")
STAGES = ("grid", "final")


# ---------------------------------------------------------------- pack


@dataclass
class Packed:
    archive: Path
    runs: list[dict[str, Any]]  # the manifest's run entries
    left_out: dict[str, list[str]] = field(default_factory=dict)  # run folder -> why it is not packed


def pack_runs(results: Path, archive: Path, tasks: set[str] | None = None, methods: set[str] | None = None) -> Packed:
    """Write the trustworthy runs of a store (or of some tasks / methods) to one tar.gz: their records and the
    result files the records list, with a manifest. Runs that fail their checks (including their result files)
    are left out and named. The same runs give the same bytes (sorted members, no dates, owners or modes)."""
    from bench import __version__
    from bench.train.config import RUNNER_VERSION

    root = Path(results)
    require_store(root)
    archive = Path(archive)
    if archive.is_dir():
        raise BenchError(f"--out {archive} is a folder; it names the archive file to write.", field="--out",
                         hint="Give a file name such as results/my-runs.tar.gz.")
    records, left_out = trusted_records(root, tasks, methods, deep=True)
    if not records:
        raise BenchError(f"no runs to pack in {root}" + (f" ({len(left_out)} left out as damaged)" if left_out
                                                        else "") + ".",
                         field="--results", hint="Check --task / --method, or run `bench doctor` on the store.")
    entries = []
    for run_dir, record in records:
        run = record["run"]
        files = {RECORD: file_sha256(run_dir / RECORD),
                 **{name: file_sha256(run_dir / name) for name in sorted(record.get("files", {}))}}
        entries.append({
            "key": record["key"], "task": run["task"], "method": run["method"], "stage": run["stage"],
            "seed": run["seed"], "path": run_path(run["task"], run["method"], run["stage"], record["key"]),
            "runner_version": record["identity"].get("runner_version"),
            "method_code": record["identity"].get("method_code"), "files": files,
        })
    manifest = {
        "format": PACK_FORMAT, "pack_schema": PACK_SCHEMA, "bench_version": __version__,
        "runner_version": RUNNER_VERSION, "runs": entries,
    }
    if archive.parent.exists() and not archive.parent.is_dir():
        raise BenchError(f"--out {archive}: {archive.parent} is a file, not a folder.", field="--out")
    with atomic_writer(archive) as handle, gzip.GzipFile(fileobj=handle, mode="wb", mtime=0, filename="") as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
        for (run_dir, _), entry in zip(records, entries, strict=True):
            for name in entry["files"]:
                with (run_dir / name).open("rb") as source:
                    tar.addfile(_info(f"{entry['path']}/{name}", (run_dir / name).stat().st_size), source)
    return Packed(archive, entries, left_out)


def run_path(task: str, method: str, stage: str, key: str) -> str:
    return f"{RUNS}/{task}/{method}/{stage}/{key}"


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = size, 0o644, 0, 0, 0, "", ""
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


# ---------------------------------------------------------------- import


@dataclass(frozen=True)
class Outcome:
    """What happened to one run of an archive: imported, present (identical run already stored), refused."""

    status: str
    task: str
    method: str
    stage: str
    seed: Any
    key: str
    reason: str = ""

    def line(self) -> str:
        text = f"{self.status + ':':<16} {self.task} {self.method} {self.stage} seed {self.seed} {self.key}"
        return text + (f": {self.reason}" if self.reason else "")


@dataclass
class Imported:
    archive: Path
    store: Path
    outcomes: list[Outcome] = field(default_factory=list)
    refused_archive: str = ""  # why the whole archive was refused (nothing imported); empty when it was not
    notes: list[str] = field(default_factory=list)  # things worth saying that refuse nothing

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def ok(self) -> bool:
        return not self.refused_archive and self.count("refused") == 0

    def summary(self) -> str:
        if self.refused_archive:
            return (f"refused the archive {self.archive}: {self.refused_archive}. Nothing was imported; "
                    f"{self.store} is unchanged.")
        return (f"{self.count('imported')} imported, {self.count('present')} already present, "
                f"{self.count('refused')} refused, from {self.archive} into {self.store}.")


class Unsafe(Exception):
    """The archive as a whole cannot be trusted: nothing of it is imported."""


def import_runs(archive: Path, results: Path, *, allow_other_code: bool = False,
                methods_dirs: Sequence[str | Path] = ()) -> Imported:
    """Check every run of the archive, then move each that passes into the store, one whole run folder at a time.

    The whole archive is refused (nothing imported) when it is unsafe (a link, an absolute or `..` path, a member
    outside runs/, a size over the bounds), when its manifest is missing or disagrees with its members, or when any
    run fails its checks (key, checksum, folder, result files): a damaged or edited archive is not trusted in part.
    A run made by other code than this checkout's (runner version, or the method's code identity) is refused unless
    `allow_other_code`; a run whose key the store already holds is `present` when identical and refused (left
    alone) when not."""
    archive, root = Path(archive), Path(results)
    if not archive.is_file():
        what = "a folder" if archive.is_dir() else "missing"
        raise BenchError(f"the archive {archive} is {what}.", field="ARCHIVE",
                         hint="Give the .tar.gz file that `bench pack` wrote.")
    store = RunStore(root)  # a file: one paragraph naming --results
    report = Imported(archive, root)
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        _import_into(store, archive, report, allow_other_code, methods_dirs)
    finally:
        if created and not any(root.iterdir()):
            root.rmdir()  # nothing imported into a store that did not exist: leave no empty folder behind
    return report


def _import_into(store: RunStore, archive: Path, report: Imported, allow_other_code: bool,
                 methods_dirs: Sequence[str | Path]) -> None:
    root = store.root
    with _temp_folder(root) as temp:
        try:
            manifest, found = _extract(archive, temp)
            runs = _check_manifest(manifest, found)
        except Unsafe as exc:
            report.refused_archive = str(exc)
            return
        from bench import __version__

        if manifest.get("bench_version") != __version__:
            report.notes.append(f"packed by peft-bench {manifest.get('bench_version')}, this is {__version__}")
        checked = [(entry, *_check_run(root, temp, entry, found[entry["path"]])) for entry in runs]
        damaged = [(entry, why) for entry, _, why in checked if why]
        if damaged:
            for entry, _, why in checked:
                reason = "; ".join(why) if why else "not imported: another run of the archive failed its checks"
                report.outcomes.append(_outcome("refused", entry, reason))
            report.refused_archive = (f"{len(damaged)} of its {len(runs)} runs fail their checks (the archive is "
                                      "damaged or was edited; get it again)")
            return
        current = _CurrentCode(methods_dirs)
        for entry, record, _ in checked:
            if record is not None:  # always, once no run failed its checks
                report.outcomes.append(_place(store, temp, entry, record, current, allow_other_code))


def _outcome(status: str, entry: dict[str, Any], reason: str = "") -> Outcome:
    return Outcome(status, str(entry.get("task")), str(entry.get("method")), str(entry.get("stage")),
                   entry.get("seed"), str(entry.get("key")), reason)


@contextlib.contextmanager
def _temp_folder(root: Path) -> Iterator[Path]:
    """A hidden folder inside the store (same file system, so a run folder is renamed into place whole); removed
    at the end, whatever happens."""
    temp = Path(tempfile.mkdtemp(prefix=".import-", dir=root))
    try:
        yield temp
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _member_path(name: str) -> tuple[str, ...]:
    """The parts of a safe member name; Unsafe otherwise (absolute, `..`, `.`, empty or hidden parts)."""
    parts = tuple(name.split("/"))
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or "\\" in name:
        raise Unsafe(f"member {name!r} has an absolute or non-POSIX path")
    if any(part in ("..", ".") for part in parts):
        raise Unsafe(f"member {name!r} leaves its folder ('..' or '.' in its path)")
    if any(not NAME_PART.match(part) for part in parts):
        raise Unsafe(f"member {name!r} has a path part that is empty, hidden or has characters a run never has")
    return parts


class _Budgeted:
    """The archive's uncompressed bytes, refused past a budget: tarfile reads a header (and a pax or long-name
    header's data) whole into memory, so each header may only read HEADER_BYTES, and each member its own size."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.budget = stream, HEADER_BYTES

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > self.budget:
            size = self.budget + 1
        data: bytes = self.stream.read(size)
        self.budget -= len(data)
        if self.budget < 0:
            raise Unsafe(f"a member's header (with its pax or long-name records) is over the size bounds "
                         f"({HEADER_BYTES:,} bytes)")
        return data


def _extract(archive: Path, temp: Path) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """Read members in order, never following or creating links: the manifest, and each run file into
    temp/<run path>/ (a record as run.json.pending). Returns the manifest and run path -> {file: sha256}."""
    found: dict[str, dict[str, str]] = {}
    manifest: dict[str, Any] | None = None
    seen: set[str] = set()
    total = 0
    try:
        with archive.open("rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream = _Budgeted(gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw)
            with tarfile.open(fileobj=cast(IO[bytes], stream), mode="r|") as tar:
                for count, member in enumerate(tar, start=1):
                    stream.budget = HEADER_BYTES
                    if count > MAX_MEMBERS:
                        raise Unsafe(f"it has more than {MAX_MEMBERS:,} members")
                    parts = _member_path(member.name.rstrip("/") if member.isdir() else member.name)
                    if member.isdir():
                        continue  # folders are made from file paths, never from the archive
                    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
                        kind = ("a symbolic link" if member.issym() else "a hard link" if member.islnk()
                                else "not a regular file")
                        raise Unsafe(f"member {member.name!r} is {kind}")
                    name = "/".join(parts)
                    if name in seen:
                        raise Unsafe(f"member {name!r} appears twice")
                    seen.add(name)
                    limit = MAX_MANIFEST_BYTES if name == MANIFEST else MAX_FILE_BYTES
                    total += member.size
                    if member.size > limit or total > MAX_TOTAL_BYTES:
                        raise Unsafe(f"member {name!r} ({member.size:,} bytes) is over the size bounds "
                                     f"({limit:,} per file, {MAX_TOTAL_BYTES:,} in all)")
                    stream.budget = HEADER_BYTES + member.size
                    source = tar.extractfile(member)
                    if source is None:
                        raise Unsafe(f"member {name!r} cannot be read")
                    if name == MANIFEST:
                        manifest = _read_manifest(_read_all(source, member.size))
                        continue
                    run, file_name = _run_member(parts)
                    target = temp.joinpath(*run.split("/"), file_name + (PENDING if file_name == RECORD else ""))
                    target.parent.mkdir(parents=True, exist_ok=True)
                    found.setdefault(run, {})[file_name] = _copy(source, target, member.size)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BenchError(f"{archive} is not a readable tar archive ({type(exc).__name__}: {exc}).", field="ARCHIVE",
                         hint="Give the .tar.gz file that `bench pack` wrote; download it again if it was cut "
                         "short.") from exc
    if manifest is None:
        raise Unsafe(f"it has no {MANIFEST}")
    return manifest, found


def _read_all(source: Any, size: int) -> bytes:
    data = b"".join(iter(lambda: source.read(1 << 20), b""))
    if len(data) != size:
        raise Unsafe("the manifest is shorter than its header says")
    return data


def _run_member(parts: tuple[str, ...]) -> tuple[str, str]:
    """(run path, file name) of a member runs/<task...>/<method>/<stage>/<key>/<file>; Unsafe otherwise."""
    if len(parts) < 6 or parts[0] != RUNS:
        raise Unsafe(f"member '{'/'.join(parts)}' is neither {MANIFEST} nor a run file "
                     f"({RUNS}/<task>/<method>/<stage>/<key>/<file>)")
    stage, key, name = parts[-3], parts[-2], parts[-1]
    if stage not in STAGES or not KEY.match(key) or name not in (RECORD, *RESULT_FILES):
        raise Unsafe(f"member '{'/'.join(parts)}' is not a run's record or result file "
                     f"(stage grid|final, a 16-digit hex key, a file among {', '.join((RECORD, *RESULT_FILES))})")
    return "/".join(parts[:-1]), name


def _copy(source: Any, target: Path, size: int) -> str:
    """Copy exactly `size` bytes to a new file (never through an existing one); returns their SHA-256."""
    digest = hashlib.sha256()
    left = size
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as out:
        while left:
            block = source.read(min(left, 1 << 20))
            if not block:
                raise Unsafe(f"member for {target.name} is shorter than its header says")
            digest.update(block)
            out.write(block)
            left -= len(block)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _read_manifest(data: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unsafe(f"its {MANIFEST} is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != PACK_FORMAT:
        raise Unsafe(f"its {MANIFEST} is not a peft-bench pack manifest")
    if manifest.get("pack_schema") != PACK_SCHEMA:
        raise Unsafe(f"its {MANIFEST} has pack schema {manifest.get('pack_schema')!r}; this version reads "
                     f"{PACK_SCHEMA} (update peft-bench)")
    if not isinstance(manifest.get("runs"), list) or not all(isinstance(r, dict) for r in manifest["runs"]):
        raise Unsafe(f"its {MANIFEST} has no list of runs")
    return manifest


def _check_manifest(manifest: dict[str, Any], found: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """The manifest's runs, when they are exactly the archive's run folders with exactly their files."""
    runs = manifest["runs"]
    listed: dict[str, dict[str, Any]] = {}
    for entry in runs:
        path = entry.get("path")
        expected = run_path(*(str(entry.get(k)) for k in ("task", "method", "stage", "key")))
        if path != expected:
            raise Unsafe(f"its {MANIFEST} lists run {entry.get('key')!r} at {path!r}, not at {expected!r}")
        if path in listed:
            raise Unsafe(f"its {MANIFEST} lists {path} twice")
        listed[path] = entry
    for path in listed:
        parts = path.split("/")
        if any("/".join(parts[:i]) in listed for i in range(2, len(parts))):
            raise Unsafe(f"run folder {path} lies inside another run's folder")
    if set(listed) != set(found):
        extra, missing = sorted(set(found) - set(listed)), sorted(set(listed) - set(found))
        raise Unsafe(f"its {MANIFEST} and its members disagree (run folders not listed: {extra or 'none'}; listed "
                     f"but absent: {missing or 'none'})")
    return [listed[path] for path in sorted(listed)]


def _check_run(root: Path, temp: Path, entry: dict[str, Any],
               files: dict[str, str]) -> tuple[dict[str, Any] | None, list[str]]:
    """(record, reasons it must not be imported): the manifest's checksums, the record's own checks as if it were
    in its place in the store (folder, key, checksum), its result files and the manifest's description."""
    why: list[str] = []
    listed = entry.get("files")
    if not isinstance(listed, dict) or set(listed) != set(files):
        why.append(f"its files ({', '.join(sorted(files))}) are not the ones the manifest lists")
    else:
        why += [f"{name} does not match the manifest's checksum" for name in sorted(files)
                if listed[name] != files[name]]
    run_dir = temp.joinpath(*entry["path"].split("/"))
    if RECORD not in files:
        return None, [*why, f"it has no {RECORD}"]
    try:
        record: Any = json.loads((run_dir / (RECORD + PENDING)).read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        return None, [*why, f"{RECORD} is not valid JSON ({exc})"]
    place = root.joinpath(*entry["path"].split("/")[1:])
    found = problems(root, place, record)
    if found:
        return None, why + [p.replace(str(place), entry["path"]) for p in found]
    if not isinstance(record.get("files", {}), dict):
        return None, [*why, "its 'files' section is not a mapping"]
    why += [f"the record lists {name}, which the archive lacks" for name in record.get("files", {})
            if name not in files]
    why += [f"{name} is not a result file its record lists" for name in files
            if name != RECORD and name not in record.get("files", {})]
    if not why:
        why += file_problems(run_dir, record)
    run = record["run"]
    stated = {"task": run["task"], "method": run["method"], "stage": run["stage"], "seed": run["seed"],
              "key": record["key"], "runner_version": record["identity"].get("runner_version"),
              "method_code": record["identity"].get("method_code")}
    why += [f"the manifest says {name} {entry.get(name)!r}, the record {value!r}" for name, value in stated.items()
            if entry.get(name) != value]
    return record, why


class _CurrentCode:
    """This checkout's runner version and method code identities (methods loaded on first need)."""

    def __init__(self, methods_dirs: Sequence[str | Path]) -> None:
        self.methods_dirs = tuple(Path(d) for d in methods_dirs)
        self.codes: dict[str, str | None] = {}

    def differs(self, record: dict[str, Any]) -> str:
        """Why the record's code is not this checkout's (empty: it is)."""
        from bench.train.config import RUNNER_VERSION

        identity = record["identity"]
        if identity.get("runner_version") != RUNNER_VERSION:
            return f"made by runner version {identity.get('runner_version')}, this checkout is {RUNNER_VERSION}"
        method = record["run"]["method"]
        if method not in self.codes:
            from bench import registry
            from bench.identity import code_identity

            try:  # built-in, --methods-dir and entry-point methods, and the stored names of peft: methods
                self.codes[method] = code_identity(registry.get_method(method, self.methods_dirs))
            except BenchError:
                self.codes[method] = None
        here = self.codes[method]
        if here is None:
            return f"method '{method}' is not known here (give its folder with --methods-dir)"
        if identity.get("method_code") != here:
            return f"method '{method}' code {identity.get('method_code')} differs from this checkout's {here}"
        return ""


def _place(store: RunStore, temp: Path, entry: dict[str, Any], record: dict[str, Any],
           current: _CurrentCode, allow_other_code: bool) -> Outcome:
    """Move one checked run into the store unless it is there already, conflicts, or is other code."""
    parts = entry["path"].split("/")
    staged, target = temp.joinpath(*parts), store.root.joinpath(*parts[1:])
    names = list(entry["files"])
    if target.exists():
        if (target / RECORD).is_file() and all(
                (target / n).is_file() and file_sha256(target / n) == entry["files"][n] for n in names):
            return _outcome("present", entry)
        what = ("a different run with this key (left alone)" if (target / RECORD).is_file()
                else "an unfinished run of this key, being run or interrupted (left alone)")
        return _outcome("refused", entry, f"the store holds {what}")
    other = current.differs(record)
    if other and not allow_other_code:
        return _outcome("refused", entry, f"{other}; import it with --allow-other-code")
    os.replace(staged / (RECORD + PENDING), staged / RECORD)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staged, target)  # a whole run folder appears at once; fails when the folder has appeared
    except OSError as exc:
        return _outcome("refused", entry, f"could not move it into place ({exc.strerror or exc}); left alone")
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return _outcome("imported", entry, f"other code: {other}" if other else "")
