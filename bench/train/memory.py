"""Device memory: recognising a CUDA out-of-memory error, the one fallback a run retries with, and whether a
split's pixels fit on the device.

The fallback never changes what a run computes in exact arithmetic (no training setting moves), so it never
changes a run's key; the record says it was used (`cost.oom_retries`, `cost.memory_fallback`).
"""

from __future__ import annotations

import gc
import logging
from typing import Any

import torch

log = logging.getLogger("bench.run")

# The fallback's evaluation batches: the task's eval batch size divided by this (at least 1).
EVAL_BATCH_DIVISOR = 4
# Splits stay on the device while their pixels take at most this share of the free device memory; the rest is
# left to the model, its activations and the optimizer.
DEVICE_SHARE = 0.5
FALLBACK = (
    f"evaluation in batches of 1/{EVAL_BATCH_DIVISOR} of the task's eval batch size, every image split kept in host "
    "memory and copied to the device batch by batch, the CUDA cache emptied first (language runs: only the "
    "emptied cache); the same results in exact arithmetic, so the run keeps its key"
)


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, or a RuntimeError that says 'out of memory' (cuDNN, cuBLAS, older torch)."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def first_line(exc: BaseException) -> str:
    """The error's first line (torch's OOM message goes on with allocator advice)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def release_memory() -> None:
    """Give back what a failed attempt held: Python references first, then the CUDA caching allocator's blocks."""
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def eval_batch_size(planned: int, fallback: bool) -> int:
    """The evaluation batch size of a run: the task's, or a fraction of it under the memory fallback."""
    return max(1, planned // EVAL_BATCH_DIVISOR) if fallback else planned


def on_device(sizes: list[int], free_bytes: int, share: float = DEVICE_SHARE) -> list[bool]:
    """Which splits (their pixel bytes, in order of need: training first) live on the device: each while the
    running total stays within `share` of the free memory; the others stay in host memory."""
    budget, placed = share * free_bytes, []
    for size in sizes:
        fits = size <= budget
        budget -= size if fits else 0
        placed.append(fits)
    return placed


def free_memory(device: torch.device) -> int | None:
    """Free bytes on a CUDA device (torch.cuda.mem_get_info); None elsewhere (the host has no such limit here)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)


def pixel_bytes(images: Any) -> int:
    """Bytes of a split's stacked pixels (0 for ragged images, which stay on the host anyway)."""
    return images.numel() * images.element_size() if isinstance(images, torch.Tensor) else 0


def resident_splits(splits: list[Any], device: torch.device, fallback: bool) -> list[bool]:
    """Which of a run's image splits (training first) keep their pixels on the device: every one on the CPU,
    none under the memory fallback, on CUDA those that fit (on_device); the others are logged."""
    if fallback:
        return [False] * len(splits)
    free = free_memory(device)
    if free is None:
        return [True] * len(splits)
    sizes = [pixel_bytes(split.images) for split in splits]
    placed = on_device(sizes, free)
    for split, size, kept in zip(splits, sizes, placed, strict=True):
        if not kept:
            log.info("split %s (%.2f GiB of pixels) stays in host memory: %.2f GiB free on %s", split.name,
                     size / 2**30, free / 2**30, device)
    return placed
