"""Spec loading: includes, strict fields, and errors that name the file, the field and the allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.spec import (
    PAPER_BASE_LRS,
    PAPER_SEEDS,
    PAPER_WEIGHT_DECAYS,
    ProtocolSpec,
    apply_profile,
    load_task,
    read_yaml,
)

BASE = """\
backbone: {model: vit_base_patch16_224, pretrained: false}
data:
  source: image_list
  splits: {train: train.txt, val: val.txt, test: test.txt}
  images: {resize: [224, 224]}
protocol: {batch_size: 64, epochs: 100}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_include_deep_merges_and_child_wins(tmp_path: Path) -> None:
    write(tmp_path, "_base.yaml", BASE)
    path = write(tmp_path, "dtd.yaml", "include: _base.yaml\ndata: {root: /data/dtd, num_classes: 47}\n"
                 "protocol: {batch_size: 128}\n")
    task = load_task(path, "vtab/dtd")
    assert task.name == "vtab/dtd"
    assert task.data.num_classes == 47 and task.data.source == "image_list"
    assert task.protocol.batch_size == 128 and task.protocol.epochs == 100


def test_protocol_defaults_are_the_papers() -> None:
    protocol = ProtocolSpec()
    assert protocol.grid == {"base_lr": PAPER_BASE_LRS, "weight_decay": PAPER_WEIGHT_DECAYS}
    assert protocol.seeds == PAPER_SEEDS == [42, 44, 82, 100, 800]
    assert (protocol.epochs, protocol.warmup_epochs, protocol.momentum, protocol.lr_scale_batch) == (100, 10, 0.9, 256)
    assert protocol.optimizer == "sgd"
    assert protocol.grid_stage.train == ["train"] and protocol.grid_stage.eval == "val"
    assert protocol.final_stage.train == ["train", "val"] and protocol.final_stage.eval == "test"


def test_unknown_field_names_file_field_and_allowed(tmp_path: Path) -> None:
    write(tmp_path, "_base.yaml", BASE)
    path = write(tmp_path, "t.yaml", "include: _base.yaml\ndata: {root: /d, num_classes: 3}\nprotocol: {epoch: 5}\n")
    with pytest.raises(BenchError) as info:
        load_task(path, "t")
    text = str(info.value)
    assert str(path) in text and "protocol.epoch" in text and "unknown field 'epoch'" in text
    assert "epochs" in text and "warmup_epochs" in text  # the allowed fields are listed


def test_unknown_field_inside_method_override(tmp_path: Path) -> None:
    write(tmp_path, "_base.yaml", BASE)
    path = write(tmp_path, "t.yaml", "include: _base.yaml\ndata: {root: /d, num_classes: 3}\n"
                 "protocol: {methods: {full_ft: {lr: 1}}}\n")
    with pytest.raises(BenchError, match="protocol.methods.full_ft.lr") as info:
        load_task(path, "t")
    assert "warmup_epochs" in str(info.value)


def test_bad_literal_lists_allowed_values(tmp_path: Path) -> None:
    write(tmp_path, "_base.yaml", BASE)
    path = write(tmp_path, "t.yaml", "include: _base.yaml\ndata: {root: /d, num_classes: 3}\n"
                 "protocol: {optimizer: adam}\n")
    with pytest.raises(BenchError, match=r"protocol\.optimizer.*'sgd' or 'adamw'"):
        load_task(path, "t")


def test_missing_field(tmp_path: Path) -> None:
    write(tmp_path, "_base.yaml", BASE)
    path = write(tmp_path, "t.yaml", "include: _base.yaml\ndata: {root: /d}\n")
    with pytest.raises(BenchError, match=r"data\.num_classes.*required field is missing"):
        load_task(path, "t")


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "data:\n  source: image_list\n  splits: {train: a.txt\n")
    with pytest.raises(BenchError) as info:
        read_yaml(path)
    assert "malformed YAML at line" in str(info.value) and str(path) in str(info.value)


def test_include_cycle_and_missing_include(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "include: b.yaml\n")
    write(tmp_path, "b.yaml", "include: a.yaml\n")
    with pytest.raises(BenchError, match="include cycle"):
        read_yaml(tmp_path / "a.yaml")
    write(tmp_path, "c.yaml", "include: nowhere.yaml\n")
    with pytest.raises(BenchError, match="nowhere.yaml.*file not found"):
        read_yaml(tmp_path / "c.yaml")


def test_stage_must_use_defined_splits(tmp_path: Path) -> None:
    write(tmp_path, "_base.yaml", BASE)
    path = write(tmp_path, "t.yaml", "include: _base.yaml\ndata: {root: /d, num_classes: 3}\n"
                 "protocol: {final_stage: {train: [train, trainval], eval: test}}\n")
    with pytest.raises(BenchError, match="split 'trainval'"):
        load_task(path, "t")


