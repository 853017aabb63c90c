"""The dry run's done / to-run counts and time estimate against a store with some finished runs, and the `[k/N]` and
ETA of a running command's log lines (bench.estimate, bench.progress)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from bench.cli import main
from bench.estimate import Calibration, Sample
from bench.progress import Progress, step, tracking


def status_row(out: str, method: str) -> list[str]:
    """The cells of a method's row in the dry run's 'Runs in ...' table: runs, done, to run, estimate, basis."""
    table = out[out.index("\nRuns in "):]
    line = next(line for line in table.splitlines() if line.startswith("tiny/colors") and f" {method} " in line)
    return re.split(r"\s{2,}", line.strip())[2:]


def test_dry_run_counts_the_runs_already_recorded(tiny_tasks_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--task", "tiny/colors", "--tasks-dir", str(tiny_tasks_dir), "--results", str(tmp_path / "runs")]
    assert main(["run", "--method", "linear", "--dry-run", *common]) == 0
    out = capsys.readouterr().out
    runs, done, to_run, estimate, basis = status_row(out, "linear")
    assert (runs, done, to_run) == ("6", "0", "6")  # 4 grid points + 2 final seeds
    assert "FLOPs at an assumed" in basis and "no stored tiny/colors runs on this device" in basis
    assert "final point not chosen yet (grid 0/4 recorded)" in basis

    assert main(["run", "--method", "linear", "--stage", "grid", *common]) == 0
    assert main(["run", "--method", "linear", "--stage", "final", "--seeds", "42", *common]) == 0
    capsys.readouterr()
    assert main(["run", "--method", "linear,full_ft", "--dry-run", *common]) == 0
    out = capsys.readouterr().out
    runs, done, to_run, estimate, basis = status_row(out, "linear")
    # the grid is complete, so the selected point is known and the final run of seed 42 is found; seed 44 is not
    assert (runs, done, to_run) == ("6", "5", "1") and "not chosen" not in basis
    assert basis.startswith("5 stored tiny/colors linear run(s) on this device") and estimate.endswith(" s")
    runs, done, to_run, estimate, basis = status_row(out, "full_ft")
    assert (runs, done, to_run) == ("2", "0", "2")
    assert basis.startswith("5 stored tiny/colors run(s) of other methods on this device, unscaled")
    assert "8 runs: 5 done, 3 to run; estimated" in out and "(stored runs of this device)" in out

    assert main(["run", "--method", "linear", "--stage", "final", "--seeds", "42", "--dry-run", *common]) == 0
    assert status_row(capsys.readouterr().out, "linear") == ["1", "1", "0", "-"]  # nothing to estimate


def test_set_points_and_smoke_runs_are_counted_apart(tiny_tasks_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A point fixed by --set is a run of its own (how it was chosen is part of the key), and so is a smoke run."""
    common = ["--task", "tiny/colors", "--method", "linear", "--tasks-dir", str(tiny_tasks_dir), "--results",
              str(tmp_path / "runs"), "--stage", "final", "--set", "base_lr=0.1", "--set", "weight_decay=0.0",
              "--seeds", "42"]
    assert main(["run", *common]) == 0
    capsys.readouterr()
    assert main(["run", *common, "--dry-run"]) == 0
    assert status_row(capsys.readouterr().out, "linear")[:3] == ["1", "1", "0"]
    assert main(["run", *common, "--seeds", "42,44", "--dry-run"]) == 0
    assert status_row(capsys.readouterr().out, "linear")[:3] == ["2", "1", "1"]
    assert main(["run", *common, "--limit", "8", "--dry-run"]) == 0
    runs, done, to_run, _, basis = status_row(capsys.readouterr().out, "linear (smoke)")
    assert (runs, done, to_run) == ("1", "0", "1") and "FLOPs" in basis  # protocol runs never time a smoke run


def test_run_log_lines_carry_k_of_n_and_an_eta(tiny_tasks_dir: Path, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    common = ["--task", "tiny/colors", "--method", "linear", "--tasks-dir", str(tiny_tasks_dir), "--results",
              str(tmp_path / "runs"), "--stage", "final", "--set", "base_lr=0.1", "--set", "weight_decay=0.0"]
    with caplog.at_level(logging.INFO):
        assert main(["run", *common, "--seeds", "42"]) == 0
        assert main(["run", *common, "--seeds", "42,44"]) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "bench.protocol"]
    assert lines[0].startswith("[1/1] tiny/colors linear final seed=42") and lines[0].endswith("nothing left to train")
    # the second command finds seed 42 recorded (counted, logged at DEBUG) and trains seed 44
    assert lines[1].startswith("[2/2] tiny/colors linear final seed=44"), lines
    plans = [r.getMessage() for r in caplog.records if r.getMessage().startswith("plan: ")]
    assert plans[0].startswith("plan: 1 runs: 0 done, 1 to run; estimated") and "assumed FLOP/s" in plans[0]
    assert plans[1].startswith("plan: 2 runs: 1 done, 1 to run; estimated") and "stored runs of this device" in plans[1]


