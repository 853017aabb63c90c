"""Generated offline data: the pre-training task of the mini backbone and the three mini-suite tasks.

Everything is a pure function of fixed seeds (numpy and Pillow only), so the mini suite needs no download.
Downstream tasks are written to disk in the NOAH / VTAB-1k list format and then read by the same loader as
real data; the pre-training task is never written (it stays in memory).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

SIZE = 32
SPLIT_SIZES = {"train": 240, "val": 60, "test": 500}
PRETRAIN_SHAPES = ("circle", "ring", "square", "diamond", "triangle", "plus", "cross", "hbar", "vbar", "star",
                   "half_disc", "corner")
PRETRAIN_CLASSES = len(PRETRAIN_SHAPES)
# The mini/novel_shapes task: categories the backbone never saw in pre-training (like ImageNet -> Caltech).
NOVEL_SHAPES = ("hexagon", "ellipse", "crescent", "arrow", "heart", "hourglass", "tee", "frame")

# ---------------------------------------------------------------- drawing primitives


def _coords(scale: int) -> tuple[np.ndarray, np.ndarray]:
    n = SIZE * scale
    axis = (np.arange(n) + 0.5) / scale
    return np.meshgrid(axis, axis, indexing="xy")


_X2, _Y2 = _coords(2)


def shape_alpha(kind: str, cx: float, cy: float, size: float, angle: float) -> np.ndarray:
    """Coverage (0..1) of a shape at 32x32, rendered at 2x and averaged (anti-aliased)."""
    c, s = np.cos(angle), np.sin(angle)
    u = (_X2 - cx) * c + (_Y2 - cy) * s
    v = -(_X2 - cx) * s + (_Y2 - cy) * c
    r = np.hypot(u, v)
    t = size / 4
    if kind == "circle":
        mask = r < size
    elif kind == "ring":
        mask = (r < size) & (r > 0.55 * size)
    elif kind == "square":
        mask = np.maximum(abs(u), abs(v)) < 0.85 * size
    elif kind == "diamond":
        mask = abs(u) + abs(v) < 1.1 * size
    elif kind == "triangle":
        mask = (v < 0.7 * size) & (v > -0.9 * size) & (abs(u) < (v + 0.9 * size) * 0.62)
    elif kind == "plus":
        mask = ((abs(u) < t) & (abs(v) < size)) | ((abs(v) < t) & (abs(u) < size))
    elif kind == "cross":
        a, b = (u + v) / np.sqrt(2), (u - v) / np.sqrt(2)
        mask = ((abs(a) < t) & (abs(b) < size)) | ((abs(b) < t) & (abs(a) < size))
    elif kind == "hbar":
        mask = (abs(v) < t * 1.2) & (abs(u) < size)
    elif kind == "vbar":
        mask = (abs(u) < t * 1.2) & (abs(v) < size)
    elif kind == "star":
        mask = r < size * (0.55 + 0.45 * np.cos(5 * np.arctan2(v, u)))
    elif kind == "half_disc":
        mask = (r < size) & (v < 0)
    elif kind == "corner":
        mask = ((abs(u + 0.6 * size) < t) & (abs(v) < size)) | ((abs(v - 0.6 * size) < t) & (abs(u) < size))
    elif kind == "hexagon":
        sector = np.mod(np.arctan2(v, u), np.pi / 3) - np.pi / 6
        mask = r * np.cos(sector) < size * np.cos(np.pi / 6)
    elif kind == "ellipse":
        mask = (u / size) ** 2 + (v / (0.5 * size)) ** 2 < 1
    elif kind == "crescent":
        mask = (r < size) & (np.hypot(u - 0.45 * size, v) > 0.8 * size)
    elif kind == "arrow":
        mask = ((abs(v) < t) & (u > -size) & (u < 0.1 * size)) | ((u >= 0) & (u < size) & (abs(v) < (size - u) * 0.8))
    elif kind == "heart":
        x, y = u / size * 1.25, -v / size * 1.25 + 0.2
        mask = (x**2 + y**2 - 1) ** 3 - x**2 * y**3 < 0
    elif kind == "hourglass":
        mask = (abs(u) < abs(v) * 0.9 + 0.5) & (abs(v) < size)
    elif kind == "tee":
        mask = ((abs(v + 0.7 * size) < t) & (abs(u) < size)) | ((abs(u) < t) & (abs(v) < size))
    elif kind == "frame":
        mask = (np.maximum(abs(u), abs(v)) < 0.9 * size) & (np.maximum(abs(u), abs(v)) > 0.55 * size)
    else:
        raise ValueError(f"unknown shape {kind!r}")
    return mask.reshape(SIZE, 2, SIZE, 2).mean(axis=(1, 3))


def background(rng: np.random.Generator, noise: tuple[float, float] = (4.0, 24.0)) -> np.ndarray:
    """A smooth random colour gradient plus pixel noise, float (32, 32, 3) in 0..255."""
    corners = rng.uniform(0, 255, size=(2, 2, 3))
    w = np.linspace(0, 1, SIZE)
    top = corners[0, 0] * (1 - w[:, None]) + corners[0, 1] * w[:, None]
    bottom = corners[1, 0] * (1 - w[:, None]) + corners[1, 1] * w[:, None]
    image = top[None] * (1 - w[:, None, None]) + bottom[None] * w[:, None, None]
    return image + rng.normal(0, rng.uniform(*noise), size=image.shape)


def contrasting_colour(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    for _ in range(50):
        colour = rng.uniform(0, 255, size=3)
        if np.abs(colour - base).sum() > 180:
            return colour
    return 255.0 - base


def composite(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    return image * (1 - alpha[..., None]) + colour * alpha[..., None]


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- the pre-training task


def pretrain_example(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """One of 12 shapes, of random size, position, small rotation and colour, on a noisy background, half the
    time with a faint distractor line."""
    label = int(rng.integers(PRETRAIN_CLASSES))
    image = background(rng)
    mean = image.mean(axis=(0, 1))
    if rng.random() < 0.5:  # a thin distractor line, so the class is the shape, not "anything drawn"
        line = shape_alpha("hbar", rng.uniform(4, 28), rng.uniform(4, 28), rng.uniform(6, 14), rng.uniform(0, np.pi))
        image = composite(image, 0.5 * line, rng.uniform(0, 255, size=3))
    size = rng.uniform(5.0, 11.0)
    cx, cy = rng.uniform(size * 0.8, SIZE - size * 0.8, size=2)
    alpha = shape_alpha(PRETRAIN_SHAPES[label], cx, cy, size, rng.uniform(-0.25, 0.25))
    return to_uint8(composite(image, alpha, contrasting_colour(rng, mean))), label


def pretrain_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n pre-training images (n, 32, 32, 3) uint8 and labels (n,), a pure function of (n, seed)."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        images[i], labels[i] = pretrain_example(rng)
    return images, labels


# ---------------------------------------------------------------- downstream tasks


def counting_example(rng: np.random.Generator, label: int) -> np.ndarray:
    """label + 1 small objects (circles, squares, triangles), apart from each other."""
    image = background(rng)
    mean = image.mean(axis=(0, 1))
    centres: list[np.ndarray] = []
    while len(centres) < label + 1:
        centre = rng.uniform(4, SIZE - 4, size=2)
        if all(np.hypot(*(centre - c)) > 7.5 for c in centres):
            centres.append(centre)
    for cx, cy in centres:
        kind = ("circle", "square", "triangle")[int(rng.integers(3))]
        alpha = shape_alpha(kind, cx, cy, rng.uniform(2.2, 3.6), rng.uniform(-0.4, 0.4))
        image = composite(image, alpha, contrasting_colour(rng, mean))
    return to_uint8(image)


def orientation_example(rng: np.random.Generator, label: int) -> np.ndarray:
    """A noisy sinusoidal grating whose orientation lies in bin `label` of 8 bins over 0..180 degrees."""
    angle = np.deg2rad((label + rng.uniform(0.1, 0.9)) * 22.5)
    frequency = rng.uniform(2.0, 5.0) / SIZE
    x, y = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="xy")
    wave = np.sin(2 * np.pi * frequency * (x * np.cos(angle) + y * np.sin(angle)) + rng.uniform(0, 2 * np.pi))
    a, b = rng.uniform(0, 255, size=3), rng.uniform(0, 255, size=3)
    contrast = rng.uniform(0.35, 1.0)
    weight = 0.5 + 0.5 * contrast * wave
    image = a * weight[..., None] + b * (1 - weight[..., None])
    return to_uint8(image + rng.normal(0, rng.uniform(10, 40), size=image.shape))


def novel_shape_example(rng: np.random.Generator, label: int) -> np.ndarray:
    """One of 8 shapes absent from pre-training, drawn like the pre-training shapes."""
    image = background(rng)
    mean = image.mean(axis=(0, 1))
    if rng.random() < 0.5:
        line = shape_alpha("hbar", rng.uniform(4, 28), rng.uniform(4, 28), rng.uniform(6, 14), rng.uniform(0, np.pi))
        image = composite(image, 0.5 * line, rng.uniform(0, 255, size=3))
    size = rng.uniform(6.0, 11.0)
    cx, cy = rng.uniform(size * 0.8, SIZE - size * 0.8, size=2)
    alpha = shape_alpha(NOVEL_SHAPES[label], cx, cy, size, rng.uniform(-0.3, 0.3))
    return to_uint8(composite(image, alpha, contrasting_colour(rng, mean)))


# ---------------------------------------------------------------- writing a task folder


def balanced_labels(rng: np.random.Generator, count: int, classes: int) -> np.ndarray:
    labels = np.arange(count) % classes
    rng.shuffle(labels)
    return labels


@contextlib.contextmanager
def staged_folder(root: Path) -> Iterator[Path | None]:
    """A fresh staging folder beside root, marked .complete and renamed into place when the block ends without
    error, so a reader never sees a half-written task; None (nothing to write) when root is already complete.
    Callers hold the preparation lock (bench.data.splits._call_prepare), so a complete root that other processes
    are reading is never replaced."""
    root = Path(root)
    if (root / ".complete").exists():
        yield None
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.parent / f".{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    yield staging
    (staging / ".complete").write_text("")
    shutil.rmtree(root, ignore_errors=True)  # an incomplete leftover of an older version
    os.replace(staging, root)


def write_task(root: Path, make: Callable[[np.random.Generator, str, np.ndarray], list[np.ndarray]],
               labels_for: Callable[[np.random.Generator, str], np.ndarray], seed: int) -> None:
    """Write root/images/<split>/<i>.png and root/<split>.txt, atomically, unless root/.complete exists."""
    from PIL import Image

    with staged_folder(root) as staging:
        if staging is None:
            return
        rng = np.random.default_rng(seed)
        for split in SPLIT_SIZES:
            (staging / "images" / split).mkdir(parents=True)
            labels = labels_for(rng, split)
            lines = []
            for i, (image, label) in enumerate(zip(make(rng, split, labels), labels, strict=True)):
                relative = f"images/{split}/{i + 1:06d}.png"
                Image.fromarray(image).save(staging / relative)
                lines.append(f"{relative} {int(label)}")
            (staging / f"{split}.txt").write_text("\n".join(lines) + "\n")


def prepare_counting(root: Path) -> None:
    """mini/counting: how many objects (1..5); 5 classes."""
    write_task(root, lambda rng, split, labels: [counting_example(rng, int(y)) for y in labels],
               lambda rng, split: balanced_labels(rng, SPLIT_SIZES[split], 5), seed=101)


def prepare_orientation(root: Path) -> None:
    """mini/orientation: grating orientation in 8 bins of 22.5 degrees; 8 classes."""
    write_task(root, lambda rng, split, labels: [orientation_example(rng, int(y)) for y in labels],
               lambda rng, split: balanced_labels(rng, SPLIT_SIZES[split], 8), seed=102)


def prepare_novel_shapes(root: Path) -> None:
    """mini/novel_shapes: 8 shape categories the backbone never saw; 8 classes."""
    write_task(root, lambda rng, split, labels: [novel_shape_example(rng, int(y)) for y in labels],
               lambda rng, split: balanced_labels(rng, SPLIT_SIZES[split], len(NOVEL_SHAPES)), seed=103)


TASK_PREPARERS: dict[str, Callable[[Path], None]] = {
    "novel_shapes": prepare_novel_shapes,
    "counting": prepare_counting,
    "orientation": prepare_orientation,
}
