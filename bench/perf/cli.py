"""`bench perf cli`: the CPU time of the questions a user types most (help, listings, validation, input errors), each
in a fresh process as a user runs it. Answers should cost under half a second of CPU; the method catalog
(bench.method_catalog) keeps torch out of them once it is written, and its first write is measured too."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# (what it answers, arguments after `bench`, the exit code it must give)
QUESTIONS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("bench --help", ("--help",), 0),
    ("bench list tasks", ("list", "tasks"), 0),
    ("bench list methods", ("list", "methods"), 0),
    ("bench validate", ("validate",), 0),
    ("mistyped --method", ("run", "--task", "mini", "--method", "deep_shar"), 2),
    ("unknown --task", ("run", "--task", "mini/novel_shape", "--method", "linear"), 2),
    ("bad --set value", ("run", "--task", "mini", "--method", "lora", "--set", "rank=0", "--dry-run"), 2),
    ("bad --limit", ("run", "--task", "mini", "--method", "linear", "--limit", "0"), 2),
)
BUDGET_S = 0.5


@dataclass(frozen=True)
class Answer:
    question: str
    cpu_s: float  # median user + system CPU of the process over the repeats
    wall_s: float
    code: int


def measure(repeats: int = 3, emit: Callable[[str], None] = print) -> tuple[list[Answer], float]:
    """Each question `repeats` times in fresh processes (median), after one cold `bench list methods` with an
    empty cache (returned: its CPU seconds). Each answer is emitted as soon as it is measured."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "BENCH_CACHE": cache}
        cold, _, _ = _timed(("list", "methods"), env)
        emit(f"first `bench list methods` with an empty cache (imports the method files): {cold:.2f} s CPU")
        answers = []
        for question, args, expected in QUESTIONS:
            runs = [_timed(args, env) for _ in range(repeats)]
            answer = Answer(question, statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
                            runs[-1][2])
            if answer.code != expected:
                raise RuntimeError(f"`bench {' '.join(args)}` exited {answer.code}, expected {expected}")
            answers.append(answer)
            mark = "ok" if answer.cpu_s <= BUDGET_S else f"over {BUDGET_S} s"
            emit(f"{question:<24} {answer.cpu_s:5.2f} s CPU  {answer.wall_s:5.2f} s wall  ({mark})")
    return answers, cold


def _timed(args: tuple[str, ...], env: dict[str, str]) -> tuple[float, float, int]:
    """CPU (user + system) and wall seconds of one `python -m bench ...` child process, and its exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, env=env,
                          cwd=Path(__file__).resolve().parents[2], timeout=600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, done.returncode


def render_markdown(answers: list[Answer], cold: float, machine: str) -> str:
    lines = [f"CPU time of each answer in a fresh process ({machine}; median of the repeats; budget {BUDGET_S} s).",
             "", "| Question | CPU s | wall s | exit |", "|---|---|---|---|"]
    lines += [f"| {a.question} | {a.cpu_s:.2f} | {a.wall_s:.2f} | {a.code} |" for a in answers]
    lines += ["", f"The first `bench list methods` after a method file changes imports the method files (and torch) "
                  f"once to refresh the catalog: {cold:.2f} s CPU."]
    return "\n".join(lines) + "\n"
