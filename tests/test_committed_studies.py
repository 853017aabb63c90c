"""The committed study reports (results/studies/) are what the committed runs (results/example-runs/) give, byte
for byte (`make studies` rebuilds them); they contain what the studies promise: curves, areas, tests with n and p,
cost per share type, and attention analyses of a vision and a language run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "results" / "example-runs"
COMMITTED = ROOT / "results" / "studies"
PREFIX_METHODS = "no_share,simple_share,deep_share"


@pytest.mark.slow
def test_committed_study_reports_rebuild_from_the_committed_runs(tmp_path: Path) -> None:
    common = ["--results", str(RUNS), "--out", str(tmp_path), "--no-run"]
    assert main(["study", "sample-efficiency", "--suite", "mini", "--methods", PREFIX_METHODS, *common]) == 0
    assert main(["study", "init", "--task", "mini/e2e", "--methods", "no_share", "--examples", "50,100,200",
                 "--seeds", "101,42,44", *common]) == 0
    assert main(["study", "prefix-length", "--suite", "mini", "--methods", PREFIX_METHODS, "--lengths",
                 "2,4,8,16,32", "--cost-steps", "1", *common]) == 0
    for name in ("sample-efficiency-mini", "init-mini-e2e"):
        for suffix in (".md", ".json", ".svg"):
            assert (tmp_path / f"{name}{suffix}").read_bytes() == (COMMITTED / f"{name}{suffix}").read_bytes(), name
    # The prefix-length cost table is measured anew each time; everything computed from the runs must agree.
    assert (tmp_path / "prefix-length-mini.svg").read_bytes() == (COMMITTED / "prefix-length-mini.svg").read_bytes()
    ours, theirs = (json.loads((d / "prefix-length-mini.json").read_text()) for d in (tmp_path, COMMITTED))
    assert {k: v for k, v in ours.items() if not k.startswith("cost")} == {
        k: v for k, v in theirs.items() if not k.startswith("cost")}
    assert [(c["share_type"], c["length"], c["trainable"], c["stored"]) for c in ours["cost"]] == [
        (c["share_type"], c["length"], c["trainable"], c["stored"]) for c in theirs["cost"]]
    table = (tmp_path / "prefix-length-mini.md").read_text().split("## Cost")[0]
    assert table == (COMMITTED / "prefix-length-mini.md").read_text().split("## Cost")[0]


def test_committed_sample_efficiency_report_has_curves_areas_and_tests() -> None:
    report = json.loads((COMMITTED / "sample-efficiency-mini.json").read_text())
    assert report["fractions"] == [0.1, 0.25, 0.5, 1.0] and report["reference"] == "deep_share"
    for method in PREFIX_METHODS.split(","):
        means = report["mean"][method]
        assert len(means) == 4 and means[0] < means[-1]  # more data helps every variant on these tasks
        assert min(means) <= report["area"][method] <= max(means)
    tests = report["tests"]
    assert len(tests) == 4 * 3 * 2  # fractions x tasks x (deep_share vs the two others)
    assert all(t["n"] == 500 and 0 < t["p"] <= 1 and t["p"] <= t["p_holm"] <= 1 for t in tests)
    markdown = (COMMITTED / "sample-efficiency-mini.md").read_text()
    assert "![Score vs training fraction](sample-efficiency-mini.svg)" in markdown and "p (Holm)" in markdown


def test_committed_attention_analyses() -> None:
    vision = json.loads((COMMITTED / "attention-mini-novel_shapes-deep_share" / "attention.json").read_text())
    assert vision["layers"] == [f"layer {i}" for i in range(4)] and vision["prefix_positions"] == [4] * 4
    language = json.loads((COMMITTED / "attention-mini-xsum-deep_share" / "attention.json").read_text())
    assert language["layers"][0] == "encoder self 0" and language["layers"][-1] == "decoder cross 1"
    for report in (vision, language):
        assert report["examples"] == 16 and report["run"]["method"] == "deep_share"
        assert all(0.0 <= share <= 1.0 for row in report["prefix_share"] for share in row)
    pictures = ["attention-mini-novel_shapes-deep_share/prefix-share.png",
                "attention-mini-novel_shapes-deep_share/cls-maps.png",
                "attention-mini-xsum-deep_share/prefix-share.png"]
    for picture in pictures:
        assert (COMMITTED / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
