"""Image-list data sets (the NOAH / VTAB-1k folder format): list files of '<relative path> <label>' lines.

This module only reads list files and decodes images; it never caches (bench.data.tensor_store does).
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.errors import BenchError
from bench.spec import DataSpec, ImageSpec


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


def ensure_prepared(data: DataSpec, task_name: str) -> Path:
    """Make sure the data exists: run `data.prepare` when the root or a list file is missing."""
    root = data.resolved_root()
    missing = [s for s, f in data.splits.items() if not (root / f).is_file()]
    if missing and data.prepare:
        _call_prepare(data.prepare, root, task_name)
        missing = [s for s, f in data.splits.items() if not (root / f).is_file()]
    if missing:
        listed = ", ".join(f"{s} -> {root / data.splits[s]}" for s in missing)
        hint = data.download_hint or "Download the data set and point data.root (or ${BENCH_DATA}) at it."
        raise BenchError(f"task '{task_name}': data not found ({listed}).", field="data.root", hint=hint)
    return root


def _call_prepare(target: str, root: Path, task_name: str) -> None:
    module_name, _, function_name = target.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise BenchError(
            f"task '{task_name}': cannot find data.prepare function '{target}': {exc}.",
            field="data.prepare",
            hint="Use the form 'package.module:function'.",
        ) from exc
    function(root)


def read_split(data: DataSpec, split: str, task_name: str) -> ListedSplit:
    """Parse one list file; every problem names the file and line."""
    root = ensure_prepared(data, task_name)
    if split not in data.splits:
        raise BenchError(f"task '{task_name}' has no split '{split}'.", field="data.splits")
    list_file = root / data.splits[split]
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
