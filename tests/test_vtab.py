"""VTAB-1k in the NOAH layout: specs, `bench data fetch vtab` from a zip or folder (and offline), `bench data
status`, and broken input that must exit 2 without corrupting the cache or the run store."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from bench import registry
from bench.cli import main

CLASSES = {"natural": 7, "specialized": 4, "structured": 8}


def write_noah_task(folder: Path, classes: int, test_lines: int = 30) -> None:
    """A NOAH-format task folder: 12 small JPEGs, lists with VTAB-1k's sizes (lines may repeat images)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (folder / "images" / "train").mkdir(parents=True)
    names = []
    for i in range(12):
        name = f"images/train/{i:06d}.jpg"
        Image.fromarray(rng.integers(0, 255, size=(20, 24, 3), dtype=np.uint8)).save(folder / name, quality=90)
        names.append(name)
    for split, count in {"train800": 800, "val200": 200, "train800val200": 1000, "test": test_lines}.items():
        lines = [f"{names[i % len(names)]} {i % classes}" for i in range(count)]
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def vtab_zip(tmp_path: Path) -> Path:
    source = tmp_path / "src" / "vtab-1k"
    write_noah_task(source / "dtd", 47)
    write_noah_task(source / "kitti", 4)
    archive = tmp_path / "vtab-1k.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in source.rglob("*"):
            handle.write(path, path.relative_to(source.parent).as_posix())
    return archive


def test_vtab_suite_has_19_tasks_in_three_groups() -> None:
    suite, tasks = registry.resolve_tasks("vtab")
    assert suite is not None and len(tasks) == 19
    assert {g: len(m) for g, m in suite.groups.items()} == CLASSES
    by_name = {t.name: t for t in tasks}
    assert by_name["vtab/kitti_dist"].data.num_classes == 4  # not VPT config's 196
    assert by_name["vtab/sun397"].data.num_classes == 397 and by_name["vtab/clevr_count"].data.num_classes == 8
    for task in tasks:
        assert task.data.images.resize == (224, 224) and task.data.images.crop is None and not task.data.images.flip
        assert task.protocol.batch_size == 128 and 0.05 in task.protocol.grid["base_lr"]
        assert len(task.protocol.grid["base_lr"]) * len(task.protocol.grid["weight_decay"]) == 40
        assert task.protocol.final_stage.train == ["train800val200"] and task.protocol.final_stage.eval == "test"
        assert task.group in CLASSES


def test_list_tasks_shows_24_vision_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "tasks"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]]
    assert len([n for n in names if n.startswith(("fgvc/", "vtab/"))]) == 24


def test_dry_run_plans_855_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_DATA", str(tmp_path))
    assert main(["run", "--task", "vtab", "--method", "deep_share", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "855 runs" in out and "Data not present yet for 19 task(s)" in out and "bench data fetch vtab" in out


def test_fetch_from_zip_then_status(vtab_zip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "data"))
    code = main(["data", "fetch", "vtab", "--from", str(vtab_zip)])
    assert code == 2  # 17 of the 19 tasks are not in this small archive
    out = capsys.readouterr().out
    assert (tmp_path / "data" / "vtab-1k" / "dtd" / "train800.txt").is_file()
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[2:] if line.strip()}
    assert rows["vtab/dtd"] == "ready" and rows["vtab/kitti_dist"] == "ready" and rows["vtab/svhn"] == "missing"
    assert not list((tmp_path / "data").glob(".vtab-1k.extracting-*"))
    assert main(["data", "status", "--task", "vtab/dtd"]) == 0
    assert "ready" in capsys.readouterr().out


def test_fetch_from_a_folder_links_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "mine" / "vtab-1k"
    write_noah_task(source / "dtd", 47)
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "data"))
    main(["data", "fetch", "vtab", "--from", str(source)])
    assert (tmp_path / "data" / "vtab-1k").is_symlink()
    assert registry.load_task_by_name("vtab/dtd").data.resolved_root().joinpath("val200.txt").is_file()


def test_fetch_offline_says_how_to_get_the_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "fetch", "vtab", "--dest", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert "XiN0919/VTAB-1k" in err and "--from PATH" in err


def test_zip_with_escaping_paths_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("../outside.txt", "x")
    assert main(["data", "fetch", "vtab", "--from", str(archive), "--dest", str(tmp_path / "v")]) == 2
    assert not (tmp_path / "outside.txt").exists()


@pytest.mark.parametrize(("damage", "state", "message"), [
    ("label", "corrupt", "label in 0..3"),
    ("short", "corrupt", "expected 200"),
    ("unknown_path", "incomplete", "1 of 13 listed images are missing"),
])
def test_status_finds_broken_lists(damage: str, state: str, message: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "vtab-1k" / "kitti"
    write_noah_task(folder, 4)
    lines = (folder / "val200.txt").read_text().splitlines()
    if damage == "label":
        lines[5] = "images/train/000001.jpg 4"
    elif damage == "short":
        lines = lines[:-1]
    else:
        lines[7] = "images/train/nowhere.jpg 1"
    (folder / "val200.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("BENCH_DATA", str(tmp_path))
    from bench.train.modality import data_status as check_task

    status = check_task(registry.load_task_by_name("vtab/kitti_dist"))
    assert status.state == state and message in status.detail


def test_corrupt_jpeg_stops_the_run_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "vtab-1k" / "dtd"
    write_noah_task(root, 47)
    (root / "images/train/000003.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "small_dtd.yaml").write_text(f"""
data:
  source: image_list
  root: {root}
  splits: {{train800: train800.txt, val200: val200.txt, train800val200: train800val200.txt, test: test.txt}}
  expected_sizes: {{train800: 800, val200: 200, train800val200: 1000}}
  num_classes: 47
  images: {{resize: [16, 16]}}
backbone:
  model: vit_base_patch16_224
  model_kwargs: {{img_size: 16, patch_size: 8, embed_dim: 32, depth: 1, num_heads: 2}}
  pretrained: false
protocol:
  epochs: 1
  warmup_epochs: 0
  grid_stage: {{train: [train800], eval: val200}}
  final_stage: {{train: [train800val200], eval: test}}
""")
    results = tmp_path / "runs"
    assert main(["run", "--task", "small_dtd", "--method", "linear", "--tasks-dir", str(tasks),
                 "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "000003.jpg" in err and "corrupt or unreadable image" in err
    from bench.spec import default_cache_dir

    cached = [p for p in (default_cache_dir() / "images").rglob("*") if p.is_file() and p.suffix != ".lock"]
    assert cached == []  # nothing half-written in the cache
    assert not list(results.rglob("run.json")) and not list(results.rglob("*.tmp"))