def test_warmup_must_be_shorter_than_training(tmp_path: Path) -> None:
    write(tmp_path, "_base.yaml", BASE)
    path = write(tmp_path, "t.yaml", "include: _base.yaml\ndata: {root: /d, num_classes: 3}\n"
                 "protocol: {epochs: 5, warmup_epochs: 5}\n")
    with pytest.raises(BenchError, match="warmup_epochs"):
        load_task(path, "t")


def test_shorter_side_resize_needs_crop(tmp_path: Path) -> None:
    write(tmp_path, "_base.yaml", BASE)
    path = write(tmp_path, "t.yaml", "include: _base.yaml\ndata: {root: /d, num_classes: 3, images: {resize: 256}}\n")
    with pytest.raises(BenchError, match="crop"):
        load_task(path, "t")


# ---------------------------------------------------------------- profiles (--protocol paper)

PROFILED = """\
include: _base.yaml
data: {root: /d, num_classes: 3}
profiles:
  paper:
    protocol: {precision: fp32, methods: {no_share: {grid: {base_lr: [50.0], weight_decay: [0.0]}}}}
"""


def test_profile_deep_merges_over_the_task_and_is_recorded(tmp_path: Path) -> None:
    write(tmp_path, "_base.yaml", BASE + "profiles:\n  paper: {protocol: {epochs: 50}}\n")
    path = write(tmp_path, "t.yaml", PROFILED)
    clean = load_task(path, "t")
    assert (clean.profile, clean.protocol.precision, clean.protocol.epochs, clean.protocol.methods) == \
        ("clean", "auto", 100, {})
    paper = load_task(path, "t", "paper")
    assert paper.profile == "paper" and paper.protocol.precision == "fp32"
    assert paper.protocol.epochs == 50  # from the include's profile: profiles merge like everything else
    assert paper.protocol.batch_size == 64  # untouched values stay
    assert paper.protocol.methods["no_share"].grid == {"base_lr": [50.0], "weight_decay": [0.0]}
    assert apply_profile(clean, "paper") == paper  # a loaded clean spec can be resolved later
    with pytest.raises(BenchError, match="already resolved with profile 'paper'"):
        apply_profile(paper, "paper")
    assert load_task(path, "t", "clean") == clean


def test_unknown_profile_names_file_and_allowed_profiles(tmp_path: Path) -> None:
    write(tmp_path, "_base.yaml", BASE)
    path = write(tmp_path, "t.yaml", PROFILED)
    with pytest.raises(BenchError) as info:
        load_task(path, "t", "papr")
    text = str(info.value)
    assert str(path) in text and "unknown profile 'papr'" in text and "Did you mean 'paper'" in text
    assert "Allowed: clean, paper" in text


def test_broken_profile_is_an_error_even_when_not_chosen(tmp_path: Path) -> None:
    write(tmp_path, "_base.yaml", BASE)
    path = write(tmp_path, "t.yaml", PROFILED.replace("precision: fp32", "precision: fp8"))
    with pytest.raises(BenchError) as info:
        load_task(path, "t")
    assert info.value.field == "profiles.paper.protocol.precision" and "with profile 'paper' applied" in str(info.value)
    path = write(tmp_path, "u.yaml", PROFILED.replace("precision: fp32", "epoch: 3"))
    with pytest.raises(BenchError, match="unknown field 'epoch'") as info:
        load_task(path, "u")
    assert info.value.field == "profiles.paper.protocol.epoch"


@pytest.mark.parametrize("text, field", [
    ("profiles:\n  paper: {name: other}\n", "profiles.paper.name"),
    ("profiles:\n  clean: {protocol: {epochs: 3}}\n", "profiles.clean"),
    ("profiles:\n  paper: 3\n", "profiles"),
    ("profile: paper\n", "profile"),
])
def test_profile_misuse(tmp_path: Path, text: str, field: str) -> None:
    write(tmp_path, "_base.yaml", BASE)
    path = write(tmp_path, "t.yaml", "include: _base.yaml\ndata: {root: /d, num_classes: 3}\n" + text)
    with pytest.raises(BenchError) as info:
        load_task(path, "t")
    assert info.value.field == field and str(path) in str(info.value)


def test_paper_only_fields_validate(tmp_path: Path) -> None:
    from bench.spec import GenerationSpec

    with pytest.raises(ValueError, match="min_length .* needs beam_scoring: legacy"):
        GenerationSpec(min_length=5)
    assert GenerationSpec(min_length=5, beam_scoring="legacy").min_length == 5
    lm = ("backbone: {kind: bart, model: m}\nmetric: xsum\nprimary_metric: ROUGE-2\n"
          "data: {source: xsum, root: /d, splits: {train: a, val: b, test: c}}\n")
    path = write(tmp_path, "x.yaml", lm + "protocol: {format: official}\n")
    with pytest.raises(BenchError, match="GPT-2 sequence format"):
        load_task(path, "x")
    path = write(tmp_path, "y.yaml", lm + "metric_options: {rouge: batch}\n")
    with pytest.raises(BenchError) as info:
        load_task(path, "y")
    assert info.value.field == "metric_options.rouge"
