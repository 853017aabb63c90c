"""Shared fixtures: a tiny image-list data set written in the NOAH format and a task spec around it.

The tiny task trains in about a second on a CPU, so runner behaviour can be tested end to end.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

TINY_CLASSES = 4
TINY_SPLITS = {"train": 24, "val": 12, "test": 20}


def write_tiny_dataset(root: Path, size: int = 16, seed: int = 0) -> Path:
    """Class c = a noisy image whose dominant colour is the c-th of four colours."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    colours = np.array([[220, 40, 40], [40, 200, 40], [40, 40, 220], [200, 200, 40]], dtype=np.float64)
    for split, count in TINY_SPLITS.items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(count):
            label = i % TINY_CLASSES
            pixels = colours[label] + rng.normal(0, 40, size=(size, size, 3))
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
            relative = f"images/{split}/{i:06d}.png"
            image.save(root / relative)
            lines.append(f"{relative} {label}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


TINY_TASK = """\
description: four noisy colours (test fixture)
data:
  source: image_list
  root: {root}
  splits: {{train: train.txt, val: val.txt, test: test.txt}}
  num_classes: 4
  images: {{resize: [16, 16]}}
backbone:
  model: vit_base_patch16_224
  model_kwargs: {{img_size: 16, patch_size: 4, embed_dim: 32, depth: 2, num_heads: 2, mlp_ratio: 2.0}}
  pretrained: false
protocol:
  epochs: 3
  warmup_epochs: 1
  batch_size: 8
  eval_every: 1
  grid: {{base_lr: [1.0, 0.1], weight_decay: [0.001, 0.0]}}
  seeds: [42, 44]
  methods:
    full_ft:
      grid: {{base_lr: [0.01], weight_decay: [0.0]}}
      warmup_epochs: 1
"""


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own decode cache and results folder; nothing is written to the user's home."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("BENCH_CACHE", str(cache))
    monkeypatch.setenv("BENCH_RESULTS", str(tmp_path_factory.mktemp("results")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture
def tiny_tasks_dir(tmp_path: Path, tiny_data: Path) -> Path:
    """A tasks folder holding 'tiny/colors' (and a suite 'tiny' of it) for --tasks-dir."""
    folder = tmp_path / "tasks"
    (folder / "tiny").mkdir(parents=True)
    (folder / "tiny" / "colors.yaml").write_text(TINY_TASK.format(root=tiny_data))
    (folder / "tiny.yaml").write_text(textwrap.dedent("""\
        description: the test fixture suite
        tasks: [tiny/colors]
    """))
    return folder
