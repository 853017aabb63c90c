"""The paper's protocol: grid (train -> val) -> select on val at the last epoch -> final seeds -> test.

Selection never looks at test. Ties go to the smaller learning rate, then the smaller weight decay.
Diverged grid runs are skipped by selection; if every grid run diverged, the task stops with an error.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import statistics
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError
from bench.method import GridValue, Method
from bench.spec import AnyTaskSpec
from bench.store import RunStore
from bench.train.config import OPTIM_KEYS, MethodSettings, RunConfig, RunOptions, Smoke
from bench.train.loop import FRESH, execute_run
from bench.train.modality import modality_for

log = logging.getLogger("bench.protocol")
STAGES = ("grid", "final")


def method_settings(
    task: AnyTaskSpec, method_cls: type[Method], overrides: dict[str, GridValue] | None = None
) -> MethodSettings:
    """The same rule for every modality: a task's per-method override, else the method's own default (its grid,
    optimizer, warm-up), else the task protocol's."""
    protocol = task.protocol
    per_task = protocol.methods.get(method_cls.name)

    def pick(attr: str, method_value: Any, protocol_value: Any) -> Any:
        task_value = getattr(per_task, attr) if per_task is not None else None
        if task_value is not None:
            return task_value
        return method_value if method_value is not None else protocol_value

    grid = dict(pick("grid", method_cls.grid, protocol.grid))
    if per_task is not None and per_task.grid is not None:
        source = f"task protocol.methods.{method_cls.name}.grid"
    elif method_cls.grid is not None:
        source = f"method {method_cls.name}'s own grid"
    else:
        source = "task protocol.grid"
    fixed = {**(per_task.hparams if per_task is not None else {}), **(overrides or {})}
    for name, value in fixed.items():
        grid[name] = [value]
    if overrides:
        source += " with " + ", ".join(f"{k}={v}" for k, v in overrides.items()) + " fixed by --set"
    for name in grid:
        if name not in OPTIM_KEYS and name not in method_cls.HParams.model_fields:
            allowed = ", ".join([*OPTIM_KEYS, *sorted(method_cls.HParams.model_fields)])
            raise BenchError(
                f"grid/override key '{name}' is neither an optimisation setting nor a hyper-parameter of "
                f"method '{method_cls.name}'.",
                field="protocol.grid",
                hint=f"Allowed: {allowed}.",
            )
    for name in OPTIM_KEYS:
        if name not in grid:
            raise BenchError(
                f"the search grid of method '{method_cls.name}' has no '{name}'.",
                field="protocol.grid",
                hint="Give it a list of values (or fix it with --set).",
            )
    return MethodSettings(
        optimizer=pick("optimizer", method_cls.optimizer, protocol.optimizer),
        grid=grid,
        epochs=pick("epochs", None, protocol.epochs),
        warmup_epochs=pick("warmup_epochs", method_cls.warmup_epochs, getattr(protocol, "warmup_epochs", 0)),
        batch_size=pick("batch_size", None, protocol.batch_size),
        fixed=fixed,
        grid_source=source,
    )


def grid_points(settings: MethodSettings) -> list[dict[str, GridValue]]:
    names = list(settings.grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*settings.grid.values())]


def chosen_by_of(points: list[dict[str, GridValue]], overrides: dict[str, GridValue] | None) -> dict[str, Any]:
    """How the final runs' point is chosen ('val', 'set' or 'spec', with the --set values): part of their identity,
    so a point fixed by --set never shares a record (or a leaderboard cell) with the same point selected on val."""
    fixed_by_set = dict(overrides or {})
    return {"how": "val" if len(points) > 1 else ("set" if fixed_by_set else "spec"), "set": fixed_by_set}


def make_config(
    task: AnyTaskSpec,
    method_cls: type[Method],
    settings: MethodSettings,
    point: dict[str, GridValue],
    stage: str,
    seed: int,
    grid_prune: dict[str, Any] | None = None,
    data_fraction: float | None = None,
    train_examples: int | None = None,
    precision: str = "fp32",
    chosen_by: dict[str, Any] | None = None,
    smoke: Smoke | None = None,
    tf32: bool = False,
) -> RunConfig:
    from bench.identity import code_identity

    hparams = {k: v for k, v in point.items() if k not in OPTIM_KEYS}
    full_hparams = method_cls.parse_hparams(hparams).model_dump(mode="json")
    stage_spec = task.protocol.grid_stage if stage == "grid" else task.protocol.final_stage
    optim = modality_for(task).optim_settings(task, method_cls.name, settings, point)
    if smoke is not None and smoke.epochs is not None:
        optim = modality_for(task).smoke_optim(optim, smoke.epochs)
    return RunConfig(
        task,
        method_cls.name,
        full_hparams,
        optim,
        stage,
        seed,
        tuple(stage_spec.train),
        stage_spec.eval,
        grid_prune,
        data_fraction if data_fraction is not None and data_fraction < 1.0 else None,
        train_examples,
        precision,
        code_identity(method_cls),
        chosen_by if stage == "final" else None,
        smoke,
        tf32,
    )


