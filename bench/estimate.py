"""What a plan still has to do and how long that takes: each planned run's key, computed as the engine computes it,
looked up in the run store, and times calibrated from the stored runs of this device.

It never trains, builds no model and never writes to the store (a vision split not yet decoded is decoded to the
image cache, as the run itself would, and only when the store holds runs of that task and method).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bench.errors import BenchError
from bench.progress import Progress, duration

if TYPE_CHECKING:
    from bench.method import GridValue, Method
    from bench.request import RunRequest
    from bench.spec import AnyTaskSpec
    from bench.store import RunStore
    from bench.train.config import MethodSettings, RunConfig, RunOptions, Smoke

log = logging.getLogger("bench")
# Rough sustained training throughput for the estimate of vision runs without comparable stored runs (FLOP/s).
ASSUMED_FLOPS = {"cuda": 150e12, "cpu": 50e9}


class PlannedVariant(Protocol):
    """What planning reads of a pair's variant (bench.api.Variant)."""

    @property
    def data_fraction(self) -> float | None: ...
    @property
    def num_tokens(self) -> int | None: ...
    @property
    def train_examples(self) -> int | None: ...
    def describe(self) -> str: ...
    def fixed_values(self, overrides: dict[str, GridValue]) -> dict[str, GridValue]: ...


class PlannedPair(Protocol):
    """A (task, method, variant) of a plan (bench.api.Pair, named by its shape: the API imports this module)."""

    @property
    def task(self) -> AnyTaskSpec: ...
    @property
    def method(self) -> type[Method]: ...
    @property
    def variant(self) -> PlannedVariant: ...


# What an estimate rests on, as the total line names it.
BASES = {"stored": "stored runs of this device", "flops": "assumed FLOP/s",
         "unknown": "no estimate where there are neither stored runs nor a FLOP count", "": ""}


@dataclass(frozen=True)
class Estimate:
    """Seconds for some runs (None: unknown) and what the figure rests on: `kind` (a key of BASES) and in words."""

    seconds: float | None
    basis: str
    kind: str = ""


@dataclass
class PairStatus:
    """One (task, method, variant) of a plan: its runs, how many are recorded already, and the time of the rest."""

    pair: PlannedPair
    settings: MethodSettings
    grid_runs: int
    final_runs: int
    done: int
    epochs: int
    train_examples: int | None  # example-epochs of every planned run (None: split sizes not known yet)
    flops: float | None  # training and evaluation FLOPs of every planned run (None: not estimated)
    backbone: tuple[int, float] | None  # (parameters, forward FLOPs per example); None: not counted for the modality
    estimate: Estimate  # for the runs still to do
    notes: list[str] = field(default_factory=list)

    @property
    def planned(self) -> int:
        return self.grid_runs + self.final_runs

    @property
    def to_run(self) -> int:
        return self.planned - self.done


@dataclass
class Survey:
    """A request's plan against the run store: per pair and in total."""

    pairs: list[PairStatus]
    device: str  # the device runs would use, as records name it (CPU thread count left out)
    device_kind: str  # cuda | cpu
    shard: tuple[int, int] | None = None

    @property
    def planned(self) -> int:
        return sum(p.planned for p in self.pairs)

    @property
    def done(self) -> int:
        return sum(p.done for p in self.pairs)

    @property
    def to_run(self) -> int:
        return self.planned - self.done

    def estimate(self) -> Estimate:
        """The time of every run still to do, with the bases used (runs without an estimate are counted)."""
        waiting = [p for p in self.pairs if p.to_run]
        known = [p for p in waiting if p.estimate.seconds is not None]
        unknown = sum(p.to_run for p in waiting if p.estimate.seconds is None)
        if not waiting:
            return Estimate(0.0, "nothing to run")
        seconds = sum(p.estimate.seconds or 0.0 for p in known) if known else None
        kinds = [kind for kind in BASES if any(p.estimate.kind == kind for p in waiting)]
        basis = ", ".join(BASES[kind] for kind in kinds) + (f" ({unknown} runs)" if unknown and known else "")
        return Estimate(seconds, basis)

    def seconds_per_run(self) -> float | None:
        """The mean estimated time of a run still to do (None: no estimate for any)."""
        known = [p for p in self.pairs if p.to_run and p.estimate.seconds is not None]
        runs = sum(p.to_run for p in known)
        return sum(p.estimate.seconds or 0.0 for p in known) / runs if runs else None

    def headline(self) -> str:
        """'16 runs: 9 done, 7 to run; estimated 3.2 min (stored runs of this device)'."""
        estimate = self.estimate()
        text = f"{self.planned} runs: {self.done} done, {self.to_run} to run"
        if self.to_run and estimate.seconds is None:
            text += f"; time unknown (no stored runs of these tasks on {self.device})"
        elif self.to_run:
            text += f"; estimated {duration(estimate.seconds)} on {self.device} ({estimate.basis})"
        return text


