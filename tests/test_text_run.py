"""The language path end to end on the offline mini tasks: train, decode, score, store, resume, leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.store import RunStore

pytest.importorskip("transformers")

FAST = ["--set", "base_lr=0.003", "--seeds", "101"]


@pytest.fixture
def small_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "runs"


def _final(results: Path, task: str, method: str) -> dict:
    (record,) = [r for r in RunStore(results).records() if r["run"]["task"] == task
                 and r["run"]["method"] == method and r["run"]["stage"] == "final"]
    return record


@pytest.mark.parametrize(("task", "primary", "layers", "first_layer"),
                         [pytest.param("mini/e2e", "BLEU", 4, "layer 0", marks=pytest.mark.slow),  # CI's slow tier
                          pytest.param("mini/xsum", "ROUGE-2", 6, "encoder self 0", marks=pytest.mark.slow)])
def test_mini_language_task_runs_end_to_end(task: str, primary: str, layers: int, first_layer: str,
                                            small_protocol: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    results = small_protocol
    args = ["run", "--task", task, "--method", "deep_share", *FAST, "--results", str(results)]
    assert main(args) == 0
    record = _final(results, task, "deep_share")
    metrics = record["metrics"]
    assert record["status"] == "completed" and metrics["primary"] == primary
    assert 0.0 <= metrics[primary] <= 100.0 and metrics["split"] == "test"
    outputs = [json.loads(line) for line in (Path(record["path"]) if "path" in record else
                                             next(results.rglob("outputs.jsonl"))).read_text().splitlines()]
    assert len(outputs) == record["data"]["eval_examples"]
    assert all(isinstance(o["hypothesis"], str) for o in outputs) and outputs[0]["stats"]
    assert record["params"]["trainable"] > 0 and record["params"]["stored"] > 0
    # A second identical command is a no-op: the record is reused, not retrained.
    before = record["created_at"]
    assert main(args) == 0
    assert _final(results, task, "deep_share")["created_at"] == before
    assert main(["leaderboard", "--task", task, "--results", str(results)]) == 0
    assert f"({primary})" in capsys.readouterr().out
    # The final PEFT run keeps its trained prefix; the attention analysis reads it (prefix share per layer/head).
    run_dir = next((results / task / "deep_share" / "final").iterdir())
    assert main(["analyze", "attention", str(run_dir), "--examples", "3"]) == 0
    assert capsys.readouterr().out.count("prefix positions") == layers
    report = json.loads((run_dir / "analysis" / "attention.json").read_text())
    assert report["examples"] == 3 and len(report["layers"]) == layers and report["layers"][0] == first_layer
    assert set(report["prefix_positions"]) == {record["run"]["hparams"]["num_tokens"] // 2}  # E = num_tokens // 2
    assert len(report["prefix_share"][0]) == 4  # heads
    assert all(0.0 < share < 1.0 for row in report["prefix_share"] for share in row)
    assert (run_dir / "analysis" / "prefix-share.png").read_bytes()[:4] == b"\x89PNG"
    assert not (run_dir / "analysis" / "cls-maps.png").exists()


def test_vpt_on_text_is_a_clear_error(small_protocol: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--task", "mini/e2e", "--method", "vpt_deep", *FAST, "--results", str(small_protocol)]) == 2
    assert "VPT is a vision method" in capsys.readouterr().err


def test_score_command_on_a_predictions_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from bench import registry
    from bench.data.text import read_text_split

    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    task = registry.load_task_by_name("mini/xsum")
    items = read_text_split(task.data, "test", task.name).items
    perfect = tmp_path / "perfect.txt"
    perfect.write_text("\n".join(i.references[0] for i in items) + "\n")
    assert main(["score", "--task", "mini/xsum", "--predictions", str(perfect), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)["scores"]
    assert scores["ROUGE-2"] == pytest.approx(100.0)
    short = tmp_path / "short.txt"
    short.write_text("one line\n")
    assert main(["score", "--task", "mini/xsum", "--predictions", str(short)]) == 2
    assert "predictions for" in capsys.readouterr().err
