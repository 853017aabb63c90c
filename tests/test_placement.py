"""Local workers on the GPUs and cores their parent was given (bench.ops.placement, bench.ops.launch): mocked GPUs,
no processes started."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

import bench.train.device  # noqa: F401  (torch imported before subprocess.Popen is replaced: its import may start one)
from bench.errors import BenchError
from bench.ops import launch
from bench.ops.placement import Placement, auto_workers, gpu_entries, place_workers
from bench.request import RunRequest


def test_the_parents_gpus_are_its_own_list() -> None:
    assert gpu_entries(None, 2) == ["0", "1"]  # nothing set: the machine's indices
    assert gpu_entries("2,3", 2) == ["2", "3"]
    assert gpu_entries("MIG-6e5f, MIG-9a0b", 2) == ["MIG-6e5f", "MIG-9a0b"]
    assert gpu_entries("GPU-1b2c", 1) == ["GPU-1b2c"]
    assert gpu_entries("0,1,7", 2) == ["0", "1"]  # CUDA opened two: the third entry does not exist
    assert gpu_entries("", 0) == [] and gpu_entries(None, 0) == []


def visible(placements: list[Placement]) -> list[str | None]:
    return [p.env.get("CUDA_VISIBLE_DEVICES") for p in placements]


def test_workers_take_turns_on_the_parents_gpus() -> None:
    placements = place_workers(5, ["2", "3"], None, cores=16, threads_set=False)
    assert visible(placements) == ["2", "3", "2", "3", "2"]
    assert {p.device for p in placements} == {None}  # each worker's default: its one visible GPU
    assert {p.env["OMP_NUM_THREADS"] for p in placements} == {"3"}  # 16 cores // 5 workers
    assert visible(place_workers(2, ["MIG-a", "MIG-b"], "cuda", 4, False)) == ["MIG-a", "MIG-b"]


def test_one_named_gpu_takes_every_worker() -> None:
    placements = place_workers(3, ["GPU-x", "GPU-y"], "cuda:1", cores=8, threads_set=False)
    assert visible(placements) == ["GPU-y"] * 3
    assert {p.device for p in placements} == {"cuda:0"}  # the only GPU a worker sees
    with pytest.raises(BenchError) as caught:
        place_workers(2, ["GPU-x", "GPU-y"], "cuda:2", cores=8, threads_set=False)
    assert caught.value.field == "--device" and "GPU-x, GPU-y" in str(caught.value)


def test_cpu_workers_split_the_cores() -> None:
    placements = place_workers(4, ["0", "1"], "cpu", cores=2, threads_set=False)
    assert visible(placements) == [None] * 4 and {p.device for p in placements} == {"cpu"}
    assert {p.env["OMP_NUM_THREADS"] for p in placements} == {"1"}  # never 0
    no_gpus = place_workers(2, [], None, cores=8, threads_set=False)
    assert [p.env for p in no_gpus] == [{"OMP_NUM_THREADS": "4"}] * 2
    assert [p.env for p in place_workers(2, [], None, cores=8, threads_set=True)] == [{}, {}]  # the user's


def test_auto_means_one_worker_per_given_gpu() -> None:
    assert auto_workers(["2", "3"], None) == 2 and auto_workers(["2", "3"], "cuda") == 2
    assert auto_workers(["2", "3"], "cuda:1") == 1 and auto_workers(["2", "3"], "cpu") == 1
    assert auto_workers([], None) == 1


class FakeProcess:
    """Stands in for a worker process: records how it was started, exits at once."""

    started: list[dict[str, Any]] = []

    def __init__(self, command: list[str], env: dict[str, str], **kwargs: Any) -> None:
        FakeProcess.started.append({"request": json.loads(command[-2]), "which": command[-1], "env": env})
        self.stdout = None

    def wait(self) -> int:
        return 0


def test_spawned_workers_get_their_gpu_device_and_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launch, "parent_gpus", lambda: ["MIG-a", "MIG-b"])
    monkeypatch.setattr(launch.subprocess, "Popen", FakeProcess)
    monkeypatch.setattr("bench.train.device.available_cores", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    FakeProcess.started = []
    assert launch.spawn_workers(RunRequest(task="t", methods=("linear",), device="cuda:1"), 2) == 0
    assert [s["env"]["CUDA_VISIBLE_DEVICES"] for s in FakeProcess.started] == ["MIG-b", "MIG-b"]
    assert [s["request"]["device"] for s in FakeProcess.started] == ["cuda:0", "cuda:0"]
    assert [s["env"]["OMP_NUM_THREADS"] for s in FakeProcess.started] == ["4", "4"]
    assert [s["which"] for s in FakeProcess.started] == ["0/2", "1/2"]
    FakeProcess.started = []
    launch.spawn_workers(RunRequest(task="t", methods=("linear",)), 3)
    assert [s["env"]["CUDA_VISIBLE_DEVICES"] for s in FakeProcess.started] == ["MIG-a", "MIG-b", "MIG-a"]
    assert [s["request"]["device"] for s in FakeProcess.started] == [None] * 3


def test_auto_workers_follow_the_parents_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,6")
    assert launch.parent_gpus() == ["5", "6"]
    assert launch.resolve_workers("auto") == 2 and launch.resolve_workers("auto", "cuda:0") == 1
    assert launch.resolve_workers("3", "cuda:0") == 3