# ---------------------------------------------------------------- calibration from stored runs


@dataclass(frozen=True)
class Sample:
    """One stored run's time: wall seconds for `work` training example-epochs."""

    task: str
    method: str
    precision: str
    seconds: float
    work: float
    modality: str | None = None  # of the task (None: its spec is not found here)
    forward_flops: float | None = None  # per example, of the task's backbone (None: not counted for the modality)


@dataclass(frozen=True)
class TaskFacts:
    """What calibration needs to know of a stored run's task."""

    modality: str | None
    forward_flops: float | None


def comparable_device(name: str) -> str:
    """Device names compare without the CPU thread count: workers (`--workers`) split the cores between them, and
    they also split the runs, so a 1-thread run's time stands for a share of the machine."""
    return re.sub(r", \d+ threads\)$", ")", name)


class Calibration:
    """Run times from stored runs on this device (same precision and smoke settings).

    Rules, first that applies: (1) the runs of this task and method; (2) the runs of this task with other methods,
    scaled by how this method's rate compares with the other methods' on the other tasks of the same modality
    where both ran (geometric mean of the ratios; unscaled when there are none). Both as seconds per training
    example-epoch: the rate covers everything in `cost.wall_s` (data, model building, evaluation), so grid and
    final runs (which train on different splits) and other epoch counts scale with it. (3) Where a task has a
    FLOP count (vision) but no stored runs: seconds per training FLOP measured on the other tasks' runs (this
    method's when there are some, else every method's)."""

    def __init__(self, samples: Sequence[Sample]) -> None:
        self._samples = list(samples)

    def task_samples(self, task: str) -> list[Sample]:
        return [s for s in self.all_samples() if s.task == task]

    def all_samples(self) -> list[Sample]:
        return self._samples

    def rate(self, task: str, method: str, precision: str, modality: str) -> tuple[float, float, str] | None:
        """(seconds per example-epoch, seconds per run, basis) for a run of `method` on `task` (of `modality`);
        None: no stored runs of the task."""
        same = [s for s in self.task_samples(task) if s.precision == precision]
        mine = [s for s in same if s.method == method]
        if mine:
            return _rate(mine), _per_run(mine), f"{len(mine)} stored {task} {method} run(s) on this device"
        if not same:
            return None
        factor, tasks = self.method_factor(method, precision, task, modality)
        scaled = (f" × {factor:.2g} ({method}'s cost relative to other methods on {tasks} other {modality} task(s))"
                  if tasks else f", unscaled (no stored {method} runs on other {modality} tasks to scale by)")
        basis = f"{len(same)} stored {task} run(s) of other methods on this device{scaled}"
        return _rate(same) * factor, _per_run(same) * factor, basis

    def method_factor(self, method: str, precision: str, besides: str, modality: str) -> tuple[float, int]:
        """How much slower (> 1) or faster this method trains than the others, over the other tasks of the modality
        where both ran: (geometric mean of the rate ratios, number of tasks); (1.0, 0) when there are none."""
        samples = self.all_samples()
        logs = []
        for task in sorted({s.task for s in samples if s.task != besides and s.modality == modality}):
            here = [s for s in samples if s.task == task and s.precision == precision]
            mine, others = [s for s in here if s.method == method], [s for s in here if s.method != method]
            if mine and others:
                logs.append(math.log(_rate(mine) / _rate(others)))
        return (math.exp(sum(logs) / len(logs)), len(logs)) if logs else (1.0, 0)

    def flop_time(self, method: str, precision: str, besides: str) -> tuple[float, str] | None:
        """(seconds per training FLOP, basis) from the runs of other tasks with a FLOP count (rule 3); None: none."""
        counted = [s for s in self.all_samples()
                   if s.task != besides and s.precision == precision and s.forward_flops is not None]
        mine = [s for s in counted if s.method == method]
        chosen = mine or counted
        if not chosen:
            return None
        flops = sum(s.work * 3 * (s.forward_flops or 0.0) for s in chosen)
        seconds = sum(s.seconds for s in chosen)
        whose = f"{method} runs" if mine else "runs (every method)"
        tasks = len({s.task for s in chosen})
        return seconds / flops, (f"FLOPs at {flops / seconds / 1e9:.3g} GFLOP/s, measured on {len(chosen)} stored "
                                 f"{whose} of {tasks} other task(s) on this device")


