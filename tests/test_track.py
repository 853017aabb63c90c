"""`bench run --track mlflow|wandb` (bench.track): what MLflow's local file store holds after a run (read back with
mlflow's client), that tracking changes no key and no stored record, that a missing package is one paragraph and
exit 2 before anything runs, and that a failing tracker costs a warning, never the run."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bench import track
from bench.cli import main
from bench.store import RunStore


def run_args(tasks: Path, results: Path, *extra: str) -> list[str]:
    """One final run of the tiny task (the point fixed, one seed): 3 epochs, about a second."""
    return ["run", "--task", "tiny/colors", "--tasks-dir", str(tasks), "--method", "linear", "--stage", "final",
            "--set", "base_lr=0.1", "--set", "weight_decay=0.0", "--seeds", "42", "--results", str(results), *extra]


def only_record(results: Path) -> dict[str, Any]:
    (record,) = list(RunStore(results).records())
    return record


def test_mlflow_holds_history_params_metrics_and_tags_of_each_run(
        tiny_tasks_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow", reason="the MLflow path needs the track-mlflow extra (pip install mlflow-skinny)")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(track.ENV, raising=False)
    results = tmp_path / "runs"
    assert main(run_args(tiny_tasks_dir, results, "--track", "mlflow")) == 0
    record = only_record(results)
    assert track.ENV not in __import__("os").environ  # only for the command

    client = MlflowClient(tracking_uri=(results / "_mlflow").resolve().as_uri())
    experiment = client.get_experiment_by_name("peft-bench")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert (params["task"], params["method"], params["key"], params["stage"]) == (
        "tiny/colors", "linear", record["key"], "final")
    assert params["optim.base_lr"] == "0.1" and params["seed"] == "42"
    assert tags["bench.key"] == record["key"]
    assert tags["bench.method_code"] == record["identity"]["method_code"]
    assert tags["bench.runner_version"] == str(record["identity"]["runner_version"])
    losses = client.get_metric_history(run.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in sorted(losses, key=lambda m: m.step)] == [
        (entry["epoch"], entry["train_loss"]) for entry in record["history"]]
    assert metrics["test_top1"] == record["metrics"]["top1"]
    assert metrics["params_trainable"] == record["params"]["trainable"]
    assert run.info.status == "FINISHED"


def test_tracking_changes_no_key_and_no_stored_record(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="the MLflow path needs the track-mlflow extra (pip install mlflow-skinny)")
    from bench.ops.doctor import store_check

    tracked, plain = tmp_path / "tracked", tmp_path / "plain"
    assert main(run_args(tiny_tasks_dir, tracked, "--track", "mlflow")) == 0
    assert main(run_args(tiny_tasks_dir, plain)) == 0
    one, two = only_record(tracked), only_record(plain)
    assert one["key"] == two["key"] and one["identity"] == two["identity"]
    for section in ("run", "metrics", "history", "params", "data", "selection"):
        assert one[section] == two[section], section
    assert "mlflow" not in json.dumps(one)
    assert store_check(tracked).status == "ok"  # the tracker's folder is not a run of the store
    assert main(run_args(tiny_tasks_dir, tracked, "--track", "mlflow")) == 0  # recorded: nothing runs or logs again


def test_missing_tracker_package_is_one_paragraph_and_exit_2_before_anything_runs(
        tiny_tasks_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else found(name, *a))
    results = tmp_path / "runs"
    for kind in ("mlflow", "wandb"):
        if kind == "wandb" and found("wandb") is not None:
            continue  # installed here: its refusal cannot be shown (the logging test covers it)
        assert main(run_args(tiny_tasks_dir, results, "--track", kind)) == 2
        err = capsys.readouterr().err
        assert f"pip install 'peft-bench[track-{kind}]'" in " ".join(err.split()) and "Traceback" not in err
    assert not results.exists()


def test_a_failing_tracker_costs_a_warning_not_the_run(
        tiny_tasks_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(track, "require", lambda kind: None)

    def broken(record: dict[str, Any], root: Path) -> None:
        raise ConnectionError("tracking server unreachable")

    monkeypatch.setitem(track.LOGGERS, "mlflow", broken)
    results = tmp_path / "runs"
    with caplog.at_level(logging.WARNING, logger="bench.track"):
        assert main(run_args(tiny_tasks_dir, results, "--track", "mlflow")) == 0
    record = only_record(results)
    assert f"run {record['key']} was not logged (ConnectionError: tracking server unreachable)" in caplog.text


def test_wandb_offline_run_is_written_under_the_results_folder(
        tiny_tasks_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb", reason="wandb is not installed (extra track-wandb); its refusal is tested above")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    results = tmp_path / "runs"
    assert main(run_args(tiny_tasks_dir, results, "--track", "wandb")) == 0
    only_record(results)
    assert list((results / "_wandb").rglob("offline-run-*"))
