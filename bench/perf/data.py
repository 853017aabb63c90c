"""`bench perf data`: the data path, measured side by side in one process.

- cached: the run's pipeline (images decoded once into the uint8 cache, then crop / flip / normalise on tensors);
- decode: what a plain loader does, decoding and resizing every JPEG at every epoch (PIL, one process);
both on the same generated JPEGs (photo-sized, 500 × 375) with the task's image settings, plus one training step
of a method on the task's backbone at the same batch, to give the share of step time spent waiting for data.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# ---------------------------------------------------------------- the decode and token caches (`measure_cache`)


MB = 1 << 20


@dataclass(frozen=True)
class CacheFigures:
    """Peak RSS increases (bytes) and times (seconds) of the decode and token caches against what they replace."""

    split_bytes: int
    splits: int
    budget: int
    peak: dict[str, int]  # scenario -> peak RSS above the process's resting RSS
    seconds: dict[str, float]
    pairs: int
    tokens: int
    list_bytes_per_token: float
    array_bytes_per_token: float


def measure_cache(images: int = 400, splits: int = 3, budget: int = 100 * MB, pairs: int = 200_000,
                  side: int = 224, tokenizer: str = "mini_bart") -> CacheFigures:
    """Measure, on generated data, each scenario in a fresh process (peak RSS from VmHWM after a reset):

    - holding `splits` splits of `images` side x side images read in full one after another: format 2 (each .npz
      loaded into RAM, hashed with a copy, all kept, as bench did before) / mapped, no budget / mapped, `budget`;
    - decoding one split: format 2 (decode all, concatenate, hash a copy) / streamed to the file and hashed;
    - opening a decoded split: format 2 (.npz load + hash) / first open in a process (chunked check + map) / again;
    - tokenising `pairs` XSum-sized pairs (~400 / ~25 words) with a shipped tokenizer: encoding all (what every
      run did) / loading the token cache."""
    import json
    import subprocess
    import sys

    from bench.data import tensor_store

    package_root = str(Path(tensor_store.__file__).resolve().parents[2])
    peak: dict[str, int] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-perf-cache-") as folder:
        root = Path(folder)
        data = _write_mapped_splits(root / "data", splits, images, side)
        cache = root / "cache"
        names = list(data.splits)
        for name in names:
            tensor_store.split_fingerprint(data, name, "perf", cache_dir=cache)
        npz = [_write_format_2(tensor_store.cached_split(data, name, "perf", cache), root / f"{name}.npz")
               for name in names]
        fresh = root / "cache-fresh"

        def scenario(kind: str, **args: object) -> dict[str, float]:
            code = f"from bench.perf.data import _cache_scenario; _cache_scenario({kind!r}, {json.dumps(args)!r})"
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                  env={**os.environ, "PYTHONPATH": package_root, "BENCH_CACHE": str(cache)})
            result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
            return result

        spec_json = data.model_dump_json()
        held = {"format 2, all held": scenario("hold_npz", files=[str(p) for p in npz]),
                "mapped, no budget": scenario("hold", data=spec_json, budget=1 << 50),
                f"mapped, budget {budget / MB:.0f} MB": scenario("hold", data=spec_json, budget=budget),
                "decode, format 2": scenario("decode_format_2", data=spec_json),
                "decode, streamed": scenario("decode", data=spec_json, cache=str(fresh))}
        for name, result in held.items():
            peak[name] = int(result["peak"])
            seconds[name] = result["seconds"]
        opened = scenario("open", data=spec_json, npz=str(npz[0]))
        seconds.update({f"open, {k}": v for k, v in opened.items()})
        tokens = _measure_tokens(root / "tokens", pairs, tokenizer)
        seconds.update(tokens["seconds"])
    return CacheFigures(images * side * side * 3, splits, budget, peak, seconds, pairs, int(tokens["tokens"]),
                        tokens["list_bytes_per_token"], tokens["array_bytes_per_token"])


def cache_report(figures: CacheFigures) -> str:
    s, p = figures.seconds, figures.peak
    size = figures.split_bytes / MB
    lines = [f"decode and token caches on generated data ({figures.splits} splits of {size:.0f} MB, "
             f"{os.cpu_count()} CPUs)",
             f"  peak RSS holding {figures.splits} splits read in full, one after another:"]
    base = p["format 2, all held"]
    for name, value in p.items():
        if name.startswith("decode"):
            continue
        lines.append(f"    {name:<28} {value / MB:8.0f} MB   {value / base:5.2f}x format 2")
    lines.append(f"  peak RSS decoding one split: format 2 {p['decode, format 2'] / MB:.0f} MB, streamed "
                 f"{p['decode, streamed'] / MB:.0f} MB ({p['decode, format 2'] / max(p['decode, streamed'], 1):.0f}x "
                 f"less); time {s['decode, format 2']:.2f} s vs {s['decode, streamed']:.2f} s")
    lines.append(f"  open a decoded split: format 2 .npz {s['open, format 2']:.3f} s, first open in a process "
                 f"(check + map) {s['open, first']:.3f} s ({s['open, format 2'] / s['open, first']:.1f}x), again "
                 f"{s['open, again']:.4f} s ({s['open, format 2'] / s['open, again']:.0f}x)")
    lines.append(f"  tokenise {figures.pairs} pairs ({figures.tokens} tokens): encode {s['encode']:.1f} s, "
                 f"load the cache {s['load tokens']:.2f} s ({s['encode'] / s['load tokens']:.0f}x; again in the "
                 f"process {s['load tokens again']:.3f} s); "
                 f"{figures.list_bytes_per_token:.0f} B/token as lists vs {figures.array_bytes_per_token:.1f} "
                 "B/token cached")
    return "\n".join(lines)


def _write_mapped_splits(root: Path, splits: int, images: int, side: int) -> Any:
    """`splits` splits of `images` lines over 16 small PNGs, each in its own order, stored at side x side."""
    from PIL import Image

    from bench.spec import DataSpec, ImageSpec

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
    names = {}
    for s in range(splits):
        lines = [f"images/{(i * (s + 1) + s) % 16}.png {i % 4}" for i in range(images)]
        (root / f"split{s}.txt").write_text("\n".join(lines) + "\n")
        names[f"split{s}"] = f"split{s}.txt"
    return DataSpec(source="image_list", root=str(root), splits=names, num_classes=4,
                    images=ImageSpec(resize=(side, side)))


def _write_format_2(entry: Any, path: Path) -> Path:
    """The split as bench stored it before format 3: one .npz with pixels, shapes, labels and the digest."""
    pixels = np.load(entry.pixels, mmap_mode="r")
    np.savez(path, pixels=pixels, shapes=entry.shapes, labels=entry.labels, content=entry.content)
    return path


def _cache_scenario(kind: str, args_json: str) -> None:
    """One measured scenario of measure_cache, run in a fresh process; prints a JSON line."""
    import gc
    import hashlib
    import json

    from bench.data import split_cache, tensor_store
    from bench.spec import DataSpec

    args = json.loads(args_json)
    data = DataSpec.model_validate_json(args["data"]) if "data" in args else None

    def status(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def format_2_digest(arrays: list[np.ndarray]) -> str:
        digest = hashlib.sha256()
        for array in arrays:
            digest.update(np.ascontiguousarray(array).tobytes())  # as format 2 did: a copy of each array
        return digest.hexdigest()[:16]

    def touch(pixels: np.ndarray) -> int:
        return int(pixels.sum(dtype=np.uint64))  # numpy casts in small buffers: no copy of the split

    Path("/proc/self/clear_refs").write_text("5")
    base, start = status("VmRSS"), time.perf_counter()
    out: dict[str, float] = {}
    if kind == "hold_npz":
        kept = []
        for path in args["files"]:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {k: stored[k] for k in ("pixels", "shapes", "labels")}
            format_2_digest(list(arrays.values()))
            touch(arrays["pixels"])
            kept.append(arrays)
    elif kind == "hold":
        assert data is not None
        cache = split_cache.SplitCache(budget=int(args["budget"]))
        for name in list(data.splits):
            split = cache.get(data, name, "perf")
            assert isinstance(split.images, torch.Tensor)
            touch(split.images.numpy())
            del split
    elif kind == "decode_format_2":
        from bench.data.splits import decode_image, read_split

        assert data is not None
        listed = read_split(data, next(iter(data.splits)), "perf")
        decoded = [decode_image(p, data.images) for p in listed.paths]
        pixels = np.concatenate([a.reshape(-1) for a in decoded])
        format_2_digest([pixels, np.asarray([a.shape[:2] for a in decoded], dtype=np.int64), listed.labels])
    elif kind == "decode":
        assert data is not None
        tensor_store.split_fingerprint(data, next(iter(data.splits)), "perf", cache_dir=Path(args["cache"]))
    elif kind == "open":
        assert data is not None
        name = next(iter(data.splits))
        tick = time.perf_counter()
        with np.load(args["npz"], allow_pickle=False) as stored:
            arrays = {k: stored[k] for k in ("pixels", "shapes", "labels")}
        format_2_digest(list(arrays.values()))
        out["format 2"] = time.perf_counter() - tick
        del arrays
        gc.collect()
        for label in ("first", "again"):
            tick = time.perf_counter()
            split = tensor_store.load_split(data, name, "perf")
            out[label] = time.perf_counter() - tick
            del split
        print(json.dumps(out))
        return
    out["seconds"] = time.perf_counter() - start
    out["peak"] = status("VmHWM") - base
    print(json.dumps(out))


def _measure_tokens(folder: Path, pairs: int, tokenizer_name: str) -> dict[str, Any]:
    """Encode generated XSum-sized pairs as the BART training path does (special tokens, 512 / 60 tokens), then
    load them from the token cache; bytes per token of today's lists, from a sample of 1,000 pairs."""
    import sys

    from transformers import AutoTokenizer

    from bench.data import tokenized as token_cache
    from bench.data.splits import ASSETS_DIR
    from bench.data.tokenized import tokenized

    tokenizer = AutoTokenizer.from_pretrained(str(ASSETS_DIR / tokenizer_name))
    rng = np.random.default_rng(0)
    syllables = ["ka", "lo", "mi", "ten", "sar", "vu", "ple", "dor", "in", "ga", "ro", "mes", "ta", "ne", "bi"]
    vocabulary = np.array(["".join(rng.choice(syllables, size=rng.integers(1, 4))) for _ in range(5000)])
    generated = []
    for _ in range(pairs):
        words = vocabulary[rng.integers(0, len(vocabulary), size=425)]
        generated.append((" ".join(words[:400]), " ".join(words[400:])))

    def encode(pair: tuple[str, str]) -> tuple[list[int], list[int]]:
        source = tokenizer(pair[0], add_special_tokens=True, truncation=True, max_length=512)["input_ids"]
        target = tokenizer(pair[1], add_special_tokens=True, truncation=True, max_length=60)["input_ids"]
        return source, target

    tick = time.perf_counter()
    tokens = tokenized("perf", tokenizer, encode, generated, encode_version="perf", cache_dir=folder)
    encode_s = time.perf_counter() - tick
    del tokens
    token_cache._CHECKED.clear()  # as in a fresh run process: the file is checked against its digest first
    tick = time.perf_counter()
    tokens = tokenized("perf", tokenizer, encode, generated, encode_version="perf", cache_dir=folder)
    load_s = time.perf_counter() - tick
    tick = time.perf_counter()
    tokenized("perf", tokenizer, encode, generated, encode_version="perf", cache_dir=folder)
    again_s = time.perf_counter() - tick
    assert len(tokens) == pairs
    sample = [encode(p) for p in generated[:1000]]
    objects = {id(v): sys.getsizeof(v) for ids, labels in sample for v in (*ids, *labels)}
    list_bytes = sum(sys.getsizeof(x) for ids, labels in sample for x in (ids, labels)) + sum(objects.values())
    list_bytes += sum(sys.getsizeof((ids, labels)) for ids, labels in sample)
    sample_tokens = sum(len(ids) + len(labels) for ids, labels in sample)
    total = len(tokens.ids) + len(tokens.labels)
    stored = sum(getattr(tokens, f).nbytes for f in ("ids", "ids_offsets", "labels", "labels_offsets"))
    return {"seconds": {"encode": encode_s, "load tokens": load_s, "load tokens again": again_s}, "tokens": total,
            "list_bytes_per_token": list_bytes / sample_tokens, "array_bytes_per_token": stored / total}
