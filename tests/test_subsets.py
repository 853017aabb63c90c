"""--data-fraction: nested, class-balanced, seeded training subsets; val and test whole; stored and keyed."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.data.subsets import nested_subset, parse_fractions

LABELS = np.repeat(np.arange(5), [40, 10, 7, 1, 22])  # unequal classes, one of them a single example


def test_subsets_are_nested_class_balanced_and_seeded() -> None:
    fractions = [0.1, 0.25, 0.5, 1.0]
    subsets = [set(nested_subset(LABELS, f, seed=42).tolist()) for f in fractions]
    for small, large in itertools.pairwise(subsets):
        assert small < large
    for fraction, subset in zip(fractions, subsets, strict=True):
        kept = LABELS[sorted(subset)]
        for label, size in enumerate(np.bincount(LABELS)):
            assert (kept == label).sum() == max(1, math.ceil(fraction * size))
    assert subsets[-1] == set(range(len(LABELS)))
    assert nested_subset(LABELS, 0.25, seed=42).tolist() == sorted(subsets[1])
    assert set(nested_subset(LABELS, 0.25, seed=44).tolist()) != subsets[1]


def test_fraction_option_is_checked() -> None:
    assert parse_fractions("0.1, 0.5,1") == [0.1, 0.5, 1.0]
    for bad in ("0", "1.5", "a", ""):
        with pytest.raises(Exception, match="--data-fraction"):
            parse_fractions(bad)


def records(root: Path) -> dict[str, dict[str, object]]:
    return {str(p.parent.relative_to(root)): json.loads(p.read_text()) for p in root.rglob("run.json")}


def test_fraction_runs_end_to_end(tiny_tasks_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["run", "--task", "tiny", "--method", "linear", "--tasks-dir", str(tiny_tasks_dir)]
    assert main([*common, "--results", str(tmp_path / "plain")]) == 0
    assert main([*common, "--results", str(tmp_path / "study"), "--data-fraction", "0.5,1.0"]) == 0
    out = capsys.readouterr().out
    assert "(data fraction 0.5)" in out
    plain, study = records(tmp_path / "plain"), records(tmp_path / "study")
    assert set(plain) < set(study)  # fraction 1.0 = the usual runs, same keys
    halves = {k: r for k, r in study.items() if k not in plain}
    assert len(halves) == len(plain)  # the same plan again, at half the data
    for key, record in halves.items():
        run = record["run"]
        assert isinstance(run, dict) and run["data_fraction"] == 0.5
        subset = json.loads((tmp_path / "study" / key / "subset.json").read_text())
        # tiny: 4 balanced classes; train 24 (grid) or train + val 36 (final) -> ceil(half) of each class
        per_class = (24 if run["stage"] == "grid" else 36) // 4
        expected = 4 * math.ceil(per_class / 2)
        assert len(subset["indices"]) == expected == record["data"]["train_examples"]  # type: ignore[index]
        assert record["data"]["eval_examples"] == (12 if run["stage"] == "grid" else 20)  # type: ignore[index]


def test_num_tokens_sweep_runs_the_protocol_once_per_length(tiny_tasks_dir: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    common = ["run", "--task", "tiny", "--tasks-dir", str(tiny_tasks_dir), "--results", str(tmp_path),
              "--stage", "final", "--set", "base_lr=0.1", "--set", "weight_decay=0.0"]
    assert main([*common, "--method", "no_share", "--num-tokens", "2,4,8"]) == 0
    out = capsys.readouterr().out
    assert all(f"(num_tokens {n})" in out for n in (2, 4, 8))
    finals = [r for r in records(tmp_path).values() if r["run"]["stage"] == "final"]  # type: ignore[index]
    by_length: dict[int, set[int]] = {}
    for r in finals:
        by_length.setdefault(r["run"]["hparams"]["num_tokens"], set()).add(r["params"]["trainable"])  # type: ignore
    # No-share deep prefix, E = num_tokens // 2 positions: 2 layers x (key + value) x 32 per position
    assert {n: t.pop() for n, t in by_length.items()} == {2: 128, 4: 256, 8: 512}
    assert main([*common, "--method", "linear", "--num-tokens", "4"]) == 2  # linear has no num_tokens


def test_sample_efficiency_study_runs_and_reports(tiny_tasks_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "studies"
    assert main(["study", "sample-efficiency", "--suite", "tiny", "--methods", "linear,full_ft", "--reference",
                 "full_ft", "--fractions", "0.5,1.0", "--tasks-dir", str(tiny_tasks_dir), "--results",
                 str(tmp_path / "runs"), "--out", str(out_dir), "--resamples", "200"]) == 0
    assert "area under the score-vs-fraction curve" in capsys.readouterr().out
    report = json.loads((out_dir / "sample-efficiency-tiny.json").read_text())
    assert report["fractions"] == [0.5, 1.0] and report["missing"] == []
    for method in ("linear", "full_ft"):
        low, high = report["mean"][method]
        assert report["area"][method] == pytest.approx((low + high) / 2)  # trapezoid over [0.5, 1] / 0.5
    full = [json.loads(p.read_text())["metrics"]["top1"]
            for p in (tmp_path / "runs" / "tiny/colors/linear/final").glob("*/run.json")
            if "data_fraction" not in json.loads(p.read_text())["run"]]
    assert report["mean"]["linear"][1] == pytest.approx(float(np.mean(full)))
    tests = report["tests"]
    assert [(t["fraction"], t["method"], t["n"]) for t in tests] == [(0.5, "linear", 20), (1.0, "linear", 20)]
    assert all(0 < t["p"] <= t["p_holm"] <= 1 for t in tests)
    markdown = (out_dir / "sample-efficiency-tiny.md").read_text()
    assert "![Score vs training fraction](sample-efficiency-tiny.svg)" in markdown
    assert (out_dir / "sample-efficiency-tiny.svg").read_text().count("<svg") == 1


@pytest.mark.slow
def test_prefix_length_study_reports_scores_parameters_and_cost(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "studies"
    assert main(["study", "prefix-length", "--suite", "tiny", "--methods", "no_share,deep_share", "--lengths", "2,4",
                 "--tasks-dir", str(tiny_tasks_dir), "--results", str(tmp_path / "runs"), "--out", str(out_dir),
                 "--cost-batch", "4", "--cost-steps", "2"]) == 0
    report = json.loads((out_dir / "prefix-length-tiny.json").read_text())
    assert report["lengths"] == [2, 4] and all(v is not None for v in report["mean"]["no_share"])
    assert report["trainable"]["no_share"] == [128, 256]  # E = 1, 2 positions x 2 layers x (key + value) x 32
    cost = {(row["share_type"], row["length"]): row for row in report["cost"]}
    assert len(cost) == 4 * 2 and all(row["step_ms"] > 0 for row in cost.values())
    assert cost[("None (no_share)", 4)]["trainable"] == cost[("None (no_share)", 4)]["stored"] == 256
    mlp, linear = cost[("MLP (deep_share)", 4)], cost[("linear (deep_share)", 4)]
    assert mlp["stored"] == linear["stored"] == 256  # the reparameterisation is trained, not stored
    assert mlp["trainable"] > mlp["stored"] and linear["trainable"] > linear["stored"]
    assert cost[("identity (simple_share)", 4)]["trainable"] == 2 * 4 * 32  # N = 4 prompts per layer, no MLP
    assert "## Cost of the length and of the reparameterisation" in (out_dir / "prefix-length-tiny.md").read_text()


@pytest.mark.slow
def test_initialisation_study_on_the_mini_data_to_text_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "studies"
    assert main(["study", "init", "--task", "mini/e2e", "--methods", "no_share", "--words", "summarize",
                 "--examples", "16,32", "--seeds", "101", "--results", str(tmp_path / "runs"), "--out",
                 str(out_dir), "--resamples", "100"]) == 0
    assert "examples: best" in capsys.readouterr().out
    report = json.loads((out_dir / "init-mini-e2e.json").read_text())
    assert report["inits"] == ["random", " summarize"] and report["sizes"] == [16, 32]
    assert report["metric"] == "BLEU" and all(v is not None for v in report["mean"][" summarize"])
    runs = [json.loads(p.read_text())["run"] for p in (tmp_path / "runs").rglob("run.json")]
    assert sorted((r["hparams"]["init_text"] or "", r["train_examples"]) for r in runs) == [
        ("", 16), ("", 32), (" summarize", 16), (" summarize", 32)]
    assert [(t["size"], t["init"]) for t in report["tests"]] == [(16, " summarize"), (32, " summarize")]
    assert "## Tests: random − word initialisation" in (out_dir / "init-mini-e2e.md").read_text()