def test_progress_counts_each_run_once_and_estimates_what_is_left() -> None:
    counter = Progress(total=5, done_at_start=2, seconds_per_run=10.0)
    assert step({"key": "a", "cost": {"wall_s": 1.0}}, False) == ("", "")  # nothing tracked: plain lines
    with tracking(counter):
        prefix, eta = step({"key": "a", "cost": {"wall_s": 1.0}}, False)
        assert prefix == "[1/5] " and eta.startswith("; ETA 30 s for 3 runs left (calibrated estimate")
        prefix, eta = step({"key": "b", "cost": {"wall_s": 4.0}}, True)
        assert prefix == "[2/5] " and eta.startswith("; ETA 8 s for 2 runs left (mean of 1 trained here")
        assert step({"key": "b", "cost": {"wall_s": 4.0}}, False)[0] == "[2/5] "  # a protocol revisited
        step({"key": "c", "cost": {"wall_s": 1.0}}, False)
        prefix, eta = step({"key": "d", "cost": {"wall_s": 6.0}}, True)
        assert prefix == "[4/5] " and eta == "; ETA 5 s for 1 run left (mean of 2 trained here)"
    shared = Progress(total=4, sharing=2)
    assert shared.count({"key": "x"}, False)[1] == "; 3 runs left, ETA after the first trained run"
    assert shared.count({"key": "y", "cost": {"wall_s": 10.0}}, True)[1].startswith("; ETA 10 s for 2 runs left")


def test_calibration_scales_other_methods_by_their_relative_cost() -> None:
    samples = [Sample("a", "fast", "fp32", 10.0, 100.0, "vision"), Sample("a", "slow", "fp32", 30.0, 100.0, "vision"),
               Sample("b", "fast", "fp32", 20.0, 100.0, "vision")]
    rate = Calibration(samples).rate("b", "slow", "fp32", "vision")
    assert rate is not None
    per_example_epoch, _, basis = rate
    assert per_example_epoch == pytest.approx(0.2 * 3)  # b's only method, scaled by slow / fast on task a
    assert "× 3 (slow's cost relative to other methods on 1 other vision task(s))" in basis
    assert Calibration(samples).rate("c", "slow", "fp32", "vision") is None
    assert Calibration(samples).rate("b", "fast", "bf16", "vision") is None  # another precision is not comparable


def test_a_task_without_stored_runs_is_timed_by_the_flop_rate_measured_on_other_tasks() -> None:
    samples = [Sample("a", "lora", "fp32", 6.0, 100.0, "vision", 1e6),
               Sample("a", "linear", "fp32", 1.0, 100.0, "vision", 1e6),
               Sample("e2e", "lora", "fp32", 50.0, 100.0, "language", None)]
    calibration = Calibration(samples)
    measured = calibration.flop_time("lora", "fp32", "b")
    assert measured is not None
    per_flop, basis = measured
    assert per_flop == pytest.approx(6.0 / (100 * 3 * 1e6))  # lora's own runs; language runs have no FLOP count
    assert basis.startswith("FLOPs at 0.05 GFLOP/s, measured on 1 stored lora runs of 1 other task(s)")
    every = calibration.flop_time("bitfit", "fp32", "b")
    assert every is not None and "2 stored runs (every method)" in every[1]
    assert calibration.flop_time("lora", "fp32", "a") is None  # only the task itself has them: rule 1 or 2 applies


def test_the_backbone_cost_is_computed_once_per_backbone_and_a_damaged_cache_is_rebuilt(
        isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dry run costs each backbone from $BENCH_CACHE/backbone-costs.json after the first time, without timm."""
    import timm

    from bench import registry
    from bench.train.vision import VisionModality

    task = registry.load_task_by_name("mini/counting")
    first = VisionModality().backbone_cost(task)
    assert first is not None and first[0] > 0 and first[1] > 2 * first[0]
    built = []
    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: built.append(a) or real(*a, **k))
    assert VisionModality().backbone_cost(task) == first and built == []  # read back, nothing built
    (isolated_cache / "backbone-costs.json").write_text("{not json")
    assert VisionModality().backbone_cost(task) == first and len(built) == 1  # rebuilt and rewritten
    assert VisionModality().backbone_cost(task) == first and len(built) == 1
