"""Results you can trust: a run's identity is everything that produced it, every read checks the record, a
leaderboard cell is one configuration, leases survive hosts, and two stores can be compared honestly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import registry
from bench.cli import main
from bench.store import RECORD, RunStore

ROOT = Path(__file__).resolve().parents[1]


def run(tasks_dir: Path, results: Path, *extra: str, method: str = "linear") -> int:
    return main(["run", "--task", "tiny/colors", "--method", method, "--tasks-dir", str(tasks_dir),
                 "--results", str(results), *extra])


def finals(results: Path, method: str = "linear") -> list[dict]:
    return [r for r in RunStore(results).records(stage="final") if r["run"]["method"] == method]


def board(results: Path, tasks_dir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["leaderboard", "--task", "tiny", "--results", str(results), "--tasks-dir", str(tasks_dir),
                 "--resamples", "50"]) == 0
    return capsys.readouterr().out


# ---------------------------------------------------------------- identity and one configuration per cell


def test_an_edited_task_makes_new_runs_and_the_cell_shows_one_configuration(
        tiny_tasks_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "runs"
    assert run(tiny_tasks_dir, results, "--set", "base_lr=0.1", "--set", "weight_decay=0.0") == 0
    spec = tiny_tasks_dir / "tiny" / "colors.yaml"
    spec.write_text(spec.read_text().replace("epochs: 3", "epochs: 4"))
    assert run(tiny_tasks_dir, results, "--set", "base_lr=0.1", "--set", "weight_decay=0.0") == 0
    records = finals(results)
    assert len(records) == 4 and len({r["key"] for r in records}) == 4  # 2 seeds x 2 configurations, none reused
    out = board(results, tiny_tasks_dir, capsys)
    row = next(line for line in out.splitlines() if line.startswith("| linear"))
    assert "(n=" not in row  # two seeds, the protocol's count: never 4 with seeds counted twice
    assert "1 other configuration of this method on this task in the store" in out
    newest = sorted(records, key=lambda r: r["task_spec"]["protocol"]["epochs"])[-2:]
    assert {r["task_spec"]["protocol"]["epochs"] for r in newest} == {4}


def test_the_newest_complete_configuration_wins(tiny_tasks_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "runs"
    fixed = ["--set", "base_lr=0.1", "--set", "weight_decay=0.0"]
    assert run(tiny_tasks_dir, results, *fixed) == 0
    spec = tiny_tasks_dir / "tiny" / "colors.yaml"
    spec.write_text(spec.read_text().replace("epochs: 3", "epochs: 4"))
    assert run(tiny_tasks_dir, results, *fixed, "--seeds", "42") == 0  # incomplete: one of two seeds
    out = board(results, tiny_tasks_dir, capsys)
    old = [r["metrics"]["top1"] for r in finals(results) if r["task_spec"]["protocol"]["epochs"] == 3]
    row = next(line for line in out.splitlines() if line.startswith("| linear"))
    assert f"{sum(old) / 2:.2f}" in row  # the complete configuration, not the newer incomplete one


def test_method_code_is_part_of_the_key_but_comments_are_not(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    methods = tmp_path / "methods"
    methods.mkdir()
    source = SCALED_LINEAR
    (methods / "scaled.py").write_text(source)
    results = tmp_path / "runs"
    args = ["--methods-dir", str(methods), "--set", "base_lr=0.1", "--set", "weight_decay=0.0", "--seeds", "42"]
    assert run(tiny_tasks_dir, results, *args, method="scaled") == 0
    (first,) = finals(results, "scaled")
    # a comment and a docstring change: the same code, the same key, the stored record is reused
    (methods / "scaled.py").write_text(source.replace("# scale", "# a reworded comment").replace(
        '"""Scaled features."""', '"""Features, scaled."""'))
    registry._load_method_folder.cache_clear()
    assert run(tiny_tasks_dir, results, *args, method="scaled") == 0
    assert [r["key"] for r in finals(results, "scaled")] == [first["key"]]
    # a change to what the code computes: a new key, a new run
    (methods / "scaled.py").write_text(source.replace("0.5 *", "0.25 *"))
    registry._load_method_folder.cache_clear()
    assert run(tiny_tasks_dir, results, *args, method="scaled") == 0
    keys = {r["key"] for r in finals(results, "scaled")}
    assert len(keys) == 2 and first["key"] in keys


SCALED_LINEAR = '''
"""A test plug-in: linear probing on scaled features."""

import torch
from torch import nn

from bench.method import Method, MethodHParams, register_method


class Scale(nn.Module):
    def forward(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        return 0.5 * hidden  # scale


@register_method("scaled")
class Scaled(Method[MethodHParams]):
    """Scaled features."""

    def attach(self, backbone):
        module = Scale()
        backbone.set_layer_output_hook(module)
        return module
'''


def test_precision_is_part_of_the_key(tiny_tasks_dir: Path) -> None:
    from bench.train.config import RunOptions
    from bench.train.loop import key_of
    from bench.train.protocol import make_config, method_settings

    task = registry.load_task_by_name("tiny/colors", (tiny_tasks_dir,))
    method = registry.get_method("linear")
    settings = method_settings(task, method)
    point = {"base_lr": 0.1, "weight_decay": 0.0}
    keys = {precision: key_of(make_config(task, method, settings, point, "final", 42, precision=precision),
                              RunOptions()) for precision in ("fp32", "bf16")}
    assert keys["fp32"] != keys["bf16"]


def test_set_values_are_marked_and_far_ones_warned_about(tiny_tasks_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    results = tmp_path / "runs"
    with caplog.at_level("WARNING"):
        assert run(tiny_tasks_dir, results, "--set", "base_lr=50", "--seeds", "42", method="full_ft") == 0
    assert "--set base_lr=50 is far outside full_ft's own grid" in caplog.text
    (record,) = finals(results, "full_ft")
    assert record["run"]["chosen_by"] == {"how": "set", "set": {"base_lr": 50}}
    out = board(results, tiny_tasks_dir, capsys)
    assert "base_lr=50 fixed on the command line (--set / --num-tokens), nothing selected on val" in out
    assert "hyper-parameters selected on val, or fixed where a footnote says so" in out


# ---------------------------------------------------------------- record integrity


@pytest.fixture
def stored(tiny_tasks_dir: Path, tmp_path: Path) -> Path:
    results = tmp_path / "runs"
    assert run(tiny_tasks_dir, results, "--set", "base_lr=0.1", "--set", "weight_decay=0.0") == 0
    return results


def test_a_copied_run_folder_is_not_counted_twice(stored: Path, tiny_tasks_dir: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    record = finals(stored)[0]
    source = Path(record["_dir"])
    shutil.copytree(source, source.parent / ("0" * 16))  # a copy beside it, under another name
    shutil.copytree(source, stored / "tiny" / "colors" / "linear" / "grid" / source.name)  # and in another stage
    out = board(stored, tiny_tasks_dir, capsys)
    row = next(line for line in out.splitlines() if line.startswith("| linear"))
    assert "(n=" not in row
    assert "2 stored records were left out because they cannot be trusted" in out
    assert "(a copied or moved run folder)" in out
    assert main(["doctor", "--results", str(stored)]) == 1
    assert out.count("copied") >= 1 and "copied or moved" in capsys.readouterr().out


def test_a_hand_edited_metric_is_detected_everywhere(stored: Path, tiny_tasks_dir: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    record = finals(stored)[0]
    path = Path(record["_dir"]) / RECORD
    data = json.loads(path.read_text())
    data["metrics"]["top1"] = 99.0
    path.write_text(json.dumps(data))
    out = board(stored, tiny_tasks_dir, capsys)
    assert "99.00" not in out and "(n=1)" in out and "was edited by hand" in out
    assert main(["doctor", "--results", str(stored)]) == 1
    assert "does not match its checksum" in capsys.readouterr().out
    assert main(["show", record["key"][:8], "--results", str(stored)]) == 2  # one paragraph, no traceback
    assert "cannot be trusted" in capsys.readouterr().err


def test_a_prediction_file_that_disagrees_is_caught(stored: Path, tiny_tasks_dir: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    record = finals(stored)[0]
    predictions = Path(record["_dir"]) / "predictions.npz"
    with np.load(predictions) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["pred"] = arrays["label"]  # every prediction right
    np.savez(predictions, **arrays)
    out = board(stored, tiny_tasks_dir, capsys)
    assert "(n=1)" in out and "predictions.npz does not match the checksum in its record" in out


def test_weights_may_be_left_out_but_never_replaced(stored: Path, tiny_tasks_dir: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A store without trained.pt (the committed example runs, a clone) keeps its scores; other weights in its
    place, or a missing prediction file, set the run aside."""
    before = board(stored, tiny_tasks_dir, capsys)
    records = finals(stored)
    for record in records:
        (Path(record["_dir"]) / "trained.pt").unlink()
    assert board(stored, tiny_tasks_dir, capsys) == before
    assert "left out" not in before
    assert main(["doctor", "--results", str(stored)]) == 0
    (Path(records[0]["_dir"]) / "trained.pt").write_bytes(b"other weights")
    out = board(stored, tiny_tasks_dir, capsys)
    assert "(n=1)" in out and "trained.pt does not match the checksum in its record" in out
    (Path(records[1]["_dir"]) / "predictions.npz").unlink()
    assert main(["doctor", "--results", str(stored)]) == 1
    found = capsys.readouterr().out
    assert "trained.pt does not match the checksum in its record" in found
    assert "predictions.npz is missing (the record lists it)" in found


