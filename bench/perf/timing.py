"""What every `bench perf` measurement shares: synchronised timing, a clean device before each method, and the peak
memory of one method's steps. Measures nothing by itself."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(call: Callable[[], Any], device: torch.device) -> float:
    """Seconds of one call, with the device's queued work finished before and after."""
    sync(device)
    start = time.perf_counter()
    call()
    sync(device)
    return time.perf_counter() - start


def release(device: torch.device) -> None:
    """Free what the last measured method left (its model must be out of scope): collect, return cached blocks to
    the driver and restart the peak statistics, so the next method's peak is its own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def parameter_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


class PeakMemory:
    """The highest allocated device memory during the calls it wraps, less `resident` bytes that belong to something
    else kept on the device meanwhile (the reference model of `bench perf methods`). None on the CPU."""

    def __init__(self, device: torch.device, resident: int = 0) -> None:
        self.device, self.resident = device, resident
        self.bytes: int | None = None

    def __call__(self, call: Callable[[], Any]) -> Any:
        if self.device.type != "cuda":
            return call()
        torch.cuda.reset_peak_memory_stats(self.device)
        result = call()
        peak = torch.cuda.max_memory_allocated(self.device) - self.resident
        self.bytes = peak if self.bytes is None else max(self.bytes, peak)
        return result
