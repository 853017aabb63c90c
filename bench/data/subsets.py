"""Training subsets for sample-efficiency studies (`bench run --data-fraction 0.1,0.25,0.5,1.0`).

Class-balanced and nested: each class's examples are put in one seeded random order, and a fraction f keeps
the first ceil(f * n_class) of them (at least one), so the 10 % subset lies inside the 25 % one, and so on;
class proportions stay those of the full split. The order depends only on the seed and the labels, so the same
seed gives the same subsets on every machine. Val and test are never subsampled. The kept indices are stored
beside each run (subset.json) for anyone to reuse.

Smoke runs (`bench run --limit N`) read at most N examples of every split through `smoke_subset`: one fixed
seeded order per split size, whatever the run's seed, so every run of a quick check sees the same examples.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bench.data.tensor_store import DecodedSplit

SUBSET_FILE = "subset.json"
SMOKE_SEED = 1009  # --limit: the same examples for every run and seed of a quick check


def parse_fractions(text: str) -> list[float]:
    """'0.1,0.25,1' -> [0.1, 0.25, 1.0]; each in (0, 1]."""
    from bench.errors import BenchError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(0.0 < v <= 1.0 for v in values):
        raise BenchError(f"--data-fraction expects comma-separated fractions in (0, 1], got {text!r}.",
                         hint="For example --data-fraction 0.1,0.25,0.5,1.0")
    return values


def nested_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of the class-balanced subset of `labels` for this fraction and seed."""
    rng = np.random.default_rng([seed, 7919])
    kept: list[np.ndarray] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        order = members[rng.permutation(len(members))]
        kept.append(order[: max(1, math.ceil(fraction * len(members)))])
    return np.sort(np.concatenate(kept))


def smoke_subset(count: int, limit: int, labels: np.ndarray | None = None) -> np.ndarray:
    """Sorted indices of at most `limit` of `count` examples (--limit): the first `limit` of one order seeded by
    SMOKE_SEED, so a smaller limit keeps a subset of a larger one's. With `labels` the classes take turns in that
    order (each class's first example, then each class's second, ...), so a limit of at least the number of
    classes keeps every class."""
    if limit >= count:
        return np.arange(count)
    order = np.random.default_rng(SMOKE_SEED).permutation(count)
    if labels is not None:
        ordered = np.asarray(labels)[order]
        by_class = np.argsort(ordered, kind="stable")
        grouped = ordered[by_class]
        turn = np.empty(count, dtype=np.int64)  # an example's position among its class's examples in `order`
        turn[by_class] = np.arange(count) - np.searchsorted(grouped, grouped, side="left")
        order = order[np.lexsort((np.arange(count), turn))]
    return np.sort(order[:limit])


def subset_fingerprint(fingerprint: str, tag: float | str, indices: np.ndarray) -> str:
    """The fingerprint of a subset of a split (image or text): the split's, what chose the subset, and the kept
    indices."""
    import hashlib

    return hashlib.sha256(f"{fingerprint}:{tag}:{indices.tobytes().hex()}".encode()).hexdigest()[:16]


def take(split: DecodedSplit, indices: np.ndarray, tag: float | str) -> DecodedSplit:
    """The subset as a split of its own, with a fingerprint that names the subset (`tag`: the fraction, or what
    chose the subset, e.g. 'limit 10')."""
    index = torch.from_numpy(indices)
    images = (split.images[index] if isinstance(split.images, torch.Tensor)
              else [split.images[i] for i in indices.tolist()])
    digest = subset_fingerprint(split.fingerprint, tag, indices)
    name = f"{tag:g}" if isinstance(tag, float) else tag
    return DecodedSplit(f"{split.name}[{name}]", images, split.labels[index], digest)
