"""--grid-prune: successive halving through optuna's pruner, rebuilt from stored records, marked everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from bench.train.pruning import GridPruner, prune_settings

# val curves of 7 grid points over 6 epochs (evaluated every epoch)
CURVES = [[10, 20, 30, 40, 50, 60], [5, 8, 9, 10, 11, 12], [12, 25, 35, 45, 55, 65], [1, 1, 1, 1, 1, 1],
          [11, 22, 33, 44, 55, 66], [9, 9, 9, 9, 9, 9], [20, 30, 40, 50, 60, 70]]


def run_live(pruner: GridPruner, curve: list[int]) -> dict[str, Any]:
    """What the training loop does: report after each epoch, stop when told (not after the last)."""
    stop = pruner.start()
    history = []
    status = "completed"
    for epoch, value in enumerate(curve):
        history.append({"epoch": epoch, "val_top1": float(value)})
        if stop(epoch + 1, float(value)) and epoch < len(curve) - 1:
            status = "pruned"
            break
    record = {"status": status, "history": history,
              "metrics": {"top1": float(curve[-1]) if status == "completed" else None}}
    pruner.finish(record)
    return record


def test_pruner_prunes_weak_points_and_replay_reproduces_every_decision() -> None:
    settings = prune_settings(eval_every=1)
    live = GridPruner(settings, "val_top1")
    records = [run_live(live, curve) for curve in CURVES]
    statuses = [r["status"] for r in records]
    assert statuses[0] == "completed" and "pruned" in statuses
    assert statuses[3] == "pruned" and statuses[5] == "pruned"  # flat, low curves
    assert statuses[6] == "completed"  # the best curve is never pruned
    for k in range(1, len(CURVES)):
        replayed = GridPruner(settings, "val_top1")
        for record in records[:k]:
            replayed.replay(record)
        again = run_live(replayed, CURVES[k])
        assert again["status"] == records[k]["status"] and len(again["history"]) == len(records[k]["history"])


def records_of(root: Path) -> dict[str, dict[str, Any]]:
    import json

    return {str(p.parent.relative_to(root)): json.loads(p.read_text()) for p in root.rglob("run.json")}


@pytest.mark.slow  # in CI's slow tier: keeps `make test` within 3 minutes on 2 cores
def test_grid_prune_end_to_end_is_marked_resumable_and_labelled(tiny_tasks_dir: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    spec = tiny_tasks_dir / "tiny" / "colors.yaml"
    spec.write_text(spec.read_text().replace("grid: {base_lr: [1.0, 0.1],",
                                             "grid: {base_lr: [1.0, 0.5, 0.1, 0.01, 0.001, 10.0],")
                    .replace("epochs: 3", "epochs: 6"))  # rungs at epochs 1 and 3 (eval every epoch)
    results = tmp_path / "runs"
    common = ["--task", "tiny", "--method", "linear", "--tasks-dir", str(tiny_tasks_dir), "--results", str(results)]
    assert main(["run", *common, "--grid-prune"]) == 0
    pruned = records_of(results)
    grid = [r for r in pruned.values() if r["run"]["stage"] == "grid"]
    final = [r for r in pruned.values() if r["run"]["stage"] == "final"]
    assert len(grid) == 12 and len(final) == 2  # 6 lr x 2 wd grid points, 2 seeds
    assert all(r["run"]["grid_prune"]["reduction_factor"] == 3 for r in [*grid, *final])
    assert any(r["status"] == "pruned" for r in grid)
    assert all(len(r["history"]) < 6 and r["metrics"]["pruned_at_epoch"] == len(r["history"]) - 1
               for r in grid if r["status"] == "pruned")
    assert all("pruned" in r["selection"]["rule"] for r in final)
    assert main(["run", *common, "--grid-prune"]) == 0  # resumed: the study is rebuilt, nothing re-runs
    assert records_of(results).keys() == pruned.keys()
    board = ["leaderboard", "--task", "tiny", "--tasks-dir", str(tiny_tasks_dir), "--results", str(results)]
    capsys.readouterr()
    assert main(board) == 0
    out = capsys.readouterr().out
    assert "| linear<sup>a</sup> |" in out and "chosen by a pruned grid (--grid-prune" in out
    assert main(["run", *common]) == 0  # the full grid is a different protocol: new keys, nothing reused
    assert len(records_of(results)) == len(pruned) + 12 + 2
    capsys.readouterr()
    assert main(board) == 0
    assert "pruned grid" not in capsys.readouterr().out  # the full grid's result is shown once it exists


def test_set_refuses_a_list(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    assert main(["run", "--task", "tiny", "--method", "linear", "--tasks-dir", str(tiny_tasks_dir),
                 "--results", str(tmp_path), "--set", "base_lr=[1.0, 0.5]"]) == 2
