"""Where runs execute: the device (checked before anything runs, and never a silent fall back to the CPU), CPU
threads, TF32, and the device facts a record keeps (its name and peak memory)."""

from __future__ import annotations

import glob
import logging
import os
import platform
import resource
from collections.abc import Mapping
from typing import Any

import torch

from bench.errors import BenchError

log = logging.getLogger("bench")
# CUDA_VISIBLE_DEVICES values that hide every GPU on purpose.
NO_GPUS = ("", "-1", "none", "NoDevFiles")


def default_device(requested: str | None = None) -> torch.device:
    """--device, checked before anything runs; default: CUDA when present, else the CPU, unless the environment
    says this process was meant to have a GPU (then CUDA being unusable is an error, not a slow CPU run)."""
    if not requested:
        if torch.cuda.is_available():
            return torch.device("cuda")
        evidence = gpu_expected(os.environ, nvidia_device_nodes())
        if evidence is not None:
            raise BenchError(f"this process was given a GPU ({evidence}), but {cuda_unusable()}; refusing to "
                             "train on the CPU instead.", field="--device", hint=CUDA_HINT)
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise BenchError(f"--device '{requested}' is not a device name ({exc}).", field="--device",
                         hint="Use cpu, cuda or cuda:N.") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BenchError(f"--device {requested} asks for CUDA, but {cuda_unusable()}.", field="--device",
                             hint=CUDA_HINT)
        count = torch.cuda.device_count()
        if (device.index or 0) >= count:
            raise BenchError(f"--device {requested} is not available: this machine shows {count} CUDA device(s).",
                             field="--device", hint="Use cpu, or cuda:N with N below the count (CUDA_VISIBLE_DEVICES "
                                                    "decides which GPUs are visible).")
    return device


CUDA_HINT = ("Install a torch wheel built for a CUDA version the driver supports (`nvidia-smi` shows the driver's), "
             "check CUDA_VISIBLE_DEVICES, or pass --device cpu to train on the CPU on purpose.")


def gpu_expected(environ: Mapping[str, str], device_nodes: list[str]) -> str | None:
    """What says this process was meant to have a GPU: a CUDA_VISIBLE_DEVICES list, GPUs Slurm allocated, or an
    NVIDIA device node (/dev/nvidia0: a GPU passed into this machine or container). None: nothing does."""
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() not in NO_GPUS:
        return f"CUDA_VISIBLE_DEVICES={visible}"
    for name in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
        if environ.get(name, "").strip():
            return f"{name}={environ[name]}"
    if environ.get("SLURM_GPUS_ON_NODE", "0").strip() not in ("", "0"):
        return f"SLURM_GPUS_ON_NODE={environ['SLURM_GPUS_ON_NODE']}"
    return f"{sorted(device_nodes)[0]} exists" if device_nodes else None


def nvidia_device_nodes() -> list[str]:
    """/dev/nvidia0, /dev/nvidia1, ...: present when GPUs were passed into this machine or container."""
    return glob.glob("/dev/nvidia[0-9]*")


def cuda_unusable() -> str:
    """Why torch cannot use CUDA, as torch says it (no driver, a driver too old for this wheel, a CPU-only build)."""
    build = f"torch {torch.__version__} is built for CUDA {torch.version.cuda}"
    if torch.version.cuda is None:
        return f"torch.cuda.is_available() is False: torch {torch.__version__} is a CPU-only build"
    try:
        torch.cuda.init()
        reason = "torch sees no CUDA device"
    except Exception as exc:  # torch's own words: no driver, driver too old, no GPU visible
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"torch.cuda.is_available() is False ({reason}; {build})"


def announce_cpu(requested: str | None, device: torch.device) -> None:
    """Say once per command that the default found no GPU, so a CPU run is never mistaken for a GPU run."""
    if not requested and device.type == "cpu":
        log.warning("no CUDA device: training on the CPU in fp32 (pass --device cpu to say so on purpose)")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a Slurm or taskset share), else the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def configure_threads() -> None:
    """Use this process's cores unless OMP_NUM_THREADS says otherwise (the launcher sets it to split the cores
    between workers)."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(available_cores())


def set_tf32(enabled: bool) -> None:
    """TF32 for fp32 matmuls and convolutions on CUDA (--tf32). Off: true fp32, whatever torch's defaults are
    (cuDNN's is on). Uses one of torch's two APIs throughout: mixing them is an error in torch >= 2.9."""
    mode = "tf32" if enabled else "ieee"
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(cudnn, "conv") and hasattr(cudnn.conv, "fp32_precision"):  # torch >= 2.9
        matmul.fp32_precision = mode
        cudnn.conv.fp32_precision = mode
    else:
        matmul.allow_tf32 = enabled
        cudnn.allow_tf32 = enabled


def effective_tf32(requested: bool, device_type: str) -> bool:
    """TF32 exists on CUDA only: on the CPU every run is true fp32, and its identity says so."""
    return requested and device_type == "cuda"


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
