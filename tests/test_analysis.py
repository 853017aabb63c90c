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
    # Damaged trained parameters are refused (checked against the record), and kept: a stored result is never deleted.
    trained = run_dir / "trained.pt"
    data = trained.read_bytes()
    trained.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert main(["analyze", "attention", str(run_dir)]) == 2
    assert "does not match its checksum" in capsys.readouterr().err and trained.is_file()


def test_attention_analysis_without_prefix_and_without_weights(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    linear = final_run(tiny_tasks_dir, tmp_path / "runs", "linear")
    assert main(["analyze", "attention", str(linear), "--images", "2", "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "attention.json").read_text())
    assert report["prefix_positions"] == [0, 0] and report["prefix_share"] == [[0.0, 0.0], [0.0, 0.0]]
    full = final_run(tiny_tasks_dir, tmp_path / "runs", "full_ft")
    assert not (full / "trained.pt").exists()  # full fine-tuning keeps no weights
    assert main(["analyze", "attention", str(full)]) == 2


def test_language_recorded_probabilities_equal_eager_attention_over_the_past() -> None:
    """GPT-2 with a prefix: the recorded probabilities are exactly what transformers' eager attention returns when
    the prefix is given as past_key_values, and recording changes no logit."""
    transformers = pytest.importorskip("transformers")
    from tests.test_language_backbones import TableProvider, tiny_gpt2

    torch.manual_seed(0)
    backbone = tiny_gpt2(shift=False)
    positions = 3
    keys, values = torch.randn(2, positions, 4, 8), torch.randn(2, positions, 4, 8)
    backbone.set_prefix_provider(TableProvider(keys, values))
    ids = torch.randint(0, 50, (1, 7))
    plain = backbone(input_ids=ids).logits
    backbone.attention_record = []
    recorded = backbone(input_ids=ids).logits
    torch.testing.assert_close(plain, recorded)
    assert [(layer, prefix) for layer, prefix, _ in backbone.attention_record] == [(0, positions), (1, positions)]

    reference = transformers.GPT2LMHeadModel(backbone.model.config).eval()
    reference.load_state_dict(backbone.model.state_dict())
    reference.set_attn_implementation("eager")
    cache = transformers.DynamicCache()
    for layer in range(2):
        cache.update(keys[layer].transpose(0, 1)[None].contiguous(), values[layer].transpose(0, 1)[None].contiguous(),
                     layer)
    out = reference(input_ids=ids, attention_mask=torch.ones(1, positions + 7, dtype=torch.long),
                    past_key_values=cache, position_ids=torch.arange(7)[None], output_attentions=True)
    for (_, _, ours), theirs in zip(backbone.attention_record, out.attentions, strict=True):
        assert ours.shape == (1, 4, 7, positions + 7)
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    backbone.attention_record = None


def test_bart_records_all_three_prefix_stacks() -> None:
    pytest.importorskip("transformers")
    from tests.test_language_backbones import TableProvider, tiny_bart

    torch.manual_seed(0)
    backbone = tiny_bart()
    backbone.set_prefix_provider(TableProvider(torch.randn(6, 2, 4, 8), torch.randn(6, 2, 4, 8)))
    ids = torch.randint(3, 60, (1, 6))
    backbone.attention_record = []
    backbone(input_ids=ids, decoder_input_ids=ids[:, :4])
    shapes = {layer: tuple(probs.shape) for layer, _, probs in backbone.attention_record}
    assert shapes == {0: (1, 4, 6, 8), 1: (1, 4, 6, 8), 2: (1, 4, 4, 6), 3: (1, 4, 4, 6),  # self: 2 prefix + own
                      4: (1, 4, 4, 8), 5: (1, 4, 4, 8)}  # cross: 2 prefix + 6 encoder positions
    for _, _, probs in backbone.attention_record:
        torch.testing.assert_close(probs.sum(-1), torch.ones_like(probs.sum(-1)))
    decoder_self = backbone.attention_record[2][2][0, 0]
    assert decoder_self[0, 3:].abs().max() == 0  # causal: the first decoder token sees the prefix and itself only
    backbone.attention_record = None
