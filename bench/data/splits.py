"""Split files -> (image paths, labels), and image decoding. Two formats:

- image_list: the NOAH / VTAB-1k folder format, list files of '<relative path> <label>' lines;
- vpt_json: VPT's FGVC split files, JSON objects {relative path: class id}. One label map, built from the
  train split, serves every split (VPT rebuilt it per split, which shifts NABirds' val labels).

This module only reads split files and decodes images; it never caches (bench.data.tensor_store does).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.data.cache_lock import build_lock
from bench.errors import BenchError
from bench.spec import DataSpec, ImageSpec, TaskSpec


@dataclass(frozen=True)
class ListedSplit:
    """One split as listed on disk: image paths (absolute) and integer labels."""

    name: str
    list_file: Path
    paths: tuple[Path, ...]
    labels: np.ndarray

    def fingerprint(self) -> str:
        """Content hash of the list file: the identity of the split's examples and their order."""
        return hashlib.sha256(self.list_file.read_bytes()).hexdigest()[:16]

    def files_signature(self) -> str:
        """Size and modification time of every image: changes when a file is replaced or regenerated."""
        digest = hashlib.sha256()
        for path in self.paths:
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # reported, with its name, when decoding
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns};".encode())
        return digest.hexdigest()[:16]


ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"


def split_file(data: DataSpec, split: str) -> Path:
    """Where a split's file lives: 'bench:<path>' in bench/assets, anything else relative to the root."""
    name = data.splits[split]
    if name.startswith("bench:"):
        return ASSETS_DIR / name.removeprefix("bench:")
    return data.resolved_root() / name


@functools.cache
def _shipped_checksums() -> dict[Path, str]:
    """sha256 of every split file shipped with the package (bench/assets/*/SHA256SUMS)."""
    sums: dict[Path, str] = {}
    for listing in ASSETS_DIR.glob("*/SHA256SUMS"):
        for line in listing.read_text().splitlines():
            digest, _, name = line.partition("  ")
            sums[(listing.parent / name).resolve()] = digest
    return sums


def verify_shipped(path: Path) -> None:
    """A shipped split file must be byte-identical to the one the checksums list."""
    expected = _shipped_checksums().get(path.resolve())
    if expected is not None and hashlib.sha256(path.read_bytes()).hexdigest() != expected:
        raise BenchError("a split file shipped with bench does not match its checksum (SHA256SUMS).", file=path,
                         hint="Reinstall peft-bench; never edit the shipped split files.")


def missing_data(data: DataSpec) -> str | None:
    """Why the data cannot be read yet ('no folder ...', 'no split file ...'), or None when it is in place."""
    root = data.resolved_root()
    absent = [s for s in data.splits if not split_file(data, s).is_file()]
    if absent:
        return "no split file " + ", ".join(f"{s} -> {split_file(data, s)}" for s in absent)
    return None if root.is_dir() else f"no folder {root}"


def ensure_prepared(data: DataSpec, task_name: str) -> Path:
    """Make sure the data exists: run `data.prepare` when the root or a split file is missing."""
    root = data.resolved_root()
    missing = missing_data(data)
    if missing and data.prepare:
        _call_prepare(data.prepare, root, task_name)
        missing = missing_data(data)
    if missing:
        raise BenchError(f"task '{task_name}': data not found ({missing}).", field="data.root", hint=data.hint())
    return root


def _call_prepare(target: str, root: Path, task_name: str) -> None:
    """Run a task's `data.prepare` function, one process at a time (workers that start together on a fresh
    machine wait for the first one's data instead of replacing it under each other). Only functions of the bench
    package may be named: a task file is data, and reading one must never run code from elsewhere (plug-in code
    comes only from --methods-dir or an installed entry point, which the user chooses explicitly)."""
    module_name, _, function_name = target.partition(":")
    if module_name != "bench" and not module_name.startswith("bench."):
        raise BenchError(
            f"task '{task_name}': data.prepare names '{target}', outside the bench package.",
            field="data.prepare",
            hint="A task file may only name preparation functions of bench itself (bench.data...). Prepare the data "
                 "with your own code first and point data.root at the result.",
        )
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise BenchError(
            f"task '{task_name}': cannot find data.prepare function '{target}': {exc}.",
            field="data.prepare",
            hint="Use the form 'package.module:function'.",
        ) from exc
    with build_lock(root.parent / f".{root.name}.prepare.lock", f"the data of {task_name}"):
        function(root)  # a process that waited finds the data complete and writes nothing


