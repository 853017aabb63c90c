"""Where each local worker runs: which of the parent's GPUs it sees, which --device it uses, and how many CPU
threads it gets. Pure functions of the parent's environment, so the mapping is tested without GPUs.

A worker only ever sees GPUs its parent was given: entries of the parent's CUDA_VISIBLE_DEVICES (indices, or
GPU-/MIG- UUIDs), never raw machine indices that another job may own.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.errors import BenchError


@dataclass(frozen=True)
class Placement:
    """One worker's environment additions and the --device it runs with (None: the default rule)."""

    env: dict[str, str]
    device: str | None


def gpu_entries(visible: str | None, count: int) -> list[str]:
    """The parent's GPUs as CUDA_VISIBLE_DEVICES entries: its own list when set (at most the `count` CUDA
    could open, as CUDA stops at the first bad entry), else the indices 0..count-1."""
    if visible is None:
        return [str(index) for index in range(count)]
    entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
    return entries[:count]


def place_workers(count: int, gpus: list[str], device: str | None, cores: int, threads_set: bool) -> list[Placement]:
    """Worker i sees GPU i % len(gpus) (--device cuda or none), or every worker sees the one GPU of
    --device cuda:N and uses it as cuda:0; --device cpu leaves the GPUs alone. Each worker gets
    max(1, cores // count) CPU threads (OMP_NUM_THREADS) unless the user set OMP_NUM_THREADS."""
    threads = {} if threads_set else {"OMP_NUM_THREADS": str(max(1, cores // count))}
    kind, _, index = (device or "").partition(":")
    if kind not in ("", "cuda") or not gpus:
        return [Placement(dict(threads), device) for _ in range(count)]
    if index:
        number = int(index) if index.isdigit() else -1
        if not 0 <= number < len(gpus):
            raise BenchError(f"--device {device} is not among the {len(gpus)} GPU(s) this process was given "
                             f"({', '.join(gpus)}).", field="--device",
                             hint="Use cuda:N with N below that count, or cuda to spread the workers over them.")
        return [Placement({**threads, "CUDA_VISIBLE_DEVICES": gpus[number]}, "cuda:0") for _ in range(count)]
    return [Placement({**threads, "CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]}, device) for i in range(count)]


def auto_workers(gpus: list[str], device: str | None) -> int:
    """--workers auto: one per GPU this process was given; one when --device names a single device or the CPU."""
    kind, _, index = (device or "").partition(":")
    return max(1, len(gpus)) if kind in ("", "cuda") and not index else 1
