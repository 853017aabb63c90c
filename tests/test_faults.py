"""Fault injection (`make test-faults`, also in CI): attacks on the store's guarantees, with the figures printed.

- kill -9 at 20 points drawn at random from everything an uninterrupted `bench run` reaches (training steps,
  checkpoint, record, prediction and trained-parameter writes, image-cache writes): the same command then
  finishes, and the store equals the uninterrupted one (records, metrics, result-file checksums), with no
  duplicate run and no unreadable or leftover file;
- 4 concurrent worker processes on one plan: every run trained and written exactly once;
- a full disk while writing a record, a checkpoint or the image cache: exit code 2 with one paragraph, nothing
  stored changed, no temp file left; the same command then finishes;
- truncated or altered image caches and checkpoints: detected by their checksums, discarded and rebuilt, never
  used (the results equal the reference).

The kill points come from bench/faults.py (BENCH_KILL_AT / BENCH_FAULT_LOG), so every point is a real one.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.store import CHECKPOINT, RECORD, CorruptFile, RunStore, checksum_path, read_checked

pytestmark = pytest.mark.faults
ROOT = Path(__file__).resolve().parents[1]
KILLS = 20
VOLATILE = ("created_at", "cost", "env", "_dir", "checksum")  # timings and provenance differ between any two runs
# (the record checksum covers them too)


def command(tasks_dir: Path, results: Path, *extra: str) -> list[str]:
    return ["run", "--task", "tiny/colors", "--method", "no_share", "--tasks-dir", str(tasks_dir), "--results",
            str(results), "--checkpoint-interval", "0", *extra]


def bench(args: list[str], cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`bench ARGS` in a fresh process, with the given cache folder and fault variables."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("BENCH_KILL_AT", "BENCH_FAIL_AT", "BENCH_FAULT_LOG")}
    full_env.update({"PYTHONPATH": str(ROOT), "BENCH_CACHE": str(cache), **env})
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], env=full_env, capture_output=True, text=True,
                          timeout=600)


def snapshot(root: Path) -> dict[str, dict[str, Any]]:
    """Run folder -> its record without timings (the result files enter through their checksums in `files`)."""
    out = {}
    for record in RunStore(root).records():
        folder = str(Path(record["_dir"]).relative_to(root))
        out[folder] = {k: v for k, v in record.items() if k not in VOLATILE}
    return out


def audit(root: Path) -> tuple[int, list[str]]:
    """(duplicate runs, unreadable or leftover files) of a finished store."""
    keys = Counter(json.loads(p.read_text())["key"] for p in root.rglob(RECORD))
    duplicates = sum(count - 1 for count in keys.values())
    duplicates += sum(1 for p in root.rglob(RECORD) if p.parent.name != json.loads(p.read_text())["key"])
    bad = []
    for path in root.rglob("*"):
        if path.is_dir():
            continue
        name = path.name
        if name.endswith(".tmp") or name in ("lock", CHECKPOINT, CHECKPOINT + ".sha256"):
            bad.append(f"{path}: left over")
        elif name == "predictions.npz":
            try:
                with np.load(path, allow_pickle=False) as data:
                    data["pred"].sum()
            except Exception as exc:
                bad.append(f"{path}: {exc}")
        elif name.endswith(".pt"):
            try:
                read_checked(path)
            except CorruptFile as exc:
                bad.append(str(exc))
    bad += [problem for p in root.rglob(RECORD) for problem in RunStore(root).check(p.parent)]
    return duplicates, bad


def figures(name: str, payload: dict[str, Any]) -> None:
    """Print the suite's figures and keep them in results/perf/faults-<name>.json."""
    print(f"\nfault injection, {name}: " + ", ".join(f"{k} {v}" for k, v in payload.items()))
    out = ROOT / "results" / "perf"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"faults-{name}.json").write_text(json.dumps(payload, indent=1) + "\n")


@pytest.fixture
def reference(tiny_tasks_dir: Path, tmp_path: Path) -> tuple[dict[str, Any], list[str]]:
    """The uninterrupted store and the sequence of fault points it reached."""
    log = tmp_path / "points.log"
    done = bench(command(tiny_tasks_dir, tmp_path / "reference"), tmp_path / "cache-ref", BENCH_FAULT_LOG=str(log))
    assert done.returncode == 0, done.stderr
    return snapshot(tmp_path / "reference"), log.read_text().split()


