"""The demo protocol (`make demo`): a task profile like `paper`, so its runs, boards and study reports are labelled
and never mix with the clean protocol's."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import api
from bench.cli import main
from bench.train.protocol import method_settings

ROOT = Path(__file__).resolve().parents[1]


def test_the_mini_demo_protocol_fixes_every_method_and_runs_two_seeds() -> None:
    request = api.RunRequest(task="mini", methods=("all",), protocol="demo")
    plan = api.pairs(request)
    assert len(plan) == 45  # every vision method on the 3 mini tasks
    for pair in plan:
        assert pair.task.protocol.seeds == [42, 44]
        grid = method_settings(pair.task, pair.method).grid
        assert all(len(values) == 1 for values in grid.values()), (pair.task.name, pair.method.name, grid)
    language = api.pairs(api.RunRequest(task="mini/e2e", methods=("deep_share", "full_ft"), protocol="demo"))
    assert [(p.task.protocol.seeds, p.task.protocol.epochs) for p in language] == [([101, 42], 3)] * 2


def test_the_demo_plan_has_no_grid_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", "--task", "mini", "--method", "all", "--protocol", "demo", "--dry-run",
                 "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "90 runs: 0 done, 90 to run" in out  # 15 methods x 3 tasks x 2 seeds, no grid point searched
    rows = [line for line in out.split("Runs in")[0].splitlines() if line.startswith("mini/")]
    assert len(rows) == 45 and not any("×" in row for row in rows)  # no axis is searched (`axis×n`)


@pytest.mark.slow
def test_a_study_of_another_protocol_reads_only_its_runs_and_is_named_apart(tiny_tasks_dir: Path,
                                                                             tmp_path: Path) -> None:
    spec = tiny_tasks_dir / "tiny" / "colors.yaml"
    spec.write_text(spec.read_text() + "profiles:\n  quick:\n    protocol:\n      seeds: [42]\n"
                    "      grid: {base_lr: [0.1], weight_decay: [0.0]}\n")
    results, out = tmp_path / "runs", tmp_path / "out"
    args = ["study", "prefix-length", "--suite", "tiny/colors", "--methods", "no_share", "--lengths", "2",
            "--cost-steps", "1", "--tasks-dir", str(tiny_tasks_dir), "--results", str(results), "--out", str(out)]
    assert main([*args, "--protocol", "quick"]) == 0
    quick = (out / "prefix-length-tiny-colors-quick.md").read_text()
    assert quick.startswith("# Prefix length: tiny/colors-quick\n\nRuns of the 'quick' protocol")
    row = next(line for line in quick.splitlines() if line.startswith("| no_share"))
    assert "trained)" in row  # a score from the one quick seed
    assert not (out / "prefix-length-tiny-colors.md").exists()
    assert main([*args, "--no-run"]) == 0  # the clean report of the same store: no clean runs in it
    clean = (out / "prefix-length-tiny-colors.md").read_text()
    assert "| no_share | – |" in clean and "quick" not in clean
