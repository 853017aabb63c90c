"""Decode-once image cache: every image is decoded and resized once into a uint8 array file on disk, then
served from memory (or the GPU). Nothing here decodes a JPEG twice or per epoch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.data.splits import ListedSplit, decode_image, read_split
from bench.ops import faults
from bench.spec import DataSpec, ImageSpec, default_cache_dir
from bench.store import atomic_writer

CACHE_FORMAT = 2
log = logging.getLogger("bench.cache")


@dataclass
class DecodedSplit:
    """Images of one split, decoded: a (N, H, W, 3) uint8 tensor when all sizes agree, else a list."""

    name: str
    images: torch.Tensor | list[torch.Tensor]
    labels: torch.Tensor
    fingerprint: str  # hash of the decoded pixels, sizes and labels: the split's content, wherever it lives

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def load_split(data: DataSpec, split: str, task_name: str, cache_dir: Path | None = None,
               progress: bool = False) -> DecodedSplit:
    """The decoded split, from the cache when present, else decoded now and cached (atomically)."""
    listed = read_split(data, split, task_name)
    key = _cache_key(listed, data.images)
    path = (cache_dir or default_cache_dir()) / "images" / f"{key}.npz"
    if not path.is_file():
        _write_cache(path, listed, data.images, progress)
    loaded = _read_cache(path)
    if loaded is None:  # damaged: decoded again, never used
        _write_cache(path, listed, data.images, progress)
        loaded = _read_cache(path)
        if loaded is None:
            raise OSError(f"the image cache file {path} is damaged right after being written (failing disk?)")
    pixels, shapes, labels, content = loaded
    return DecodedSplit(split, _unflatten(pixels, shapes), torch.from_numpy(labels), content)


def _content_digest(pixels: np.ndarray, shapes: np.ndarray, labels: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in (pixels, shapes, labels):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _read_cache(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, str] | None:
    """The cached arrays when the file is whole and its arrays hash to the digest stored with them; else None
    (the file is removed with a warning). Hashing costs about a second per GB, once per process and split."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            pixels, shapes, labels = stored["pixels"], stored["shapes"], stored["labels"]
            content = str(stored["content"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("image cache %s is unreadable (%s): discarded and decoded again", path, exc)
        path.unlink(missing_ok=True)
        return None
    if _content_digest(pixels, shapes, labels) != content:
        log.warning("image cache %s does not match its checksum: discarded and decoded again", path)
        path.unlink(missing_ok=True)
        return None
    return pixels, shapes, labels, content


def _cache_key(listed: ListedSplit, images: ImageSpec) -> str:
    decode_params = {"resize": images.resize, "interpolation": images.interpolation, "format": CACHE_FORMAT}
    text = json.dumps([str(listed.list_file.resolve()), listed.fingerprint(), listed.files_signature(),
                       decode_params], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _write_cache(path: Path, listed: ListedSplit, images: ImageSpec, progress: bool) -> None:
    from tqdm import tqdm

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        decoded = pool.map(lambda p: decode_image(p, images), listed.paths)
        arrays = list(tqdm(decoded, total=len(listed.paths), desc=f"decode {listed.name}", disable=not progress,
                           leave=False))
    shapes = np.asarray([a.shape[:2] for a in arrays], dtype=np.int64)
    pixels = np.concatenate([a.reshape(-1) for a in arrays])
    content = _content_digest(pixels, shapes, listed.labels)
    faults.point("cache_write")
    with atomic_writer(path) as handle:
        np.savez(handle, pixels=pixels, shapes=shapes, labels=listed.labels, content=content)


def _unflatten(pixels: np.ndarray, shapes: np.ndarray) -> torch.Tensor | list[torch.Tensor]:
    flat = torch.from_numpy(pixels)
    if len(shapes) and (shapes == shapes[0]).all():
        h, w = (int(v) for v in shapes[0])
        return flat.view(len(shapes), h, w, 3)
    sizes = (shapes[:, 0] * shapes[:, 1] * 3).tolist()
    return [chunk.view(int(h), int(w), 3) for chunk, (h, w) in zip(flat.split(sizes), shapes, strict=True)]


def concat_splits(parts: list[DecodedSplit]) -> DecodedSplit:
    """Union of splits in order (e.g. train + val for the final runs)."""
    if len(parts) == 1:
        return parts[0]
    labels = torch.cat([p.labels for p in parts])
    name = "+".join(p.name for p in parts)
    fingerprint = hashlib.sha256("".join(p.fingerprint for p in parts).encode()).hexdigest()[:16]
    if all(isinstance(p.images, torch.Tensor) for p in parts):
        tensors = [p.images for p in parts if isinstance(p.images, torch.Tensor)]
        if len({t.shape[1:] for t in tensors}) == 1:
            return DecodedSplit(name, torch.cat(tensors), labels, fingerprint)
    images: list[torch.Tensor] = []
    for p in parts:
        images.extend(list(p.images))
    return DecodedSplit(name, images, labels, fingerprint)
