"""Optional experiment tracking (`bench run --track mlflow|wandb`): each run a command trains is also logged to MLflow
or Weights & Biases once its record is stored: the per-epoch history, parameters (task, method, hyper-parameters,
key), the final metrics and tags (run key, code version).

The run store stays the source of truth. Tracking reads a copy of a record after it is written, so it never changes a
run's key, its record or anything stored, and a tracker that fails costs a warning, never the run. BENCH_TRACK (set
by --track for the command, inherited by its worker processes) switches it on. Where runs go: MLflow's
MLFLOW_TRACKING_URI, else its local file store `<results>/_mlflow`; W&B in WANDB_MODE (default offline), files in
`<results>/_wandb`. Folders starting with '_' are never task folders, so the store's own scans pass them by.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from bench.errors import BenchError, did_you_mean

log = logging.getLogger("bench.track")

ENV = "BENCH_TRACK"


@dataclass(frozen=True)
class Tracker:
    module: str  # what is imported
    extra: str  # the peft-bench extra that installs it
    package: str  # what pip installs


TRACKERS = {
    "mlflow": Tracker("mlflow", "track-mlflow", "mlflow-skinny"),
    "wandb": Tracker("wandb", "track-wandb", "wandb"),
}


WANDB_MODES = ("offline", "online", "disabled", "shared")


def wandb_mode() -> str:
    return os.environ.get("WANDB_MODE", "offline")


def require(kind: str) -> None:
    """A known tracker whose package is installed; else one paragraph naming the extra (exit 2), before anything
    runs. Only looks the package up: importing it waits for the first finished run."""
    if kind not in TRACKERS:
        raise BenchError(f"unknown tracker '{kind}'.{did_you_mean(kind, list(TRACKERS))}", field="--track")
    tracker = TRACKERS[kind]
    if kind == "wandb" and wandb_mode() not in WANDB_MODES:
        raise BenchError(f"WANDB_MODE is {wandb_mode()!r}; W&B knows {', '.join(WANDB_MODES)}; nothing was run.",
                         field="WANDB_MODE", hint="Unset it (bench then logs offline) or pick one of those.")
    if importlib.util.find_spec(tracker.module) is None:
        raise BenchError(
            f"--track {kind} logs every run to {kind}, and the '{tracker.module}' package is not installed; nothing "
            "was run.",
            field="--track",
            hint=f"pip install 'peft-bench[{tracker.extra}]' (or pip install {tracker.package}), or leave --track out: "
            "the run store keeps every record either way.",
        )


@contextlib.contextmanager
def tracking(kind: str | None) -> Iterator[None]:
    """Within the block, runs this process (and the workers it starts) trains are logged to `kind`; None: nothing."""
    if kind is None:
        yield
        return
    require(kind)
    before = os.environ.get(ENV)
    os.environ[ENV] = kind
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


def log_run(record: dict[str, Any], store_root: Path) -> None:
    """Log one stored record to the active tracker (none: return at once). Never raises."""
    kind = os.environ.get(ENV)
    if not kind:
        return
    try:
        require(kind)
        LOGGERS[kind](record, Path(store_root))
    except Exception as exc:  # the record is stored already; tracking must never cost a run
        log.warning("--track %s: run %s was not logged (%s: %s); its record is stored as usual", kind,
                    record.get("key"), type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else "")


# ---------------------------------------------------------------- what is logged


def params_of(record: dict[str, Any]) -> dict[str, str]:
    """task, method, stage, seed, key, status, hp.<hyper-parameter>, optim.<setting> and the variant options."""
    run = record["run"]
    params: dict[str, Any] = {"task": run["task"], "method": run["method"], "stage": run["stage"], "seed": run["seed"],
                              "key": record["key"], "status": record["status"], "precision": run.get("precision")}
    params.update({f"hp.{name}": value for name, value in run.get("hparams", {}).items()})
    params.update({f"optim.{name}": value for name, value in run.get("optim", {}).items()})
    for name in ("data_fraction", "train_examples", "smoke", "chosen_by"):
        if run.get(name) is not None:
            params[name] = run[name]
    return {name: _text(value) for name, value in params.items() if value is not None}


def tags_of(record: dict[str, Any]) -> dict[str, str]:
    """The run key and the code that produced it: method code hash, runner version, git commit."""
    identity, env = record.get("identity", {}), record.get("env", {})
    tags = {"bench.key": record["key"], "bench.status": record["status"], "bench.stage": record["run"]["stage"],
            "bench.method_code": identity.get("method_code"), "bench.runner_version": identity.get("runner_version"),
            "bench.git_commit": env.get("git_commit")}
    return {name: str(value) for name, value in tags.items() if value is not None}


def history_of(record: dict[str, Any]) -> list[tuple[int, dict[str, float]]]:
    """(epoch, numeric values) of each history entry: train loss, learning rate, periodic eval scores."""
    return [(int(entry["epoch"]), {_metric_name(k): float(v) for k, v in entry.items() if k != "epoch" and _number(v)})
            for entry in record.get("history", [])]


def final_metrics_of(record: dict[str, Any]) -> dict[str, float]:
    """The record's metrics named after their split ('test_top1', 'val_BLEU'), parameter counts and wall time."""
    metrics = record.get("metrics", {})
    prefix = f"{metrics['split']}_" if isinstance(metrics.get("split"), str) else ""
    out = {_metric_name(prefix + k): float(v) for k, v in metrics.items() if k != "epoch" and _number(v)}
    out.update({_metric_name(f"params_{k}"): float(v) for k, v in record.get("params", {}).items() if _number(v)})
    if _number(record.get("cost", {}).get("wall_s")):
        out["wall_s"] = float(record["cost"]["wall_s"])
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value  # NaN is left out


