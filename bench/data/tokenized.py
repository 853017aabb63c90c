"""Tokenised training pairs, encoded once per (split content, tokenizer, encoding) and kept on disk as flat int32
arrays with offsets: about 4 bytes a token, memory-mapped in well under a second for an XSum-sized split. It must
never decide how a pair is encoded (the caller's `encode` does) nor hold the pairs as Python lists of lists.

A cache entry is two files under `<cache>/tokens/`: `<key>.npy`, every pair's input ids then every pair's label
ids (one flat int32 array, `np.load(mmap_mode="r")` opens it), and `<key>.index.npz` (written last), the
`ids_offsets` and `labels_offsets` (int64, N + 1 each) and a SHA-256 of the token bytes and offsets, checked in
chunks once per process and file: a damaged entry is discarded with a warning and encoded again. It is built by
one process under a lock; the others wait and map it.
"""

from __future__ import annotations

import array
import hashlib
import io
import json
import logging
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.cache_lock import build_lock
from bench.spec import default_cache_dir
from bench.store import atomic_writer

TOKENS_FORMAT = 1
INDEX_SUFFIX = ".index.npz"
READ_CHUNK = 4 << 20
log = logging.getLogger("bench.cache")

Pair = tuple[str, str]
Encode = Callable[[Pair], tuple[Sequence[int], Sequence[int]]]


@dataclass(frozen=True)
class TokenizedPairs:
    """(input ids, label ids) of N pairs: example i is ids[ids_offsets[i]:ids_offsets[i + 1]] and likewise labels."""

    ids: np.ndarray
    ids_offsets: np.ndarray
    labels: np.ndarray
    labels_offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.ids_offsets) - 1

    def example(self, i: int) -> tuple[list[int], list[int]]:
        """Pair i as the lists the encode function returned."""
        ids = self.ids[self.ids_offsets[i]:self.ids_offsets[i + 1]]
        labels = self.labels[self.labels_offsets[i]:self.labels_offsets[i + 1]]
        return ids.tolist(), labels.tolist()

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """Tokens per pair: (input lengths, label lengths)."""
        return np.diff(self.ids_offsets), np.diff(self.labels_offsets)

    def padded(self, indices: Sequence[int] | np.ndarray, pad_id: int, label_pad: int = -100
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(input ids, attention mask, labels) of the pairs `indices`, as int64 arrays padded on the right to the
        longest in the batch (inputs with pad_id and mask 0, labels with label_pad): a training batch without
        building per-example lists."""
        index = np.asarray(indices, dtype=np.int64)
        ids, mask = _pad(self.ids, self.ids_offsets, index, pad_id)
        labels, _ = _pad(self.labels, self.labels_offsets, index, label_pad)
        return ids, mask, labels

    def take(self, indices: Sequence[int] | np.ndarray) -> TokenizedPairs:
        """The pairs `indices`, in that order (a training subset), as arrays of their own."""
        index = np.asarray(indices, dtype=np.int64)
        ids, ids_offsets = _gather(self.ids, self.ids_offsets, index)
        labels, labels_offsets = _gather(self.labels, self.labels_offsets, index)
        return TokenizedPairs(ids, ids_offsets, labels, labels_offsets)

    @staticmethod
    def concat(parts: Sequence[TokenizedPairs]) -> TokenizedPairs:
        """Union in order (e.g. the tokenised train and val splits)."""
        if len(parts) == 1:
            return parts[0]

        def joined(values: str, offsets: str) -> tuple[np.ndarray, np.ndarray]:
            starts = np.cumsum([0] + [len(getattr(p, values)) for p in parts[:-1]])
            merged = [getattr(parts[0], offsets)[:1]] + [getattr(p, offsets)[1:] + s for p, s in zip(parts, starts,
                                                                                                   strict=True)]
            return np.concatenate([getattr(p, values) for p in parts]), np.concatenate(merged)

        return TokenizedPairs(*joined("ids", "ids_offsets"), *joined("labels", "labels_offsets"))


def tokenizer_identity(tokenizer: Any) -> str:
    """Name and content hash of a Hugging Face tokenizer: its full definition (vocabulary, merges, normalisation,
    special and added tokens) for fast tokenizers, else the vocabulary and special tokens; the truncation and
    padding a previous call left set are not part of it."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition = json.loads(backend.to_str())
        definition.pop("truncation", None)
        definition.pop("padding", None)
    else:
        definition = {"vocab": sorted(tokenizer.get_vocab().items())}
    definition["special_tokens"] = {str(k): str(v) for k, v in getattr(tokenizer, "special_tokens_map", {}).items()}
    definition["class"] = type(tokenizer).__name__
    digest = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]
    return f"{getattr(tokenizer, 'name_or_path', '') or type(tokenizer).__name__}#{digest}"


def tokenized(split_fingerprint: str, tokenizer: Any, encode: Encode, pairs: Sequence[Pair], *,
              encode_version: str, cache_dir: Path | None = None, progress: bool = False) -> TokenizedPairs:
    """`encode(pair)` for every pair, from the cache when this split content, tokenizer and encoding were seen
    before, else encoded now (once per machine) and cached.

    `split_fingerprint` must name exactly `pairs` (the split's content fingerprint); `encode_version` must change
    whenever `encode` does: name the format and every setting it reads (e.g. "gpt2-lm:src512:tgt100:v1")."""
    import tokenizers

    identity = {"split": split_fingerprint, "tokenizer": tokenizer_identity(tokenizer), "encode": encode_version,
                "tokenizers": tokenizers.__version__, "format": TOKENS_FORMAT, "pairs": len(pairs)}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
    folder = (cache_dir or default_cache_dir()) / "tokens"
    loaded, _ = _load(folder, key, len(pairs))
    if loaded is not None:
        return loaded
    with build_lock(folder / f"{key}.lock", f"the tokenised split {split_fingerprint} ({encode_version})"):
        loaded, problem = _load(folder, key, len(pairs))  # built by another process while we waited?
        if problem is not None:  # only the lock holder discards, so a reader never removes a repaired entry
            log.warning("token cache %s %s: discarded and encoded again", folder / f"{key}.npy", problem)
            (folder / f"{key}{INDEX_SUFFIX}").unlink(missing_ok=True)
            (folder / f"{key}.npy").unlink(missing_ok=True)
        if loaded is None:
            _write(folder, key, _encode_all(encode, pairs, progress), identity)
            loaded, problem = _load(folder, key, len(pairs))
            if loaded is None:
                raise OSError(f"the token cache {folder / key} is {problem} right after being written (failing disk?)")
    return loaded


