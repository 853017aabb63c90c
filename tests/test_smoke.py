"""Smoke runs (`bench run --limit N --epochs E`): quick checks on a few examples and epochs that complete, read at
most N examples of every split, train E epochs, and never share a key or a record with a protocol run."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import api, registry
from bench.cli import main
from bench.data.subsets import smoke_subset
from bench.errors import BenchError
from bench.request import RunRequest
from bench.store import RunStore
from bench.train.config import RunConfig, RunOptions, Smoke
from bench.train.loop import key_of
from bench.train.protocol import make_config, method_settings

EXAMPLE_RUNS = Path(__file__).resolve().parents[1] / "results" / "example-runs"
# What a run's identity holds without a variant option: a new entry here would change every existing key.
PROTOCOL_IDENTITY = {"runner_version", "task", "task_spec", "data_fingerprints", "weights", "method", "method_code",
                     "hparams", "optim", "stage", "seed", "train_splits", "eval_split", "precision"}


def config_of(task_name: str, method: str, point: dict[str, Any], stage: str = "grid",
              smoke: Smoke | None = None) -> RunConfig:
    task = registry.load_task_by_name(task_name)
    method_cls = registry.get_method(method)
    return make_config(task, method_cls, method_settings(task, method_cls), point, stage, 42, smoke=smoke)


def records(results: Path, stage: str | None = None) -> list[dict[str, Any]]:
    return sorted((r for r in RunStore(results).records() if stage is None or r["run"]["stage"] == stage),
                  key=lambda r: r["key"])


# ---------------------------------------------------------------- identity


def test_a_protocol_run_identity_has_no_smoke_entry_and_a_smoke_run_has_its_own_key() -> None:
    point = {"base_lr": 1.0, "weight_decay": 0.0}
    fingerprints = {"train": "a", "val": "b"}
    plain = config_of("mini/novel_shapes", "linear", point)
    assert plain.smoke is None and set(plain.identity(fingerprints)) == PROTOCOL_IDENTITY
    assert "smoke" not in plain.describe()

    limited = config_of("mini/novel_shapes", "linear", point, smoke=Smoke(limit=10))
    identity = limited.identity(fingerprints)
    assert identity.pop("smoke") == {"limit": 10, "epochs": None}
    assert identity == plain.identity(fingerprints)  # --limit alone changes nothing but the smoke entry

    short = config_of("mini/novel_shapes", "linear", point, smoke=Smoke(limit=10, epochs=1))
    assert short.identity(fingerprints)["smoke"] == {"limit": 10, "epochs": 1}
    # mini: 10 epochs with 2 of warm-up -> 1 epoch, floor(2 * 1 / 10) = 0 of warm-up; 5 epochs -> 1 of warm-up
    assert (short.optim["epochs"], short.optim["warmup_epochs"]) == (1, 0)
    assert plain.optim["epochs"] == 10 and plain.optim["warmup_epochs"] == 2
    five = config_of("mini/novel_shapes", "linear", point, smoke=Smoke(epochs=5))
    assert (five.optim["epochs"], five.optim["warmup_epochs"]) == (5, 1)
    assert "smoke (limit 10, 1 epoch)" in short.describe()
    from bench.records import run_key

    keys = {run_key(c.identity(fingerprints)) for c in (plain, limited, short, five)}
    assert len(keys) == 4


def test_the_example_runs_keep_their_keys() -> None:
    """The code still gives the stored example records' identities (so their keys), smoke mode or not."""
    paths = sorted(EXAMPLE_RUNS.glob("mini/novel_shapes/*/*/*/run.json"))[:12]
    if not paths:
        pytest.skip("no example runs in this checkout")
    for path in paths:
        record = json.loads(path.read_text())
        run = record["run"]
        task = registry.load_task_by_name(run["task"])
        method_cls = registry.get_method(run["method"])
        settings = method_settings(task, method_cls, (run.get("chosen_by") or {}).get("set"))
        point = {"base_lr": run["optim"]["base_lr"], "weight_decay": run["optim"]["weight_decay"], **run["hparams"]}
        config = make_config(task, method_cls, settings, point, run["stage"], run["seed"], run.get("grid_prune"),
                             run.get("data_fraction"), run.get("train_examples"), run["precision"],
                             run.get("chosen_by"))
        assert config.identity(record["identity"]["data_fingerprints"]) == record["identity"], path


