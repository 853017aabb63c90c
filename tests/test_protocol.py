"""The protocol end to end on the tiny task: grid -> select on val -> final seeds -> last-epoch test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import registry
from bench.errors import BenchError
from bench.store import RunStore
from bench.train.config import RunOptions
from bench.train.protocol import grid_points, method_settings, run_protocol, select_on_val


def tiny_task(tasks_dir: Path) -> Any:
    return registry.load_task_by_name("tiny/colors", (tasks_dir,))


def record(lr: float, wd: float, top1: float | None, status: str = "completed") -> dict[str, Any]:
    return {"key": f"{lr}-{wd}", "status": status, "metrics": {"top1": top1},
            "run": {"optim": {"base_lr": lr, "weight_decay": wd}, "hparams": {}}}


def test_selection_takes_best_val_and_breaks_ties_by_smaller_lr_then_wd() -> None:
    records = [record(10.0, 0.0, 80.0), record(2.5, 0.01, 90.0), record(0.5, 0.01, 90.0),
               record(0.5, 0.001, 90.0), record(50.0, 0.0, None, "diverged")]
    selection = select_on_val(records)
    assert selection["point"] == {"base_lr": 0.5, "weight_decay": 0.001}
    assert selection["diverged"] == 1 and selection["candidates"] == 5


def test_selection_fails_clearly_when_everything_diverged() -> None:
    with pytest.raises(BenchError, match="all 2 grid runs diverged"):
        select_on_val([record(50.0, 0.0, None, "diverged"), record(25.0, 0.0, None, "diverged")])


def test_grid_precedence_task_override_then_method_then_protocol(tiny_tasks_dir: Path) -> None:
    task = tiny_task(tiny_tasks_dir)
    linear = registry.get_method("linear")
    full_ft = registry.get_method("full_ft")
    s_linear = method_settings(task, linear)
    assert s_linear.optimizer == "sgd" and s_linear.grid == {"base_lr": [1.0, 0.1], "weight_decay": [0.001, 0.0]}
    assert len(grid_points(s_linear)) == 4 and s_linear.warmup_epochs == 1
    s_full = method_settings(task, full_ft)  # the task overrides the method's own AdamW grid
    assert s_full.optimizer == "adamw" and s_full.grid == {"base_lr": [0.01], "weight_decay": [0.0]}
    fixed = method_settings(task, linear, {"base_lr": 0.3})
    assert fixed.grid["base_lr"] == [0.3] and len(grid_points(fixed)) == 2
    with pytest.raises(BenchError, match="neither an optimisation setting nor a hyper-parameter"):
        method_settings(task, linear, {"num_tokens": 10})


def test_full_protocol_on_tiny_task(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    task = tiny_task(tiny_tasks_dir)
    store = RunStore(tmp_path / "runs")
    result = run_protocol(task, registry.get_method("linear"), store, RunOptions())
    grid = list(store.records(stage="grid"))
    final = list(store.records(stage="final"))
    assert len(grid) == 4 and all(r["run"]["seed"] == 42 for r in grid)
    assert all(r["run"]["train_splits"] == ["train"] and r["run"]["eval_split"] == "val" for r in grid)
    # selection used val only, and the final runs use exactly the selected point
    expected = select_on_val(grid)["point"]
    assert result.selection is not None and result.selection["point"] == expected
    assert sorted(r["run"]["seed"] for r in final) == [42, 44]
    for r in final:
        assert r["run"]["train_splits"] == ["train", "val"] and r["metrics"]["split"] == "test"
        assert r["run"]["optim"]["base_lr"] == expected["base_lr"]
        assert r["selection"]["point"] == expected and r["selection"]["candidates"] == 4
        # last-epoch reporting: the reported number is the last history entry's, evaluated on test
        assert r["metrics"]["top1"] == r["history"][-1]["test_top1"] and r["metrics"]["epoch"] == 2
        assert [h["epoch"] for h in r["history"]] == [0, 1, 2] and r["history"][0]["lr"] == 0.0
        preds = np.load(Path(r["_dir"]) / "predictions.npz")
        assert len(preds["pred"]) == r["data"]["eval_examples"] == 20
        assert r["metrics"]["top1"] == pytest.approx(100 * float((preds["pred"] == preds["label"]).mean()))
        assert r["data"]["train_examples"] == 36
        assert r["params"]["trainable"] == 0 and r["params"]["head"] == 32 * 4 + 4
        assert r["env"]["versions"]["torch"] and r["cost"]["wall_s"] > 0
        assert r["cost"]["train_images_per_s"] > 0 and r["cost"]["peak_memory_bytes"] > 0
    assert result.test_scores() == [r["metrics"]["top1"] for r in sorted(final, key=lambda r: r["run"]["seed"])]


def test_test_split_is_evaluated_once_per_final_run_and_never_by_the_grid(
        tiny_tasks_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.train.vision as vision_module

    calls: list[int] = []
    original = vision_module.evaluate

    def counting(model: Any, batches: Any, *args: Any) -> Any:
        calls.append(len(batches))
        return original(model, batches, *args)

    monkeypatch.setattr(vision_module, "evaluate", counting)
    task = tiny_task(tiny_tasks_dir)  # 3 epochs, eval_every 1; val has 12 images, test 20
    assert task.protocol.eval_every == 1 and task.protocol.epochs == 3
    run_protocol(task, registry.get_method("linear"), RunStore(tmp_path / "runs"), RunOptions())
    assert calls.count(12) == 4 * 3  # grid: val after every epoch, 4 grid points
    assert calls.count(20) == 2  # final: test once per seed, at the end


def test_rerun_is_a_noop_and_same_seed_gives_same_metrics(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    task = tiny_task(tiny_tasks_dir)
    method = registry.get_method("full_ft")
    store = RunStore(tmp_path / "a")
    run_protocol(task, method, store, RunOptions(), seeds=[42])
    files = {p: p.stat().st_mtime_ns for p in store.root.rglob("*") if p.is_file()}
    run_protocol(task, method, store, RunOptions(), seeds=[42])
    assert {p: p.stat().st_mtime_ns for p in store.root.rglob("*") if p.is_file()} == files

    other = RunStore(tmp_path / "b")
    run_protocol(task, method, other, RunOptions(), seeds=[42])
    (a,), (b,) = list(store.records(stage="final")), list(other.records(stage="final"))
    assert a["key"] == b["key"]
    assert a["history"] == b["history"] and a["metrics"] == b["metrics"]


def test_different_seeds_differ(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    task = tiny_task(tiny_tasks_dir)
    store = RunStore(tmp_path / "runs")
    run_protocol(task, registry.get_method("full_ft"), store, RunOptions())
    histories = [json.dumps(r["history"]) for r in store.records(stage="final")]
    assert len(histories) == 2 and histories[0] != histories[1]


def test_diverged_run_is_recorded_and_the_grid_goes_on(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    task = tiny_task(tiny_tasks_dir)
    store = RunStore(tmp_path / "runs")
    huge = run_protocol(task, registry.get_method("full_ft"), store, RunOptions(), stages=("grid",),
                        overrides={"weight_decay": 0.0, "base_lr": 1e9})
    assert huge.selection is not None and huge.selection["rule"].startswith("fixed")
    result = run_protocol(task, registry.get_method("full_ft"), store, RunOptions(), stages=("final",),
                          seeds=[42], overrides={"weight_decay": 0.0, "base_lr": 1e9})
    (diverged,) = result.final
    assert diverged["status"] == "diverged" and diverged["metrics"]["top1"] is None
    assert diverged["history"][-1]["train_loss"] is None
    assert result.test_scores() == []


def test_a_non_finite_loss_stops_the_run_at_that_step(tiny_tasks_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.nn.functional as F

    import bench.train.vision as vision_module

    losses: list[float] = []
    original = F.cross_entropy

    def recording(logits: Any, labels: Any) -> Any:
        loss = original(logits, labels)
        losses.append(float(loss.detach()))
        return loss

    monkeypatch.setattr(vision_module.F, "cross_entropy", recording)
    task = tiny_task(tiny_tasks_dir)  # 36 train+val images, batch 8: 5 steps per epoch, 3 epochs
    result = run_protocol(task, registry.get_method("full_ft"), RunStore(tmp_path / "runs"), RunOptions(),
                          stages=("final",), seeds=[42], overrides={"weight_decay": 0.0, "base_lr": 1e9})
    assert result.final[0]["status"] == "diverged"
    assert not np.isfinite(losses[-1]) and all(np.isfinite(losses[:-1]))  # stopped at the first bad step
    assert len(losses) < 3 * 5  # not every step of the 3 epochs


def test_diverged_grid_point_is_skipped_by_selection(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    folder = tiny_tasks_dir / "tiny"
    text = (folder / "colors.yaml").read_text().replace("base_lr: [1.0, 0.1]", "base_lr: [1.0e30, 0.1]")
    (folder / "explode.yaml").write_text(text)
    task = registry.load_task_by_name("tiny/explode", (tiny_tasks_dir,))
    store = RunStore(tmp_path / "runs")
    result = run_protocol(task, registry.get_method("linear"), store, RunOptions())
    statuses = sorted(r["status"] for r in store.records(stage="grid"))
    assert statuses.count("completed") >= 2 and "diverged" in statuses
    diverged = [r["run"]["optim"] for r in store.records(stage="grid") if r["status"] == "diverged"]
    assert result.selection is not None
    assert all((d["base_lr"], d["weight_decay"]) != tuple(result.selection["point"].values()) for d in diverged)
    assert len(result.test_scores()) == 2


def test_final_stage_alone_needs_a_finished_grid(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    task = tiny_task(tiny_tasks_dir)
    with pytest.raises(BenchError, match="Run `--stage grid` first"):
        run_protocol(task, registry.get_method("linear"), RunStore(tmp_path / "r"), RunOptions(), stages=("final",))


def test_linear_probing_trains_on_cached_features_with_the_same_results(
        tiny_tasks_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.train.modality import modality_for

    task = tiny_task(tiny_tasks_dir)
    vision = modality_for(task)
    forwards: list[int] = []
    original = vision.pristine_backbone

    def counted(task: Any) -> Any:
        backbone = original(task)
        backbone.register_forward_hook(lambda module, args, output: forwards.append(len(args[0])))
        return backbone

    monkeypatch.setattr(vision, "pristine_backbone", counted)
    monkeypatch.setattr(vision, "feature_sets", {})
    linear = registry.get_method("linear")
    cached = run_protocol(task, linear, RunStore(tmp_path / "cached"), RunOptions())
    # train (24) and val (12) once for the grid, train+val (36) and test (20) once for the final seeds
    assert sum(forwards) == 24 + 12 + 36 + 20
    forwards.clear()
    plain = run_protocol(task, linear, RunStore(tmp_path / "plain"), RunOptions(feature_cache=False))
    assert sum(forwards) > 10 * (24 + 12)  # every epoch of every run goes through the backbone
    for a, b in zip(cached.final, plain.final, strict=True):
        assert a["metrics"]["top1"] == b["metrics"]["top1"]
        assert [h["train_loss"] for h in a["history"]] == pytest.approx([h["train_loss"] for h in b["history"]],
                                                                         rel=1e-5)
    assert cached.selection == plain.selection


def test_compiled_model_gives_the_same_run(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    """--compile wraps the forward in torch.compile (here the 'eager' backend, to stay fast on CPU): same
    parameters, same training, the backend recorded in the run's cost."""
    task = tiny_task(tiny_tasks_dir)
    method = registry.get_method("deep_share")
    kwargs: dict[str, Any] = {"stages": ("final",), "seeds": [42], "overrides": {"base_lr": 0.1, "weight_decay": 0.0}}
    plain = run_protocol(task, method, RunStore(tmp_path / "plain"), RunOptions(), **kwargs).final[0]
    compiled = run_protocol(task, method, RunStore(tmp_path / "compiled"), RunOptions(compile="eager"),
                            **kwargs).final[0]
    assert compiled["cost"]["compile"] == "eager" and plain["cost"]["compile"] is None
    assert compiled["key"] == plain["key"]
    assert compiled["metrics"]["top1"] == plain["metrics"]["top1"]
    assert [h["train_loss"] for h in compiled["history"]] == pytest.approx([h["train_loss"] for h in plain["history"]])
