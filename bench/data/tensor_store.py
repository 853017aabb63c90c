"""Decode-once image cache: every image is decoded and resized once into a uint8 file on disk, which every process
on the machine memory-maps. Nothing here decodes a JPEG twice or per epoch, or holds a whole split in RAM to write
or hash it.

A decoded split is two files under `<cache>/images/`:

- `pixels/<pixel digest>.npy`: every image's pixels back to back, a flat uint8 array (np.load(mmap_mode="r")
  opens it). Named by its content, so two splits whose decoded images are the same (the two dSprites tasks'
  test sets) share one file;
- `<key>.index.npz`: the shapes, labels, the content digest and the pixel file's name; written last, so a
  present index means a complete entry. The key hashes the list file, the image files' sizes and times and the
  decode settings.

One process decodes a split under a lock (`<key>.lock`); the others wait and then map the finished file. Pixels
are streamed to a temp file and hashed while written (temp + fsync + rename). Each process checks a file against
its content digest once, reading it in chunks; a damaged entry is discarded with a warning and decoded again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import weakref
import zipfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.data.cache_lock import build_lock
from bench.data.splits import ListedSplit, decode_image, read_split
from bench.ops import faults
from bench.spec import DataSpec, ImageSpec, default_cache_dir
from bench.store import atomic_writer

CACHE_FORMAT = 3  # 2: one .npz per split, loaded into RAM; 3: mapped pixel file + index
INDEX_SUFFIX = ".index.npz"
READ_CHUNK = 4 << 20
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


@dataclass(frozen=True)
class CachedSplit:
    """What a split's index says, without its pixels: enough to plan (fingerprint) and to budget (sizes)."""

    key: str
    index: Path
    pixels: Path
    shapes: np.ndarray  # (N, 2) int64: height, width per image
    labels: np.ndarray  # (N,) int64
    content: str  # the split's fingerprint

    @property
    def pixel_bytes(self) -> int:
        return int((self.shapes[:, 0] * self.shapes[:, 1]).sum()) * 3


def load_split(data: DataSpec, split: str, task_name: str, cache_dir: Path | None = None,
               progress: bool = False) -> DecodedSplit:
    """The decoded split, memory-mapped from the cache; decoded now (once per machine) when absent or damaged."""
    return open_split(cached_split(data, split, task_name, cache_dir, progress), split)


def cached_split(data: DataSpec, split: str, task_name: str, cache_dir: Path | None = None,
                 progress: bool = False, verify: bool = True) -> CachedSplit:
    """The split's cache entry, decoded first when absent. With `verify`, its pixels match its digest (checked
    once per process and file); without, only the index was read (planning needs the fingerprint, no pixels)."""
    listed = read_split(data, split, task_name)
    folder = (cache_dir or default_cache_dir()) / "images"
    key = _cache_key(listed, data.images)
    entry, problem = _read_index(folder, key)
    if entry is not None and problem is None and (not verify or _verified(entry)):
        return entry
    with build_lock(folder / f"{key}.lock", f"the image cache of split '{split}' of {task_name}"):
        # Another process may have built or repaired the entry while we waited; only the lock holder discards.
        entry, problem = _read_index(folder, key)
        if entry is not None and problem is None and verify and not _verified(entry):
            problem = "does not match its checksum"
        if problem is not None:
            _discard(folder, key, entry, problem)
        if entry is None or problem is not None:
            _remove_partial_writes(folder, key)
            _write_cache(folder, key, listed, data.images, progress)
            entry, problem = _read_index(folder, key)
            if entry is None or problem is not None or (verify and not _verified(entry)):
                raise OSError(f"the image cache entry {folder / key} is damaged right after being written "
                              "(failing disk?)")
    return entry


def split_fingerprint(data: DataSpec, split: str, task_name: str, cache_dir: Path | None = None,
                      progress: bool = False) -> str:
    """The split's content fingerprint, read from its index (decoded first when absent, pixels never kept)."""
    return cached_split(data, split, task_name, cache_dir, progress, verify=False).content


# ---------------------------------------------------------------- reading


_MAPPED: weakref.WeakValueDictionary[tuple[int, int, int, int], np.ndarray] = weakref.WeakValueDictionary()
_CHECKED: dict[tuple[int, int, int, int, str], bool] = {}


def open_split(entry: CachedSplit, name: str) -> DecodedSplit:
    """The entry's images as tensors over the memory-mapped pixel file (copy-on-write: a stray in-place write
    changes this process's pages, never the file). One mapping per file and process while anything uses it."""
    identity = _file_identity(entry.pixels)
    pixels = _MAPPED.get(identity)
    if pixels is None:
        pixels = np.load(entry.pixels, mmap_mode="c", allow_pickle=False)
        _MAPPED[identity] = pixels
    return DecodedSplit(name, _unflatten(torch.from_numpy(pixels), entry.shapes), torch.from_numpy(entry.labels),
                        entry.content)