class StoredTimes(Calibration):
    """The calibration of a run store, read when first needed: a task's runs when a pair of it has runs to do,
    every run of the store only when rule 2 or 3 needs them. `facts_of(task name)` tells a task's modality and
    backbone FLOPs."""

    def __init__(
        self, store: RunStore, device: str | None, smoke: Smoke | None, facts_of: Callable[[str], TaskFacts]
    ) -> None:
        super().__init__([])
        self.store, self.device, self.facts_of = store, device, facts_of
        self.smoke = smoke.identity() if smoke is not None else None
        self._tasks: dict[str, list[Sample]] = {}
        self._all: list[Sample] | None = None

    def task_samples(self, task: str) -> list[Sample]:
        if self._all is not None:
            return super().task_samples(task)
        if task not in self._tasks:
            self._tasks[task] = self._read(task)
        return self._tasks[task]

    def all_samples(self) -> list[Sample]:
        if self._all is None:
            self._all = self._read(None)
        return self._all

    def _read(self, task: str | None) -> list[Sample]:
        """The stored runs (of one task, or all) of this device with the same smoke settings."""
        if self.device is None:
            return []
        samples = []
        for record in self.store.records(task=task):
            cost, run = record.get("cost") or {}, record.get("run") or {}
            if comparable_device(str(cost.get("device", ""))) != self.device or run.get("smoke") != self.smoke:
                continue
            examples = (record.get("data") or {}).get("train_examples")
            work = float(examples or 0) * len(record.get("history") or [])
            seconds = cost.get("wall_s")
            if work > 0 and isinstance(seconds, int | float) and seconds > 0:
                name = str(run["task"])
                facts = self.facts_of(name)
                samples.append(Sample(name, str(run["method"]), str(cost.get("precision")), float(seconds), work,
                                      facts.modality, facts.forward_flops))
        return samples


def _rate(samples: Sequence[Sample]) -> float:
    return sum(s.seconds for s in samples) / sum(s.work for s in samples)


def _per_run(samples: Sequence[Sample]) -> float:
    return sum(s.seconds for s in samples) / len(samples)


# ---------------------------------------------------------------- the survey


def survey(request: RunRequest, plan: Sequence[PlannedPair], smoke: Smoke | None) -> Survey:
    """Every pair of a request's plan (bench.api.pairs, checked) against the run store; `smoke`: the request's
    smoke settings (bench.api.smoke_of)."""
    from bench.store import RunStore
    from bench.train.config import RunOptions
    from bench.train.modality import modality_for

    kind, device = device_of(request)
    store = RunStore(request.results_dir)
    sizes_of: dict[str, dict[str, int | None]] = {}
    costs_of: dict[str, tuple[int, float] | None] = {}
    facts: dict[str, TaskFacts] = {}
    for task in {p.task.name: p.task for p in plan}.values():
        sizes_of[task.name] = modality_for(task).split_sizes(task)
        costs_of[task.name] = cost = modality_for(task).backbone_cost(task)
        facts[task.name] = TaskFacts(task.modality, cost[1] if cost is not None else None)

    def facts_of(name: str) -> TaskFacts:
        if name not in facts:
            facts[name] = _facts_of(name, request)
        return facts[name]

    calibration = StoredTimes(store, device, smoke, facts_of)
    options = RunOptions(device=kind)  # what run keys need of the options: the image cache's location
    statuses = []
    for pair in plan:
        task = pair.task
        statuses.append(_pair_status(pair, request, smoke, store, options, kind, device, calibration,
                                     sizes_of[task.name], costs_of[task.name]))
    return Survey(statuses, device or f"{kind} (not visible here)", kind, request.shard)


def plan_progress(request: RunRequest, plan: Sequence[PlannedPair], smoke: Smoke | None, workers: int = 1) -> Progress:
    """The `[k/N]` / ETA counter of a process running `plan` (bench.progress), from what the store holds already;
    logs the plan's line (runs, done, to run, estimated time and its basis). `workers`: processes sharing the plan."""
    found = survey(request, plan, smoke)
    log.info("plan: %s", found.headline())
    return Progress(found.planned, found.done, found.seconds_per_run(), sharing=workers)


