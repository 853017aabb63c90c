"""Image pipeline: list parsing, decode once into the cache, protocol transforms on tensors, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data import splits, tensor_store
from bench.data.tensor_store import concat_splits, load_split
from bench.data.transforms import ImageBatches
from bench.errors import BenchError
from bench.spec import DataSpec, ImageSpec


def spec(root: Path, **images: object) -> DataSpec:
    return DataSpec(source="image_list", root=str(root), splits={"train": "train.txt", "val": "val.txt",
                                                                  "test": "test.txt"},
                    num_classes=4, images=ImageSpec(**{"resize": (16, 16), **images}))


def test_split_is_decoded_once_then_served_from_cache(tiny_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_split(spec(tiny_data), "train", "tiny")
    assert isinstance(first.images, torch.Tensor) and first.images.shape == (24, 16, 16, 3)
    assert first.images.dtype == torch.uint8 and first.labels.tolist() == [i % 4 for i in range(24)]

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(tensor_store, "decode_image", no_decoding)
    second = load_split(spec(tiny_data), "train", "tiny")
    assert torch.equal(first.images, second.images) and first.fingerprint == second.fingerprint


def test_decoded_pixels_equal_pil(tiny_data: Path) -> None:
    split = load_split(spec(tiny_data), "val", "tiny")
    expected = np.asarray(Image.open(tiny_data / "images/val/000003.png").convert("RGB"))
    assert np.array_equal(split.images[3].numpy(), expected)


def test_shorter_side_resize_and_centre_crop_match_torchvision(tmp_path: Path) -> None:
    from torchvision import transforms

    rng = np.random.default_rng(0)
    pil = Image.fromarray(rng.integers(0, 255, size=(300, 451, 3), dtype=np.uint8))
    path = tmp_path / "a.png"
    pil.save(path)
    images = ImageSpec(resize=256, crop=224)
    decoded = splits.decode_image(path, images)
    resized = transforms.Resize(256)(pil)
    assert decoded.shape[:2] == (resized.height, resized.width) == (256, 384)
    assert np.array_equal(decoded, np.asarray(resized))
    split = tensor_store.DecodedSplit("x", [torch.from_numpy(decoded)], torch.tensor([0]), "f")
    batches = ImageBatches(split, images, torch.device("cpu"))
    _, batch, _ = next(batches.in_order(1))
    expected = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                   transforms.Normalize(images.mean, images.std)])(pil)
    torch.testing.assert_close(batch[0], expected, atol=1e-5, rtol=1e-5)


def test_training_augmentation_is_a_function_of_the_generator(tiny_data: Path) -> None:
    images = ImageSpec(resize=(16, 16), crop=12, flip=True)
    split = load_split(spec(tiny_data, crop=12, flip=True), "train", "tiny")
    batches = ImageBatches(split, images, torch.device("cpu"))
    a = [x for x, _ in batches.epoch(8, torch.Generator().manual_seed(3))]
    b = [x for x, _ in batches.epoch(8, torch.Generator().manual_seed(3))]
    c = [x for x, _ in batches.epoch(8, torch.Generator().manual_seed(4))]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))
    assert a[0].shape == (8, 3, 12, 12)
    assert sum(len(x) for x in a) == 24  # every example once per epoch


def test_concat_keeps_order(tiny_data: Path) -> None:
    train = load_split(spec(tiny_data), "train", "tiny")
    val = load_split(spec(tiny_data), "val", "tiny")
    both = concat_splits([train, val])
    assert len(both) == 36 and torch.equal(both.images[24:], val.images)


def test_corrupt_image_names_the_file(tiny_data: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tiny_data, root)
    (root / "images/test/000005.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(BenchError, match=r"000005\.png.*corrupt or unreadable image"):
        load_split(spec(root), "test", "tiny")


def test_bad_list_line_names_file_and_line(tiny_data: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tiny_data, root)
    lines = (root / "val.txt").read_text().splitlines()
    lines[2] = "images/val/000002.png 9"  # label out of range
    (root / "val.txt").write_text("\n".join(lines))
    with pytest.raises(BenchError, match=r"val\.txt.*line 3 .*label in 0..3"):
        load_split(spec(root), "val", "tiny")


def test_missing_data_says_what_to_download(tmp_path: Path) -> None:
    data = spec(tmp_path / "absent").model_copy(update={"download_hint": "Get vtab-1k.zip and unzip it there."})
    with pytest.raises(BenchError, match=r"data not found.*vtab-1k\.zip"):
        load_split(data, "train", "vtab/dtd")


def test_prepare_hook_creates_missing_data(tmp_path: Path, tiny_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    import sys
    import types

    module = types.ModuleType("bench.fake_prepare")
    calls: list[Path] = []

    def prepare(root: Path) -> None:
        calls.append(root)
        shutil.copytree(tiny_data, root)

    module.prepare = prepare  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bench.fake_prepare", module)
    data = spec(tmp_path / "made").model_copy(update={"prepare": "bench.fake_prepare:prepare"})
    assert len(load_split(data, "test", "tiny")) == 20
    assert calls == [tmp_path / "made"]
    with pytest.raises(BenchError, match="cannot find data.prepare function"):
        load_split(spec(tmp_path / "x").model_copy(update={"prepare": "bench.fake_prepare:nope"}), "test", "tiny")


def test_regenerated_images_are_decoded_again_and_change_the_fingerprint(tiny_data: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tiny_data, root)
    before = load_split(spec(root), "test", "tiny")
    path = root / "images/test/000004.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(path)
    os.utime(path, ns=(1, 1))  # a different mtime, same list file
    after = load_split(spec(root), "test", "tiny")
    assert after.images[4].sum() == 0 and before.images[4].sum() > 0
    assert after.fingerprint != before.fingerprint