def test_the_request_carries_the_smoke_settings_to_workers_as_json() -> None:
    request = RunRequest(task="mini/novel_shapes", methods=("linear",), limit=10, epochs=1)
    again = RunRequest.from_json(request.to_json())
    assert again == request and (again.limit, again.epochs) == (10, 1)
    assert api.smoke_of(again) == Smoke(10, 1)
    assert api.smoke_of(RunRequest.from_json(RunRequest(task="t", methods=("m",)).to_json())) is None


def test_the_smoke_subset_is_fixed_nested_and_takes_the_classes_in_turn() -> None:
    labels = np.repeat(np.arange(5), [30, 10, 10, 10, 40])  # sorted by class, as many split files are
    chosen = smoke_subset(len(labels), 5, labels)
    assert sorted(labels[chosen].tolist()) == [0, 1, 2, 3, 4]  # limit >= classes: every class
    assert np.array_equal(chosen, smoke_subset(len(labels), 5, labels))  # deterministic
    assert set(chosen) <= set(smoke_subset(len(labels), 12, labels))  # nested
    assert len(smoke_subset(100, 7)) == 7 and np.array_equal(smoke_subset(3, 7), np.arange(3))


# ---------------------------------------------------------------- runs


@pytest.mark.slow
def test_a_vision_smoke_run_reads_at_most_n_examples_trains_e_epochs_and_is_marked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    results = tmp_path / "runs"
    common = ["run", "--task", "mini/novel_shapes", "--method", "lora", "--seeds", "42", "--results", str(results)]
    with caplog.at_level(logging.INFO, logger="bench"):
        # The whole protocol: the grid (train -> val) and the final run (train + val -> test), all smoke.
        assert main([*common, "--limit", "10", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "[smoke (limit 10, 1 epoch): a quick check, not a benchmark result]" in out
    assert "mini/novel_shapes lora final seed=42" in caplog.text and "[smoke (limit 10, 1 epoch)]" in caplog.text
    smoke_runs = records(results)
    assert [r["run"]["stage"] for r in smoke_runs].count("grid") == 2 and len(smoke_runs) == 3
    for record in smoke_runs:
        assert record["status"] == "completed"
        assert record["run"]["smoke"] == {"limit": 10, "epochs": 1} == record["identity"]["smoke"]
        assert record["data"]["train_examples"] == 10 and record["data"]["eval_examples"] == 10
        assert len(record["history"]) == 1 and record["run"]["optim"]["epochs"] == 1
        assert record["history"][0]["lr"] > 0  # the shortened warm-up leaves a 1-epoch run something to train
    with np.load(next(results.rglob("predictions.npz"))) as predictions:
        assert len(predictions["pred"]) == 10

    # The same final run without smoke has another key, and its record no smoke entry.
    (final,) = [r for r in smoke_runs if r["run"]["stage"] == "final"]
    point = final["selection"]["point"]
    assert main([*common, "--stage", "final", *(f"--set={k}={v}" for k, v in point.items()
                                                 if k in ("base_lr", "weight_decay"))]) == 0
    (plain,) = [r for r in records(results, "final") if r["key"] != final["key"]]
    assert "smoke" not in plain["run"] and "smoke" not in plain["identity"]
    assert set(plain["identity"]) == PROTOCOL_IDENTITY | {"chosen_by"}
    assert plain["data"]["train_examples"] > 10 and len(plain["history"]) == 10

    # --limit applies after --data-fraction (the fraction's subset.json is still written).
    assert main([*common, "--stage", "final", "--set", "base_lr=0.05", "--data-fraction", "0.5", "--limit", "7"]) == 0
    (fraction,) = [r for r in records(results, "final") if r["run"].get("data_fraction")]
    assert fraction["run"]["smoke"] == {"limit": 7, "epochs": None} and len(fraction["history"]) == 10
    assert fraction["data"]["train_examples"] == 7 and fraction["data"]["eval_examples"] == 7
    assert (Path(fraction["_dir"]) / "subset.json").is_file()


@pytest.mark.slow
def test_a_language_smoke_run_through_the_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers")
    import bench.metrics

    monkeypatch.setattr(bench.metrics, "java_available", lambda: False)  # METEOR's JVM is not what is tested here
    request = RunRequest(task="mini/e2e", methods=("lora",), stages=("final",), seeds=(101,),
                         overrides={"base_lr": 0.003}, results=str(tmp_path / "runs"), limit=6, epochs=1)
    outcome = api.run(request)
    (line,) = outcome.summary_lines()
    assert line.startswith("mini/e2e lora: test BLEU") and "[smoke (limit 6, 1 epoch)" in line
    (record,) = records(tmp_path / "runs")
    assert record["run"]["smoke"] == {"limit": 6, "epochs": 1} and len(record["history"]) == 1
    assert record["data"]["train_examples"] == 6 and record["data"]["eval_examples"] == 6
    outputs = (Path(record["_dir"]) / "outputs.jsonl").read_text().splitlines()
    assert len(outputs) == 6
    # Its key differs from the same run's without smoke.
    task = registry.load_task_by_name("mini/e2e")
    lora = registry.get_method("lora")
    settings = method_settings(task, lora, {"base_lr": 0.003})
    point = {"base_lr": 0.003, "weight_decay": 0.0, **record["run"]["hparams"]}
    chosen_by = record["run"]["chosen_by"]
    plain = make_config(task, lora, settings, point, "final", 101, chosen_by=chosen_by)
    smoke = make_config(task, lora, settings, point, "final", 101, chosen_by=chosen_by, smoke=Smoke(6, 1))
    assert key_of(smoke, RunOptions()) == record["key"] != key_of(plain, RunOptions())
    assert plain.optim["epochs"] == 4 and smoke.optim["epochs"] == 1


# ---------------------------------------------------------------- plan and bad values


def test_the_dry_run_shows_the_reduced_epochs_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--task", "mini/novel_shapes", "--method", "linear", "--dry-run", "--limit", "10",
                 "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("mini/novel_shapes"))
    assert "linear (smoke)" in row and row.split()[5] == "1"  # grid runs, final runs, then epochs
    assert "Smoke (limit 10, 1 epoch)" in out and "epochs: 1 for every run" in out
    sizes = next(line for line in out.splitlines() if line.startswith("  mini/novel_shapes: "))
    assert all(f"{split} " in sizes for split in ("train", "val", "test")) and sizes.count(" 10") == 3


@pytest.mark.parametrize(("flag", "value"), [("--limit", "0"), ("--limit", "-3"), ("--limit", "ten"),
                                             ("--epochs", "0"), ("--epochs", "1.5")])
def test_bad_smoke_values_exit_2_naming_the_flag(flag: str, value: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "runs"
    code = main(["run", "--task", "mini/novel_shapes", "--method", "linear", f"{flag}={value}",
                 "--results", str(results)])
    err = capsys.readouterr().err
    assert code == 2 and f"{flag} must be a positive whole number" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 3 and not results.exists()


@pytest.mark.parametrize("values", [{"limit": 0}, {"epochs": True}, {"epochs": 2.0}, {"limit": "10"}])
def test_bad_smoke_values_are_refused_by_the_api(values: dict[str, Any]) -> None:
    flag = "--" + next(iter(values))
    with pytest.raises(BenchError, match=f"{flag} must be a positive whole number"):
        api.pairs(RunRequest(task="mini/novel_shapes", methods=("linear",), **values))


def test_a_limit_below_the_number_of_classes_is_allowed_with_a_warning(
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert main(["run", "--task", "mini/novel_shapes", "--method", "linear", "--dry-run", "--limit", "4"]) == 0
    assert "--limit 4 is below the 8 classes of mini/novel_shapes" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert main(["run", "--task", "mini/e2e", "--method", "lora", "--dry-run", "--limit", "4"]) == 0
    assert "below" not in caplog.text
