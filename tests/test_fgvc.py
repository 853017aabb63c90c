"""FGVC: VPT's shipped split files, one label map from train (the NABirds trap), the FGVC image protocol,
and parameter counts per data set (reference §1.1)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from bench import registry
from bench.data.splits import read_split
from bench.errors import BenchError

COUNTS = {  # train / val / test / classes, counted from the VPT JSONs (docs/data.md)
    "fgvc/cub": (5394, 600, 5794, 200),
    "fgvc/nabirds": (21536, 2393, 24633, 555),
    "fgvc/flowers": (1020, 1020, 6149, 102),
    "fgvc/dogs": (10800, 1200, 8580, 120),
    "fgvc/cars": (7329, 815, 8041, 196),
}


@pytest.fixture
def empty_image_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BENCH_DATA", str(tmp_path))
    for folder in ("CUB_200_2011/images", "nabirds/images", "flowers102", "stanford_dogs/Images", "stanford_cars"):
        (tmp_path / "fgvc" / folder).mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_shipped_vpt_splits(name: str, empty_image_roots: Path) -> None:
    task = registry.load_task_by_name(name)
    sizes = [len(read_split(task.data, split, name).paths) for split in ("train", "val", "test")]
    assert (*sizes, task.data.num_classes) == COUNTS[name]
    train = read_split(task.data, "train", name)
    assert set(np.unique(train.labels)) == set(range(task.data.num_classes))
    assert task.data.images.resize == 256 and task.data.images.crop == 224 and task.data.images.flip
    assert task.protocol.final_stage.train == ["train"] and task.protocol.batch_size == 64
    assert 0.05 not in task.protocol.grid["base_lr"] and len(task.protocol.grid["base_lr"]) == 9


def test_nabirds_val_uses_the_train_label_map(empty_image_roots: Path) -> None:
    task = registry.load_task_by_name("fgvc/nabirds")
    val = read_split(task.data, "val", "fgvc/nabirds")
    assert len(np.unique(val.labels)) == 553  # two classes have no val image ...
    with gzip.open(Path(registry.PACKAGE_DIR) / "assets/fgvc_splits/nabird/train.json.gz", "rt") as handle:
        train_ids = sorted(set(json.load(handle).values()))
    with gzip.open(Path(registry.PACKAGE_DIR) / "assets/fgvc_splits/nabird/val.json.gz", "rt") as handle:
        val_json = json.load(handle)
    # ... yet every val label is the train-map index of its class id, not a per-split re-numbering
    expected = [train_ids.index(class_id) for class_id in val_json.values()]
    assert val.labels.tolist() == expected
    assert max(val.labels) == 554


def test_cub_string_ids_map_in_numeric_order(empty_image_roots: Path) -> None:
    task = registry.load_task_by_name("fgvc/cub")
    test = read_split(task.data, "test", "fgvc/cub")
    first = dict(zip(test.paths, test.labels.tolist(), strict=True))
    assert first[test.paths[0]] == 0 and test.paths[0].parts[-2] == "001.Black_footed_Albatross"


def test_missing_images_say_what_to_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "nothing-here"))
    task = registry.load_task_by_name("fgvc/cub")
    with pytest.raises(BenchError, match=r"data not found.*CUB_200_2011\.tgz"):
        read_split(task.data, "train", "fgvc/cub")


@pytest.mark.parametrize(("name", "deep_share", "no_share", "simple_share", "head"), [
    ("fgvc/cub", 1_438_272, 184_320, 92_160, 153_800),
    ("fgvc/nabirds", 1_806_912, 921_600, 460_800, 426_795),
    ("fgvc/flowers", 1_392_192, 92_160, 46_080, 78_438),
    ("fgvc/dogs", 2_267_712, 1_843_200, 921_600, 92_280),
    ("fgvc/cars", 3_189_312, 3_686_400, 1_843_200, 150_724),
])
def test_fgvc_parameter_counts_match_the_reference(name: str, deep_share: int, no_share: int, simple_share: int,
                                                   head: int) -> None:
    from bench.params import count_parameters

    task = registry.load_task_by_name(name)
    counts = {}
    for method in ("deep_share", "no_share", "simple_share"):
        counts[method] = count_parameters(task, registry.get_method(method), task.protocol.methods[method].hparams)
    assert (counts["deep_share"].trained, counts["no_share"].trained, counts["simple_share"].trained) == (
        deep_share, no_share, simple_share)
    assert counts["deep_share"].stored == counts["no_share"].trained  # the MLP is trained, not stored
    assert counts["no_share"].head == head


def write_fgvc_fixture(root: Path, splits: Path) -> None:
    """A few images in CUB's folder layout and VPT-format JSON split files (val lacks class '003')."""
    from PIL import Image

    rng = np.random.default_rng(0)
    layout = {"train": ["001", "002", "003"] * 4, "val": ["001", "002"], "test": ["001", "002", "003"] * 2}
    for split, ids in layout.items():
        entries = {}
        for i, class_id in enumerate(ids):
            relative = f"{class_id}.Bird_{class_id}/{split}_{i}.jpg"
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            size = (int(rng.integers(40, 80)), int(rng.integers(40, 80)))
            Image.fromarray(rng.integers(0, 255, size=(*size, 3), dtype=np.uint8)).save(root / relative)
            entries[relative] = class_id
        with gzip.open(splits / f"{split}.json.gz", "wt") as handle:
            json.dump(entries, handle)


