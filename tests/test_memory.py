"""CUDA out-of-memory errors (bench.train.memory, bench.train.loop): recognised, retried once under the memory
fallback with the same key and results, else recorded as a failed run that no process trains again; and the
decision to keep a split's pixels in host memory. OOM errors are injected on the CPU."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from bench import registry
from bench.store import RunStore
from bench.train import memory
from bench.train.config import RunOptions
from bench.train.memory import eval_batch_size, is_out_of_memory, on_device, resident_splits
from bench.train.protocol import run_protocol
from bench.train.vision import VisionModality

FINAL: dict[str, Any] = {"stages": ("final",), "seeds": [42], "overrides": {"base_lr": 0.1, "weight_decay": 0.0}}
OOM = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total capacity)"


def test_out_of_memory_errors_are_recognised() -> None:
    assert is_out_of_memory(torch.cuda.OutOfMemoryError(OOM))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert is_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED ... Out Of Memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))  # not an error torch raises


def test_splits_stay_on_the_device_while_they_fit_in_half_the_free_memory() -> None:
    assert on_device([6, 3, 2], free_bytes=20) == [True, True, False]  # budget 10: 6 + 3 fit, then 2 does not
    assert on_device([30, 4], free_bytes=20) == [False, True]  # a big training split leaves room for the eval split
    assert on_device([0, 0], free_bytes=0) == [True, True]  # ragged images (no stacked pixels) cost nothing here
    assert on_device([10], free_bytes=20, share=0.25) == [False]


@dataclass
class FakeSplit:
    name: str
    images: Any


def test_where_a_runs_splits_live(monkeypatch: pytest.MonkeyPatch) -> None:
    train = FakeSplit("train", torch.zeros(100, 4, 4, 3, dtype=torch.uint8))  # 4800 bytes
    test = FakeSplit("test", torch.zeros(50, 4, 4, 3, dtype=torch.uint8))  # 2400 bytes
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resident_splits([train, test], cpu, fallback=False) == [True, True]  # the device is the host
    assert resident_splits([train, test], cpu, fallback=True) == [False, False]
    monkeypatch.setattr(memory, "free_memory", lambda device: 10_000)  # mocked torch.cuda.mem_get_info
    assert resident_splits([train, test], cuda, fallback=False) == [True, False]
    monkeypatch.setattr(memory, "free_memory", lambda device: 100_000)
    assert resident_splits([train, test], cuda, fallback=False) == [True, True]
    assert resident_splits([train, test], cuda, fallback=True) == [False, False]


def test_the_fallback_evaluates_in_smaller_batches() -> None:
    assert eval_batch_size(128, fallback=False) == 128
    assert eval_batch_size(128, fallback=True) == 32
    assert eval_batch_size(2, fallback=True) == 1


def oom_on(monkeypatch: pytest.MonkeyPatch, times: int) -> list[RunOptions]:
    """Make VisionModality.periodic_evaluation raise a CUDA OOM error the first `times` calls; returns the
    options of every call (what each attempt ran with)."""
    seen: list[RunOptions] = []
    original = VisionModality.periodic_evaluation

    def evaluation(self: Any, net: Any, data: Any, config: Any, epoch: int, last: bool, options: RunOptions) -> Any:
        seen.append(options)
        if len(seen) <= times:
            raise torch.cuda.OutOfMemoryError(OOM)
        return original(self, net, data, config, epoch, last, options)

    monkeypatch.setattr(VisionModality, "periodic_evaluation", evaluation)
    return seen


def test_an_out_of_memory_run_is_retried_once_with_the_fallback(tiny_tasks_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    task = registry.load_task_by_name("tiny/colors", (tiny_tasks_dir,))
    method = registry.get_method("vpt_shallow")
    plain = run_protocol(task, method, RunStore(tmp_path / "plain"), RunOptions(), **FINAL).final[0]
    seen = oom_on(monkeypatch, times=1)
    retried = run_protocol(task, method, RunStore(tmp_path / "retried"), RunOptions(), **FINAL).final[0]
    assert seen[0].memory_fallback is False and all(o.memory_fallback for o in seen[1:])
    assert retried["status"] == "completed" and retried["key"] == plain["key"]  # the fallback keeps the identity
    assert retried["metrics"]["top1"] == plain["metrics"]["top1"]
    assert [h["train_loss"] for h in retried["history"]] == pytest.approx([h["train_loss"] for h in plain["history"]])
    assert retried["cost"]["oom_retries"] == 1 and "oom_retries" not in plain["cost"]
    fallback = retried["cost"]["memory_fallback"]
    assert fallback["after"] == [f"OutOfMemoryError: {OOM}"] and "exact arithmetic" in fallback["what"]


def test_a_second_out_of_memory_error_records_a_failed_run_that_stays_failed(
        tiny_tasks_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    task = registry.load_task_by_name("tiny/colors", (tiny_tasks_dir,))
    method = registry.get_method("deep_share")
    store = RunStore(tmp_path)
    seen = oom_on(monkeypatch, times=99)
    result = run_protocol(task, method, store, RunOptions(), **FINAL)
    (failed,) = result.final
    assert len(seen) == 2  # the run and its one retry, nothing more
    assert failed["status"] == "failed" and failed["metrics"]["top1"] is None
    assert "out of memory 2 times" in failed["metrics"]["failure"] and OOM in failed["metrics"]["failure"]
    assert failed["cost"]["oom_retries"] == 1 and failed["params"]["trainable"] > 0
    assert result.complete and result.test_scores() == []
    # Another process (or the same command again) finds the record: the run is not trained again.
    again = run_protocol(task, method, store, RunOptions(), **FINAL)
    assert len(seen) == 2 and again.final[0]["key"] == failed["key"]
    assert [r["status"] for r in store.records()] == ["failed"]
    from bench.cli import main

    capsys.readouterr()
    assert main(["show", failed["key"], "--results", str(tmp_path)]) == 0  # readable like any other record
    assert "top1: failed (CUDA out of memory 2 times" in capsys.readouterr().out


def test_other_errors_are_not_taken_for_memory(tiny_tasks_dir: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    task = registry.load_task_by_name("tiny/colors", (tiny_tasks_dir,))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug, not a lack of memory")

    monkeypatch.setattr(VisionModality, "periodic_evaluation", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        run_protocol(task, registry.get_method("linear"), RunStore(tmp_path), RunOptions(), **FINAL)
    assert list(RunStore(tmp_path).records()) == []


def test_a_board_note_tells_failed_seeds_from_diverged_ones() -> None:
    from bench.leaderboard.board import cell_notes
    from bench.leaderboard.collect import Cell

    cell = Cell(task="t", method="m", scores=(50.0,), seeds=(42,), run_dirs=("d",), metric="top1", point="p",
                trainable=1, trainable_percent=0.1, diverged_seeds=(44,), failed_seeds=(82, 100))
    assert ("seeds 44 diverged; 82, 100 failed (`bench show` says why); the mean is over the others"
            in cell_notes(cell))