def point_of(record: dict[str, Any]) -> dict[str, GridValue]:
    run = record["run"]
    return {"base_lr": run["optim"]["base_lr"], "weight_decay": run["optim"]["weight_decay"], **run["hparams"]}


def select_on_val(records: list[dict[str, Any]], metric: str = "top1") -> dict[str, Any]:
    """The best completed grid run by its val score; ties -> smaller lr, then smaller weight decay."""
    completed = [r for r in records if r["status"] == "completed"]
    if not completed:
        raise BenchError(
            f"all {len(records)} grid runs diverged (non-finite loss), were pruned or failed (out of memory); "
            "nothing to select.",
            field="protocol.grid",
            hint="Lower the learning rates in the grid.",
        )

    def rank(record: dict[str, Any]) -> tuple[Any, ...]:
        optim = record["run"]["optim"]
        rest = json.dumps(record["run"]["hparams"], sort_keys=True)
        return (-record["metrics"][metric], optim["base_lr"], optim["weight_decay"], rest)

    ordered = sorted(completed, key=rank)
    best = ordered[0]
    return {
        "rule": f"max val {metric}; ties -> smaller base_lr, then smaller weight_decay",
        "point": point_of(best),
        "metric": metric,
        f"val_{metric}": best["metrics"][metric],
        "grid_key": best["key"],
        "candidates": len(records),
        "diverged": sum(r["status"] == "diverged" for r in records),
    }


