"""Where a board's numbers come from, for its JSON: the code that built it, the store it read, the runs behind each
cell and the records left out.

Only facts that the store and the code determine, so the same runs give the same bytes: no build time, no path of
this machine (folders are named relative to the store), and the git commit of this checkout only when asked for
(it changes with every commit, so committed example boards leave it out).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from bench.leaderboard.board import Board

SCHEMA_VERSION = 1  # of the leaderboard JSON; bump when a key changes meaning or goes away


def git_commit() -> str | None:
    """HEAD of the checkout bench runs from, '+dirty' when tracked files differ (as run records write it); None when
    bench is not a git checkout (an installed wheel) or git is missing."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def _relative(folder: str, root: str) -> str:
    """A run folder named relative to the store (never this machine's absolute path)."""
    try:
        return Path(folder).relative_to(root).as_posix()
    except ValueError:
        return Path(folder).name


def _distinct(values: list[Any]) -> list[Any]:
    return sorted({v for v in values if v is not None}, key=str)


def provenance(board: Board) -> dict[str, Any]:
    """The JSON's "provenance" block (see docs/leaderboards.md)."""
    from bench import __version__
    from bench.train.config import RUNNER_VERSION

    cells = []
    for (task, method), cell in sorted(board.cells.items()):
        detail = board.details.get((task, method))
        runs = list(detail.seeds) if detail is not None else []
        keys = {run.seed: run.key for run in runs}
        cells.append({
            "task": task, "method": method, "configuration": cell.configuration,
            "runs": [{"seed": seed, "key": keys.get(seed) or Path(folder).name}
                     for seed, folder in zip(cell.seeds, cell.run_dirs, strict=True)],
            "selected_grid_key": ((detail.selection or {}).get("grid_key") if detail is not None else None),
            "runner_versions": _distinct([run.runner_version for run in runs]),
            "bench_versions": _distinct([run.bench_version for run in runs]),
            "git_commits": _distinct([run.git_commit for run in runs]),
        })
    return {
        "bench_version": __version__,
        "runner_version": RUNNER_VERSION,
        "git_commit": board.git_commit,
        "results": Path(board.store_root).name,
        "protocol": board.protocol,
        "set_aside": dict(sorted(board.set_aside.items())),
        "cells": cells,
        "records_left_out": len(board.rejected),
        "left_out": sorted(({"run": _relative(folder, board.store_root), "reasons": reasons}
                            for folder, reasons in board.rejected.items()), key=lambda r: r["run"]),
    }