def read_split(data: DataSpec, split: str, task_name: str) -> ListedSplit:
    """Parse one split file; every problem names the file (and line)."""
    root = ensure_prepared(data, task_name)
    if split not in data.splits:
        raise BenchError(f"task '{task_name}' has no split '{split}'.", field="data.splits")
    listed = _read_vpt_json(data, split, root) if data.source == "vpt_json" else _read_list(data, split, root)
    expected = data.expected_sizes.get(split)
    if expected is not None and len(listed.paths) != expected:
        raise BenchError(
            f"split '{split}' of task '{task_name}' has {len(listed.paths)} examples, expected {expected}.",
            file=listed.list_file, hint="The file is truncated or from another release; download it again.",
        )
    return listed


def _read_list(data: DataSpec, split: str, root: Path) -> ListedSplit:
    list_file = split_file(data, split)
    paths: list[Path] = []
    labels: list[int] = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        relative, _, label_text = line.rpartition(" ")
        try:
            label = int(label_text)
        except ValueError:
            relative = ""
            label = -1
        if not relative or not 0 <= label < data.num_classes:
            raise BenchError(
                f"line {number} is not '<relative image path> <label in 0..{data.num_classes - 1}>': {line!r}.",
                file=list_file,
                hint="Fix the list file or data.num_classes in the task spec.",
            )
        paths.append(root / relative)
        labels.append(label)
    if not paths:
        raise BenchError("the list file is empty.", file=list_file)
    return ListedSplit(split, list_file, tuple(paths), np.asarray(labels, dtype=np.int64))


def _load_json(path: Path) -> dict[str, object]:
    verify_shipped(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as handle:
            content = json.load(handle)
    except (OSError, ValueError) as exc:
        raise BenchError(f"unreadable split file ({exc}).", file=path) from exc
    if not isinstance(content, dict) or not content:
        raise BenchError("expected a non-empty JSON object {relative image path: class id}.", file=path)
    return content


def vpt_label_map(data: DataSpec) -> dict[object, int]:
    """Class id -> contiguous label, from the train split: sorted ids (numbers numerically)."""
    classes = set(_load_json(split_file(data, "train")).values())
    ordered = sorted(classes, key=lambda c: (0, int(str(c)), "") if str(c).isdigit() else (1, 0, str(c)))
    return {c: i for i, c in enumerate(ordered)}


def _read_vpt_json(data: DataSpec, split: str, root: Path) -> ListedSplit:
    path = split_file(data, split)
    label_map = vpt_label_map(data)
    if len(label_map) != data.num_classes:
        raise BenchError(f"the train split has {len(label_map)} classes, data.num_classes says {data.num_classes}.",
                         file=split_file(data, "train"), field="data.num_classes")
    paths, labels = [], []
    for relative, class_id in _load_json(path).items():
        if class_id not in label_map:
            raise BenchError(f"class id {class_id!r} of {relative!r} does not occur in the train split.", file=path)
        paths.append(root / relative)
        labels.append(label_map[class_id])
    return ListedSplit(split, path, tuple(paths), np.asarray(labels, dtype=np.int64))


def decode_image(path: Path, images: ImageSpec) -> np.ndarray:
    """Decode one file to RGB uint8 (H, W, 3) at the spec's storage size (the deterministic part of the
    pipeline: exact resize for VTAB, shorter-side resize for FGVC, as torchvision's Resize does)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    except FileNotFoundError as exc:
        raise BenchError("image file listed but missing.", file=path,
                         hint="Re-download or re-extract the data set.") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BenchError(
            f"corrupt or unreadable image ({type(exc).__name__}: {exc}).",
            file=path,
            hint="Replace the file from the original archive, or remove its line from the list file.",
        ) from exc
    resample = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
                "nearest": Image.Resampling.NEAREST}[images.interpolation]
    width, height = image.size
    if isinstance(images.resize, int):
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = images.resize, int(images.resize * long / short)
        size = (new_short, new_long) if width <= height else (new_long, new_short)
    else:
        size = (images.resize[1], images.resize[0])
    if size != (width, height):
        image = image.resize(size, resample)
    return np.array(image, dtype=np.uint8)  # a writable copy


def count_examples(task: TaskSpec, split: str) -> int | None:
    """Examples in a vision split, or None when the data is not there yet (then the spec's expected size)."""
    path = split_file(task.data, split)
    if not path.is_file():
        return task.data.expected_sizes.get(split)
    if task.data.source == "vpt_json":
        return len(_load_json(path))
    return sum(1 for line in path.read_text().splitlines() if line.strip())
