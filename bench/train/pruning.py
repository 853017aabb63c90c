"""Opt-in grid pruning (`bench run --grid-prune`): successive halving over the grid on val, decided by optuna's
SuccessiveHalvingPruner rather than a scheduler of our own.

Grid runs report val top-1 at each evaluation (every `eval_every` epochs); the pruner stops a run whose value
falls below the top 1/reduction_factor of the runs that reached the same rung. It changes the protocol, so
the settings go into the identity and records of every grid and final run (their keys differ from the full
grid's) and the leaderboard labels the method. The study is rebuilt from the stored records on every command
(replaying each run's val history in grid order), so resumed and repeated commands decide exactly as before.
"""

from __future__ import annotations

import math
from typing import Any

REDUCTION_FACTOR = 3


def prune_settings(eval_every: int) -> dict[str, Any]:
    return {"rule": "successive halving on val", "pruner": "optuna.pruners.SuccessiveHalvingPruner",
            "min_resource": eval_every, "reduction_factor": REDUCTION_FACTOR}


class GridPruner:
    """One study per (task, method) grid; each grid point is one trial, in grid order."""

    def __init__(self, settings: dict[str, Any], metric_key: str) -> None:
        try:
            import optuna
        except ImportError as exc:
            from bench.errors import BenchError

            raise BenchError("--grid-prune needs optuna, which is not installed.",
                             hint="pip install 'peft-bench[prune]' (or pip install optuna).") from exc

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.metric_key = metric_key
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=settings["min_resource"],
                                                        reduction_factor=settings["reduction_factor"])
        self.study = optuna.create_study(direction="maximize", pruner=pruner)
        self.trial: Any = None

    def replay(self, record: dict[str, Any]) -> None:
        """Feed a stored run to the study exactly as it was reported live."""
        stop = self.start()
        for entry in record.get("history", []):
            value = entry.get(self.metric_key)
            if value is not None and stop(int(entry["epoch"]) + 1, float(value)) and record["status"] == "pruned":
                break
        self.finish(record)

    def start(self) -> Any:
        """A new trial; returns the stop rule the training loop asks after each val evaluation."""
        self.trial = self.study.ask()
        trial = self.trial

        def should_stop(epoch: int, value: float) -> bool:
            if not math.isfinite(value):
                return False
            trial.report(value, step=epoch)
            return bool(trial.should_prune())

        return should_stop

    def finish(self, record: dict[str, Any]) -> None:
        states = self.optuna.trial.TrialState
        if record["status"] == "completed":
            self.study.tell(self.trial, record["metrics"][record["metrics"].get("primary", "top1")])
        elif record["status"] == "pruned":
            self.study.tell(self.trial, state=states.PRUNED)
        else:
            self.study.tell(self.trial, state=states.FAIL)
        self.trial = None