@pytest.mark.parametrize("content", ["{not json", "[]", '{"key": 3}', "\x00\xff", ""])
def test_malformed_records_never_raise_a_traceback(stored: Path, tiny_tasks_dir: Path, content: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(finals(stored)[0]["_dir"]) / RECORD
    path.write_bytes(content.encode("latin-1"))
    assert main(["leaderboard", "--task", "tiny", "--results", str(stored), "--tasks-dir", str(tiny_tasks_dir),
                 "--resamples", "20"]) == 0
    assert main(["doctor", "--results", str(stored)]) == 1
    assert main(["show", path.parent.name[:6], "--results", str(stored)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err


# ---------------------------------------------------------------- leases


def test_a_lease_of_another_host_is_taken_over_only_after_it_expires(tiny_tasks_dir: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.leases import acquire
    from bench.store import RunStore
    from bench.train.config import RunOptions
    from bench.train.loop import key_of
    from bench.train.protocol import make_config, method_settings, run_protocol

    task = registry.load_task_by_name("tiny/colors", (tiny_tasks_dir,))
    method = registry.get_method("full_ft")
    store = RunStore(tmp_path / "runs")
    config = make_config(task, method, method_settings(task, method), {"base_lr": 0.01, "weight_decay": 0.0},
                         "final", 42, chosen_by={"how": "spec", "set": {}})
    run_dir = store.run_dir(task.name, "full_ft", "final", key_of(config, RunOptions()))
    monkeypatch.setenv("BENCH_HOST", "node-that-died")  # another machine writes the lease, then vanishes
    monkeypatch.setenv("BENCH_LEASE_S", "2")
    foreign = acquire(run_dir)
    assert foreign is not None
    foreign._stop.set()  # its heartbeat stops, as when the node dies
    monkeypatch.setenv("BENCH_HOST", "this-node")
    early = run_protocol(task, method, store, RunOptions(), stages=("final",), seeds=[42])
    assert not early.complete and early.final == []  # a live lease of another host: wait, do not steal
    time.sleep(2.5)
    late = run_protocol(task, method, store, RunOptions(), stages=("final",), seeds=[42])
    assert late.complete and len(late.final) == 1  # expired: taken over
    assert not (run_dir / "lock").exists()


def test_a_holder_whose_lease_was_taken_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.leases import LeaseLost, acquire, release

    monkeypatch.setenv("BENCH_HEARTBEAT_S", "100")
    holder = acquire(tmp_path / "run")
    assert holder is not None
    assert release(tmp_path / "run" / "lock")  # `bench leases release`, or a take-over after an expiry
    other = acquire(tmp_path / "run")
    assert other is not None
    with pytest.raises(LeaseLost):
        holder.check()
    holder.release()
    assert (tmp_path / "run" / "lock").exists()  # the new holder's lease stays
    other.release()


def test_leases_are_listed_and_released_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from bench.leases import acquire

    results = tmp_path / "runs"
    monkeypatch.setenv("BENCH_HOST", "elsewhere")
    monkeypatch.setenv("BENCH_LEASE_S", "0.1")
    held = acquire(results / "t" / "m" / "final" / "abcd1234abcd1234")
    assert held is not None
    held._stop.set()
    time.sleep(0.2)
    assert main(["leases", "--results", str(results)]) == 0
    assert "expired: elsewhere pid" in capsys.readouterr().out
    assert main(["doctor", "--results", str(results)]) == 0
    assert "lease(s) expired or of dead processes" in " ".join(capsys.readouterr().out.split())
    assert main(["leases", "release", "--expired", "--results", str(results)]) == 0
    assert not list(results.rglob("lock"))
    assert main(["leases", "release", "--results", str(results)]) == 2


@pytest.mark.slow
def test_two_plain_runs_on_one_plan_finish_it_between_them(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    results = tmp_path / "runs"
    command = [sys.executable, "-m", "bench", "run", "--task", "tiny", "--method", "linear,full_ft",
               "--tasks-dir", str(tiny_tasks_dir), "--results", str(results), "--poll", "0.2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    for out, _ in outputs:  # each prints the whole plan's summary: both saw it finish
        assert out.count("tiny/colors") == 2 and "over 2 seeds" in out
    assert len(list(results.rglob(RECORD))) == 4 + 2 + 2  # linear grid + finals, full_ft finals
    assert not list(results.rglob("lock"))


# ---------------------------------------------------------------- comparing stores


def test_compare_two_stores(stored: Path, tiny_tasks_dir: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    again = tmp_path / "again"
    assert run(tiny_tasks_dir, again, "--set", "base_lr=0.1", "--set", "weight_decay=0.0") == 0
    capsys.readouterr()
    assert main(["compare", str(stored), str(again), "--resamples", "100"]) == 0
    out = capsys.readouterr().out
    assert "2 in both stores" in out and "2 with identical scores, 0 different" in out
    assert "No cell differs significantly" in out
    assert "AMD" in out or "Intel" in out or "threads" in out  # the machines are named
