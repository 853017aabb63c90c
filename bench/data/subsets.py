"""Training subsets for sample-efficiency studies (`bench run --data-fraction 0.1,0.25,0.5,1.0`).

Class-balanced and nested: each class's examples are put in one seeded random order, and a fraction f keeps
the first ceil(f * n_class) of them (at least one), so the 10 % subset lies inside the 25 % one, and so on;
class proportions stay those of the full split. The order depends only on the seed and the labels, so the same
seed gives the same subsets on every machine. Val and test are never subsampled. The kept indices are stored
beside each run (subset.json) for anyone to reuse.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bench.data.tensor_store import DecodedSplit

SUBSET_FILE = "subset.json"


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


def take(split: DecodedSplit, indices: np.ndarray, fraction: float) -> DecodedSplit:
    """The subset as a split of its own, with a fingerprint that names the subset."""
    import hashlib

    index = torch.from_numpy(indices)
    images = (split.images[index] if isinstance(split.images, torch.Tensor)
              else [split.images[i] for i in indices.tolist()])
    digest = hashlib.sha256(f"{split.fingerprint}:{fraction}:{indices.tobytes().hex()}".encode()).hexdigest()[:16]
    return DecodedSplit(f"{split.name}[{fraction:g}]", images, split.labels[index], digest)
