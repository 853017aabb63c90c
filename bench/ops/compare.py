"""`bench compare STORE_A STORE_B`: do two run stores (e.g. the same commands on two machines) agree?

What holds, and what this checks: on one machine and software stack a run is bit-identical when repeated, so
runs with the same key have equal metrics. Across machines (another CPU's vector units, another BLAS or thread
count, a GPU) floating-point sums are ordered differently and scores can move a little; there the claim is that
the stores agree within what a paired test calls no difference. So: run by run (same key in both stores), which
metrics differ; and cell by cell (task, method), a paired bootstrap over the same test items and seeds of A - B,
Holm-corrected over the cells, saying whether any difference is significant. Records carry `env.exactness` (CPU,
instruction sets, torch build, threads, deterministic flags), which tells why two stores may differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import stats
from bench.leaderboard.collect import collect, read_records
from bench.leaderboard.examples import load_examples
from bench.leaderboard.significance import Settings
from bench.leaderboard.significance import compare as paired_compare
from bench.store import RunStore


@dataclass(frozen=True)
class RunDifference:
    key: str
    task: str
    method: str
    stage: str
    seed: int
    metric: str
    a: float | None
    b: float | None


@dataclass(frozen=True)
class CellTest:
    task: str
    method: str
    metric: str
    mean_a: float
    mean_b: float
    result: stats.TestResult | None
    reason: str = ""  # why no test was possible
    p_holm: float | None = None


@dataclass
class StoreComparison:
    a: Path
    b: Path
    alpha: float
    common_runs: int = 0
    identical_runs: int = 0
    differing: list[RunDifference] = field(default_factory=list)
    only_a: int = 0
    only_b: int = 0
    cells: list[CellTest] = field(default_factory=list)
    machines: dict[str, list[str]] = field(default_factory=dict)  # store -> distinct exactness descriptions

    @property
    def significant(self) -> list[CellTest]:
        return [c for c in self.cells if c.p_holm is not None and c.p_holm < self.alpha]


def _primary(record: dict[str, Any]) -> tuple[str, float | None]:
    metrics = record["metrics"]
    name = metrics.get("primary", "top1")
    value = metrics.get(name)
    return name, None if value is None else float(value)


def _machine(record: dict[str, Any]) -> str:
    exact = record.get("env", {}).get("exactness") or {}
    if not exact:
        return "not recorded"
    build = exact.get("torch_build", {})
    return (
        f"{exact.get('cpu')} [{' '.join(exact.get('cpu_flags', []))}], BLAS {build.get('BLAS_INFO', '?')}, "
        f"{exact.get('threads')} threads, torch {record.get('env', {}).get('versions', {}).get('torch')}"
    )


def compare_stores(
    a: Path, b: Path, tasks: list[str] | None = None, alpha: float = 0.05, resamples: int = 1000, seed: int = 12345
) -> StoreComparison:
    out = StoreComparison(Path(a), Path(b), alpha)
    records_a = {r["key"]: r for r in read_records(Path(a), tasks, None, protocol=None)}
    records_b = {r["key"]: r for r in read_records(Path(b), tasks, None, protocol=None)}
    out.machines = {
        str(a): sorted({_machine(r) for r in records_a.values()}),
        str(b): sorted({_machine(r) for r in records_b.values()}),
    }
    common = sorted(set(records_a) & set(records_b))
    out.common_runs, out.only_a, out.only_b = (
        len(common),
        len(set(records_a) - set(records_b)),
        len(set(records_b) - set(records_a)),
    )
    for key in common:
        ra, rb = records_a[key], records_b[key]
        metric, va = _primary(ra)
        _, vb = _primary(rb)
        if va == vb and ra["status"] == rb["status"]:
            out.identical_runs += 1
        else:
            run = ra["run"]
            out.differing.append(
                RunDifference(key, run["task"], run["method"], run["stage"], run["seed"], metric, va, vb)
            )
    cells_a, cells_b = collect(RunStore(Path(a)), tasks).cells, collect(RunStore(Path(b)), tasks).cells
    settings = Settings(test="bootstrap", alpha=alpha, resamples=resamples, seed=seed)
    for pair in sorted(set(cells_a) & set(cells_b)):
        ca, cb = cells_a[pair], cells_b[pair]
        ea = load_examples(ca.run_dirs, ca.seeds, ca.metric)
        eb = load_examples(cb.run_dirs, cb.seeds, cb.metric)
        if isinstance(ea, str) or isinstance(eb, str) or ca.configuration != cb.configuration:
            reason = (
                ea
                if isinstance(ea, str)
                else eb
                if isinstance(eb, str)
                else "the two stores hold different configurations of this cell"
            )
            out.cells.append(CellTest(*pair, ca.metric, ca.mean, cb.mean, None, str(reason)))
            continue
        result = paired_compare(ea, eb, ca.metric, settings)
        if isinstance(result, str):
            out.cells.append(CellTest(*pair, ca.metric, ca.mean, cb.mean, None, result))
        else:
            out.cells.append(CellTest(*pair, ca.metric, ca.mean, cb.mean, result))
    tested = [c for c in out.cells if c.result is not None]
    adjusted = stats.holm([c.result.p_value for c in tested if c.result is not None])
    by_pair = {(c.task, c.method): p for c, p in zip(tested, adjusted, strict=True)}
    out.cells = [
        CellTest(c.task, c.method, c.metric, c.mean_a, c.mean_b, c.result, c.reason, by_pair.get((c.task, c.method)))
        for c in out.cells
    ]
    return out


def report(comparison: StoreComparison) -> str:
    c = comparison
    lines = [f"A = {c.a}", f"B = {c.b}"]
    for store, machines in c.machines.items():
        lines.append(f"  machines of {store}: {'; '.join(machines) or 'no runs'}")
    lines.append(
        f"\nRuns: {c.common_runs} in both stores (same key: same task, data, method code, hyper-parameters, "
        f"seed, precision), {c.identical_runs} with identical scores, {len(c.differing)} different; "
        f"{c.only_a} only in A, {c.only_b} only in B."
    )
    for d in c.differing:
        lines.append(f"  {d.task} {d.method} {d.stage} seed {d.seed}: {d.metric} {d.a} vs {d.b}")
    lines.append(
        f"\nCells (paired bootstrap of A - B over the same test items and seeds, Holm over "
        f"{sum(x.result is not None for x in c.cells)} cells, alpha {c.alpha:g}):"
    )
    for cell in c.cells:
        if cell.result is None:
            lines.append(
                f"  {cell.task} {cell.method}: {cell.mean_a:.2f} vs {cell.mean_b:.2f}; not tested: {cell.reason}"
            )
            continue
        verdict = "SIGNIFICANT" if cell.p_holm is not None and cell.p_holm < c.alpha else "no significant difference"
        lines.append(
            f"  {cell.task} {cell.method}: {cell.metric} {cell.mean_a:.2f} vs {cell.mean_b:.2f}, "
            f"difference {cell.result.statistic:+.2f}, p = {cell.result.p_value:.3f}, "
            f"Holm p = {cell.p_holm:.3f}: {verdict}"
        )
    significant = c.significant
    lines.append(
        "\n"
        + (
            f"{len(significant)} cell(s) differ significantly."
            if significant
            else "No cell differs significantly: the stores agree within what the paired test can tell."
        )
    )
    return "\n".join(lines)
