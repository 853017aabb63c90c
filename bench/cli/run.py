"""`bench run --task T --method M`: the protocol (grid -> select on val -> final seeds -> test), or its plan."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cli.common import add_dirs, int_list, names, parse_overrides
from bench.errors import BenchError

if TYPE_CHECKING:
    from bench.request import RunRequest

log = logging.getLogger("bench")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the protocol (grid -> select on val -> final seeds -> test)")
    p.add_argument("--task", required=True, help="task or suite name (see `bench list tasks|suites`)")
    p.add_argument("--method", required=True, help="method name, comma-separated names, or 'all'")
    p.add_argument("--stage", choices=["grid", "final", "all"], default="all")
    p.add_argument("--seeds", type=int_list, default=None, help="final seeds, e.g. 42,44 (default: the task's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="fix a grid axis or method hyper-parameter (repeatable), e.g. --set base_lr=0.5")
    p.add_argument("--device", default=None,
                   help="cpu, cuda, cuda:1 (default: cuda when available, else the CPU with a warning; never the CPU "
                        "when CUDA is unusable on a machine that was given a GPU, docs/gpus.md)")
    p.add_argument("--protocol", default="clean", metavar="NAME",
                   help="task profile: clean (default: every method searched on val the same way) or paper (the "
                        "official code's settings, docs/parity.md); part of each run's identity")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                   help="default: bf16 autocast on CUDA, fp32 on CPU (a task profile may fix it)")
    p.add_argument("--checkpoint-interval", type=float, default=120.0, metavar="SECONDS",
                   help="write a resume checkpoint at an epoch end when this much time has passed")
    p.add_argument("--dry-run", action="store_true", help="print the plan (runs, data, estimated cost) and stop")
    p.add_argument("--data-fraction", default=None, metavar="F[,F...]",
                   help="train grid and final runs on nested class-balanced subsets of the training data, e.g. "
                        "0.1,0.25,0.5,1.0 (val and test stay whole; 1.0 = the usual runs)")
    p.add_argument("--train-examples", type=int_list, default=None, metavar="N[,N...]",
                   help="language tasks: train on N examples (a nested seeded subset; low-data settings), per value")
    p.add_argument("--num-tokens", type=int_list, default=None, metavar="N[,N...]",
                   help="sweep the prompt / prefix length: the whole protocol once per value (fixes num_tokens)")
    p.add_argument("--limit", default=None, metavar="N",
                   help="smoke run: at most N examples of every split a run reads (training, val, test; a fixed "
                        "seeded choice, after --data-fraction / --train-examples); marked smoke in key and record")
    p.add_argument("--epochs", default=None, metavar="E",
                   help="smoke run: train E epochs instead of the task's / method's (warm-up shortened in "
                        "proportion); marked smoke in key and record, never on a leaderboard")
    p.add_argument("--compile", action="store_true",
                   help="vision tasks: torch.compile the model (inductor, dynamo reset before each run); the backend "
                        "that ran is recorded in each run's cost section")
    p.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=False,
                   help="TF32 matmuls and convolutions on CUDA (default: off, true fp32); recorded, and part of each "
                        "run's identity when on")
    p.add_argument("--grid-prune", action="store_true",
                   help="successive halving over the grid on val (optuna); changes the protocol, so its runs are "
                        "marked and the leaderboard labels them")
    p.add_argument("--track", choices=["mlflow", "wandb"], default=None,
                   help="also log each run trained to MLflow (MLFLOW_TRACKING_URI, else a file store in "
                        "<results>/_mlflow) or W&B (WANDB_MODE, default offline): history, parameters, metrics, key "
                        "(extras track-mlflow / track-wandb); never changes a run's key or record")
    p.add_argument("--workers", default="1", metavar="N|auto",
                   help="run N worker processes that share the plan through the run store, spread over the GPUs "
                        "this process was given, the CPU cores split between them (auto: one per GPU)")
    p.add_argument("--shard", default=None, metavar="i/n",
                   help="run only shard i of n of the plan (split by run, stable across machines)")
    p.add_argument("--launcher", choices=["local", "slurm", "submitit-local"], default="local",
                   help="local processes (default), a Slurm job array through submitit, or submitit's local "
                        "executor (same code path as slurm, for testing)")
    p.add_argument("--slurm-jobs", type=int, default=None, help="array tasks (default: --workers)")
    p.add_argument("--slurm-partition", default=None)
    p.add_argument("--slurm-time", type=int, default=240, metavar="MINUTES", help="time limit per array task")
    p.add_argument("--slurm-gpus", type=int, default=1, help="GPUs per array task")
    p.add_argument("--slurm-parallelism", type=int, default=64, help="array tasks running at once")
    p.add_argument("--slurm-mem", type=int, default=None, metavar="GIB",
                   help="host memory per array task (default: from the plan, the largest decoded split set of one "
                        "run + 8 GiB)")
    p.add_argument("--slurm-cpus", type=int, default=8, help="CPUs per array task (default 8)")
    p.add_argument("--slurm-folder", type=Path, default=Path("results/slurm"), help="submitit logs and pickles")
    p.add_argument("--wait", action="store_true", help="slurm: wait for the array and print the summary")
    p.add_argument("--poll", type=float, default=5.0, help=argparse.SUPPRESS)  # seconds between worker passes
    add_dirs(p, results=True)
    p.set_defaults(func=command)


def request_of(args: argparse.Namespace) -> RunRequest:
    from bench.ops.launch import parse_fraction
    from bench.request import RunRequest

    fractions = None
    if args.data_fraction:
        from bench.data.subsets import parse_fractions

        fractions = tuple(parse_fractions(args.data_fraction))
    return RunRequest(
        task=args.task, methods=("all",) if args.method == "all" else names(args.method),
        stages=("grid", "final") if args.stage == "all" else (args.stage,),
        seeds=tuple(args.seeds) if args.seeds else None, overrides=parse_overrides(args.overrides),
        results=str(args.results) if args.results is not None else None, device=args.device,
        precision=args.precision, checkpoint_interval=args.checkpoint_interval, data_fractions=fractions,
        num_tokens=tuple(args.num_tokens) if args.num_tokens else None,
        train_examples=tuple(args.train_examples) if args.train_examples else None, compile=args.compile,
        tf32=args.tf32,
        grid_prune=args.grid_prune, shard=parse_fraction(args.shard, "--shard") if args.shard else None,
        tasks_dirs=tuple(map(str, args.tasks_dir)), methods_dirs=tuple(map(str, args.methods_dir)),
        protocol=args.protocol, poll_s=args.poll, limit=whole_number(args.limit, "--limit"),
        epochs=whole_number(args.epochs, "--epochs"))


def whole_number(text: str | None, flag: str) -> int | None:
    """A smoke option's value as an integer (its range is checked with the rest of the request, api.check_smoke)."""
    if text is None:
        return None
    from bench.api import smoke_value_error

    try:
        return int(text)
    except ValueError:
        raise smoke_value_error(flag, text) from None