def _file_identity(path: Path) -> tuple[int, int, int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def _read_index(folder: Path, key: str) -> tuple[CachedSplit | None, str | None]:
    """(entry, None) when the index is readable and its pixel file present; (None, None) when there is no index;
    a problem otherwise, which only the lock holder acts on (discards), so a repair is never undone by a reader."""
    path = folder / f"{key}{INDEX_SUFFIX}"
    if not path.is_file():
        return None, None
    try:
        with np.load(path, allow_pickle=False) as stored:
            if int(stored["format"]) != CACHE_FORMAT:
                raise ValueError(f"format {int(stored['format'])}, expected {CACHE_FORMAT}")
            shapes, labels = stored["shapes"], stored["labels"]
            content, pixels = str(stored["content"]), folder / "pixels" / str(stored["pixels"])
        if shapes.dtype != np.int64 or shapes.ndim != 2 or shapes.shape[1] != 2 or labels.shape != shapes[:, 0].shape:
            raise ValueError("shapes and labels do not agree")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        return None, f"is unreadable ({exc})"
    entry = CachedSplit(key, path, pixels, shapes, labels, content)
    return entry, None if pixels.is_file() else "has lost its pixel file"


def _verified(entry: CachedSplit) -> bool:
    """Whether the pixel file, shapes and labels hash to the stored digest. The file is read in chunks through
    the page cache (never mapped, never copied whole); about a second per GB, once per process and file."""
    try:
        check = (*_file_identity(entry.pixels), entry.content)
    except FileNotFoundError:
        return False
    if check not in _CHECKED:
        _CHECKED[check] = _digest_of_file(entry) == entry.content
    return _CHECKED[check]


def _digest_of_file(entry: CachedSplit) -> str | None:
    digest = hashlib.sha256()
    buffer = bytearray(READ_CHUNK)
    try:
        with entry.pixels.open("rb") as handle:
            major, _ = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(handle)
            if dtype != np.uint8 or fortran or shape != (entry.pixel_bytes,):
                return None
            remaining = entry.pixel_bytes
            while remaining:
                read = handle.readinto(memoryview(buffer)[: min(READ_CHUNK, remaining)])
                if not read:
                    return None  # truncated
                digest.update(memoryview(buffer)[:read])
                remaining -= read
    except (OSError, ValueError):
        return None
    digest.update(entry.shapes.tobytes())
    digest.update(entry.labels.tobytes())
    return digest.hexdigest()[:16]


def _discard(folder: Path, key: str, entry: CachedSplit | None, problem: str) -> None:
    index = folder / f"{key}{INDEX_SUFFIX}"
    log.warning("image cache %s %s: discarded and decoded again", entry.pixels if entry else index, problem)
    index.unlink(missing_ok=True)
    if entry is not None and problem != "has lost its pixel file":
        entry.pixels.unlink(missing_ok=True)


def _remove_partial_writes(folder: Path, key: str) -> None:
    """Temp files of a writer of this entry killed mid-write; only the lock holder writes them."""
    for partial in [*folder.glob(f".{key}{INDEX_SUFFIX}.*.tmp"), *(folder / "pixels").glob(f".{key}.*.tmp")]:
        partial.unlink(missing_ok=True)


def _unflatten(flat: torch.Tensor, shapes: np.ndarray) -> torch.Tensor | list[torch.Tensor]:
    """Views into the flat pixel tensor: no pixel is copied, ragged (FGVC) images included."""
    if len(shapes) and (shapes == shapes[0]).all():
        h, w = (int(v) for v in shapes[0])
        return flat.view(len(shapes), h, w, 3)
    sizes = (shapes[:, 0] * shapes[:, 1] * 3).tolist()
    return [chunk.view(int(h), int(w), 3) for chunk, (h, w) in zip(flat.split(sizes), shapes, strict=True)]


# ---------------------------------------------------------------- writing


def _cache_key(listed: ListedSplit, images: ImageSpec) -> str:
    import json

    decode_params = {"resize": images.resize, "interpolation": images.interpolation, "format": CACHE_FORMAT}
    text = json.dumps([str(listed.list_file.resolve()), listed.fingerprint(), listed.files_signature(),
                       decode_params], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _npy_header(count: int) -> bytes:
    """The .npy header of a flat uint8 array of `count` bytes. Its length does not depend on `count` (numpy pads
    it for in-place growth), so a placeholder is written first and the real header over it at the end."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "|u1", "fortran_order": False, "shape": (count,)})
    return out.getvalue()


def _write_cache(folder: Path, key: str, listed: ListedSplit, images: ImageSpec, progress: bool) -> None:
    """Decode the split into its pixel file, hashing while writing, then write its index (last)."""
    faults.point("cache_write")
    pixels_dir = folder / "pixels"
    pixels_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    shapes: list[tuple[int, int]] = []
    handle = tempfile.NamedTemporaryFile(dir=pixels_dir, prefix=f".{key}.", suffix=".tmp", delete=False)  # noqa: SIM115 (closed below)
    tmp = Path(handle.name)
    try:
        with handle:
            placeholder = _npy_header(0)
            handle.write(placeholder)
            total = 0
            for array in _decoded(listed, images, progress):
                data = np.ascontiguousarray(array).data.cast("B")
                handle.write(data)
                digest.update(data)
                shapes.append((int(array.shape[0]), int(array.shape[1])))
                total += data.nbytes
            header = _npy_header(total)
            if len(header) != len(placeholder):
                raise AssertionError("numpy's .npy header length changed with the array size")
            handle.seek(0)
            handle.write(header)
            handle.flush()
            os.fsync(handle.fileno())
        name = digest.copy().hexdigest()[:24] + ".npy"  # the pixels' own digest: same pixels, same file
        os.chmod(tmp, 0o666 & ~_umask())
        faults.point(f"write:{name}")
        os.replace(tmp, pixels_dir / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    shape_array = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
    labels = np.ascontiguousarray(listed.labels, dtype=np.int64)
    digest.update(shape_array.tobytes())
    digest.update(labels.tobytes())
    with atomic_writer(folder / f"{key}{INDEX_SUFFIX}") as out:
        np.savez(out, shapes=shape_array, labels=labels, content=np.str_(digest.hexdigest()[:16]),
                 pixels=np.str_(name), format=np.int64(CACHE_FORMAT))


def _decoded(listed: ListedSplit, images: ImageSpec, progress: bool) -> Iterator[np.ndarray]:
    """The split's images decoded in list order by a thread pool, at most a few per thread in flight."""
    from tqdm import tqdm

    workers = max(1, min(8, os.cpu_count() or 1))
    pending: deque[Future[np.ndarray]] = deque()
    bar = tqdm(total=len(listed.paths), desc=f"decode {listed.name}", disable=not progress, leave=False)
    pool = ThreadPoolExecutor(workers)
    try:
        for path in listed.paths:
            pending.append(pool.submit(decode_image, path, images))
            if len(pending) >= 4 * workers:
                yield pending.popleft().result()
                bar.update()
        while pending:
            yield pending.popleft().result()
            bar.update()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------- unions


def concat_splits(parts: list[DecodedSplit]) -> DecodedSplit:
    """Union of splits in order (e.g. train + val for the final runs). Equal-size images are copied into one
    tensor (the batches gather from it); ragged ones stay views of the parts' mapped files."""
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


def held_bytes(split: DecodedSplit) -> int:
    """Bytes of memory the split's tensors reach (each storage once: views of one mapped file count once)."""
    storages: dict[int, int] = {}
    tensors = [split.images] if isinstance(split.images, torch.Tensor) else list(split.images)
    for tensor in [*tensors, split.labels]:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())



def unused_cache_files(cache_dir: Path | None = None, min_age_s: float = 3600.0) -> list[Path]:
    """Files of the image cache nothing reads any more, for a clean-up command to remove: format-2 `<key>.npz`
    files, pixel files no index names and temp files of killed writers, all older than `min_age_s` (a pixel file
    is briefly unnamed between its rename and its index's, and a live writer's temp file is young)."""
    import time

    folder = (cache_dir or default_cache_dir()) / "images"
    if not folder.is_dir():
        return []
    named = set()
    for index in folder.glob(f"*{INDEX_SUFFIX}"):
        entry, _ = _read_index(folder, index.name.removesuffix(INDEX_SUFFIX))
        if entry is not None:
            named.add(entry.pixels.name)
    candidates = [p for p in folder.glob("*.npz") if not p.name.endswith(INDEX_SUFFIX)]
    candidates += [p for p in (folder / "pixels").glob("*.npy") if p.name not in named]
    candidates += [*folder.glob(".*.tmp"), *(folder / "pixels").glob(".*.tmp")]
    cutoff = time.time() - min_age_s
    return sorted(p for p in candidates if p.stat().st_mtime < cutoff)
