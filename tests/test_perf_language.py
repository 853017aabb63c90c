"""`bench perf language` (bench/perf/language.py, projection.py): a training step and a beam-search decode per method
at a language task's shapes, with the task's hyper-parameters, and the hours of its whole protocol. The real shapes
(GPT-2 medium, BART-large) are checked on the meta device; the measured steps run on the mini backbones. Numbers,
not timings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from bench import registry
from bench.backbones import build_backbone
from bench.cli import main
from bench.perf import language as perf_language
from bench.perf.measured import measured_task
from bench.perf.projection import project_language, text_split_sizes

LANGUAGE = ("no_share", "simple_share", "deep_share", "lora", "full_ft")


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Tiny models run fastest on one thread, and on a busy machine two threads wait on each other."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def task(name: str) -> Any:
    return registry.load_task_by_name(name)


def classes(*names: str) -> list[Any]:
    return [registry.get_method(name) for name in names]


def test_plans_take_the_tasks_hyper_parameters_and_batch() -> None:
    xsum = {p.label: p for p in perf_language.plans(task("nlg/xsum"), classes(*LANGUAGE))}
    assert xsum["deep_share"].hparams == {"num_tokens": 400, "mlp_hidden": 512, "dropout": 0.0}
    assert xsum["lora"].hparams == {"rank": 8} and {p.batch for p in xsum.values()} == {16}
    e2e = perf_language.plans(task("nlg/e2e"), classes("no_share"), batch=2,
                              overrides={"no_share": {"init_text": None, "num_tokens": 6}})
    assert e2e[0].hparams == {"num_tokens": 6, "dropout": 0.0} and e2e[0].batch == 2
    assert perf_language.plans(task("nlg/e2e"), classes("no_share"))[0].hparams["init_text"] == " summarize"


@pytest.mark.parametrize(("name", "model", "shape"), [
    # E2E: typical lengths (the data is not here), batch 10, 16 inputs x 5 beams
    ("nlg/e2e", "gpt2-medium", (10, 33, 24, 16, 5, 24)),
    # XSum: 512-token articles, 30-token summaries, batch 16, 32 inputs x 6 beams
    ("nlg/xsum", "facebook/bart-large", (16, 512, 30, 32, 6, 30)),
])
def test_the_real_shapes(name: str, model: str, shape: tuple[int, ...]) -> None:
    real, note = measured_task(task(name), "task")
    assert real.backbone.model == model and real.backbone.pretrained is False and "random weights" in note
    with torch.device("meta"):
        backbone = build_backbone(real.backbone)
    assert backbone.hidden_size == 1024
    chosen = perf_language.choose_shape(real, backbone, real.protocol.batch_size, None, None, None)
    assert (chosen.batch, chosen.source_tokens, chosen.target_tokens, chosen.decode_batch, chosen.num_beams,
            chosen.new_tokens) == shape
    assert chosen.lengths.startswith("typical")


def test_lengths_are_capped_by_the_protocol_and_the_backbone() -> None:
    xsum, _ = measured_task(task("nlg/xsum"), "mini")
    backbone = build_backbone(xsum.backbone)  # mini BART: 256 positions
    capped = perf_language.choose_shape(xsum, backbone, 2, None, None, None)
    assert (capped.source_tokens, capped.target_tokens) == (256, 30) and "cut" in capped.lengths
    given = perf_language.choose_shape(xsum, backbone, 2, 3, 8, 900)  # target above max_target_tokens 60
    assert (given.source_tokens, given.target_tokens, given.new_tokens, given.decode_batch) == (8, 60, 60, 3)


def test_lengths_are_measured_from_the_data_when_it_is_here() -> None:
    mini = task("mini/e2e")
    backbone = build_backbone(mini.backbone)
    measured = perf_language.lengths_from_data(mini, backbone)
    assert measured is not None and 5 < measured[0] < 128 and 3 < measured[1] < 64
    shape = perf_language.choose_shape(mini, backbone, 2, None, None, None)
    assert (shape.source_tokens, shape.target_tokens) == measured and shape.lengths.startswith("mean of")


def test_the_e2e_and_xsum_protocols_in_numbers() -> None:
    e2e, xsum = task("nlg/e2e"), task("nlg/xsum")
    assert text_split_sizes(e2e, "train") == (42_061, None) and text_split_sizes(e2e, "test") == (None, 630)
    # E2E Deep-share: one grid point (no search), 5 seeds x 5 epochs x 42,061 pairs; 630 test tables per seed
    deep = project_language(e2e, registry.get_method("deep_share"), train_examples_per_s=100.0,
                            decode_items_per_s=2.0, setup_s=10.0)
    assert (deep.train_images, deep.eval_images, deep.runs, deep.unknown_sizes) == (5 * 5 * 42_061, 5 * 630, 5, [])
    assert deep.hours == pytest.approx((5 * 5 * 42_061 / 100 + 5 * 630 / 2 + 5 * 10) / 3600)
    # XSum Simple-share: 2 grid points and 5 seeds, 30 epochs each; 500 val articles decoded after every epoch of
    # every run, val once per grid run, test once per final run
    simple = project_language(xsum, registry.get_method("simple_share"), 100.0, 2.0)
    assert simple.train_images == 30 * 7 * 204_045
    assert simple.eval_images == 2 * 11_332 + 5 * 11_334 + 7 * 30 * 500 and simple.runs == 7


def test_a_method_that_needs_the_missing_tokenizer_is_reported_as_skipped(tmp_path: Path) -> None:
    from bench.backbones.files import ASSETS_DIR

    (tmp_path / "config.json").write_bytes((ASSETS_DIR / "mini_gpt2" / "config.json").read_bytes())
    e2e = task("nlg/e2e")
    spec = e2e.backbone.model_copy(update={"model": str(tmp_path), "pretrained": False})
    pristine = build_backbone(spec)
    assert not pristine.tokenizer
    entries = perf_language.plans(e2e, classes("no_share", "deep_share"), batch=2)

    def shape_of(entry: Any, positions: int) -> Any:
        return perf_language.choose_shape(e2e, pristine, entry.batch, 1, 6, 3, positions)

    reported: list[str] = []
    costs = perf_language.measure(e2e, entries, pristine, shape_of, steps=1, decodes=1,
                                  device=torch.device("cpu"), precision="fp32", warmup=0,
                                  on_cost=lambda cost: reported.append(perf_language.report_row(cost)))
    assert costs[0].skipped is not None and "tokenizer of" in costs[0].skipped  # init_text " summarize"
    assert costs[1].skipped is None and costs[1].step_seconds > 0 and costs[1].decode_seconds > 0
    assert costs[1].shape.new_tokens == 3 and costs[1].decode_tokens_per_s > 0
    assert reported[0].startswith("no_share       skipped: the tokenizer of") and reported[1].startswith("deep_share")


def test_perf_language_on_the_mini_backbones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = tmp_path / "committed"
    assert main(["perf", "language", "--task", "nlg/xsum", "--backbone", "mini", "--method", "deep_share,lora",
                 "--batch", "2", "--decode-batch", "2", "--source-tokens", "12", "--target-tokens", "4",
                 "--steps", "1", "--warmup", "0", "--perf-dir", str(tmp_path), "--record", str(record)]) == 0
    out = capsys.readouterr().out
    assert "nlg/xsum: backbone bench:mini_bart (mini/xsum's mini backbone, a fast check)" in out
    assert "decode: 2 inputs x 6 beams, 4 new tokens forced (length penalty 0.8)" in out
    rows = [line for line in out.splitlines() if line.strip().startswith(("deep_share ", "lora "))]
    assert len(rows) == 4  # a figure row and a projection row each
    assert "30.61 M training pairs, 131.7 k inputs decoded, 5 runs" in out  # 5 x 30 x 204,045; 5 x (30 x 500 + 11,334)
    figures = json.loads((tmp_path / "language.json").read_text())
    deep = figures["tasks"]["nlg/xsum"]["methods"]["deep_share"]
    assert deep["hparams"] == {"num_tokens": 400, "mlp_hidden": 512, "dropout": 0.0}
    assert deep["shape"]["source_tokens"] == 12 and deep["train_tokens_per_s"] > 0 and deep["decode_s"] > 0
    assert figures["tasks"]["nlg/xsum"]["projection"]["deep_share"]["train_images"] == 5 * 30 * 204_045
    slug = f"cpu-{figures['machine']['cpu_cores']}-cores"
    assert (record / f"language-{slug}.md").read_text().startswith("# `bench perf language` on CPU")


@pytest.mark.parametrize(("flags", "says"), [
    (["--task", "vtab/dtd"], "'vtab/dtd' is a vision task"),
    (["--set", "deep_share"], "--set 'deep_share' is not METHOD.NAME=VALUE"),
    (["--decode-batch", "0"], "--decode-batch must be at least 1"),
])
def test_bad_perf_language_input_exits_2(flags: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["perf", "language", *flags]) == 2
    err = capsys.readouterr().err
    assert says in err and "\n\n" not in err.strip()


@pytest.mark.slow
def test_a_gpt2_medium_step_and_decode_on_the_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real GPT-2 medium (random weights from the shipped config, no hub), one short sequence."""
    assert main(["perf", "language", "--task", "nlg/e2e", "--method", "deep_share", "--batch", "1",
                 "--decode-batch", "1", "--source-tokens", "8", "--target-tokens", "2", "--steps", "1",
                 "--warmup", "0", "--perf-dir", str(tmp_path)]) == 0
    figures = json.loads((tmp_path / "language.json").read_text())
    deep = figures["tasks"]["nlg/e2e"]["methods"]["deep_share"]
    assert deep["trainable"] == 10 // 2 * 1024 + 1024 * 512 + 512 + 512 * 24 * 2 * 1024 + 24 * 2 * 1024
    assert figures["tasks"]["nlg/e2e"]["backbone"]["model"] == "gpt2-medium"