def draw_kill_points(points: list[str], count: int) -> list[tuple[str, int]]:
    """`count` distinct (point, n-th occurrence) pairs, at least one of every kind of point, the rest at random."""
    occurrences, seen = [], Counter()
    for name in points:
        seen[name] += 1
        occurrences.append((name, seen[name]))
    rng = random.Random(2026)
    kinds: dict[str, list[tuple[str, int]]] = {}
    for name, n in occurrences:
        image_cache = name.endswith(".npy") or (name.endswith(".npz") and name != "write:predictions.npz")
        kind = "write:image cache (.npy pixels, .index.npz)" if name.startswith("write:") and image_cache else name
        kinds.setdefault(kind, []).append((name, n))
    chosen = {rng.choice(options) for options in kinds.values()}
    while len(chosen) < count:
        chosen.add(rng.choice(occurrences))
    return sorted(chosen, key=occurrences.index)


def test_kill_9_at_20_random_points_then_the_same_command_finishes_identically(
        tiny_tasks_dir: Path, tmp_path: Path, reference: tuple[dict[str, Any], list[str]]) -> None:
    expected, points = reference
    assert {"train_step", "cache_write", "write:checkpoint.pt", "write:run.json", "write:predictions.npz",
            "write:trained.pt"} <= set(points)
    kills = draw_kill_points(points, KILLS)

    def attack(index: int) -> dict[str, Any]:
        name, n = kills[index]
        results, cache = tmp_path / f"store-{index}", tmp_path / f"cache-{index}"
        killed = bench(command(tiny_tasks_dir, results), cache, BENCH_KILL_AT=f"{name}:{n}")
        resumed = bench(command(tiny_tasks_dir, results), cache)
        duplicates, bad = audit(results)
        return {"point": f"{name}:{n}", "killed": killed.returncode == -9, "finished": resumed.returncode == 0,
                "identical": snapshot(results) == expected, "duplicates": duplicates, "bad": bad,
                "stderr": resumed.stderr[-2000:]}

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(attack, range(len(kills))))
    survived = [o for o in outcomes if o["killed"] and o["finished"] and o["identical"]]
    kinds = Counter(o["point"].rsplit(":", 1)[0] for o in outcomes)
    figures("kill-9", {"kill points": len(kills), "killed": sum(o["killed"] for o in outcomes),
                       "survived": len(survived), "duplicates": sum(o["duplicates"] for o in outcomes),
                       "unreadable or leftover files": sum(len(o["bad"]) for o in outcomes),
                       "points": dict(sorted(kinds.items())), "runs per store": len(expected)})
    for outcome in outcomes:
        assert outcome["killed"], f"{outcome['point']}: the process was not killed there"
        assert outcome["finished"], f"{outcome['point']}: the resumed command failed: {outcome['stderr']}"
        assert outcome["identical"], f"{outcome['point']}: the store differs from the uninterrupted one"
        assert outcome["duplicates"] == 0 and outcome["bad"] == [], outcome
    assert len(survived) == KILLS


def test_four_concurrent_workers_train_and_write_every_run_exactly_once(
        tiny_tasks_dir: Path, tmp_path: Path, reference: tuple[dict[str, Any], list[str]]) -> None:
    expected, points = reference
    log, foreign_log = tmp_path / "workers.log", tmp_path / "foreign.log"
    results = tmp_path / "workers"
    # A fifth process on "another machine" (its own host name in every lease) works on the same store at once.
    with ThreadPoolExecutor(1) as pool:
        foreign = pool.submit(bench, command(tiny_tasks_dir, results, "--poll", "0.2"), tmp_path / "cache-f",
                              BENCH_FAULT_LOG=str(foreign_log), BENCH_HOST="foreign-node")
        done = bench(command(tiny_tasks_dir, results, "--workers", "4", "--poll", "0.2"), tmp_path / "cache-w",
                     BENCH_FAULT_LOG=str(log))
        other = foreign.result()
    assert done.returncode == 0, done.stderr
    assert other.returncode == 0, other.stderr
    reached = Counter(log.read_text().split()) + Counter(foreign_log.read_text().split()
                                                         if foreign_log.exists() else [])
    duplicates, bad = audit(results)
    workers = {line.split("]")[0] for line in done.stderr.splitlines() if line.startswith("[worker ")}
    foreign_runs = Counter(foreign_log.read_text().split() if foreign_log.exists() else [])["write:run.json"]
    figures("workers", {"workers": 4, "workers that ran something": len(workers),
                        "records written by the foreign-host process": foreign_runs, "runs": len(expected),
                        "records written": reached["write:run.json"], "training steps": reached["train_step"],
                        "training steps uninterrupted": Counter(points)["train_step"], "duplicates": duplicates,
                        "unreadable or leftover files": len(bad)})
    assert snapshot(results) == expected
    assert reached["write:run.json"] == len(expected)  # each record written once
    assert reached["train_step"] == Counter(points)["train_step"]  # each run trained once, by exactly one worker
    assert duplicates == 0 and bad == [] and len(workers) + (foreign_runs > 0) >= 2


