"""Launchers: several local worker processes on one store record every run exactly once; --shard i/n splits a
plan into disjoint parts whose union is the whole plan."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.cli import main

METHODS = "linear,full_ft,bitfit"


def records(root: Path) -> set[str]:
    return {str(p.parent.relative_to(root)) for p in root.rglob("run.json")}


def run(tasks_dir: Path, results: Path, *extra: str) -> int:
    return main(["run", "--task", "tiny", "--method", METHODS, "--tasks-dir", str(tasks_dir),
                 "--results", str(results), *extra])


@pytest.fixture()
def reference_plan(tiny_tasks_dir: Path, tmp_path: Path) -> set[str]:
    """The run folders of one plain process: the keys are content hashes, so any launcher must give the same."""
    assert run(tiny_tasks_dir, tmp_path / "single") == 0
    return records(tmp_path / "single")


@pytest.mark.slow
def test_concurrent_workers_record_every_run_exactly_once(tiny_tasks_dir: Path, tmp_path: Path,
                                                          reference_plan: set[str],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "workers"
    assert run(tiny_tasks_dir, results, "--workers", "3", "--poll", "0.2") == 0
    captured = capsys.readouterr()
    assert records(results) == reference_plan and len(reference_plan) > 10
    leftovers = [p.name for p in results.rglob("*") if p.is_file()
                 and p.name not in ("run.json", "predictions.npz", "trained.pt", "trained.pt.sha256")]
    assert leftovers == []  # no lock, checkpoint or temp file
    ran = re.findall(r"\[worker (\d)\] \[\d+/\d+\] tiny/colors \S+ (?:grid|final) seed=", captured.err)
    assert len(ran) == len(reference_plan)  # each run executed once, by some worker
    assert len(set(ran)) >= 2, "only one worker did any work"
    assert captured.out.count("tiny/colors") == 3  # the parent's summary, one line per method


@pytest.mark.slow
def test_shards_split_the_plan_into_disjoint_parts(tiny_tasks_dir: Path, tmp_path: Path,
                                                   reference_plan: set[str]) -> None:
    results = tmp_path / "shards"
    parts = []
    for index in range(2):
        before = records(results) if results.exists() else set()
        assert run(tiny_tasks_dir, results, "--stage", "grid", "--shard", f"{index}/2") == 0
        parts.append(records(results) - before)
    assert parts[0] and parts[1] and not parts[0] & parts[1]
    assert parts[0] | parts[1] == {r for r in reference_plan if "/grid/" in r}
    for index in range(2):
        assert run(tiny_tasks_dir, results, "--stage", "final", "--shard", f"{index}/2") == 0
    assert records(results) == reference_plan


def test_launcher_options_are_checked(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    assert run(tiny_tasks_dir, tmp_path, "--shard", "2/2") == 2
    assert run(tiny_tasks_dir, tmp_path, "--shard", "one") == 2
    assert run(tiny_tasks_dir, tmp_path, "--workers", "0") == 2
    assert not tmp_path.joinpath("tiny").exists()


@pytest.mark.slow
def test_slurm_path_through_submitits_local_executor(tiny_tasks_dir: Path, tmp_path: Path,
                                                     reference_plan: set[str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The Slurm launcher's code (job array of Checkpointable workers) run by submitit's local executor."""
    results, logs = tmp_path / "array", tmp_path / "slurm"
    assert run(tiny_tasks_dir, results, "--launcher", "submitit-local", "--workers", "2", "--poll", "0.2",
               "--slurm-folder", str(logs)) == 0
    assert records(results) == reference_plan
    assert len(list(logs.glob("*_log.out"))) == 2  # one log per array task
    for task_log in logs.glob("*_log.err"):
        text = task_log.read_text()
        assert "run store:" in text and "Job completed successfully" in text, text[-2000:]
    assert capsys.readouterr().out.count("tiny/colors") == 3


def test_slurm_memory_comes_from_the_plan() -> None:
    """dSprites/loc's final run maps train800val200 (1,000 images) and the 73,728-image test split at 224x224x3
    bytes: 11,248,656,384 bytes = 10.5 GiB -> 11, plus the 8 GiB base; a language task needs the base only."""
    from bench import registry
    from bench.ops.slurm import BASE_MEMORY_GIB, plan_memory_gib

    dsprites = registry.load_task_by_name("vtab/dsprites_loc")
    assert plan_memory_gib([dsprites]) == BASE_MEMORY_GIB + 11 == 19
    cifar = registry.load_task_by_name("vtab/cifar100")  # 11,000 images: 1,655,808,000 bytes -> 2 GiB
    assert plan_memory_gib([cifar, dsprites]) == 19 and plan_memory_gib([cifar]) == BASE_MEMORY_GIB + 2
    assert plan_memory_gib([registry.load_task_by_name("nlg/e2e")]) == BASE_MEMORY_GIB