def _metric_name(name: str) -> str:
    return re.sub(r"[^\w\-. /]", "_", name)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text[:6000]


def _title(record: dict[str, Any]) -> str:
    run = record["run"]
    return f"{run['task']} {run['method']} {run['stage']} seed={run['seed']} {record['key'][:8]}"


# ---------------------------------------------------------------- the trackers


def _log_mlflow(record: dict[str, Any], store_root: Path) -> None:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    uri = os.environ.get("MLFLOW_TRACKING_URI") or (store_root / "_mlflow").resolve().as_uri()
    if uri.startswith("file:"):
        # MLflow 3 keeps its file store in maintenance mode and refuses it unless asked: a local folder needs no
        # database; MLFLOW_TRACKING_URI=sqlite:///... picks MLflow's database store instead.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=uri)
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "peft-bench")
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        experiment_id = experiment.experiment_id
    else:
        try:
            experiment_id = client.create_experiment(name)
        except Exception:  # another worker created it first
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
            experiment_id = found.experiment_id
    tags = tags_of(record)
    run = client.create_run(experiment_id, run_name=_title(record), tags=tags)
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, step) for step, values in history_of(record) for k, v in values.items()]
    last = max((step for step, _ in history_of(record)), default=0)
    metrics += [Metric(k, v, now, last) for k, v in final_metrics_of(record).items()]
    params = [Param(k, v) for k, v in params_of(record).items()]
    for start in range(0, len(params), 100):  # MLflow's batch limits: 100 params, 1000 metrics
        client.log_batch(run.info.run_id, params=params[start:start + 100])
    for start in range(0, len(metrics), 1000):
        client.log_batch(run.info.run_id, metrics=metrics[start:start + 1000])
    client.set_terminated(run.info.run_id, status="FAILED" if record["status"] == "failed" else "FINISHED")


def _log_wandb(record: dict[str, Any], store_root: Path) -> None:
    import wandb

    folder = store_root / "_wandb"
    folder.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=os.environ.get("WANDB_PROJECT", "peft-bench"), name=_title(record),
                     config=params_of(record), tags=[f"{k.removeprefix('bench.')}:{v}"[:64] for k, v in
                                                     tags_of(record).items()],
                     job_type=record["run"]["stage"], dir=str(folder), mode=cast(Any, wandb_mode()),
                     reinit="create_new")
    try:
        for step, values in history_of(record):
            run.log(values, step=step)
        run.summary.update(final_metrics_of(record))
    finally:
        run.finish(exit_code=1 if record["status"] == "failed" else 0)


LOGGERS: dict[str, Callable[[dict[str, Any], Path], None]] = {"mlflow": _log_mlflow, "wandb": _log_wandb}