@dataclass(frozen=True)
class Shard:
    """Run i of every n runs (`--shard i/n`): a run belongs to the shard its description hashes to, so the
    split is stable across machines and balanced over tasks, methods, grid points and seeds."""

    index: int
    count: int

    def owns(self, config: RunConfig) -> bool:
        digest = hashlib.sha256(config.describe().encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index


@dataclass
class TaskResult:
    task: str
    method: str
    selection: dict[str, Any] | None
    final: list[dict[str, Any]]
    metric: str = "top1"
    complete: bool = True  # every requested run has a record (False: held by other workers or other shards)
    smoke: Smoke | None = None  # --limit / --epochs: a quick check, labelled as such

    def test_scores(self) -> list[float]:
        return [r["metrics"][self.metric] for r in self.final if r["status"] == "completed"]

    def summary(self, variant: str = "") -> str:
        """One line: the test score over the final seeds, then the variant (e.g. 'data fraction 0.5'), then the
        smoke label when the runs were a quick check."""
        scores = self.test_scores()
        label = f" ({variant})" if variant else ""
        label += f" [{self.smoke.describe()}: a quick check, not a benchmark result]" if self.smoke else ""
        if not scores:
            return f"{self.task} {self.method}: no final runs{label}"
        std = statistics.stdev(scores) if len(scores) > 1 else 0.0
        mean = statistics.mean(scores)
        shown = "top-1" if self.metric == "top1" else self.metric
        return f"{self.task} {self.method}: test {shown} {mean:.2f} ± {std:.2f} over {len(scores)} seeds{label}"


def run_protocol(
    task: AnyTaskSpec,
    method_cls: type[Method],
    store: RunStore,
    options: RunOptions,
    stages: tuple[str, ...] = STAGES,
    seeds: list[int] | None = None,
    overrides: dict[str, GridValue] | None = None,
    shard: Shard | None = None,
    grid_prune: bool = False,
    data_fraction: float | None = None,
    train_examples: int | None = None,
    smoke: Smoke | None = None,
) -> TaskResult:
    """Run the requested stages for one (task, method); finished runs are reused, never repeated.

    Runs held by another live process, and with `shard` the runs of other shards, are left to them: the result
    is then marked incomplete, and the final stage waits until the whole grid is recorded. `grid_prune` runs
    the grid under successive halving (bench.train.pruning); its grid and final runs are marked as such.
    `data_fraction` < 1 trains every run (grid and final) on a nested class-balanced subset of its training
    splits (bench.data.subsets); selection then happens at that fraction, as a sample-efficiency study needs.
    `smoke` (--limit / --epochs) makes every run, grid and final, a quick check on fewer examples and epochs."""
    from tqdm import tqdm

    settings = method_settings(task, method_cls, overrides)
    points = grid_points(settings)
    selection: dict[str, Any] | None = None
    complete = True
    requested = {
        "--data-fraction": data_fraction is not None and data_fraction < 1.0,
        "--train-examples": train_examples is not None,
        "--grid-prune": grid_prune,
    }
    modality_for(task).check_variants(task, [flag for flag, asked in requested.items() if asked])
    chosen_by = chosen_by_of(points, overrides)
    if len(points) == 1:
        rule = "fixed by --set" if chosen_by["how"] == "set" else "fixed by the task spec (single-point grid)"
        selection = {"rule": rule, "point": points[0], "chosen_by": chosen_by}
    elif "grid" in stages or "final" in stages:
        prune, prune_config = None, None
        if grid_prune:
            from bench.train.pruning import GridPruner, prune_settings

            prune_config = prune_settings(getattr(task.protocol, "eval_every", 1))
            prune = GridPruner(prune_config, f"{task.protocol.grid_stage.eval}_top1")
        configs = [
            make_config(
                task,
                method_cls,
                settings,
                p,
                "grid",
                task.protocol.grid_seed,
                prune_config,
                data_fraction,
                train_examples,
                options.precision,
                smoke=smoke,
                tf32=options.tf32,
            )
            for p in points
        ]
        records = []
        for config in tqdm(
            configs, desc=f"{task.name} {method_cls.name} grid", disable=not options.progress, leave=False
        ):
            if "grid" not in stages or (shard is not None and not shard.owns(config)):
                record = _existing(config, store, options)
                if record is None and "grid" not in stages and shard is None:
                    raise BenchError(
                        f"final stage needs the grid of {task.name} / {method_cls.name}, which is not complete.",
                        hint="Run `--stage grid` first, or fix every grid axis with --set to skip the search.",
                    )
                if record is None:
                    continue  # another shard's run, not recorded yet
            elif prune is not None:
                record = _existing(config, store, options)
                if record is not None:
                    prune.replay(record)
                    _log_result(record)
                else:
                    record = execute_run(config, method_cls, store, options, should_stop=prune.start())
                    if record is None:
                        continue  # held by another process
                    prune.finish(record)
                    _log_result(record)
            else:
                record = execute_run(config, method_cls, store, options)
                if record is None:
                    continue  # held by another process
                _log_result(record)
            records.append(record)
        if len(records) < len(configs):
            log.info(
                "%d grid runs of %s / %s are not recorded yet (other workers or shards); the final stage "
                "waits for them",
                len(configs) - len(records),
                task.name,
                method_cls.name,
            )
            return TaskResult(task.name, method_cls.name, None, [], task.primary_metric, complete=False, smoke=smoke)
        metric = task.primary_metric
        selection = {**select_on_val(records, metric), "chosen_by": chosen_by}
        if prune is not None:
            selection["rule"] += "; grid pruned by successive halving (--grid-prune)"
            selection["grid_prune"] = prune_config
            selection["pruned"] = sum(r["status"] == "pruned" for r in records)
        log.info(
            "selected for %s / %s: %s (val %s %.2f)%s",
            task.name,
            method_cls.name,
            _point_text(selection["point"]),
            metric,
            selection[f"val_{metric}"],
            f" [{smoke.describe()}]" if smoke else "",
        )
    final: list[dict[str, Any]] = []
    if "final" in stages and selection is not None:
        for seed in tqdm(
            seeds or task.protocol.seeds,
            desc=f"{task.name} {method_cls.name} final",
            disable=not options.progress,
            leave=False,
        ):
            config = make_config(
                task,
                method_cls,
                settings,
                selection["point"],
                "final",
                seed,
                selection.get("grid_prune"),
                data_fraction,
                train_examples,
                options.precision,
                chosen_by,
                smoke,
                options.tf32,
            )
            if shard is not None and not shard.owns(config):
                record = _existing(config, store, options)
            else:
                record = execute_run(config, method_cls, store, options, selection)
                if record is not None:
                    _log_result(record)
            if record is None:
                complete = False
            else:
                final.append(record)
    return TaskResult(task.name, method_cls.name, selection, final, task.primary_metric, complete=complete,
                      smoke=smoke)


def _existing(config: RunConfig, store: RunStore, options: RunOptions) -> dict[str, Any] | None:
    from bench.train.loop import key_of

    return store.load(store.run_dir(config.task.name, config.method, config.stage, key_of(config, options)))


def _point_text(point: dict[str, GridValue]) -> str:
    return " ".join(f"{k}={v}" for k, v in point.items())


def _log_result(record: dict[str, Any]) -> None:
    """Runs done now at INFO; runs read back from the store (a resumed command) only at DEBUG. Both count towards
    the process's `[k/N]` and ETA (bench.progress) when a plan is tracked."""
    from bench import progress

    fresh = bool(record.pop(FRESH, False))
    level = logging.INFO if fresh else logging.DEBUG
    prefix, eta = progress.step(record, fresh)
    run, metrics = record["run"], record["metrics"]
    name = metrics.get("primary", "top1")
    score = record["status"] if record["status"] != "completed" else f"{metrics['split']} {name} {metrics[name]:.2f}"
    smoke = run.get("smoke")
    label = f" [{Smoke(**smoke).describe()}]" if smoke else ""
    log.log(
        level,
        "%s%s %s %s seed=%s %s: %s (%.1f s)%s%s",
        prefix,
        run["task"],
        run["method"],
        run["stage"],
        run["seed"],
        _point_text(point_of(record)),
        score,
        record["cost"]["wall_s"],
        label,
        eta,
    )
