"""Getting real data in place and checking it: `bench data fetch vtab` and `bench data status`.

VTAB-1k comes as one archive in the NOAH layout (`<task>/{train800,val200,train800val200,test}.txt` +
images), published on the Hugging Face hub; it is downloaded with huggingface_hub, or taken from a local
zip or folder. Nothing here trains; checks read split files and stat images, they never decode them.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

from bench.data.status import DataStatus
from bench.errors import BenchError
from bench.spec import TaskSpec, expand_path

VTAB_REPO = "XiN0919/VTAB-1k"  # the NOAH-format archive published by V-PETL Bench (docs/data.md)
VTAB_FILE = "vtab-1k.zip"
VTAB_REVISION = "main"  # the commit actually downloaded is recorded in <dest>/.bench-fetch.json
MANIFEST = ".bench-fetch.json"


def check_image_task(task: TaskSpec) -> DataStatus:
    """Is an image task's data usable? Reads every split file and stats every listed image."""
    from bench.data.splits import read_split, split_file

    data = task.data
    hint = data.hint()
    if data.prepare and not data.resolved_root().is_dir():
        return DataStatus(task.name, "on demand", f"generated on first use by {data.prepare}", "nothing")
    if not data.resolved_root().is_dir():
        return DataStatus(task.name, "missing", f"no folder {data.resolved_root()}", hint)
    absent = [s for s in data.splits if not split_file(data, s).is_file()]
    if absent:
        return DataStatus(task.name, "missing", f"no split file for {', '.join(absent)}", hint)
    sizes: list[str] = []
    images: set[Path] = set()
    for split in data.splits:
        try:
            listed = read_split(data, split, task.name)
        except BenchError as exc:
            return DataStatus(task.name, "corrupt", str(exc), "Download the data again (or fix the named file).")
        sizes.append(f"{split} {len(listed.paths)}")
        images.update(listed.paths)
    missing_images = sum(1 for p in images if not p.is_file())
    if missing_images:
        return DataStatus(task.name, "incomplete", f"{missing_images} of {len(images)} listed images are missing",
                          "Extract the archive again, completely.")
    return DataStatus(task.name, "ready", ", ".join(sizes), "")


def fetch_vtab(dest: Path, source: Path | None = None) -> Path:
    """Put the NOAH-format VTAB-1k folder at `dest` (default ${BENCH_DATA}/vtab-1k); returns it."""
    dest = Path(dest)
    revision = None
    if source is None:
        source, revision = _download()
    source = Path(source)
    if source.is_dir():
        folder = _noah_root(source)
        if folder.resolve() != dest.resolve():
            if dest.exists() or dest.is_symlink():
                raise BenchError(f"{dest} already exists.", hint="Remove it, or pass --dest for another place.")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(folder.resolve(), target_is_directory=True)
    elif zipfile.is_zipfile(source):
        _extract(source, dest)
    else:
        raise BenchError(f"{source} is neither a folder nor a zip archive.", hint=f"Pass {VTAB_FILE} or its folder.")
    manifest = {"repo": VTAB_REPO, "file": VTAB_FILE, "revision": revision, "source": str(source)}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return dest


def default_vtab_dest() -> Path:
    return Path(expand_path("${BENCH_DATA}/vtab-1k"))


def _download() -> tuple[Path, str | None]:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub comes with timm
        raise BenchError("huggingface_hub is not installed.", hint="pip install huggingface_hub") from exc
    from bench.hub import prefer_offline

    offline = prefer_offline()  # offline: the hub cache or an immediate error, never minutes of retries
    try:
        path = Path(hf_hub_download(VTAB_REPO, VTAB_FILE, repo_type="dataset", revision=VTAB_REVISION))
    except Exception as exc:  # offline, HTTP, missing cache entry: many types
        why = f"offline: {offline}" if offline else type(exc).__name__
        raise BenchError(
            f"could not download {VTAB_FILE} from the Hugging Face hub dataset {VTAB_REPO} ({why}).",
            hint=f"With network access, retry; otherwise copy {VTAB_FILE} (about 4.7 GB; also on the NOAH and "
                 "RepAdapter Google Drives) here and run `bench data fetch vtab --from PATH`.",
        ) from exc
    # hub cache paths end in snapshots/<commit>/<file>: that commit is the revision we got
    commit = path.parent.name if path.parent.parent.name == "snapshots" else None
    return path, commit


def _extract(archive: Path, dest: Path) -> None:
    if dest.exists():
        raise BenchError(f"{dest} already exists.", hint="Remove it to extract again, or pass --dest.")
    staging = dest.parent / f".{dest.name}.extracting-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with zipfile.ZipFile(archive) as handle:
            for member in handle.infolist():
                target = (staging / member.filename).resolve()
                if not target.is_relative_to(staging.resolve()):
                    raise BenchError(f"unsafe path {member.filename!r} in the archive.", file=archive)
            handle.extractall(staging)
        os.replace(_noah_root(staging), dest)
    except zipfile.BadZipFile as exc:
        raise BenchError(f"damaged zip archive ({exc}).", file=archive, hint="Download it again.") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _noah_root(folder: Path) -> Path:
    """The folder whose children are task folders with train800.txt (the archive may nest it once)."""
    for candidate in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        if any((child / "train800.txt").is_file() for child in candidate.iterdir() if child.is_dir()):
            return candidate
    raise BenchError(f"{folder} has no task folders with train800.txt (not the NOAH VTAB-1k layout).")
