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


BASE_MEMORY_GIB = 8  # Python, torch, the CUDA context, the model and its optimizer state on the host, METEOR (1 GB)
CPUS_PER_TASK = 8  # batches come from memory-mapped decoded splits; a few threads feed a GPU


@dataclass(frozen=True)
class SlurmSettings:
    jobs: int
    folder: Path
    partition: str | None = None
    time_min: int = 240
    gpus_per_job: int = 1
    parallelism: int = 64
    wait: bool = False
    mem_gib: int = BASE_MEMORY_GIB
    cpus: int = CPUS_PER_TASK


def plan_memory_gib(tasks: list[Any]) -> int:
    """Host memory one array task needs: the largest set of decoded images one run maps (its training splits and
    the split it is scored on, uint8 at the task's stored size) plus BASE_MEMORY_GIB; split sizes as `bench perf`
    projects them (the list files, else the spec's, else the published sizes). Language runs read tokens, which
    are small next to the models: the base alone."""
    from bench.perf.projection import vision_split_size
    from bench.train.modality import of_modality

    largest = 0
    for task in of_modality(tasks, "vision"):
        resize = task.data.images.resize  # type: ignore[union-attr]  # a vision task's data has images
        # A shorter-side resize (FGVC) keeps each photo's aspect: counted as 4:3, the usual camera shape.
        height, width = (resize, resize * 4 // 3) if isinstance(resize, int) else resize
        for stage in (task.protocol.grid_stage, task.protocol.final_stage):
            images = sum(vision_split_size(task, split) or 0 for split in {*stage.train, stage.eval})
            largest = max(largest, images * height * width * 3)
    return BASE_MEMORY_GIB + -(-largest // 2**30)


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
                                  settings.parallelism, "mem_gb": settings.mem_gib,
                                  "cpus_per_task": settings.cpus}
    if settings.partition:
        parameters["slurm_partition"] = settings.partition
    executor.update_parameters(**parameters)
    count = settings.jobs
    jobs: list[Any] = executor.map_array(Worker(), [request.to_json()] * count, list(range(count)), [count] * count,
                                         [os.getcwd()] * count)
    log.info("submitted %d array tasks (%s; %d GiB and %d CPUs each); logs in %s", count,
             ", ".join(str(j.job_id) for j in jobs), settings.mem_gib, settings.cpus, settings.folder)
    if settings.wait:
        for job in jobs:
            job.result()  # raises with the task's traceback when a worker failed
    return jobs
