"""The offline mini suite: generated data is deterministic and balanced, the shipped backbone matches its
metadata and the task specs, and its frozen features transfer (they beat a random-init backbone)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import registry
from bench.data import generated
from bench.data.generated import SPLIT_SIZES, TASK_PREPARERS, pretrain_arrays
from bench.data.splits import _call_prepare
from bench.spec import read_yaml

ROOT = Path(__file__).resolve().parents[1]
ASSET = ROOT / "bench" / "assets" / "mini_vit"


def folder_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("name", sorted(TASK_PREPARERS))
def test_generated_tasks_are_deterministic_and_balanced(name: str, tmp_path: Path) -> None:
    TASK_PREPARERS[name](tmp_path / "a")
    TASK_PREPARERS[name](tmp_path / "b")
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")
    before = (tmp_path / "a" / "train.txt").stat().st_mtime_ns
    TASK_PREPARERS[name](tmp_path / "a")  # idempotent: a finished folder is left alone
    assert (tmp_path / "a" / "train.txt").stat().st_mtime_ns == before
    task = registry.load_task_by_name(f"mini/{name}")
    for split, size in SPLIT_SIZES.items():
        lines = (tmp_path / "a" / f"{split}.txt").read_text().splitlines()
        labels = np.array([int(line.split()[1]) for line in lines])
        assert len(lines) == size and labels.max() < task.data.num_classes
        counts = np.bincount(labels, minlength=task.data.num_classes)
        assert counts.max() - counts.min() <= 1
    assert not list(tmp_path.glob(".a.tmp-*"))


def test_processes_preparing_the_same_task_at_once_build_it_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers starting together on a fresh machine: the first builds the data, the others wait for it. Before the
    preparation lock, a second builder replaced the finished folder while the first read it (a listed image was
    missing, `make demo --workers 2` stopped)."""
    builds: list[int] = []

    def slow_counting(root: Path) -> None:
        with generated.staged_folder(root) as staging:
            if staging is None:
                return
            builds.append(threading.get_ident())
            (staging / "train.txt").write_text("images/train/000001.png 0\n")
            time.sleep(0.5)  # long enough for the other thread to arrive while the data is being written

    monkeypatch.setattr(generated, "prepare_counting", slow_counting)
    root = tmp_path / "counting"
    seen: list[bool] = []

    def prepare() -> None:
        _call_prepare("bench.data.generated:prepare_counting", root, "mini/counting")
        seen.append((root / ".complete").exists() and (root / "train.txt").exists())

    threads = [threading.Thread(target=prepare) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.1)
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and seen == [True, True]
    assert not list(tmp_path.glob(".counting.tmp-*"))


def test_pretraining_data_is_a_pure_function_of_its_seed() -> None:
    a, la = pretrain_arrays(50, 0)
    b, lb = pretrain_arrays(50, 0)
    c, _ = pretrain_arrays(50, 1)
    assert np.array_equal(a, b) and np.array_equal(la, lb) and not np.array_equal(a, c)
    assert a.shape == (50, 32, 32, 3) and a.dtype == np.uint8


def test_shipped_backbone_matches_its_metadata_and_the_task_specs() -> None:
    meta = json.loads(ASSET.with_suffix(".json").read_text())
    data = ASSET.with_suffix(".safetensors").read_bytes()
    assert hashlib.sha256(data).hexdigest() == meta["sha256"]
    assert len(data) < 2 * 2**20  # small enough to commit
    base = read_yaml(ROOT / "tasks" / "mini" / "_base.yaml")["backbone"]
    assert base["model"] == meta["model"] and base["model_kwargs"] == meta["model_kwargs"]
    assert meta["pretrain_heldout_accuracy"] > 70.0  # 12 classes: chance is 8.3%


def cls_features(task_name: str, pretrained: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from bench.backbones.vit import build_vit
    from bench.data.tensor_store import load_split
    from bench.data.transforms import ImageBatches

    task = registry.load_task_by_name(task_name)
    torch.manual_seed(0)
    backbone = build_vit(task.backbone.model_copy(update={"pretrained": pretrained})).eval()
    out = {}
    for split in ("train", "test"):
        batches = ImageBatches(load_split(task.data, split, task.name), task.data.images, torch.device("cpu"))
        with torch.no_grad():
            feats, labels = zip(*[(backbone(x), y) for _, x, y in batches.in_order(256)], strict=True)
        out[split] = (torch.cat(feats).numpy(), torch.cat(labels).numpy())
    return out


def probe_accuracy(features: dict[str, tuple[np.ndarray, np.ndarray]], ridge: float = 1.0) -> float:
    """A closed-form ridge-regression probe on standardised features (one-hot targets): independent of the
    runner, deterministic, no extra dependency."""
    x, y = features["train"]
    mean, std = x.mean(0), x.std(0) + 1e-6
    design = np.c_[(x - mean) / std, np.ones(len(x))]
    targets = np.eye(int(y.max()) + 1)[y]
    weights = np.linalg.solve(design.T @ design + ridge * np.eye(design.shape[1]), design.T @ targets)
    x_test, y_test = features["test"]
    predictions = (np.c_[(x_test - mean) / std, np.ones(len(x_test))] @ weights).argmax(1)
    return 100.0 * float((predictions == y_test).mean())


@pytest.mark.slow  # in CI's slow tier: keeps `make test` within 3 minutes on 2 cores
def test_pretrained_features_transfer_to_the_mini_tasks() -> None:
    gains = {}
    for name in TASK_PREPARERS:
        pretrained = probe_accuracy(cls_features(f"mini/{name}", True))
        random_init = probe_accuracy(cls_features(f"mini/{name}", False))
        gains[name] = (pretrained, random_init)
        assert pretrained < 99.0, f"{name}: the linear probe leaves no headroom for other methods"
    better = [n for n, (p, r) in gains.items() if p > r + 10.0]
    assert len(better) >= 2, gains
