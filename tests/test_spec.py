"""Spec loading: includes, strict fields, and errors that name the file, the field and the allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.spec import PAPER_BASE_LRS, PAPER_SEEDS, PAPER_WEIGHT_DECAYS, ProtocolSpec, load_task, read_yaml

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
