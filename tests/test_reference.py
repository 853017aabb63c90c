"""Published reference numbers: well-formed, consistent with the group means they print, and shown as
labelled leaderboard rows next to our own runs."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from bench import registry
from bench.cli import main
from bench.reference import load_references
from tests.stored import store_run


def test_reference_files_load_and_name_real_tasks_and_methods() -> None:
    references = load_references()
    assert set(references) == {"vpt_2022", "reparamprefix_2025_figure2", "vpetl_2024"}
    assert references["reparamprefix_2025_figure2"].kind == "figure"
    tasks = set(registry.spec_files())
    methods = set(registry.load_methods())
    for table in references.values():
        assert set(table.methods) - set(table.unmatched_methods) <= methods
        for values in table.methods.values():
            assert set(values) <= tasks


def test_vpt_group_means_agree_with_its_per_task_rows() -> None:
    table = load_references()["vpt_2022"]
    suite, _ = registry.resolve_tasks("vtab")
    assert suite is not None
    for method, printed in table.group_means.items():
        for group, members in suite.groups.items():
            computed = statistics.mean(table.methods[method][t] for t in members)
            assert computed == pytest.approx(printed[f"vtab/{group}"], abs=0.05), (method, group)
        fgvc_tasks = ("cub", "nabirds", "flowers", "dogs", "cars")
        fgvc = statistics.mean(table.methods[method][f"fgvc/{t}"] for t in fgvc_tasks)
        assert fgvc == pytest.approx(printed["fgvc"], abs=0.05)


def fake_final_record(folder: Path, task: str, method: str, seed: int, top1: float) -> None:
    store_run(folder, {"status": "completed", "created_at": "2026-01-01",
                       "run": {"task": task, "method": method, "stage": "final", "seed": seed, "hparams": {},
                               "optim": {"base_lr": 0.1, "weight_decay": 0.0}},
                       "metrics": {"top1": top1}, "params": {"trainable": 10, "trainable_percent": 0.1}})


def test_leaderboard_reference_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for seed, score in ((42, 88.0), (44, 89.0)):
        fake_final_record(tmp_path, "fgvc/cub", "deep_share", seed, score)
    assert main(["leaderboard", "--task", "fgvc", "--results", str(tmp_path), "--reference"]) == 0
    out = capsys.readouterr().out
    assert "| deep_share " in out and "88.50 ± 0.71 (n=2)" in out
    assert "vpt_deep [vpt_2022]" in out and "| 88.5 " in out
    assert "deep_share [reparamprefix_2025_figure2]" in out and "(values read from a figure)" in out
    vpt_row = next(line for line in out.splitlines() if line.startswith("| vpt_deep [vpt_2022]"))
    assert "89.10" in vpt_row  # the FGVC mean of VPT-deep's five rows
