"""The `bench` command as a user meets it: listing, validation, dry runs, runs, show, leaderboard, and
bad input that exits 2 with one clear paragraph."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main

ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_unknown_task_exits_2_with_one_paragraph() -> None:
    done = bench("run", "--task", "nonexistent", "--method", "linear")
    assert done.returncode == 2
    assert done.stderr.startswith("error: unknown task or suite 'nonexistent'.")
    assert "bench list tasks" in done.stderr and "Traceback" not in done.stderr
    assert "\n\n" not in done.stderr.strip()


def test_unknown_method_suggests(tiny_tasks_dir: Path) -> None:
    done = bench("run", "--task", "tiny/colors", "--method", "lineer", "--tasks-dir", str(tiny_tasks_dir))
    assert done.returncode == 2 and "Did you mean 'linear'?" in done.stderr


def test_malformed_task_yaml_exits_2(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("data:\n  source: image_list\n   root: [unclosed\n")
    for args in (["run", "--task", "broken", "--method", "linear"], ["validate"]):
        done = bench(*args, "--tasks-dir", str(tmp_path))
        assert done.returncode == 2, done.stderr
        message = " ".join(done.stderr.split())  # the paragraph is wrapped where the temp path length puts it
        assert "broken.yaml" in message and "malformed YAML at line 3" in message
        assert "Traceback" not in message


def test_list_and_validate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "tasks"]) == 0
    out = capsys.readouterr().out
    assert "mini/novel_shapes" in out and "mini/counting" in out and "mini/orientation" in out
    assert main(["list", "suites"]) == 0
    assert "mini" in capsys.readouterr().out
    assert main(["list", "methods"]) == 0
    out = capsys.readouterr().out
    assert "linear" in out and "full_ft" in out and "adamw" in out
    assert main(["validate"]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


def test_dry_run_prints_the_plan_without_training(tiny_tasks_dir: Path, capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    assert main(["run", "--task", "tiny", "--method", "linear,full_ft", "--dry-run", "--tasks-dir",
                 str(tiny_tasks_dir), "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "tiny/colors" in out and "linear" in out and "full_ft" in out
    assert "8 runs" in out  # linear: 4 grid + 2 seeds; full_ft: single-point grid (no search) + 2 seeds
    assert "8 runs: 0 done, 8 to run; estimated" in out and "assumed FLOP/s" in out  # an empty store: no stored times
    assert not (tmp_path / "r").exists()


def test_dry_run_reports_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "far.yaml").write_text(
        "data: {source: image_list, root: /nowhere/vtab/dtd, splits: {train: t.txt, val: v.txt, test: s.txt},\n"
        "       num_classes: 47, images: {resize: [224, 224]}, download_hint: 'Unzip vtab-1k.zip into $BENCH_DATA.'}\n")
    assert main(["run", "--task", "far", "--method", "linear", "--dry-run", "--tasks-dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "40 grid" not in out and "/nowhere/vtab/dtd" in out and "Unzip vtab-1k.zip" in out
    assert "85.8M" in out  # ViT-B/16 built on the meta device, no weights needed


def test_run_show_and_leaderboard(tiny_tasks_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "runs"
    common = ["--tasks-dir", str(tiny_tasks_dir), "--results", str(results)]
    assert main(["run", "--task", "tiny", "--method", "linear,full_ft", *common]) == 0
    out = capsys.readouterr().out
    assert "tiny/colors linear: test top-1" in out and "over 2 seeds" in out
    assert main(["leaderboard", "--task", "tiny", "--out", str(tmp_path / "boards"), "--results", str(results),
                 "--tasks-dir", str(tiny_tasks_dir)]) == 0
    table = (tmp_path / "boards" / "tiny.md").read_text()
    assert "| Method | colors | Mean |" in table and "(n=" not in table  # 2 seeds = the protocol's 2
    assert (tmp_path / "boards" / "tiny.html").is_file() and (tmp_path / "boards" / "tiny-pareto.svg").is_file()
    assert table.count("\n| full_ft") == 1 and table.count("\n| linear") == 1
    run_dir = next(results.rglob("run.json")).parent
    capsys.readouterr()
    assert main(["show", str(run_dir), "--results", str(results)]) == 0
    assert "trainable" in capsys.readouterr().out
    assert main(["show", run_dir.name[:8], "--results", str(results)]) == 0
    assert main(["show", "zzzz", "--results", str(results)]) == 2


def test_leaderboard_without_runs_exits_2(tmp_path: Path) -> None:
    assert main(["leaderboard", "--results", str(tmp_path / "empty")]) == 2


def test_list_methods_params_for_cub(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "methods", "--params", "--task", "cub"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:3] for line in out.splitlines()[3:]}
    assert rows["deep_share"] == ["1,438,272", "184,320"]
    assert rows["no_share"][0] == "184,320" and rows["simple_share"][0] == "92,160"
    assert "153,800" in out  # the CUB head


def test_list_methods_params_counts_the_others_when_one_method_cannot_be_built(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, No-share on GPT-2 needs the tokenizer (init_text): its row says why, the rest are counted."""
    import bench.params
    from bench.errors import BenchError

    real = bench.params.count_parameters

    def without_tokenizer(task: Any, cls: Any, hparams: Any = None) -> Any:
        if cls.name == "no_share":
            raise BenchError("the tokenizer of 'gpt2' is not on this machine.", field="backbone.model")
        return real(task, cls, hparams)

    monkeypatch.setattr(bench.params, "count_parameters", without_tokenizer)
    assert main(["list", "methods", "--params", "--task", "mini/e2e", "--method", "no_share,lora"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^lora\s+\d", out, re.M) and not re.search(r"^no_share\s", out, re.M)
    assert "Not counted, no_share: field 'backbone.model': the tokenizer of 'gpt2' is not on this machine." in out


def test_perf_data_compares_cached_tensors_with_decoding_and_writes_json(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["perf", "data", "--images", "16", "--batch", "8", "--perf-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cached tensors (bench)" in out and "decode JPEG every epoch" in out and "ratio cached / decode" in out
    figures = json.loads((tmp_path / "data.json").read_text())
    assert figures["images"] == 16 and figures["method"] == "deep_share"
    assert figures["cached_images_per_s"] > figures["decode_images_per_s"] > 0
    assert 0 < figures["wait_share_cached"] < figures["wait_share_decode"] < 1
