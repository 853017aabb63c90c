"""Efficiency-aware scores, opt-in leaderboard columns (`--efficiency ppt,pscp`): V-PETL Bench's PPT and
PEFT-Bench's PSCP, per cell, from the cell's mean score and what its run records measured.

Never fills in a quantity the records do not hold: a cell without it gets no value and a reason, and PSCP's
inference-FLOPs factor, which no run record measures, is left out and the column says so (docs/leaderboards.md).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bench.errors import BenchError, did_you_mean
from bench.leaderboard.collect import Cell

# V-PETL Bench (Xin et al., NeurIPS 2024 D&B): PPT = M / 100 x exp(-log10(P / C + 1)), P = trainable parameters.
PPT_C = 1e7
# PEFT-Bench (Belanec et al. 2025), kinit-sk/PEFT-Factory: the defaults of PSCPArguments and pscp().
PSCP_C_PARAMS = 5e8  # trainable parameters
PSCP_C_TFLOPS = 10.0  # extra inference TFLOPs over the base model: not recorded here, so never applied
PSCP_C_MEMORY_GB = 94.0  # peak training memory, GB (1e9 bytes): an H100 NVL's 94 GB
PSCP_BETA = 1.0  # beta_p = beta_f = beta_m


def ppt(score: float, trainable: float) -> float:
    """Performance-parameter trade-off of a score in % (top-1, BLEU, ROUGE here) and a trainable-parameter count."""
    return score / 100.0 * math.exp(-math.log10(trainable / PPT_C + 1.0))


def pscp_penalty(value: float, constant: float, beta: float = PSCP_BETA) -> float:
    """One soft cost penalty of PSCP: (1 + value / constant) ** -beta."""
    return (1.0 + value / constant) ** -beta


def pscp(performance: float, trainable: float, memory_gb: float, extra_tflops: float | None = None,
         beta: float = PSCP_BETA) -> float:
    """PSCP = performance x penalty(params) x penalty(inference FLOPs) x penalty(memory); without `extra_tflops`
    the FLOPs factor (<= 1) is left out, which is PSCP with beta_f = 0: an upper bound of the full score."""
    value = performance * pscp_penalty(trainable, PSCP_C_PARAMS, beta) * pscp_penalty(memory_gb, PSCP_C_MEMORY_GB, beta)
    if extra_tflops is not None:
        value *= pscp_penalty(extra_tflops, PSCP_C_TFLOPS, beta)
    return value


Value = tuple[float | None, str | None]  # the score, or None and why


NO_PARAMS = "the run record of this cell holds no trainable-parameter count (params.trainable)"


def cell_ppt(cell: Cell) -> Value:
    if not cell.trainable_recorded:
        return None, f"PPT: {NO_PARAMS}"
    return ppt(cell.mean, cell.trainable), None


def cell_memory_gb(cell: Cell) -> Value:
    """The mean over the cell's seeds of the recorded peak memory, in GB (PEFT-Bench averages runs the same way)."""
    if not cell.peak_memory_bytes or any(b is None for b in cell.peak_memory_bytes):
        return None, "PSCP: not every run record of this cell holds a peak memory (cost.peak_memory_bytes)"
    kinds = set(cell.peak_memory_kinds)
    if len(kinds) > 1:
        return None, f"PSCP: the seeds measured peak memory differently ({', '.join(sorted(map(str, kinds)))})"
    return statistics.mean(b for b in cell.peak_memory_bytes if b is not None) / 1e9, None


def cell_pscp(cell: Cell) -> Value:
    if not cell.trainable_recorded:
        return None, f"PSCP: {NO_PARAMS}"
    memory, why = cell_memory_gb(cell)
    if memory is None:
        return None, why
    return pscp(cell.mean, cell.trainable, memory), None


MEMORY_KINDS = {
    "cuda_allocated": "peak GPU memory allocated during the run (torch.cuda.max_memory_allocated), as PEFT-Bench "
    "measures it",
    "process_max_rss": "proxy: the peak resident memory of the whole training process (CPU runs record no GPU "
    "memory)",
}


def ppt_note(cells: Iterable[Cell]) -> str:
    return (
        "PPT (V-PETL Bench's performance-parameter trade-off) = score / 100 × exp(−log10(P / C + 1)), P = the "
        "cell's trainable parameters (classifier head excluded, as V-PETL's 0 M for linear probing), "
        "C = 10^7 (an absolute constant, not relative to the backbone). Source: Xin et al., V-PETL Bench, NeurIPS "
        "2024 Datasets and Benchmarks; this form and C reproduce 84 of the 91 PPT values that the README tables of "
        "synbol/Parameter-Efficient-Transfer-Learning-Benchmark (commit c188fad) print, the other 7 within 0.012"
    )


def pscp_note(cells: Iterable[Cell]) -> str:
    kinds = sorted({k for c in cells for k in c.peak_memory_kinds if k is not None})
    memory = "; ".join(MEMORY_KINDS.get(k, f"'{k}' as recorded") for k in kinds) or "of no recorded kind"
    return (
        "PSCP (PEFT-Bench's PEFT soft score penalties) = score × (1 + P / C_p)^−β × (1 + F / C_f)^−β × "
        "(1 + M / C_m)^−β with P = trainable parameters, C_p = 5·10^8, F = extra inference TFLOPs, C_f = 10, "
        "M = peak training memory in GB (10^9 bytes, mean over the seeds), C_m = 94, β = 1 (the defaults of "
        "PEFT-Factory's pscp(); its paper-table script uses β = 2). Not applied here: the FLOPs factor, because "
        "the run records hold no FLOPs count, so the value is an upper bound of the published score (that factor "
        f"is at most 1). Memory: {memory}. Source: Belanec et al., PEFT-Bench (arXiv 2511.21285); formula and "
        "constants from kinit-sk/PEFT-Factory, src/llamafactory/train/sft/metric.py and "
        "src/llamafactory/hparams/finetuning_args.py (commit ff2e819a)"
    )


@dataclass(frozen=True)
class EfficiencyScore:
    """An efficiency-aware score: its column header, decimals, per-cell value and footnote (formula, source)."""

    key: str
    label: str
    digits: int
    value: Callable[[Cell], Value]
    note: Callable[[Iterable[Cell]], str]


SCORES = {
    "ppt": EfficiencyScore("ppt", "PPT", 3, cell_ppt, ppt_note),
    "pscp": EfficiencyScore("pscp", "PSCP (no FLOPs)", 2, cell_pscp, pscp_note),
}


def parse(requested: Sequence[str]) -> tuple[str, ...]:
    """The requested scores, validated, duplicates dropped, in the order given."""
    out = []
    for name in requested:
        key = name.strip().lower()
        if key not in SCORES:
            raise BenchError(f"unknown efficiency score '{name}'.{did_you_mean(key, tuple(SCORES))}",
                             field="--efficiency")
        if key not in out:
            out.append(key)
    return tuple(out)
