"""Where runs execute: the device (checked before anything runs), CPU threads, and the device facts a record keeps
(its name and peak memory)."""

from __future__ import annotations

import os
import platform
import resource
from typing import Any

import torch

from bench.errors import BenchError


def default_device(requested: str | None = None) -> torch.device:
    """--device, checked before anything runs; default: CUDA when present, else the CPU."""
    if not requested:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise BenchError(f"--device '{requested}' is not a device name ({exc}).", field="--device",
                         hint="Use cpu, cuda or cuda:N.") from exc
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise BenchError(f"--device {requested} is not available: this machine shows {count} CUDA device(s).",
                             field="--device", hint="Use cpu, or cuda:N with N below the count (CUDA_VISIBLE_DEVICES "
                                                    "decides which GPUs are visible).")
    return device


def configure_threads() -> None:
    """Use the machine's cores for CPU runs unless the user set OMP_NUM_THREADS."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {"peak_memory_bytes": torch.cuda.max_memory_allocated(device), "peak_memory_kind": "cuda_allocated"}
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_memory_bytes": rss_kib * 1024, "peak_memory_kind": "process_max_rss"}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def default_precision(requested: str | None, device_type: str) -> str:
    """--precision when given, else bf16 autocast on CUDA and fp32 on the CPU."""
    return requested or ("bf16" if device_type == "cuda" else "fp32")


def task_precision(task_value: str, run_value: str, device_type: str) -> str:
    """The precision a run trains in: the task's protocol.precision when it fixes one (the paper profile: fp32, or
    fp16 for BART as apex O1 ran it), else the run options' (bf16 autocast on CUDA, fp32 on CPU). Reduced
    precision exists on CUDA only, so on the CPU every value is fp32."""
    chosen = run_value if task_value == "auto" else task_value
    return chosen if device_type == "cuda" else "fp32"


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast type of a precision name; None: no autocast (fp32)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def autocast(device: torch.device, precision: str) -> Any:
    """torch.autocast for the precision (disabled for fp32)."""
    dtype = autocast_dtype(precision)
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)
