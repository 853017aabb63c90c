"""`--protocol paper` end to end: the profile reaches the run (identity, precision, training text, decoding,
backbone mode, metric variants, the stored decoding settings), the dry run prints the official values, and hub
access fails fast offline."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from bench import api
from bench.cli import main
from bench.errors import BenchError
from bench.registry import load_task_by_name
from bench.store import RunStore
from bench.train.device import autocast_dtype, task_precision

pytest.importorskip("transformers")

FAST = ["--set", "base_lr=0.003", "--seeds", "101", "--stage", "final"]


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "runs"


def _finals(results: Path, task: str) -> list[dict[str, Any]]:
    return [r for r in RunStore(results).records() if r["run"]["task"] == task and r["run"]["stage"] == "final"]


# ---------------------------------------------------------------- precision


def test_task_precision_fixes_reduced_precision_on_cuda_only() -> None:
    assert task_precision("auto", "bf16", "cuda") == "bf16"
    assert task_precision("fp32", "bf16", "cuda") == "fp32"
    assert task_precision("fp16", "bf16", "cuda") == "fp16"
    assert task_precision("fp16", "fp32", "cpu") == "fp32"
    assert task_precision("bf16", "fp32", "cpu") == "fp32"
    assert autocast_dtype("fp16") is torch.float16 and autocast_dtype("fp32") is None


def test_an_explicit_precision_that_contradicts_the_profile_is_refused() -> None:
    request = api.RunRequest(task="mini/novel_shapes", methods=("linear",), precision="bf16", protocol="paper")
    with pytest.raises(BenchError) as caught:
        api.pairs(request)
    assert caught.value.field == "protocol.precision" and "fixes precision fp32" in str(caught.value)
    api.pairs(api.RunRequest(task="mini/novel_shapes", methods=("linear",), precision="bf16"))  # clean: fine


def test_unknown_protocol_exits_2_naming_the_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--task", "mini/novel_shapes", "--method", "linear", "--protocol", "papr", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "unknown profile 'papr'" in err and "paper" in err


# ---------------------------------------------------------------- identity and records


@pytest.mark.slow
def test_paper_runs_get_their_own_keys_and_say_so(results: Path) -> None:
    args = ["run", "--task", "mini/novel_shapes", "--method", "linear", *FAST, "--results", str(results)]
    assert main(args) == 0
    assert main([*args, "--protocol", "paper"]) == 0
    records = _finals(results, "mini/novel_shapes")
    assert sorted(r["task_spec"]["profile"] for r in records) == ["clean", "paper"]
    assert len({r["key"] for r in records}) == 2
    paper = next(r for r in records if r["task_spec"]["profile"] == "paper")
    assert paper["task_spec"]["protocol"]["precision"] == "fp32" and paper["run"]["precision"] == "fp32"
    # A smoke run in the same store; the leaderboard of each protocol shows only its own runs, never smoke runs.
    assert main([*args, "--limit", "20", "--epochs", "1"]) == 0
    clean_board = api.leaderboard("mini/novel_shapes", results=results)
    paper_board = api.leaderboard("mini/novel_shapes", results=results, protocol="paper")
    clean_cell = clean_board.cells[("mini/novel_shapes", "linear")]
    paper_cell = paper_board.cells[("mini/novel_shapes", "linear")]
    assert clean_cell.configuration != paper_cell.configuration and len(clean_cell.scores) == 1
    assert clean_board.set_aside == {"paper protocol": 1, "smoke": 1}
    assert paper_board.set_aside == {"clean protocol": 1, "smoke": 1} and paper_board.name.endswith("-paper")
    from bench.leaderboard.board import provenance_text

    assert "protocol 'paper'" in provenance_text(paper_board) and "1 smoke run" in provenance_text(clean_board)


# ---------------------------------------------------------------- language switches


def _batcher(name: str, profile: str | None) -> Any:
    from bench.train.text import TextBatcher, TextModality

    task = load_task_by_name(name, profile=profile)
    return TextBatcher(TextModality()._pristine(task), task), task


def test_official_format_puts_a_space_token_before_each_special_token(results: Path) -> None:
    clean, _ = _batcher("mini/e2e", None)
    paper, _ = _batcher("mini/e2e", "paper")
    pair = ("name : Aromi | food : Thai", "Aromi serves Thai food .")
    (ids_clean, _), = clean.training_examples([pair])
    (ids_paper, labels_paper), = paper.training_examples([pair])
    tok = clean.tokenizer
    space = tok(" ", add_special_tokens=False)["input_ids"]
    bos, eos = tok.bos_token_id, tok.eos_token_id
    source = tok(" " + pair[0], add_special_tokens=False)["input_ids"]
    target = tok(" " + pair[1], add_special_tokens=False)["input_ids"]
    assert ids_clean == [*source, bos, *target, eos]
    # ' {src} {bos} ' + tgt + ' {eos}': the trailing spaces of ' src ' and ' tgt ' are their own tokens.
    assert ids_paper == tok(" " + pair[0] + " ", add_special_tokens=False)["input_ids"] + [bos] + tok(
        " " + pair[1] + " ", add_special_tokens=False)["input_ids"] + [eos]
    assert ids_paper[len(source):len(source) + len(space)] == space
    assert labels_paper[: len(ids_paper) - len(labels_paper) or None].count(-100) >= len(source) + 1
    assert clean.encode_version != paper.encode_version  # the token cache never mixes the formats
    assert paper._text([]) == "Error" and clean._text([]) == ""


def _model(task: Any, method: str) -> Any:
    from bench.train.config import RunConfig
    from bench.train.text import TextModality

    modality = TextModality()
    method_cls = api.methods([method])[0]
    config = RunConfig(task, method, {}, {}, "final", 1, ("train",), "test")
    return modality.build_model(config, method_cls(method_cls.parse_hparams({})), modality.pristine_backbone(task))


def test_legacy_beam_scoring_decodes_with_the_legacy_search(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.generation as generation
    from bench.data.text import read_text_split

    batcher, task = _batcher("mini/e2e", "paper")
    model = _model(task, "no_share")
    calls: list[dict[str, Any]] = []
    real = generation.legacy_beam_search

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(generation, "legacy_beam_search", spy)
    items = read_text_split(task.data, "test", task.name).items[:3]
    hypotheses = batcher.generate(model, items, torch.device("cpu"), "fp32")
    assert len(hypotheses) == 3 and len(calls) == 1
    call = calls[0]
    # min_length 5 counts the prompt; max_length = each prompt + max_new_tokens; early stopping off.
    assert call["min_length"] == 5 and call["early_stopping"] is False
    prompts = [len(batcher._encode(" " + i.source + " ", 10_000, special=False)) + 1 for i in items]
    assert call["max_length"] == [n + task.protocol.generation.max_new_tokens for n in prompts]
    decoding = batcher.decoding(model)
    assert decoding["beam_scoring"] == "legacy" and decoding["format"] == "official"
    assert "model_generation_config" in decoding
    # The clean task decodes with the installed transformers' search.
    clean, clean_task = _batcher("mini/e2e", None)
    clean.generate(_model(clean_task, "no_share"), items, torch.device("cpu"), "fp32")
    assert len(calls) == 1


def batcher_backbone_of(task: Any) -> Any:
    from bench.train.text import TextModality

    return TextModality()._pristine(task)


def test_bad_words_ids_replace_the_newline_ban() -> None:
    batcher, task = _batcher("mini/e2e", None)
    assert batcher._banned() and all(len(ids) == 1 for ids in batcher._banned())
    changed = task.model_copy(update={"protocol": task.protocol.model_copy(update={
        "generation": task.protocol.generation.model_copy(update={"bad_words_ids": [[7], [8, 9]]})})})
    from bench.train.text import TextBatcher

    assert TextBatcher(batcher_backbone_of(task), changed)._banned() == [[7], [8, 9]]


def test_backbone_train_mode_keeps_the_frozen_backbones_dropout_on() -> None:
    for profile, expected in ((None, False), ("paper", True)):
        model = _model(load_task_by_name("mini/xsum", profile=profile), "no_share")
        model.train()
        assert model.backbone.training is expected
        assert any(m.training for m in model.backbone.modules()) is expected
        model.eval()
        assert not model.backbone.training


def test_metric_options_reach_the_score() -> None:
    from bench.data.text import read_text_split
    from bench.train.text import score_split

    clean = load_task_by_name("mini/xsum")
    paper = load_task_by_name("mini/xsum", profile="paper")
    split = read_text_split(clean.data, "test", clean.name)
    hypotheses = [item.source.split(".")[0] for item in split.items]
    global_mid = score_split(clean, split, hypotheses).scores["ROUGE-2"]
    batch_mean = score_split(paper, split, hypotheses).scores["ROUGE-2"]
    from bench.metrics import score

    refs = [list(i.references) for i in split.items]
    assert batch_mean == score("xsum", hypotheses, refs, rouge="batch_mean", rouge_seed=101).scores["ROUGE-2"]
    assert global_mid == score("xsum", hypotheses, refs).scores["ROUGE-2"]


def test_a_paper_language_run_records_its_decoding(results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.metrics

    monkeypatch.setattr(bench.metrics, "java_available", lambda: False)  # METEOR's JVM is not what is tested here
    args = ["run", "--task", "mini/e2e", "--method", "no_share", *FAST, "--results", str(results),
            "--protocol", "paper", "--limit", "24", "--epochs", "1"]
    assert main(args) == 0
    (record,) = _finals(results, "mini/e2e")
    decoding = record["metrics"]["decoding"]
    assert decoding["beam_scoring"] == "legacy" and decoding["early_stopping"] is False
    assert decoding["min_length"] == 5 and decoding["format"] == "official"
    assert record["task_spec"]["profile"] == "paper" and record["task_spec"]["metric_options"]["bleu"] == "pymteval"
    outputs = [json.loads(line) for line in next(results.rglob("outputs.jsonl")).read_text().splitlines()]
    assert all(o["hypothesis"] for o in outputs)  # an empty output is written as 'Error', never ''


# ---------------------------------------------------------------- the dry run shows the official values


def test_dry_run_prints_the_official_fixed_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--task", "fgvc", "--method", "deep_share,full_ft", "--protocol", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    rows: dict[tuple[str, ...], str] = {}
    for line in out.splitlines():  # the plan table comes first (the done / to-run table repeats the names)
        if line.startswith("fgvc/"):
            rows.setdefault(tuple(line.split()[:2]), line)
    # ReparamPrefix CV/scripts/<dataset>_prefix_deep_share.sh: lr, wd and prompt length per dataset
    assert "base_lr=25 weight_decay=0.0001 num_tokens=20" in rows[("fgvc/cub", "deep_share")]
    assert "base_lr=1 weight_decay=0.001 num_tokens=200" in rows[("fgvc/dogs", "deep_share")]
    assert "base_lr=10 weight_decay=0.0001 num_tokens=400" in rows[("fgvc/cars", "deep_share")]
    # VPT configs/base-finetune.yaml: batch 384; every run in fp32
    assert rows[("fgvc/cub", "full_ft")].split()[5] == "384"
    assert all(line.split()[6] == "fp32" for line in rows.values())
    assert out.startswith("protocol: paper")


def test_dry_run_of_the_language_suite_is_offline_and_shows_decoding(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    assert main(["run", "--task", "nlg", "--method", "deep_share", "--protocol", "paper", "--dry-run"]) == 0
    assert time.monotonic() - started < 60  # never retries the hub for split sizes
    out = capsys.readouterr().out
    assert "nlg/e2e: format official" in out and "beam search legacy (5 beams, early_stopping False)" in out
    assert "metrics rouge=batch_mean" in out and "fp16" in out


# ---------------------------------------------------------------- offline hub access


def test_hub_reads_fail_fast_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from bench import hub
    from bench.data.text import read_text_split

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    hub.offline_reason.cache_clear()
    try:
        assert hub.offline_reason() == "HF_HUB_OFFLINE is set"
        task = load_task_by_name("nlg/e2e")
        data = task.data.model_copy(update={"root": str(tmp_path / "absent")})
        started = time.monotonic()
        with pytest.raises(BenchError) as caught:
            read_text_split(data, "test", task.name)
        assert time.monotonic() - started < 30
        assert "offline: HF_HUB_OFFLINE is set" in str(caught.value) and "Traceback" not in str(caught.value)
    finally:
        hub.offline_reason.cache_clear()


def test_vtab_dry_run_searches_what_the_authors_searched(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--task", "vtab/dtd", "--method", "vpt_deep,deep_share", "--protocol", "paper",
                 "--dry-run"]) == 0
    rows: dict[str, str] = {}
    for line in capsys.readouterr().out.splitlines():  # the plan table first, then the done / to-run table
        if line.startswith("vtab/dtd"):
            rows.setdefault(line.split()[1], line)
    # VPT searched N in {1, 5, 10, 50, 100, 200} with lr x wd (tune_vtab.py); the prefix variants searched lr x wd
    assert "num_tokens×6" in rows["vpt_deep"] and "base_lr×10 weight_decay×4" in rows["vpt_deep"]
    assert "base_lr×" in rows["deep_share"] and rows["deep_share"].split()[5:7] == ["128", "fp32"]