def _facts_of(name: str, request: RunRequest) -> TaskFacts:
    """A stored task's modality and backbone FLOPs, from its spec (unknown when the spec is not found here)."""
    from bench import registry
    from bench.train.modality import modality_for

    try:
        task = registry.load_task_by_name(name, tuple(Path(d) for d in request.tasks_dirs))
    except BenchError:
        return TaskFacts(None, None)
    cost = modality_for(task).backbone_cost(task)
    return TaskFacts(task.modality, cost[1] if cost is not None else None)


def device_of(request: RunRequest) -> tuple[str, str | None]:
    """(cuda | cpu, the device's name as records give it, None when the requested GPU is not visible here)."""
    from bench.train.device import default_device, device_name

    try:
        device = default_device(request.device)
    except BenchError:  # planning a GPU run on a machine without one: no stored times to compare with
        return "cuda", None
    return device.type, comparable_device(device_name(device))


def _pair_status(
    pair: PlannedPair,
    request: RunRequest,
    smoke: Smoke | None,
    store: RunStore,
    options: RunOptions,
    kind: str,
    device: str | None,
    calibration: Calibration,
    sizes: dict[str, int | None],
    backbone: tuple[int, float] | None,
) -> PairStatus:
    from bench.train.device import default_precision, effective_tf32, task_precision
    from bench.train.modality import modality_for
    from bench.train.protocol import Shard, chosen_by_of, grid_points, method_settings

    task, method_cls = pair.task, pair.method
    fixed = pair.variant.fixed_values(request.overrides)
    settings = method_settings(task, method_cls, fixed)
    points = grid_points(settings)
    precision = task_precision(task.protocol.precision, default_precision(request.precision, kind), kind)
    epochs = smoke.epochs if smoke is not None and smoke.epochs is not None else settings.epochs
    seeds = list(request.seeds or task.protocol.seeds)
    shard = Shard(*request.shard) if request.shard else None
    notes: list[str] = []
    # Keys are computed only where the store has runs of this task and method, and the data is in place.
    folder = store.root / task.name / method_cls.name
    check = folder.is_dir() and modality_for(task).data_present(task)
    if folder.is_dir() and not check:
        notes.append("not checked: the data is not in place")

    def key_status(config: RunConfig) -> dict[str, Any] | None:
        """The stored record of a run, None when there is none (or it cannot be checked)."""
        if not check:
            return None
        try:
            from bench.train.loop import key_of

            return store.load(store.run_dir(task.name, method_cls.name, config.stage, key_of(config, options)))
        except BenchError as exc:  # an OSError (a full disk while caching the data) is the run's error, not a note
            notes.append(f"not checked: {exc}")
            return None

    def config(point: dict[str, GridValue], stage: str, seed: int, prune: dict[str, Any] | None) -> RunConfig:
        from bench.train.protocol import make_config

        return make_config(task, method_cls, settings, point, stage, seed, prune, pair.variant.data_fraction,
                           pair.variant.train_examples, precision, chosen_by if stage == "final" else None, smoke,
                           effective_tf32(request.tf32, kind))

    chosen_by = chosen_by_of(points, fixed)  # part of the final runs' identity, as run_protocol decides it
    prune = None
    if request.grid_prune and len(points) > 1:
        from bench.train.pruning import prune_settings

        prune = prune_settings(getattr(task.protocol, "eval_every", 1))
    grid_runs = grid_done = 0
    point: dict[str, GridValue] | None = points[0] if len(points) == 1 else None
    final_prune = None
    keyed = check or shard is not None  # configs (and their keys) are needed to look runs up, or to shard them
    if len(points) > 1 and ("grid" in request.stages or "final" in request.stages):
        configs = [config(p, "grid", task.protocol.grid_seed, prune) for p in points] if keyed else []
        records = [key_status(c) for c in configs]
        if "grid" in request.stages:
            mine = [r for c, r in zip(configs, records, strict=True) if shard is None or shard.owns(c)]
            grid_runs, grid_done = (len(mine), sum(r is not None for r in mine)) if keyed else (len(points), 0)
        found = [r for r in records if r is not None]
        if len(found) == len(points):
            try:
                from bench.train.protocol import select_on_val

                point, final_prune = select_on_val(found, task.primary_metric)["point"], prune
            except BenchError as exc:
                notes.append(f"final stage will stop: {exc}")
        elif "final" in request.stages:
            notes.append(f"final point not chosen yet (grid {len(found)}/{len(points)} recorded)"
                         + ("" if "grid" in request.stages else "; the final stage will refuse to start"))
    final_runs = final_done = 0
    if "final" in request.stages:
        if point is None:
            final_runs = 0 if shard is not None else len(seeds)  # a shard runs them only once the grid is complete
        elif not keyed:
            final_runs = len(seeds)
        else:
            finals = [config(point, "final", seed, final_prune) for seed in seeds]
            mine_final = [c for c in finals if shard is None or shard.owns(c)]
            final_runs, final_done = len(mine_final), sum(key_status(c) is not None for c in mine_final)
    read: Callable[[int], int] = smoke.examples if smoke is not None else (lambda count: count)
    per_run = {stage: _train_examples(task, stage, sizes, pair.variant.data_fraction, pair.variant.train_examples,
                                      read) for stage in ("grid", "final")}
    planned = {"grid": grid_runs, "final": final_runs}
    to_run = {"grid": grid_runs - grid_done, "final": final_runs - final_done}
    examples = None if any(per_run[s] is None and planned[s] for s in planned) else sum(
        planned[s] * epochs * (per_run[s] or 0) for s in planned)
    flops = None
    if backbone is not None:
        flops = 0.0
        for stage, runs in planned.items():
            flops += runs * _flops(task, stage, sizes, per_run[stage], epochs, backbone[1], read)
    estimate = _estimate(task, method_cls, precision, kind, calibration, to_run, per_run, epochs, sizes, backbone,
                         read, device)
    return PairStatus(pair, settings, grid_runs, final_runs, grid_done + final_done, epochs, examples, flops,
                      backbone, estimate, list(dict.fromkeys(notes)))


