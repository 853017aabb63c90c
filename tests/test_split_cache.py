"""Memory-mapped decode cache and the per-process split budget: decoded once per machine under a lock, hashed
while written (never copied whole), mapped by every process, checked and rebuilt when damaged, and held within a
budget that bounds the process's peak memory (measured in subprocesses)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data import tensor_store
from bench.data.split_cache import SplitCache, default_budget, parse_size, split_key
from bench.data.splits import decode_image, read_split
from bench.data.tensor_store import cached_split, load_split, split_fingerprint
from bench.errors import BenchError
from bench.spec import DataSpec, ImageSpec, default_cache_dir

ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20
BIG_SIDE = 224  # generated splits are stored at 224 x 224: 150,528 bytes an image, as VTAB's
BIG_IMAGES = 400  # ~60 MB a split


def spec(root: Path, splits: dict[str, str] | None = None, resize: tuple[int, int] = (16, 16)) -> DataSpec:
    return DataSpec(source="image_list", root=str(root),
                    splits=splits or {"train": "train.txt", "val": "val.txt", "test": "test.txt"},
                    num_classes=4, images=ImageSpec(resize=resize))


def write_big_splits(root: Path, names: list[str], images: int = BIG_IMAGES) -> DataSpec:
    """Splits of `images` lines each over 8 small PNGs (in a different order per split), stored at 224 x 224."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
    for offset, name in enumerate(names):
        lines = [f"images/{(i + offset) % 8}.png {i % 4}" for i in range(images)]
        (root / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return spec(root, {n: f"{n}.txt" for n in names}, resize=(BIG_SIDE, BIG_SIDE))


def run_python(code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300
               ) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *args], env=full_env, capture_output=True, text=True,
                          timeout=timeout)


MEASURE = """
import json, sys
from pathlib import Path
from bench.spec import DataSpec
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
def reset_peak():
    open("/proc/self/clear_refs", "w").write("5")
data = DataSpec.model_validate_json(sys.argv[1])
"""


def mapped_inodes(pid: int | str, path_part: str) -> set[int]:
    """Inodes of the files whose name contains `path_part` that process `pid` has memory-mapped."""
    inodes = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and path_part in fields[5]:
            inodes.add(int(fields[4]))
    return inodes


# ---------------------------------------------------------------- the format


def test_fingerprint_is_the_format_2_content_digest_so_run_keys_do_not_change(tiny_data: Path) -> None:
    """sha256 over all pixels, then the (N, 2) int64 shapes, then the int64 labels: the digest earlier caches
    stored, so existing run records keep their keys."""
    listed = read_split(spec(tiny_data), "train", "tiny")
    arrays = [decode_image(p, spec(tiny_data).images) for p in listed.paths]
    digest = hashlib.sha256(np.concatenate([a.reshape(-1) for a in arrays]).tobytes())
    digest.update(np.asarray([a.shape[:2] for a in arrays], dtype=np.int64).tobytes())
    digest.update(listed.labels.tobytes())
    assert split_fingerprint(spec(tiny_data), "train", "tiny") == digest.hexdigest()[:16]
    assert load_split(spec(tiny_data), "train", "tiny").fingerprint == digest.hexdigest()[:16]


def test_pixel_file_opens_with_np_load_mmap_and_the_split_is_a_view_of_it(tiny_data: Path) -> None:
    split = load_split(spec(tiny_data), "val", "tiny")
    entry = cached_split(spec(tiny_data), "val", "tiny")
    on_disk = np.load(entry.pixels, mmap_mode="r")
    assert on_disk.dtype == np.uint8 and on_disk.shape == (12 * 16 * 16 * 3,)
    assert isinstance(split.images, torch.Tensor)
    assert np.array_equal(split.images.numpy().reshape(-1), on_disk)
    assert os.stat(entry.pixels).st_ino in mapped_inodes("self", "/pixels/")  # mapped, not read into RAM
    assert split.labels.tolist() == [i % 4 for i in range(12)]


