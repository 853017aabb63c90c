"""`bench perf data`: the data path, measured side by side in one process.

- cached: the run's pipeline (images decoded once into the uint8 cache, then crop / flip / normalise on tensors);
- decode: what a plain loader does, decoding and resizing every JPEG at every epoch (PIL, one process);
both on the same generated JPEGs (photo-sized, 500 × 375) with the task's image settings, plus one training step
of a method on the task's backbone at the same batch, to give the share of step time spent waiting for data.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.method import Method
from bench.spec import TaskSpec

GOAL_WAIT_SHARE = 0.05


@dataclass(frozen=True)
class DataPathCost:
    images: int
    batch: int
    cached_images_per_s: float
    decode_images_per_s: float
    step_s: float
    method: str

    def wait_share(self, images_per_s: float) -> float:
        """Share of a training step spent producing its batch, when data and compute do not overlap."""
        data_s = self.batch / images_per_s
        return data_s / (data_s + self.step_s)


def _write_jpegs(root: Path, count: int, classes: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    lines = []
    for i in range(count):
        base = rng.integers(0, 255, size=(1, 1, 3))
        noise = rng.normal(0, 30, size=(375, 500, 3)) + np.linspace(0, 60, 500)[None, :, None]
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"{i:05d}.jpg", quality=90)
        lines.append(f"images/{i:05d}.jpg {i % classes}")
    (root / "train.txt").write_text("\n".join(lines) + "\n")


def measure(task: TaskSpec, method_cls: type[Method], batch: int, images: int, device: torch.device,
            precision: str) -> DataPathCost:
    from bench.data.splits import decode_image
    from bench.data.tensor_store import load_split
    from bench.data.transforms import ImageBatches
    from bench.perf.methods import measure as measure_steps

    with tempfile.TemporaryDirectory(prefix="bench-perf-data-") as folder:
        root = Path(folder)
        _write_jpegs(root / "data", images, task.data.num_classes)
        data = task.data.model_copy(update={"source": "image_list", "root": str(root / "data"),
                                            "splits": {"train": "train.txt"}, "prepare": None,
                                            "expected_sizes": {}})
        split = load_split(data, "train", task.name, cache_dir=root / "cache")
        batches = ImageBatches(split, data.images, device)
        generator = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        for pixels, _ in batches.epoch(batch, generator):
            pixels.sum().item()  # force the work (and a device sync)
        cached = images / (time.perf_counter() - start)

        paths = sorted((root / "data" / "images").glob("*.jpg"))
        mean = torch.tensor(data.images.mean).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(data.images.std).view(1, 3, 1, 1) * 255.0
        start = time.perf_counter()
        for first in range(0, len(paths), batch):
            arrays = [decode_image(p, data.images) for p in paths[first:first + batch]]
            side = data.images.crop
            if side is not None:
                arrays = [a[(a.shape[0] - side) // 2:(a.shape[0] - side) // 2 + side,
                            (a.shape[1] - side) // 2:(a.shape[1] - side) // 2 + side] for a in arrays]
            tensor = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
            ((tensor - mean) / std).to(device).sum().item()
        decoded = images / (time.perf_counter() - start)
    _, costs = measure_steps(task, [method_cls], batch, steps=5, device=device, precision=precision)
    return DataPathCost(images, batch, cached, decoded, costs[0].seconds, method_cls.name)


def report(task: TaskSpec, cost: DataPathCost, device: torch.device, precision: str) -> str:
    lines = [f"data path for {task.name} ({cost.images} generated 500x375 JPEGs, batch {cost.batch}, {device} "
             f"{precision}); one {cost.method} training step: {cost.step_s * 1000:.1f} ms"]
    for name, rate in (("cached tensors (bench)", cost.cached_images_per_s),
                       ("decode JPEG every epoch", cost.decode_images_per_s)):
        share = cost.wait_share(rate)
        verdict = "ok" if share <= GOAL_WAIT_SHARE else f"over the {GOAL_WAIT_SHARE:.0%} goal"
        lines.append(f"  {name:<26} {rate:10.0f} images/s   waiting for data {share:6.1%} of step time ({verdict})")
    lines.append(f"  ratio cached / decode: {cost.cached_images_per_s / cost.decode_images_per_s:.1f}x")
    return "\n".join(lines)
