"""Shape checks shared by the resampling tests: one canonical (seeds, items, k) layout keeps them short."""

from __future__ import annotations

import numpy as np

# Items x resamples handled per block: bounds the count / swap matrices at a few tens of MB for large test sets.
CHUNK_ELEMENTS = 1 << 22


def seeds_items_k(values: np.ndarray, *, statistics: bool, name: str) -> np.ndarray:
    """Per-item values as float64 (seeds, items, k).

    Per-item scores (statistics=False) come as (items,) or (seeds, items) and get k = 1; sufficient statistics
    (statistics=True) come as (items, k) or (seeds, items, k).
    """
    x = np.asarray(values, dtype=np.float64)
    one_seed = 2 if statistics else 1
    if x.ndim == one_seed:
        x = x[None]
    if x.ndim != one_seed + 1:
        layout = "(items, k) or (seeds, items, k)" if statistics else "(items,) or (seeds, items)"
        raise ValueError(f"{name} must have shape {layout}, got {x.shape}")
    if not statistics:
        x = x[..., None]
    if 0 in x.shape:
        raise ValueError(f"{name} is empty: shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def count_matrix(indices: np.ndarray, size: int) -> np.ndarray:
    """How often each of `size` indices occurs in each row of `indices`, as float64 (rows, size)."""
    rows = indices.shape[0]
    flat = (indices + (np.arange(rows) * size)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * size).reshape(rows, size).astype(np.float64)
