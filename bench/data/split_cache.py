"""The splits one process holds, within a memory budget: least recently used first out, splits the next runs need
last. It must never hold a split beyond the budget when another can be let go, nor decode anything itself
(bench.data.tensor_store does, once per machine).

Every split the cache holds counts with all the bytes it reaches: mapped pixel files (their touched pages are
resident, though shared with the other processes mapping them) and in-RAM copies (a train+val union of equal-size
images). A split larger than the whole budget is still served, held alone. Eviction drops the cache's reference;
the memory returns when the caller drops its own too (at the end of the run that uses it).

The budget: `SplitCache(budget=...)` in bytes, else $BENCH_CACHE_BUDGET ("8G", "512M", "1.5G", a byte count),
else half of MemAvailable (/proc/meminfo) divided by the processes sharing the machine, at least 1 GiB.
"""

from __future__ import annotations

import logging
import os
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

from bench.data.tensor_store import DecodedSplit, cached_split, concat_splits, held_bytes, open_split
from bench.errors import BenchError
from bench.spec import DataSpec

log = logging.getLogger("bench.cache")

BUDGET_ENV = "BENCH_CACHE_BUDGET"
BUDGET_FRACTION = 0.5  # of MemAvailable, shared by the processes of a machine
MIN_BUDGET = 1 << 30
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

SplitKey = tuple[str, tuple[str, ...]]
Needed = tuple[DataSpec, str | Sequence[str]]


def parse_size(text: str) -> int:
    """'8G' -> 8 GiB, '512M', '1.5g', '100000' (bytes); binary units, an optional trailing 'B' or 'iB'."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(I?B)?\s*", text.upper())
    if not match:
        raise BenchError(f"{BUDGET_ENV}={text!r} is not a size.", field=BUDGET_ENV,
                         hint="Write a byte count or a number with K, M, G or T, e.g. BENCH_CACHE_BUDGET=8G.")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def mem_available() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where there is no such file)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def default_budget(processes: int = 1) -> int:
    """$BENCH_CACHE_BUDGET when set (per process), else a share of the machine's available memory."""
    text = os.environ.get(BUDGET_ENV)
    if text:
        return parse_size(text)
    available = mem_available() or 8 * MIN_BUDGET
    return max(MIN_BUDGET, int(BUDGET_FRACTION * available / max(1, processes)))


def split_key(data: DataSpec, splits: str | Sequence[str]) -> SplitKey:
    """Cache key of a split or a union of splits of one task's data."""
    names = (splits,) if isinstance(splits, str) else tuple(splits)
    return data.model_dump_json(), names


class SplitCache:
    """Decoded splits (and train+val unions) of one process, evicted to stay within `budget` bytes."""

    def __init__(self, budget: int | None = None, cache_dir: Path | None = None, progress: bool = False) -> None:
        self.budget = default_budget() if budget is None else budget
        self.cache_dir, self.progress = cache_dir, progress
        self._held: OrderedDict[SplitKey, tuple[DecodedSplit, int]] = OrderedDict()  # oldest use first
        self._needed: set[SplitKey] = set()
        self._fingerprints: dict[tuple[str, str], str] = {}

    # -------------------------------------------------------------- what the loop calls

    def get(self, data: DataSpec, splits: str | Sequence[str], task_name: str,
            next_needed: Iterable[Needed] | None = None) -> DecodedSplit:
        """The split (or the union of `splits`, in order), mapped from the decode cache. `next_needed` (when given)
        replaces the hint of what the next runs use: those are evicted last."""
        if next_needed is not None:
            self.keep(next_needed)
        key = split_key(data, splits)
        if key in self._held:
            self._held.move_to_end(key)
            return self._held[key][0]
        entries = [cached_split(data, name, task_name, self.cache_dir, self.progress) for name in key[1]]
        self._make_room(sum(e.pixel_bytes + e.labels.nbytes for e in entries))
        split = concat_splits([open_split(entry, name) for entry, name in zip(entries, key[1], strict=True)])
        size = held_bytes(split)
        self._held[key] = (split, size)
        self._make_room(0, protect=key)
        if size > self.budget:
            log.info("split %s of %s (%.2f GB) is larger than the cache budget (%.2f GB): held alone",
                     split.name, task_name, size / 1e9, self.budget / 1e9)
        for entry, name in zip(entries, key[1], strict=True):
            self._fingerprints[(key[0], name)] = entry.content
        return split

    def keep(self, needed: Iterable[Needed]) -> None:
        """Hint: these splits (data, split name or names) are used by the next runs; they are evicted last."""
        self._needed = {split_key(data, splits) for data, splits in needed}

    def fingerprint(self, data: DataSpec, split: str, task_name: str) -> str:
        """The split's content fingerprint for planning (run keys), read from its cache index: no pixels are loaded
        or kept (a split not yet decoded is decoded to disk first). Remembered for the life of the process."""
        key = (data.model_dump_json(), split)
        if key not in self._fingerprints:
            self._fingerprints[key] = cached_split(data, split, task_name, self.cache_dir, self.progress,
                                                   verify=False).content
        return self._fingerprints[key]

    def fingerprints(self, data: DataSpec, splits: Iterable[str], task_name: str) -> dict[str, str]:
        return {name: self.fingerprint(data, name, task_name) for name in splits}

    # -------------------------------------------------------------- state

    @property
    def held_bytes(self) -> int:
        return sum(size for _, size in self._held.values())

    def held(self) -> list[SplitKey]:
        """Keys held, least recently used first."""
        return list(self._held)

    def clear(self) -> None:
        self._held.clear()

    def _make_room(self, incoming: int, protect: SplitKey | None = None) -> None:
        """Evict until what is held plus `incoming` fits: unneeded splits first, then needed ones; LRU within."""
        order = [k for k in self._held if k not in self._needed] + [k for k in self._held if k in self._needed]
        for key in order:
            if self.held_bytes + incoming <= self.budget:
                return
            if key != protect:
                del self._held[key]