def _train_examples(task: AnyTaskSpec, stage: str, sizes: dict[str, int | None], data_fraction: float | None,
                    train_examples: int | None, read: Callable[[int], int]) -> int | None:
    """Training examples of one run of a stage, after --data-fraction / --train-examples and --limit."""
    spec = task.protocol.grid_stage if stage == "grid" else task.protocol.final_stage
    counts = [sizes.get(s) for s in spec.train]
    if any(c is None for c in counts):
        return None
    total = sum(c or 0 for c in counts)
    if data_fraction is not None and data_fraction < 1.0:
        total = round(total * data_fraction)
    if train_examples is not None:
        total = min(total, train_examples)
    return read(total)


def _flops(task: AnyTaskSpec, stage: str, sizes: dict[str, int | None], examples: int | None, epochs: int,
           cost: float, read: Callable[[int], int]) -> float:
    """Training (3 x forward per example-epoch) and one evaluation pass of a run."""
    spec = task.protocol.grid_stage if stage == "grid" else task.protocol.final_stage
    return epochs * (examples or 0) * 3 * cost + read(sizes.get(spec.eval) or 0) * cost


def _estimate(task: AnyTaskSpec, method_cls: type[Method], precision: str, kind: str, calibration: Calibration,
              to_run: dict[str, int], per_run: dict[str, int | None], epochs: int, sizes: dict[str, int | None],
              backbone: tuple[int, float] | None, read: Callable[[int], int], device: str | None) -> Estimate:
    if not sum(to_run.values()):
        return Estimate(0.0, "")
    rate = calibration.rate(task.name, method_cls.name, precision, task.modality)
    if rate is not None:
        per_example_epoch, per_stored_run, basis = rate
        seconds = 0.0
        for stage, runs in to_run.items():
            examples = per_run[stage]
            seconds += runs * (per_example_epoch * epochs * examples if examples is not None else per_stored_run)
        return Estimate(seconds, basis, "stored")
    why = (f"no stored {task.name} runs on this device" if device is not None
           else "the requested GPU is not visible here to compare stored runs with")
    measured = calibration.flop_time(method_cls.name, precision, task.name) if backbone is not None else None
    if backbone is not None and measured is not None and all(per_run[s] is not None for s, n in to_run.items() if n):
        per_flop, basis = measured
        train_flops = sum(runs * epochs * (per_run[stage] or 0) * 3 * backbone[1] for stage, runs in to_run.items())
        return Estimate(train_flops * per_flop, f"{basis} ({why})", "stored")
    if backbone is not None:
        flops = sum(runs * _flops(task, stage, sizes, per_run[stage], epochs, backbone[1], read)
                    for stage, runs in to_run.items())
        return Estimate(flops / ASSUMED_FLOPS[kind],
                        f"FLOPs at an assumed {ASSUMED_FLOPS[kind] / 1e12:g} TFLOP/s ({why})", "flops")
    return Estimate(None, f"unknown ({why})", "unknown")