@pytest.mark.parametrize("point", ["write:run.json", "write:checkpoint.pt", "write:predictions.npz",
                                   "write:[0-9a-f]*.npz", "write:[0-9a-f]*.npy"])  # the last two: image cache files
def test_a_full_disk_while_saving_is_a_clear_error_and_changes_nothing(
        point: str, tiny_tasks_dir: Path, tmp_path: Path, reference: tuple[dict[str, Any], list[str]]) -> None:
    expected, _ = reference
    results, cache = tmp_path / "disk", tmp_path / "cache-disk"
    assert bench(command(tiny_tasks_dir, results, "--stage", "grid"), cache).returncode == 0  # stored already
    before = snapshot(results)
    files_before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    fresh_cache = tmp_path / "cache-empty" if point.startswith("write:[0-9a-f]") else cache
    failed = bench(command(tiny_tasks_dir, results), fresh_cache, BENCH_FAIL_AT=f"{point}:1")
    assert failed.returncode == 2, failed.stderr
    lines = failed.stderr.strip().splitlines()
    paragraph = lines[next(i for i, line in enumerate(lines) if line.startswith("error:")):]
    assert "Traceback" not in failed.stderr and all(line.strip() for line in paragraph)  # one paragraph, last
    assert "No space left on device" in " ".join(paragraph) and "Nothing stored was changed" in " ".join(paragraph)
    assert snapshot(results) == before  # no record appeared or changed
    assert all(path.read_bytes() == data for path, data in files_before.items())  # every stored byte as it was
    assert [p for p in [*results.rglob("*"), *fresh_cache.rglob("*")] if p.name.endswith(".tmp")] == []
    finished = bench(command(tiny_tasks_dir, results), fresh_cache)
    assert finished.returncode == 0, finished.stderr
    assert snapshot(results) == expected and audit(results) == (0, [])


@pytest.mark.parametrize("damage", ["truncate", "flip a byte", "remove the checksum"])
def test_damaged_checkpoints_and_caches_are_detected_rebuilt_and_never_used(
        damage: str, tiny_tasks_dir: Path, tmp_path: Path, reference: tuple[dict[str, Any], list[str]]) -> None:
    expected, _ = reference
    results, cache = tmp_path / "damaged", tmp_path / "cache-d"
    # Stop a run right after its first checkpoint is complete, then damage the checkpoint and every cache file.
    killed = bench(command(tiny_tasks_dir, results), cache, BENCH_KILL_AT="write:checkpoint.pt:2")
    assert killed.returncode == -9
    checkpoints = list(results.rglob(CHECKPOINT))
    caches = list((cache / "images" / "pixels").glob("*.npy"))  # the decoded pixels of each split
    assert checkpoints and caches
    damaged = 0
    for path in [*checkpoints, *caches]:
        data = path.read_bytes()
        if damage == "truncate":
            path.write_bytes(data[: len(data) // 2])
        elif damage == "flip a byte":
            middle = len(data) // 2
            path.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
        elif path.suffix == ".pt":
            checksum_path(path).unlink()
        else:  # a cache's checksum is in its index: change a pixel and keep the file readable
            pixels = np.load(path, mmap_mode="r+")
            pixels[0] ^= 0xFF
            pixels.flush()
            del pixels
        damaged += 1
    resumed = bench(command(tiny_tasks_dir, results), cache)
    assert resumed.returncode == 0, resumed.stderr
    detected = resumed.stderr.count("discarded")
    records = list(RunStore(results).records())
    resumed_runs = [r for r in records if r["cost"].get("resumed_from_epoch")]
    figures(f"damage-{damage.replace(' ', '-')}", {"damaged files": damaged, "detected and discarded": detected,
                                                    "used": len(resumed_runs), "runs": len(records)})
    assert detected == damaged
    assert resumed_runs == []  # the damaged checkpoint was not resumed from: the run started again
    assert snapshot(results) == expected  # and the rebuilt cache gives the same results
    assert audit(results) == (0, [])
