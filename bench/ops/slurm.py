"""`bench run --launcher slurm`: the plan's workers as a Slurm job array, submitted through submitit.

Each array task is one worker, exactly as with `--workers` on one machine: the run store's
locks keep array tasks off each other's runs. Workers are Checkpointable, so a preempted or timed-out task is
requeued by submitit and resumes its unfinished run from the run's own checkpoint. `--launcher submitit-local`
runs the same code through submitit's local executor (for tests and machines without Slurm).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import submitit

if TYPE_CHECKING:
    from bench.request import RunRequest

log = logging.getLogger("bench.ops.slurm")


@dataclass(frozen=True)
class SlurmSettings:
    jobs: int
    folder: Path
    partition: str | None = None
    time_min: int = 240
    gpus_per_job: int = 1
    parallelism: int = 64
    wait: bool = False


class Worker(submitit.helpers.Checkpointable):
    """One array task: bench.api.run_worker(request, index, count) in the submitting directory. On preemption or
    timeout submitit calls checkpoint() (inherited), which resubmits the same call; finished runs are then read
    back from the store and an interrupted one resumes from its checkpoint."""

    def __call__(self, request_json: str, index: int, count: int, cwd: str) -> int:
        from bench.api import run_worker
        from bench.request import RunRequest

        logging.basicConfig(level=logging.INFO, format="%(message)s")  # a fresh process: log as the CLI does
        os.chdir(cwd)
        run_worker(RunRequest.from_json(request_json), index, count)
        return 0


def submit(request: RunRequest, settings: SlurmSettings, cluster: str | None) -> list[Any]:
    """Submit the array; cluster None means Slurm (submitit's auto-detection), "local" the local executor."""
    executor = submitit.AutoExecutor(folder=settings.folder, cluster=cluster)
    parameters: dict[str, Any] = {"name": "bench", "timeout_min": settings.time_min,
                                  "gpus_per_node": settings.gpus_per_job, "slurm_array_parallelism":
                                  settings.parallelism}
    if settings.partition:
        parameters["slurm_partition"] = settings.partition
    executor.update_parameters(**parameters)
    count = settings.jobs
    jobs: list[Any] = executor.map_array(Worker(), [request.to_json()] * count, list(range(count)), [count] * count,
                                         [os.getcwd()] * count)
    log.info("submitted %d array tasks (%s); logs in %s", count, ", ".join(str(j.job_id) for j in jobs),
             settings.folder)
    if settings.wait:
        for job in jobs:
            job.result()  # raises with the task's traceback when a worker failed
    return jobs
