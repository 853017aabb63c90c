"""`bench run --track mlflow|wandb` (bench.track): what MLflow's local file store holds after a run (read back with
mlflow's client), that tracking changes no key and no stored record, that a missing package is one paragraph and
exit 2 before anything runs, and that a failing tracker costs a warning, never the run."""

from __future__ import annotations

import importlib.util
import json
import logging
import struct
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
                        lambda name, *a: None if name in track.TRACKERS else found(name, *a))
    results = tmp_path / "runs"
    for kind in ("mlflow", "wandb"):
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


def wandb_log_records(path: Path) -> list[Any]:
    """The protobuf records of an offline W&B run file (run-<id>.wandb): a 7-byte header, then LevelDB log blocks
    of 32 KiB whose entries (crc32, length, type; full / first / middle / last) carry one Record each. Read here
    because wandb 0.31 no longer ships a reader of its own."""
    from wandb.proto import wandb_internal_pb2

    raw, block, position, pending, records = path.read_bytes(), 32768, 7, b"", []
    assert raw[:4] == b":W&B"
    while position + 7 <= len(raw):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[position:position + 7])
        position += 7
        pending += raw[position:position + length]
        position += length
        if kind in (1, 4):  # full, last
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def items(entries: Any) -> dict[str, Any]:
    """A W&B record's key / value items as a dict (a key is either flat or nested)."""
    return {entry.key or "/".join(entry.nested_key): json.loads(entry.value_json) for entry in entries}


def test_wandb_offline_run_holds_history_config_summary_and_tags_of_the_run(
        tiny_tasks_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb", reason="wandb is not installed (extra track-wandb); its refusal is tested above")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    results = tmp_path / "runs"
    assert main(run_args(tiny_tasks_dir, results, "--track", "wandb")) == 0
    record = only_record(results)
    (path,) = (results / "_wandb").rglob("offline-run-*/run-*.wandb")
    records = wandb_log_records(path)
    kinds = [r.WhichOneof("record_type") for r in records]
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = items(run.config.update)
    assert (config["task"], config["method"], config["key"], config["optim.base_lr"]) == (
        "tiny/colors", "linear", record["key"], "0.1")
    assert f"key:{record['key']}" in run.tags and run.job_type == "final"
    history = [items(r.history.item) for r in records if r.WhichOneof("record_type") == "history"]
    assert [{k: v for k, v in row.items() if not k.startswith("_")} | {"epoch": row["_step"]} for row in history] \
        == record["history"]  # every epoch, every value (the last epoch's periodic evaluation included)
    summary: dict[str, Any] = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update(items(r.summary.update))
    assert summary["test_top1"] == record["metrics"]["top1"]
    assert summary["params_head"] == record["params"]["head"]
    assert kinds[-1] == "exit" and records[-1].exit.exit_code == 0


def test_a_wandb_mode_that_wandb_does_not_know_is_refused_before_anything_runs(
        tiny_tasks_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offlne")
    results = tmp_path / "runs"
    assert main(run_args(tiny_tasks_dir, results, "--track", "wandb")) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "WANDB_MODE is 'offlne'; W&B knows offline, online, disabled, shared" in err and "Traceback" not in err
    assert not results.exists()
