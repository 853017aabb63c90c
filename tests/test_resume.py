"""Interrupted work: kill -9 in the middle of a run, then the same command resumes and yields exactly the
record an uninterrupted run gives; a crash while writing never leaves a corrupt or partial record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import registry
from bench.cli import main
from bench.leases import this_host
from bench.store import CHECKPOINT, RECORD, RunStore

ROOT = Path(__file__).resolve().parents[1]


def long_task(tasks_dir: Path) -> str:
    text = (tasks_dir / "tiny" / "colors.yaml").read_text().replace("epochs: 3", "epochs: 150")
    (tasks_dir / "tiny" / "long.yaml").write_text(text)
    return "tiny/long"


def bench_command(tasks_dir: Path, results: Path, task: str) -> list[str]:
    return [sys.executable, "-m", "bench.cli", "run", "--task", task, "--method", "full_ft", "--stage", "final",
            "--seeds", "42", "--tasks-dir", str(tasks_dir), "--results", str(results), "--checkpoint-interval", "0"]


def kill_after_first_checkpoint(command: list[str], results: Path, timeout_s: float = 120) -> Path:
    """Start `command`, kill -9 it shortly after its first checkpoint, and return the unfinished run's folder."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout_s
    checkpoint = None
    while time.time() < deadline and checkpoint is None:
        found = list(results.rglob(CHECKPOINT)) if results.exists() else []
        checkpoint = found[0] if found else None
        time.sleep(0.02)
    assert checkpoint is not None, "the run never wrote a checkpoint"
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    run_dir = checkpoint.parent
    assert not (run_dir / RECORD).exists(), "killed too late: the run had already finished"
    return run_dir


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_uninterrupted_record(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    task = long_task(tiny_tasks_dir)
    results = tmp_path / "killed"
    run_dir = kill_after_first_checkpoint(bench_command(tiny_tasks_dir, results, task), results)
    assert (run_dir / "lock").exists()  # left behind by the dead process; must be taken over

    assert main(bench_command(tiny_tasks_dir, results, task)[3:]) == 0
    (resumed,) = list(RunStore(results).records())
    assert resumed["cost"]["resumed_from_epoch"] > 0
    assert not (run_dir / CHECKPOINT).exists() and not (run_dir / "lock").exists()
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []  # no temp files left

    clean = tmp_path / "clean"
    assert main(bench_command(tiny_tasks_dir, clean, task)[3:]) == 0
    (uninterrupted,) = list(RunStore(clean).records())
    assert resumed["key"] == uninterrupted["key"]
    assert resumed["history"] == uninterrupted["history"]
    assert resumed["metrics"] == uninterrupted["metrics"]


def language_command(results: Path) -> list[str]:
    return [sys.executable, "-m", "bench.cli", "run", "--task", "mini/e2e", "--method", "lora", "--stage", "final",
            "--seeds", "42", "--set", "base_lr=0.003", "--limit", "32", "--epochs", "60", "--results", str(results),
            "--checkpoint-interval", "0"]


@pytest.mark.faults  # two minutes on 2 cores: in the fault-injection tier (`make test-faults`, run by CI)
def test_kill_9_then_resume_a_language_run_gives_the_uninterrupted_record(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The same guarantee on the language modality: model, optimizer, schedule step and RNG state come back."""
    import bench.metrics

    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(bench.metrics, "java_available", lambda: False)  # METEOR's JVM is not what is tested
    results = tmp_path / "killed"
    kill_after_first_checkpoint(language_command(results), results, timeout_s=180)

    assert main(language_command(results)[3:]) == 0
    (resumed,) = list(RunStore(results).records())
    assert resumed["cost"]["resumed_from_epoch"] > 0
    clean = tmp_path / "clean"
    assert main(language_command(clean)[3:]) == 0
    (uninterrupted,) = list(RunStore(clean).records())
    assert resumed["key"] == uninterrupted["key"]
    assert resumed["history"] == uninterrupted["history"]
    assert resumed["metrics"] == uninterrupted["metrics"]


def test_crash_while_writing_the_record_leaves_no_record(tiny_tasks_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.train.config import RunOptions
    from bench.train.protocol import run_protocol

    task = registry.load_task_by_name("tiny/colors", (tiny_tasks_dir,))
    store = RunStore(tmp_path / "runs")
    real_replace = os.replace

    def failing_replace(src: str, dst: str) -> None:
        if str(dst).endswith(RECORD):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        run_protocol(task, registry.get_method("full_ft"), store, RunOptions(), stages=("final",), seeds=[42])
    assert list(store.root.rglob(RECORD)) == []
    monkeypatch.setattr(os, "replace", real_replace)
    result = run_protocol(task, registry.get_method("full_ft"), store, RunOptions(), stages=("final",), seeds=[42])
    assert len(result.final) == 1 and len(list(store.root.rglob(RECORD))) == 1


def test_a_live_lock_makes_the_run_wait_for_its_owner(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    from bench.train.config import RunOptions
    from bench.train.loop import key_of
    from bench.train.protocol import make_config, method_settings, run_protocol

    task = registry.load_task_by_name("tiny/colors", (tiny_tasks_dir,))
    store = RunStore(tmp_path / "runs")
    method = registry.get_method("full_ft")
    settings = method_settings(task, method)
    config = make_config(task, method, settings, {"base_lr": 0.01, "weight_decay": 0.0}, "final", 42,
                         chosen_by={"how": "spec", "set": {}})  # tiny full_ft: one grid point
    run_dir = store.run_dir(task.name, "full_ft", "final", key_of(config, RunOptions()))
    run_dir.mkdir(parents=True)
    lease = {"host": this_host(), "pid": os.getppid(), "token": "0123456789abcdef", "renewed": time.time(),
             "duration": 3600.0}
    (run_dir / "lock").write_text(json.dumps(lease))  # a live process (our parent) holds the run
    result = run_protocol(task, method, store, RunOptions(), stages=("final",), seeds=[42])
    assert result.final == [] and not (run_dir / RECORD).exists()
