"""`bench doctor`: checks the environment and the run store, and says what to fix.

Each check gives ok / warn / FAIL with a detail and a fix. FAIL is for what makes results wrong or runs
impossible (a damaged store, no torch, no room for the cache); warn is for what only removes a feature (no Java:
METEOR is reported unavailable; no GPU: runs are slow). The exit code is 1 when any check fails, else 0.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.store import CHECKPOINT, RECORD, RunStore

FREE_DISK_WARN_GB = 50.0  # decoded VTAB-1k + FGVC caches take tens of GB
FREE_DISK_FAIL_GB = 2.0
OPTIONAL = {
    "transformers": "language tasks",
    "evaluate": "language metrics as evaluate modules",
    "sacrebleu": "BLEU / TER",
    "rouge_score": "ROUGE",
    "pycocoevalcap": "METEOR / CIDEr jars",
    "scipy": "significance tests",
    "matplotlib": "plots",
    "submitit": "--launcher slurm",
    "optuna": "--grid-prune",
    "peft": "peft: methods, bench perf peft",
    "mlflow": "--track mlflow",
}


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "warn" or "FAIL"
    detail: str
    fix: str = ""
    items: tuple[str, ...] = ()  # one line each (the damaged files of a store)


def python_check() -> Check:
    """The interpreter (pyproject requires 3.11+, so an older one never gets this far)."""
    return Check("python", "ok", f"{'.'.join(map(str, sys.version_info[:3]))} ({sys.executable})")


def torch_check() -> list[Check]:
    try:
        import torch
    except ImportError:
        return [Check("torch", "FAIL", "not installed", "Run `make install` (or pip install -e .).")]
    checks = [Check("torch", "ok", torch.__version__)]
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        bf16 = torch.cuda.is_bf16_supported()
        checks.append(
            Check(
                "cuda",
                "ok" if bf16 else "warn",
                f"{len(names)} device(s): {', '.join(names)}; bf16 {'supported' if bf16 else 'not supported'}",
                "" if bf16 else "Use --precision fp32 on this GPU.",
            )
        )
    else:
        checks.append(
            Check(
                "cuda",
                "warn",
                "no CUDA device: runs use the CPU (fine for the mini suites only)",
                "Run real tasks on a machine with a GPU (torch with CUDA).",
            )
        )
    return checks


def java_check() -> Check:
    from bench.metrics.java import coco_dir, java_available, java_missing_reason

    reason = java_missing_reason(java_available())
    if reason is None:
        return Check("java (METEOR)", "ok", f"{shutil.which('java')}; jars in {coco_dir()}")
    return Check(
        "java (METEOR)",
        "warn",
        "METEOR and the PTB-tokenised ROUGE-L / CIDEr of E2E, WebNLG and DART are reported as unavailable",
        reason,
    )


def packages_check() -> Check:
    missing = [f"{name} ({use})" for name, use in OPTIONAL.items() if importlib.util.find_spec(name) is None]
    if missing:
        return Check(
            "optional packages", "warn", "missing: " + ", ".join(missing), "pip install -e '.[all]' (make install does)"
        )
    return Check("optional packages", "ok", "all present")


def disk_check(cache: Path) -> Check:
    folder = cache
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free / 1e9
    detail = f"{free:.1f} GB free for the cache ({cache})"
    if free < FREE_DISK_FAIL_GB:
        return Check("disk", "FAIL", detail, "Free space or set BENCH_CACHE to a larger disk.")
    if free < FREE_DISK_WARN_GB:
        return Check(
            "disk",
            "warn",
            detail,
            f"The real suites' decoded images need up to {FREE_DISK_WARN_GB:.0f} GB; "
            "set BENCH_CACHE to a larger disk before running them.",
        )
    return Check("disk", "ok", detail)


def data_check(tasks_dirs: tuple[Path, ...]) -> Check:
    from bench import registry
    from bench.errors import BenchError
    from bench.train.modality import data_status

    files = registry.spec_files(tasks_dirs)
    states: dict[str, list[str]] = {}
    for name, spec_file in sorted(files.items()):
        if spec_file.is_suite:
            continue
        try:
            state = data_status(registry.load_task(spec_file.path, name)).state
        except BenchError as exc:
            return Check("data", "FAIL", f"task {name}: {exc}", "Fix the task file (see `bench validate`).")
        states.setdefault(state, []).append(name)
    detail = "; ".join(f"{len(names)} {state}" for state, names in sorted(states.items()))
    missing = sum(len(names) for state, names in states.items() if state not in ("ready", "on demand"))
    return Check(
        "data",
        "ok" if not missing else "warn",
        detail,
        "" if not missing else "`bench data status` lists what each task needs and how to get it.",
    )


def store_check(root: Path) -> Check:
    """Every record trustworthy (bench.records: in its own folder, its key, its checksum, its result files and
    predictions), no temp file of a killed writer; plus the runs' leases."""
    from bench.leases import leases

    if not root.is_dir():
        return Check("run store", "ok", f"{root}: empty")
    store = RunStore(root)
    records, problems, unfinished = 0, [], 0
    for folder in sorted({p.parent for p in root.rglob("*") if p.is_file()}):
        if (folder / RECORD).is_file():
            records += 1
            problems += store.check(folder)
        elif (folder / CHECKPOINT).is_file():
            unfinished += 1
    found = leases(root)
    stale = [lease for lease in found if lease.stale]
    detail = (
        f"{root}: {records} records, {unfinished} unfinished runs with a checkpoint (resumable), "
        f"{len(found) - len(stale)} runs leased by live processes"
    )
    if problems:
        return Check(
            "run store",
            "FAIL",
            f"{detail}; {len(problems)} record(s) that are never used:",
            "Move each listed run folder out of the store and run the same `bench run` command again: it "
            "recomputes exactly those runs.",
            tuple(problems),
        )
    if stale:
        return Check(
            "run store",
            "warn",
            f"{detail}; {len(stale)} lease(s) expired or of dead processes:",
            "Nothing to do: the next `bench run` takes them over (or `bench leases release --expired`).",
            tuple(f"{lease.path.parent}: {lease.describe()}" for lease in stale),
        )
    return Check("run store", "ok", detail, items=tuple(f"{lease.path.parent}: {lease.describe()}" for lease in found))


def run_checks(results: Path, cache: Path, tasks_dirs: tuple[Path, ...]) -> list[Check]:
    return [
        python_check(),
        *torch_check(),
        packages_check(),
        java_check(),
        disk_check(cache),
        data_check(tasks_dirs),
        store_check(results),
    ]
