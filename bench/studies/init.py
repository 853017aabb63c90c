"""`bench study init`: Li & Liang's initialisation question in low-data settings. Does starting a language
prefix from the frozen model's own keys/values of real words ("summarize", "table-to-text", an unrelated word)
beat a random start when there are only 50 to 500 training examples?

Runs No-share (or another method with `init_text`) once per initialisation and training-set size
(`bench run --set init_text=... --train-examples N`), then reports from the stored runs the task's primary
score per initialisation and size (mean ± std over seeds), a plot, and at each size a paired bootstrap of each
word initialisation against the random one (corpus BLEU recomputed per resample for BLEU tasks), Holm-corrected
over the comparisons of that size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import stats
from bench.leaderboard.collect import collect
from bench.leaderboard.examples import Examples
from bench.leaderboard.significance import bootstrap_against, paired_examples
from bench.store import RunStore
from bench.studies.report import protocol_note, protocol_suffix, write_report

RANDOM = "random"


@dataclass(frozen=True)
class InitTest:
    size: int
    init: str
    result: stats.TestResult
    p_holm: float


@dataclass
class InitReport:
    task: str
    method: str
    metric: str
    inits: list[str]  # RANDOM first, then the words
    sizes: list[int]
    mean: dict[str, list[float | None]] = field(default_factory=dict)
    std: dict[str, list[float | None]] = field(default_factory=dict)
    tests: list[InitTest] = field(default_factory=list)
    protocol: str = "clean"


def _keep(init: str, size: int) -> Any:
    text = None if init == RANDOM else init
    return lambda r: r["run"].get("hparams", {}).get("init_text") == text and r["run"].get("train_examples") == size


def build(store: RunStore, task: str, method: str, words: list[str], sizes: list[int], resamples: int = 1000,
          seed: int = 12345, protocol: str = "clean") -> InitReport:
    report = InitReport(task, method, "", [RANDOM, *words], sorted(sizes), protocol=protocol)
    cells = {(init, size): collect(store, [task], [method], keep=_keep(init, size), protocol=protocol)
             .cells.get((task, method))
             for init in report.inits for size in report.sizes}
    for init in report.inits:
        report.mean[init] = [None if (c := cells[(init, n)]) is None else c.mean for n in report.sizes]
        report.std[init] = [None if (c := cells[(init, n)]) is None else c.std for n in report.sizes]
    for size in report.sizes:
        base = cells[(RANDOM, size)]
        if base is None:
            continue
        report.metric = base.metric
        base_examples, paired, _ = paired_examples(base, {w: c for w in words if (c := cells[(w, size)]) is not None})
        if not paired or not isinstance(base_examples, Examples):
            continue
        tested = bootstrap_against(base_examples, paired, base.metric, resamples, seed)
        results = list(tested.values())
        for word, result, p_holm in zip(tested, results, stats.holm([r.p_value for r in results]), strict=True):
            report.tests.append(InitTest(size, word, result, p_holm))
    return report


def render_markdown(report: InitReport, plot_file: str | None) -> str:
    lines = [f"# Initialisation study: {report.task}, {report.method}{protocol_suffix(report.protocol)}", "",
             *protocol_note(report.protocol),
             f"Test {report.metric or 'score'} (mean ± std over seeds) by prefix initialisation and number of training "
             "examples (nested seeded subsets). random = the method's random start; a word = the frozen model's "
             "own keys/values of that text.", ""]
    headers = ["Initialisation", *[str(n) for n in report.sizes]]
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for init in report.inits:
        cells = ["–" if m is None else f"{m:.2f} ± {s or 0.0:.2f}"
                 for m, s in zip(report.mean[init], report.std[init], strict=True)]
        label = init if init == RANDOM else repr(init)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if plot_file:
        lines += ["", f"![Score vs training examples]({plot_file})"]
    lines += ["", "## Tests: random − word initialisation", "",
              "Paired bootstrap over test items with seeds resampled (two-sided; corpus BLEU recomputed per "
              "resample); Holm over the words at each size. Difference = random − word (negative: the word helps).",
              "", "| Examples | Word | n | Difference | 95% CI | p | p (Holm) |", "|---|---|---|---|---|---|---|"]
    for t in report.tests:
        lines.append(f"| {t.size} | {t.init!r} | {t.result.n} | {t.result.statistic:+.2f} | "
                     f"[{t.result.detail['ci_low']:+.2f}, {t.result.detail['ci_high']:+.2f}] | "
                     f"{t.result.p_value:.3f} | {t.p_holm:.3f} |")
    return "\n".join(lines) + "\n"


def write(report: InitReport, out_dir: Path) -> list[Path]:
    payload = {"task": report.task, "method": report.method, "metric": report.metric, "inits": report.inits,
               "sizes": report.sizes, "mean": report.mean, "std": report.std,
               "tests": [{"size": t.size, "init": t.init, "n": t.result.n, "difference": t.result.statistic,
                          "p": t.result.p_value, "p_holm": t.p_holm} for t in report.tests]}
    if report.protocol != "clean":
        payload["protocol"] = report.protocol
    curves = {(i if i == RANDOM else repr(i)): (report.mean[i], report.std[i]) for i in report.inits}
    stem = f"init-{report.task.replace('/', '-')}{protocol_suffix(report.protocol)}"
    return write_report(out_dir, stem, lambda plot: render_markdown(report, plot), payload,
                        [float(n) for n in report.sizes], curves, xlabel="training examples",
                        ylabel=f"test {report.metric}")


def summary(report: InitReport) -> str:
    best = {n: max(((report.mean[i][k], i) for i in report.inits if report.mean[i][k] is not None), default=None)
            for k, n in enumerate(report.sizes)}
    return "; ".join(f"{n} examples: best {b[1]!r} ({b[0]:.2f})" for n, b in best.items() if b is not None) or \
        "no finished runs"