def command(args: argparse.Namespace) -> int:
    from bench import api
    from bench.ops import launch

    request = request_of(args)
    if args.track:
        from bench.track import require

        require(args.track)  # before anything runs: a missing package is one paragraph and exit 2
    if args.dry_run:
        from bench.plan import print_plan

        print_plan(request)
        return 0
    workers = launch.resolve_workers(args.workers, args.device)
    if args.launcher != "local":
        from bench.track import tracking

        with tracking(args.track):  # the array tasks inherit BENCH_TRACK
            if not _submit_array(args, request, workers):
                return 0
        workers = 1  # the array has finished: read its records back
    outcome = api.run(request, workers=workers, progress=sys.stderr.isatty(), track=args.track)
    if "final" in request.stages:
        for line in outcome.summary_lines():
            print(line)
    return 0


def _submit_array(args: argparse.Namespace, request: RunRequest, workers: int) -> bool:
    """Submit the workers as a job array; True when the array has finished (waited for) here."""
    try:
        from bench.ops import slurm
    except ImportError as exc:
        raise BenchError("--launcher slurm needs submitit, which is not installed.",
                         hint="pip install 'peft-bench[slurm]' (or pip install submitit).") from exc
    from bench import api

    plan = api.pairs(request)  # refuse bad input before anything is submitted
    jobs = args.slurm_jobs or workers
    if (jobs < 1 or args.slurm_time < 1 or args.slurm_gpus < 0 or args.slurm_parallelism < 1 or args.slurm_cpus < 1
            or (args.slurm_mem is not None and args.slurm_mem < 1)):
        raise BenchError("--slurm-jobs, --slurm-time, --slurm-parallelism, --slurm-cpus and --slurm-mem must be "
                         "positive, --slurm-gpus >= 0.")
    local = args.launcher == "submitit-local"
    mem = args.slurm_mem or slurm.plan_memory_gib(list({p.task.name: p.task for p in plan}.values()))
    settings = slurm.SlurmSettings(jobs=jobs, folder=args.slurm_folder.resolve(), partition=args.slurm_partition,
                                   time_min=args.slurm_time, gpus_per_job=0 if local else args.slurm_gpus,
                                   parallelism=args.slurm_parallelism, wait=args.wait or local, mem_gib=mem,
                                   cpus=args.slurm_cpus)
    slurm.submit(request, settings, cluster="local" if local else None)
    if not settings.wait:
        print(f"submitted {jobs} array tasks; logs in {settings.folder}. Run the same command again (or "
              "`bench leaderboard`) when they have finished.")
    return settings.wait
