"""The run record shared by every modality: what ran, its scores, parameters, cost and provenance."""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.records import RECORD_SCHEMA
from bench.train.config import RunConfig, RunOptions
from bench.train.device import device_name, peak_memory


def build_record(
    config: RunConfig,
    key: str,
    status: str,
    identity: dict[str, Any],
    metrics: dict[str, Any],
    history: list[dict[str, Any]],
    model: Any,
    data: dict[str, Any],
    cost: dict[str, Any],
    options: RunOptions,
    resumed_from: int | None,
) -> dict[str, Any]:
    backbone_params = model.backbone_params
    head_params = model.head_parameter_count
    device = options.torch_device()
    return {
        "schema_version": RECORD_SCHEMA,
        "key": key,
        "status": status,
        "run": {
            "task": config.task.name,
            "method": config.method,
            "stage": config.stage,
            "seed": config.seed,
            "hparams": config.hparams,
            "optim": config.optim,
            "train_splits": list(config.train_splits),
            "eval_split": config.eval_split,
            "precision": config.precision,
            **({"chosen_by": config.chosen_by} if config.chosen_by is not None else {}),
            **({"grid_prune": config.grid_prune} if config.grid_prune else {}),
            **({"data_fraction": config.data_fraction} if config.data_fraction else {}),
            **({"train_examples": config.train_examples} if config.train_examples else {}),
            # A quick check (--limit / --epochs), never a benchmark result: leaderboards and exports leave it out.
            **({"smoke": config.smoke.identity()} if config.smoke else {}),
            **({"tf32": True} if config.tf32 else {}),
        },
        "metrics": metrics,
        "history": history,
        "params": {
            "backbone": backbone_params,
            "trainable": model.method_trainable,
            "stored": model.method_stored,
            "head": head_params,
            "trainable_percent": 100.0 * model.method_trainable / backbone_params,
            "trainable_with_head_percent": 100.0 * (model.method_trainable + head_params) / backbone_params,
        },
        "data": {**data, "fingerprints": identity["data_fingerprints"]},
        "cost": {
            **cost,
            **peak_memory(device),
            "device": device_name(device),
            "precision": options.precision,
            "compile": options.compile,  # the backend that ran (None: eager), not merely the one asked for
            "tf32": config.tf32,  # False: true fp32 matmuls and convolutions (CUDA); always False on the CPU
            "resumed_from_epoch": resumed_from,
        },
        "identity": identity,
        "task_spec": config.task.model_dump(mode="json"),
        "env": environment(),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def environment() -> dict[str, Any]:
    """Library versions, platform and git commit, recorded in every run."""
    import numpy as np
    import torch

    import bench

    versions = {
        "python": sys.version.split()[0],
        "bench": bench.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    for name in ("timm", "torchvision", "transformers"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "?")
    return {"versions": versions, "platform": platform.platform(), "git_commit": git_commit(), "exactness": exactness()}


def exactness() -> dict[str, Any]:
    """What decides whether two machines give bit-identical numbers: the CPU (model and vector instruction sets),
    torch's build (BLAS / LAPACK / oneDNN), the thread count, and the deterministic-algorithm settings."""
    import torch

    flags: list[str] = []
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine()):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                flags = sorted(
                    present
                    & {
                        "sse4_2",
                        "avx",
                        "avx2",
                        "fma",
                        "f16c",
                        "avx512f",
                        "avx512bw",
                        "avx512vl",
                        "avx512_bf16",
                        "avx512_vnni",
                        "amx_bf16",
                        "amx_tile",
                    }
                )
                break
    except OSError:
        pass
    build: dict[str, str] = {}
    for line in torch.__config__.show().splitlines():
        line = line.strip().removeprefix("- ")
        if line.startswith("Build settings:"):
            settings = dict(part.strip().partition("=")[::2] for part in line.split(":", 1)[1].split(", "))
            build |= {k: settings[k] for k in ("BLAS_INFO", "LAPACK_INFO", "COMMIT_SHA") if k in settings}
        elif line.startswith(("Intel(R) MKL-DNN", "oneDNN")):
            build["onednn"] = line
        elif line.startswith(("CPU capability usage", "OpenMP")):
            build[line.split()[0].lower()] = line
    return {
        "cpu": model,
        "cpu_flags": flags,
        "torch_build": build,
        "threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
    }


def git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")