def _encode_all(encode: Encode, pairs: Sequence[Pair], progress: bool) -> TokenizedPairs:
    from tqdm import tqdm

    ids, labels = array.array("i"), array.array("i")
    ids_offsets, labels_offsets = array.array("q", [0]), array.array("q", [0])
    for pair in tqdm(pairs, desc="tokenise", disable=not progress, leave=False):
        pair_ids, pair_labels = encode(pair)
        ids.extend(pair_ids)
        labels.extend(pair_labels)
        ids_offsets.append(len(ids))
        labels_offsets.append(len(labels))
    return TokenizedPairs(np.frombuffer(ids, dtype=np.int32), np.frombuffer(ids_offsets, dtype=np.int64),
                          np.frombuffer(labels, dtype=np.int32), np.frombuffer(labels_offsets, dtype=np.int64))


def _header(count: int) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "<i4", "fortran_order": False, "shape": (count,)})
    return out.getvalue()


def _write(folder: Path, key: str, tokens: TokenizedPairs, identity: dict[str, Any]) -> None:
    """The token file (ids then labels, hashed while written), then the index with the offsets and digest."""
    digest = hashlib.sha256()
    with atomic_writer(folder / f"{key}.npy") as handle:
        handle.write(_header(len(tokens.ids) + len(tokens.labels)))
        for values in (tokens.ids, tokens.labels):
            data = np.ascontiguousarray(values, dtype="<i4").data.cast("B")
            handle.write(data)
            digest.update(data)
    for offsets in (tokens.ids_offsets, tokens.labels_offsets):
        digest.update(np.ascontiguousarray(offsets, dtype="<i8").data.cast("B"))
    with atomic_writer(folder / f"{key}{INDEX_SUFFIX}") as handle:
        np.savez(handle, ids_offsets=tokens.ids_offsets, labels_offsets=tokens.labels_offsets,
                 content=np.str_(digest.hexdigest()), identity=np.str_(json.dumps(identity, sort_keys=True)))


_CHECKED: dict[tuple[int, int, int, int, str], bool] = {}


def _load(folder: Path, key: str, count: int) -> tuple[TokenizedPairs | None, str | None]:
    """(pairs, None) when the entry is whole and matches its digest; (None, None) when absent; else the problem."""
    index, path = folder / f"{key}{INDEX_SUFFIX}", folder / f"{key}.npy"
    if not index.is_file():
        return None, None
    try:
        with np.load(index, allow_pickle=False) as stored:
            ids_offsets, labels_offsets = stored["ids_offsets"], stored["labels_offsets"]
            content = str(stored["content"])
        if not len(ids_offsets) == len(labels_offsets) == count + 1:
            return None, f"holds {len(ids_offsets) - 1} pairs, expected {count}"
        stat = path.stat()
        check = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, content)
        if check not in _CHECKED:
            _CHECKED[check] = _digest_of_file(path, [ids_offsets, labels_offsets]) == content
        if not _CHECKED[check]:
            return None, "does not match its checksum"
        tokens = np.load(path, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        return None, f"is unreadable ({exc})"
    split = int(ids_offsets[-1])
    return TokenizedPairs(tokens[:split], ids_offsets, tokens[split:], labels_offsets), None


def _digest_of_file(path: Path, offsets: list[np.ndarray]) -> str | None:
    """SHA-256 of the token file's data and the offsets, read in chunks through the page cache (never whole)."""
    digest = hashlib.sha256()
    buffer = bytearray(READ_CHUNK)
    with path.open("rb") as handle:
        major, _ = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(handle)
        if dtype != np.dtype("<i4") or fortran or len(shape) != 1 or shape[0] != int(offsets[0][-1] + offsets[1][-1]):
            return None
        remaining = 4 * shape[0]
        while remaining:
            read = handle.readinto(memoryview(buffer)[: min(READ_CHUNK, remaining)])
            if not read:
                return None  # truncated
            digest.update(memoryview(buffer)[:read])
            remaining -= read
    for values in offsets:
        digest.update(np.ascontiguousarray(values, dtype="<i8").data.cast("B"))
    return digest.hexdigest()


def _pad(values: np.ndarray, offsets: np.ndarray, index: np.ndarray, fill: int) -> tuple[np.ndarray, np.ndarray]:
    starts, lengths = offsets[index], offsets[index + 1] - offsets[index]
    width = int(lengths.max()) if len(index) else 0
    column = np.arange(width)
    mask = column[None, :] < lengths[:, None]
    out = np.full((len(index), width), fill, dtype=np.int64)
    out[mask] = values[(starts[:, None] + column[None, :])[mask]]
    return out, mask.astype(np.int64)


def _gather(values: np.ndarray, offsets: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lengths = offsets[index + 1] - offsets[index]
    new_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    positions = np.repeat(offsets[index] - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
    return values[positions], new_offsets
