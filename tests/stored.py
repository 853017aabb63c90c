"""Writing synthetic run records the way the store does (identity, key, result-file and record checksums), for
tests that build a run store without training anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.store import RunStore, run_key


def store_run(root: Path, record: dict[str, Any], files: dict[str, bytes] | None = None,
              identity: dict[str, Any] | None = None) -> Path:
    """Store `record` (it needs `run` with task, method, stage, seed; `status`, `metrics`) under its key.

    The identity is the run section plus `identity` (what else makes the configuration: give the same extra to
    every seed of one configuration); `files` are written into the run folder before the record."""
    run = record["run"]
    full_identity = {"task": run["task"], "method": run["method"], "stage": run["stage"], "seed": run["seed"],
                     "hparams": run.get("hparams", {}), "optim": run.get("optim", {}), **(identity or {})}
    key = run_key(full_identity)
    store = RunStore(root)
    run_dir = store.run_dir(run["task"], run["method"], run["stage"], key)
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, data in (files or {}).items():
        (run_dir / name).write_bytes(data)
    store.write(run_dir, {"created_at": "2026-11-25T00:00:00+00:00", **record, "key": key,
                          "identity": full_identity})
    return run_dir
