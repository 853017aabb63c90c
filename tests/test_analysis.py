"""bench analyze attention: explicit attention probabilities (analysis only), prefix share, CLS maps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench import registry
from bench.backbones.vit import PrefixAttention
from bench.cli import main
from bench.train.model import PeftModel


def test_recorded_probabilities_are_the_ones_the_fused_kernel_uses() -> None:
    from tests.test_methods import TINY, build_vit

    torch.manual_seed(0)
    method_cls = registry.get_method("no_share")
    model = PeftModel(build_vit(TINY), method_cls(method_cls.parse_hparams({"num_tokens": 6})), 3).eval()
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        plain = model(images)
        layers = [m for m in model.backbone.modules() if isinstance(m, PrefixAttention)]
        for layer in layers:
            layer.record = []
        recorded = model(images)
    torch.testing.assert_close(plain, recorded)  # recording changes nothing
    for layer in layers:
        assert layer.record is not None
        (probs,) = layer.record
        tokens = probs.shape[-2]
        assert probs.shape[-1] == tokens + 3  # E = 6 // 2 prefix keys in front of the tokens' keys
        torch.testing.assert_close(probs.sum(-1), torch.ones_like(probs.sum(-1)))


def final_run(tiny_tasks_dir: Path, results: Path, method: str) -> Path:
    assert main(["run", "--task", "tiny", "--method", method, "--tasks-dir", str(tiny_tasks_dir), "--results",
                 str(results), "--stage", "final", "--seeds", "42", "--set", "base_lr=0.1",
                 "--set", "weight_decay=0.0"]) == 0
    return next((results / "tiny/colors" / method / "final").iterdir())


def test_attention_analysis_of_a_prefix_run(tiny_tasks_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = final_run(tiny_tasks_dir, tmp_path / "runs", "no_share")
    assert (run_dir / "trained.pt").is_file()
    assert main(["analyze", "attention", str(run_dir), "--images", "4"]) == 0
    out = capsys.readouterr().out
    assert out.count("prefix positions") == 2  # two layers
    report = json.loads((run_dir / "analysis" / "attention.json").read_text())
    assert report["prefix_positions"] == [10, 10]  # the default num_tokens 20 -> E = 10
    shares = report["prefix_share"]
    assert len(shares) == 2 and len(shares[0]) == 2  # layers x heads
    assert all(0.0 < s < 1.0 for row in shares for s in row)
    for picture in ("prefix-share.png", "cls-maps.png"):
        assert (run_dir / "analysis" / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_attention_analysis_without_prefix_and_without_weights(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    linear = final_run(tiny_tasks_dir, tmp_path / "runs", "linear")
    assert main(["analyze", "attention", str(linear), "--images", "2", "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "attention.json").read_text())
    assert report["prefix_positions"] == [0, 0] and report["prefix_share"] == [[0.0, 0.0], [0.0, 0.0]]
    full = final_run(tiny_tasks_dir, tmp_path / "runs", "full_ft")
    assert not (full / "trained.pt").exists()  # full fine-tuning keeps no weights
    assert main(["analyze", "attention", str(full)]) == 2