def test_ragged_images_are_views_of_one_mapped_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    lines = []
    for i, (h, w) in enumerate([(20, 30), (25, 18), (40, 40)]):
        Image.fromarray(rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.png")
        lines.append(f"images/{i}.png {i}")
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    data = DataSpec(source="image_list", root=str(tmp_path), splits={"train": "train.txt"}, num_classes=4,
                    images=ImageSpec(resize=16, crop=16))
    split = load_split(data, "train", "t")
    assert isinstance(split.images, list) and [tuple(x.shape) for x in split.images] == [(16, 24, 3), (22, 16, 3),
                                                                                         (16, 16, 3)]
    assert len({x.untyped_storage().data_ptr() for x in split.images}) == 1  # one storage: the mapped file
    assert tensor_store.held_bytes(split) == (16 * 24 + 22 * 16 + 16 * 16) * 3 + 3 * 8


def test_splits_with_the_same_decoded_pixels_share_one_file(tiny_data: Path, tmp_path: Path) -> None:
    """Like the two dSprites tasks: the same images under other labels are stored once."""
    relabelled = [f"{line.rsplit(' ', 1)[0]} {(int(line.rsplit(' ', 1)[1]) + 1) % 4}"
                  for line in (tiny_data / "test.txt").read_text().splitlines()]
    (tmp_path / "relabelled.txt").write_text("\n".join(relabelled) + "\n")
    first = cached_split(spec(tiny_data), "test", "tiny")
    other = DataSpec(source="image_list", root=str(tiny_data), splits={"test": str(tmp_path / "relabelled.txt")},
                     num_classes=4, images=ImageSpec(resize=(16, 16)))
    second = cached_split(other, "test", "other")
    assert first.pixels == second.pixels and first.index != second.index
    assert first.content != second.content  # labels are part of the content
    assert len(list((default_cache_dir() / "images" / "pixels").glob("*.npy"))) == 1


# ---------------------------------------------------------------- damage


@pytest.mark.parametrize("damage", ["flip a pixel", "truncate the pixels", "damage the index", "lose the pixels"])
def test_a_damaged_cache_entry_is_discarded_with_a_warning_and_rebuilt(
        damage: str, tiny_data: Path, caplog: pytest.LogCaptureFixture) -> None:
    expected = load_split(spec(tiny_data), "train", "tiny")
    reference = expected.images.clone() if isinstance(expected.images, torch.Tensor) else None
    entry = cached_split(spec(tiny_data), "train", "tiny")
    del expected
    data = entry.pixels.read_bytes()
    if damage == "flip a pixel":
        entry.pixels.write_bytes(data[:-7] + bytes([data[-7] ^ 0x01]) + data[-6:])
    elif damage == "truncate the pixels":
        entry.pixels.write_bytes(data[: len(data) // 2])
    elif damage == "damage the index":
        index = entry.index.read_bytes()
        entry.index.write_bytes(index[: len(index) // 2])
    else:
        entry.pixels.unlink()
    tensor_store._CHECKED.clear()  # a new process: nothing checked yet (the mtime may not have moved)
    decoded = []
    real = tensor_store.decode_image
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tensor_store, "decode_image", lambda *a: decoded.append(1) or real(*a))
        with caplog.at_level(logging.WARNING, logger="bench.cache"):
            rebuilt = load_split(spec(tiny_data), "train", "tiny")
    assert sum("discarded" in r.getMessage() for r in caplog.records) == 1
    assert len(decoded) == 24  # decoded again
    assert reference is not None and torch.equal(rebuilt.images, reference)
    assert cached_split(spec(tiny_data), "train", "tiny").pixels.is_file()


@pytest.mark.slow  # in CI's slow tier: keeps `make test` within 3 minutes on 2 cores
def test_a_writer_killed_mid_decode_leaves_a_lock_the_next_process_takes_over(tiny_data: Path, tmp_path: Path) -> None:
    """kill -9 while holding the decode lock (at the fault point cache_write): the next process is not blocked,
    removes the partial files and decodes."""
    cache = tmp_path / "cache"
    code = MEASURE + "from bench.data.tensor_store import load_split\nprint(len(load_split(data, 'train', 'tiny')))\n"
    killed = run_python(code, spec(tiny_data).model_dump_json(),
                        env={"BENCH_CACHE": str(cache), "BENCH_KILL_AT": "write:*.npy:1"})
    assert killed.returncode == -9
    assert list((cache / "images").glob("*.lock")) and list((cache / "images" / "pixels").glob(".*.tmp"))
    finished = run_python(code, spec(tiny_data).model_dump_json(), env={"BENCH_CACHE": str(cache)}, timeout=60)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "24"
    assert not list((cache / "images" / "pixels").glob(".*.tmp"))  # the killed writer's temp file is gone


# ---------------------------------------------------------------- processes share one decode


@pytest.mark.slow  # in CI's slow tier: keeps `make test` within 3 minutes on 2 cores
def test_three_processes_decode_a_split_once_and_map_the_same_file(tiny_data: Path, tmp_path: Path) -> None:
    cache, log, go = tmp_path / "cache", tmp_path / "faults.log", tmp_path / "go"
    code = MEASURE + f"""
import os, time
from bench.data import tensor_store
real = tensor_store.decode_image
def slow(*args):
    time.sleep(0.02)  # a slow decode: the three processes overlap
    return real(*args)
tensor_store.decode_image = slow
while not os.path.exists({str(go)!r}):
    time.sleep(0.01)
split = tensor_store.load_split(data, "train", "tiny")
inodes = set()
for line in open("/proc/self/maps"):
    fields = line.split(maxsplit=5)
    if len(fields) == 6 and "/pixels/" in fields[5]:
        inodes.add(int(fields[4]))
print(json.dumps({{"inodes": sorted(inodes), "sum": int(split.images.sum())}}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_CACHE": str(cache), "BENCH_FAULT_LOG": str(log)}
    workers = [subprocess.Popen([sys.executable, "-c", code, spec(tiny_data).model_dump_json()], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    time.sleep(3)  # all three imported and waiting
    go.touch()
    outputs = [w.communicate(timeout=120) for w in workers]
    assert all(w.returncode == 0 for w in workers), [err for _, err in outputs]
    reported = [json.loads(out) for out, _ in outputs]
    pixel_files = list((cache / "images" / "pixels").glob("*.npy"))
    assert len(pixel_files) == 1
    assert all(r["inodes"] == [pixel_files[0].stat().st_ino] for r in reported)  # all map the one file
    assert len({r["sum"] for r in reported}) == 1
    assert log.read_text().split().count("cache_write") == 1  # decoded by one process only


# ---------------------------------------------------------------- memory


@pytest.mark.slow  # in CI's slow tier: keeps `make test` within 3 minutes on 2 cores
def test_decoding_a_large_split_never_holds_it_in_memory(tmp_path: Path) -> None:
    """Pixels are streamed to the file and hashed while written: decoding a 60 MB split raises the peak RSS by a
    few MB (the earlier concatenate + tobytes held it three times: 180 MB)."""
    data = write_big_splits(tmp_path / "big", ["train"])
    code = MEASURE + """
from bench.data.tensor_store import split_fingerprint
import numpy, torch, PIL.Image, tqdm  # imported before measuring
reset_peak()
base = status("VmRSS")
split_fingerprint(data, "train", "big")
print(json.dumps({"increase": status("VmHWM") - base}))
"""
    done = run_python(code, data.model_dump_json(), env={"BENCH_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    increase = json.loads(done.stdout)["increase"]
    split_bytes = BIG_IMAGES * BIG_SIDE * BIG_SIDE * 3
    print(f"\ndecode {split_bytes / MB:.0f} MB split: peak RSS +{increase / MB:.1f} MB")
    assert increase < 20 * MB


@pytest.mark.slow  # in CI's slow tier: keeps `make test` within 3 minutes on 2 cores
def test_peak_memory_of_loading_three_splits_stays_within_the_budget(tmp_path: Path) -> None:
    """Three 60 MB splits read in full one after another: with a 100 MB budget the process never holds two
    (peak below the budget); without one it holds all three."""
    names = ["a", "b", "c"]
    data = write_big_splits(tmp_path / "big", names)
    cache = tmp_path / "cache"
    for name in names:  # decoded beforehand: the measure is of holding, not decoding
        split_fingerprint(data, name, "big", cache_dir=cache)
    code = MEASURE + """
from bench.data.split_cache import SplitCache
budget = int(sys.argv[2])
cache = SplitCache(budget=budget)
reset_peak()
base = status("VmRSS")
for name in ["a", "b", "c", "a"]:
    split = cache.get(data, name, "big")
    total = int(split.images.numpy().sum(dtype="uint64"))  # every page touched (numpy casts in small buffers)
    del split  # a run drops its split when it ends
print(json.dumps({"increase": status("VmHWM") - base, "held": cache.held_bytes, "keys": len(cache.held())}))
"""
    split_bytes = BIG_IMAGES * BIG_SIDE * BIG_SIDE * 3
    results = {}
    for label, budget in (("budget", 100 * MB), ("unbounded", 1 << 40)):
        done = run_python(code, data.model_dump_json(), str(budget), env={"BENCH_CACHE": str(cache)})
        assert done.returncode == 0, done.stderr
        results[label] = json.loads(done.stdout)
    print(f"\nthree {split_bytes / MB:.0f} MB splits: peak RSS +{results['budget']['increase'] / MB:.0f} MB with a "
          f"100 MB budget, +{results['unbounded']['increase'] / MB:.0f} MB without")
    assert results["budget"]["keys"] == 1 and results["budget"]["held"] <= 100 * MB
    assert results["budget"]["increase"] < 100 * MB
    assert results["unbounded"]["keys"] == 3 and results["unbounded"]["increase"] > 2.5 * split_bytes


# ---------------------------------------------------------------- the SplitCache


def test_cache_evicts_least_recently_used_and_keeps_what_the_next_runs_need(tiny_data: Path) -> None:
    data = spec(tiny_data)
    size = {name: n * 16 * 16 * 3 + n * 8 for name, n in (("train", 24), ("val", 12), ("test", 20))}
    cache = SplitCache(budget=size["train"] + size["test"] + 10)  # room for train and test, not for all three
    cache.get(data, "train", "tiny")
    cache.get(data, "val", "tiny")
    assert cache.held_bytes == size["train"] + size["val"]
    cache.get(data, "train", "tiny")  # train is now the most recent
    cache.get(data, "test", "tiny")  # evicts val (least recently used)
    assert cache.held() == [split_key(data, "train"), split_key(data, "test")]
    cache.keep([(data, "test"), (data, "val")])  # the next runs evaluate on test and val
    cache.get(data, "val", "tiny")  # evicts train (not needed), though test is older
    assert cache.held() == [split_key(data, "test"), split_key(data, "val")]
    assert cache.held_bytes <= cache.budget


def test_a_split_larger_than_the_budget_is_served_alone(tiny_data: Path) -> None:
    cache = SplitCache(budget=1000)
    cache.get(spec(tiny_data), "val", "tiny")
    split = cache.get(spec(tiny_data), "train", "tiny")
    assert len(split) == 24 and cache.held() == [split_key(spec(tiny_data), "train")]


def test_union_of_train_and_val_is_cached_with_its_copy_counted(tiny_data: Path) -> None:
    cache = SplitCache(budget=1 << 30)
    both = cache.get(spec(tiny_data), ["train", "val"], "tiny")
    train, val = load_split(spec(tiny_data), "train", "tiny"), load_split(spec(tiny_data), "val", "tiny")
    assert len(both) == 36 and torch.equal(both.images[24:], val.images) and torch.equal(both.images[:24], train.images)
    expected = hashlib.sha256((train.fingerprint + val.fingerprint).encode()).hexdigest()[:16]
    assert both.fingerprint == expected  # as concat_splits always named the union
    assert cache.held_bytes == 36 * 16 * 16 * 3 + 36 * 8  # the concatenated copy and its labels
    assert cache.get(spec(tiny_data), ("train", "val"), "tiny") is both


def test_fingerprint_for_planning_decodes_when_needed_but_keeps_no_pixels(tiny_data: Path) -> None:
    cache = SplitCache(budget=1 << 30)
    fingerprints = cache.fingerprints(spec(tiny_data), ["train", "test"], "tiny")
    assert fingerprints == {name: load_split(spec(tiny_data), name, "tiny").fingerprint for name in ("train", "test")}
    assert cache.held_bytes == 0 and cache.held() == []
    assert len(list((default_cache_dir() / "images" / "pixels").glob("*.npy"))) == 2  # decoded to disk
    import gc

    gc.collect()
    own = str(default_cache_dir() / "images" / "pixels")  # other tests in this process may hold their own maps
    assert mapped_inodes("self", own) == set()  # nothing of them stays mapped


def test_budget_parsing_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_size("8G") == 8 << 30 and parse_size("512M") == 512 << 20 and parse_size("1.5g") == 3 << 29
    assert parse_size("100000") == 100000 and parse_size("2GiB") == 2 << 30
    with pytest.raises(BenchError, match="BENCH_CACHE_BUDGET"):
        parse_size("lots")
    monkeypatch.setenv("BENCH_CACHE_BUDGET", "3G")
    assert default_budget() == SplitCache().budget == 3 << 30
    monkeypatch.delenv("BENCH_CACHE_BUDGET")
    available = int(Path("/proc/meminfo").read_text().split("MemAvailable:")[1].split()[0]) * 1024
    assert abs(default_budget() - max(1 << 30, available // 2)) < 256 << 20
    assert default_budget(processes=1000) == 1 << 30  # the floor


def test_unused_cache_files_are_old_format_files_and_unnamed_pixels(tiny_data: Path) -> None:
    entry = cached_split(spec(tiny_data), "train", "tiny")
    folder = default_cache_dir() / "images"
    old = folder / ("ab" * 12 + ".npz")  # a format-2 file
    old.write_bytes(b"old")
    orphan = folder / "pixels" / ("cd" * 12 + ".npy")
    orphan.write_bytes(b"orphan")
    partial = folder / "pixels" / f".{entry.key}.x.tmp"
    partial.write_bytes(b"partial")
    assert tensor_store.unused_cache_files(min_age_s=3600) == []  # too young: perhaps being written
    for path in (old, orphan, partial, entry.pixels, entry.index):
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    assert tensor_store.unused_cache_files(min_age_s=3600) == sorted([old, orphan, partial])


@pytest.mark.slow  # six fresh Python processes (about 20 s on 2 idle cores)
def test_measure_cache_reports_each_figure_as_a_ratio() -> None:
    """`bench perf data`'s cache figures at a small scale: the budget and the streamed decode lower the peak, and
    every timing is reported. Which path is faster is for `bench perf data` at its real size to say: at this size
    fixed costs rule (the token cache's first load, with its digest check, took 0.43 s against 0.16 s to encode 200
    pairs once on a busy machine)."""
    from bench.perf.data import cache_report, measure_cache

    figures = measure_cache(images=120, splits=3, budget=30 * MB, pairs=200)
    peak, seconds = figures.peak, figures.seconds
    assert peak["mapped, budget 30 MB"] < 30 * MB < peak["mapped, no budget"] < peak["format 2, all held"]
    assert peak["decode, streamed"] * 3 < peak["decode, format 2"]
    assert set(seconds) >= {"open, format 2", "open, first", "open, again", "encode", "load tokens"}
    assert all(value > 0 for value in seconds.values())
    assert figures.array_bytes_per_token < 4.1 < figures.list_bytes_per_token
    report = cache_report(figures)
    assert "budget 30 MB" in report and "load the cache" in report
    print("\n" + report)
