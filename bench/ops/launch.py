"""Local launcher: `bench run --workers N` starts N worker processes (bench.ops.worker; spread over the GPUs and
cores this process was given, bench.ops.placement) that share one plan through the run store.

There is no central queue to lose: every worker walks the whole plan (each from a different starting pair)
and runs whatever is neither recorded nor locked; the per-run lock file makes sure no run is executed or written
twice, and a worker that dies leaves its lock to be taken over. A worker keeps passing over the plan until every
run is recorded, so final stages start as soon as other workers finish the grid they wait for.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from bench.request import RunRequest

log = logging.getLogger("bench.ops.launch")
Pair = TypeVar("Pair")


def parse_fraction(text: str, what: str) -> tuple[int, int]:
    """'i/n' with 0 <= i < n, for --shard and --worker."""
    from bench.errors import BenchError

    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not sep or n < 1 or not 0 <= i < n:
        raise BenchError(f"{what} expects i/n with 0 <= i < n (e.g. 0/4), got {text!r}.")
    return i, n


def parent_gpus() -> list[str]:
    """The GPUs this process was given, as CUDA_VISIBLE_DEVICES entries for its workers (bench.ops.placement)."""
    import torch

    from bench.ops.placement import gpu_entries

    return gpu_entries(os.environ.get("CUDA_VISIBLE_DEVICES"), torch.cuda.device_count())


def resolve_workers(text: str, device: str | None = None) -> int:
    """'auto' = one worker per GPU this process was given (1 without GPUs, or when --device names one device);
    otherwise a positive number."""
    from bench.errors import BenchError

    if text == "auto":
        from bench.ops.placement import auto_workers

        return auto_workers(parent_gpus(), device)
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise BenchError(f"--workers expects a positive number or 'auto', got {text!r}.")
    return count


def work_until_done(
    pairs: Sequence[Pair],
    run_pair: Callable[[Pair], bool],
    offset: int,
    poll_s: float,
    waiting: Callable[[list[Pair]], None] | None = None,
) -> None:
    """Pass over the pairs (starting at `offset`) until run_pair reports each of them complete; between passes,
    tell `waiting` what is left and sleep."""
    pending = list(pairs[offset % len(pairs) :]) + list(pairs[: offset % len(pairs)]) if pairs else []
    while pending:
        pending = [pair for pair in pending if not run_pair(pair)]
        if pending:
            if waiting is not None:
                waiting(pending)
            time.sleep(poll_s)


def spawn_workers(request: RunRequest, count: int) -> int:
    """Run `count` worker processes (`python -m bench.ops.worker`) on the request, each on its share of the GPUs
    and cores this process was given (bench.ops.placement). Their output is prefixed with the worker number.
    Returns the worst exit code."""
    import dataclasses

    import bench
    from bench.ops.placement import place_workers
    from bench.train.device import available_cores

    placements = place_workers(count, parent_gpus(), request.device, available_cores(), "OMP_NUM_THREADS" in os.environ)
    source_root = str(Path(bench.__file__).resolve().parents[1])
    processes = []
    for index, placement in enumerate(placements):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source_root, os.environ.get("PYTHONPATH")]))}
        env.update(placement.env)
        log.debug("worker %d: %s, --device %s", index, placement.env, placement.device)
        worker_request = dataclasses.replace(request, device=placement.device)
        command = [sys.executable, "-m", "bench.ops.worker", worker_request.to_json(), f"{index}/{count}"]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(process)
    relays = [
        threading.Thread(target=_relay, args=(p.stdout, f"[worker {i}] "), daemon=True) for i, p in enumerate(processes)
    ]
    for relay in relays:
        relay.start()
    codes = [p.wait() for p in processes]
    for relay in relays:
        relay.join()
    failed = [i for i, code in enumerate(codes) if code != 0]
    if failed:
        log.error(
            "workers %s exited with codes %s; their unfinished runs are not recorded (run the same command "
            "again to finish them)",
            failed,
            [codes[i] for i in failed],
        )
    return max(codes, default=0)


def _relay(stream: IO[str] | None, prefix: str) -> None:
    if stream is None:
        return
    for line in stream:
        sys.stderr.write(prefix + line)
    stream.close()