def test_fgvc_fixture_runs_the_protocol(tmp_path: Path) -> None:
    from bench.cli import main
    from bench.store import RunStore

    root, splits, tasks = tmp_path / "images", tmp_path / "splits", tmp_path / "tasks"
    for folder in (root, splits, tasks):
        folder.mkdir()
    write_fgvc_fixture(root, splits)
    (tasks / "birds.yaml").write_text(f"""
data:
  source: vpt_json
  root: {root}
  num_classes: 3
  splits: {{train: {splits}/train.json.gz, val: {splits}/val.json.gz, test: {splits}/test.json.gz}}
  images: {{resize: 36, crop: 32, train_crop: random, flip: true}}
backbone:
  model: vit_base_patch16_224
  model_kwargs: {{img_size: 32, patch_size: 8, embed_dim: 32, depth: 2, num_heads: 2}}
  pretrained: false
protocol:
  epochs: 2
  warmup_epochs: 1
  batch_size: 4
  grid: {{base_lr: [0.5], weight_decay: [0.0]}}
  final_stage: {{train: [train], eval: test}}
  seeds: [42]
""")
    results = tmp_path / "runs"
    assert main(["run", "--task", "birds", "--method", "deep_share", "--set", "num_tokens=4",
                 "--tasks-dir", str(tasks), "--results", str(results)]) == 0
    (record,) = RunStore(results).records()
    assert record["run"]["train_splits"] == ["train"] and record["data"]["train_examples"] == 12
    assert record["data"]["eval_examples"] == 6


def test_shipped_split_files_are_checksummed(empty_image_roots: Path, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    from bench.data import splits

    task = registry.load_task_by_name("fgvc/flowers")
    shipped = splits.split_file(task.data, "val")
    assert splits._shipped_checksums()[shipped.resolve()]
    altered = tmp_path / "val.json.gz"
    content = bytearray(shipped.read_bytes())
    content[100] ^= 0xFF  # one flipped byte
    altered.write_bytes(bytes(content))
    monkeypatch.setitem(splits._shipped_checksums(), altered.resolve(), splits._shipped_checksums()[shipped.resolve()])
    with pytest.raises(BenchError, match="does not match its checksum"):
        splits._load_json(altered)
    assert task.data.expected_sizes == {"train": 1020, "val": 1020, "test": 6149}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_each_official_layout_runs_end_to_end(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Images written at the paths VPT's JSONs name under each archive's own folder layout, read through the
    real task spec (only the split files are cut down to two classes), trained and tested."""
    from PIL import Image

    from bench.cli import main
    from bench.data.splits import split_file
    from bench.store import RunStore

    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "data"))
    task = registry.load_task_by_name(name)
    root = task.data.resolved_root()
    rng = np.random.default_rng(0)
    cut = tmp_path / "splits"
    cut.mkdir()
    kept_classes = None
    for split, per_class in (("train", 3), ("val", 1), ("test", 2)):
        with gzip.open(split_file(task.data, split), "rt") as handle:
            entries: dict[str, object] = json.load(handle)
        if kept_classes is None:
            kept_classes = sorted(set(entries.values()), key=lambda c: int(str(c).split(".")[0]))[:2]
        chosen: dict[str, object] = {}
        for relative, class_id in entries.items():
            if class_id in kept_classes and sum(c == class_id for c in chosen.values()) < per_class:
                chosen[relative] = class_id
        for relative in chosen:
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            height, width = (int(v) for v in rng.integers(40, 70, size=2))
            pixels = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / relative)
        with gzip.open(cut / f"{split}.json.gz", "wt") as handle:
            json.dump(chosen, handle)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    spec = registry.builtin_dir("tasks")
    (tasks / "cut.yaml").write_text(f"""
include: {spec / (name + '.yaml')}
data:
  splits: {{train: {cut}/train.json.gz, val: {cut}/val.json.gz, test: {cut}/test.json.gz}}
  expected_sizes: {{train: 6, val: 2, test: 4}}
  num_classes: 2
backbone:
  model: vit_base_patch16_224
  model_kwargs: {{patch_size: 32, embed_dim: 32, depth: 1, num_heads: 2}}
  pretrained: false
protocol: {{epochs: 1, warmup_epochs: 0, grid: {{base_lr: [0.1], weight_decay: [0.0]}}, seeds: [42]}}
""")
    results = tmp_path / "runs"
    assert main(["run", "--task", "cut", "--method", "linear", "--tasks-dir", str(tasks),
                 "--results", str(results)]) == 0
    records = list(RunStore(results).records())
    final = [r for r in records if r["run"]["stage"] == "final"]
    assert len(final) == 1 and final[0]["data"]["train_examples"] == 6 and final[0]["data"]["eval_examples"] == 4


def test_run_without_data_names_every_missing_task_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from bench.cli import main

    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "nothing"))
    results = tmp_path / "runs"
    assert main(["run", "--task", "fgvc", "--method", "linear", "--results", str(results)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "5 tasks have no data" in err and f"{tmp_path}/nothing/fgvc/CUB_200_2011/images" in err
    assert "${BENCH_DATA}" not in err and "nabirds.tar.gz" in err and "car_ims.tgz" in err
    assert not results.exists()  # refused before anything was created
