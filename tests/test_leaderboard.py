"""Leaderboards from stored runs: layout rules, missing cells, significance against scipy, determinism, and the
formats (LaTeX compiled by a real TeX when installed, HTML opened in headless Chromium when installed)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from bench import leaderboard, stats
from bench.cli import main
from bench.leaderboard.board import provenance_text
from bench.leaderboard.examples import Examples, load_examples
from bench.leaderboard.significance import Settings
from bench.records import record_checksum
from bench.store import RunStore
from tests.stored import store_run

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["toy/a", "toy/b", "toy/c", "toy/d"]


def write_run(root: Path, task: str, method: str, seed: int, correct: np.ndarray | None, *, stage: str = "final",
              status: str = "completed", protocol_seeds: int = 3, trainable: int = 1000, wall_s: float = 36.0,
              lr: float = 0.1) -> Path:
    """A run record as the loop writes it (the fields the leaderboard reads) and its predictions."""
    top1 = None if correct is None else 100.0 * float(correct.mean())
    record = {"status": status,
              "run": {"task": task, "method": method, "stage": stage, "seed": seed, "hparams": {},
                      "optim": {"base_lr": lr, "weight_decay": 0.0}},
              "metrics": {"top1": top1},
              "params": {"trainable": trainable, "trainable_percent": trainable / 1e4, "backbone": 10_000},
              "cost": {"wall_s": wall_s, "device": "cpu"},
              "task_spec": {"protocol": {"seeds": list(range(protocol_seeds))}}}
    files = {}
    if correct is not None:
        labels = np.arange(correct.size) % 7
        preds = np.where(correct, labels, (labels + 1) % 7)
        buffer = io.BytesIO()
        np.savez(buffer, index=np.arange(correct.size)[::-1].copy(), label=labels[::-1].copy(),
                 pred=preds[::-1].copy())
        files["predictions.npz"] = buffer.getvalue()
    return store_run(root, record, files)


def correct_vector(rng: np.random.Generator, accuracy: float, items: int = 400) -> np.ndarray:
    return rng.random(items) < accuracy


@pytest.fixture()
def toy_store(tmp_path: Path) -> Path:
    """best: ~90 %; close: best's predictions with 4 items flipped (not significantly worse); weak: ~60 %;
    partial: only two tasks; grid_only: grid runs but no final runs; diverger: one task all diverged."""
    rng = np.random.default_rng(0)
    root = tmp_path / "runs"
    for t, task in enumerate(TASKS):
        for seed in range(3):
            best = correct_vector(rng, 0.9 - 0.02 * t)
            close = best.copy()
            close[np.flatnonzero(best)[:4]] = False
            write_run(root, task, "best", seed, best, trainable=2000, wall_s=72.0)
            write_run(root, task, "close", seed, close)
            write_run(root, task, "weak", seed, correct_vector(rng, 0.6), trainable=500)
            if t < 2:
                write_run(root, task, "partial", seed, correct_vector(rng, 0.7))
        write_run(root, task, "grid_only", 0, correct_vector(rng, 0.5), stage="grid")
        if t == 0:
            for seed in range(3):
                write_run(root, task, "diverger", seed, None, status="diverged")
        else:
            for seed in range(2):  # 2 of the protocol's 3 seeds
                write_run(root, task, "diverger", seed, correct_vector(rng, 0.75))
    return root


def build(root: Path, **kwargs: object) -> leaderboard.Board:
    return leaderboard.build(RunStore(root), "toy", TASKS, None, plots=False, **kwargs)  # type: ignore[arg-type]


def row(board: leaderboard.Board, label: str) -> leaderboard.board.Row:
    return next(r for r in board.rows if r.label == label)


def test_cells_marks_and_missing_reasons(toy_store: Path) -> None:
    board = build(toy_store)
    best, close, weak = row(board, "best"), row(board, "close"), row(board, "weak")
    assert [r.label for r in board.rows][:3] == ["best", "close", "weak"]  # sorted by the mean
    assert all(e.place == 1 for e in best.entries) and all(e.place == 2 for e in close.entries)
    assert all(e.tied for e in close.entries[:4]) and not any(e.tied for e in weak.entries[:4])
    assert not any(e.tied for e in best.entries)
    assert all(not e.shown_seeds for e in best.entries[:4])
    text = leaderboard.render_markdown(board)
    best_line = next(line for line in text.splitlines() if line.startswith("| best "))
    assert "(n=" not in best_line and best_line.count("**") == 2 * 5
    assert "| 0.002 | 0.2 | 0.24 |" in best_line  # 2000 trainable = 0.002 M, 0.2 %; 4 tasks x 3 x 72 s = 0.24 h
    diverger = next(line for line in text.splitlines() if line.startswith("| diverger "))
    assert "(n=2)" in diverger
    footnotes = {board.footnote_mark(t): t for t in board.footnotes}
    reasons = {footnotes[e.footnote] for r in board.rows for e in r.entries if e.value is None and e.footnote}
    assert "all 3 final seeds diverged" in reasons
    assert "grid search only (1 grid run, no final runs yet)" in reasons
    assert "not run" in reasons
    assert "incomplete row: the mean needs all 4 tasks, this row has 2" in reasons
    assert row(board, "partial").entries[-1].value is None  # never a mean over an incomplete row


def test_cell_is_mean_and_sample_std_over_seeds(toy_store: Path) -> None:
    board = build(toy_store)
    scores = [json.loads(p.read_text())["metrics"]["top1"]
              for p in sorted((toy_store / "toy/a/weak/final").glob("*/run.json"))]
    entry = row(board, "weak").entries[0]
    assert entry.value == pytest.approx(np.mean(scores)) and entry.std == pytest.approx(np.std(scores, ddof=1))
    assert row(board, "weak").entries[-1].value == pytest.approx(
        np.mean([row(board, "weak").entries[i].value for i in range(4)]))


def test_per_task_test_is_the_paired_bootstrap_holm_corrected(toy_store: Path) -> None:
    board = build(toy_store)
    comparisons = {m: c for (t, m), c in board.task_tests.comparisons.items() if t == "toy/b"}
    assert sorted(comparisons) == ["close", "diverger", "partial", "weak"]
    assert all(c.best == "best" for c in comparisons.values())
    best = load_examples(
        tuple(str(p.parent) for p in sorted((toy_store / "toy/b/best/final").glob("*/run.json"))), (0, 1, 2), "top1")
    weak = load_examples(
        tuple(str(p.parent) for p in sorted((toy_store / "toy/b/weak/final").glob("*/run.json"))), (0, 1, 2), "top1")
    assert isinstance(best, Examples) and isinstance(weak, Examples)
    direct = stats.paired_bootstrap(best.values, weak.values, n_resamples=1000, seed=12345)
    assert comparisons["weak"].result.p_value == direct.p_value
    assert comparisons["weak"].result.statistic == pytest.approx(row(board, "best").entries[1].value
                                                                 - row(board, "weak").entries[1].value)
    raw = [comparisons[m].result.p_value for m in sorted(comparisons)]
    assert [comparisons[m].p_holm for m in sorted(comparisons)] == pytest.approx(stats.holm(raw))
    assert comparisons["close"].p_holm > 0.05 > comparisons["weak"].p_holm


def test_across_task_tests_match_scipy(toy_store: Path) -> None:
    board = build(toy_store)
    across = board.across
    assert across is not None and across.methods == ["best", "close", "weak"] and across.best == "best"
    means = np.array([[row(board, m).entries[i].value for m in across.methods] for i in range(4)])
    expected = scipy.stats.wilcoxon(means[:, 0], means[:, 2])
    result, _ = across.wilcoxon["weak"]
    assert result.p_value == pytest.approx(expected.pvalue) and result.statistic == pytest.approx(expected.statistic)
    friedman = scipy.stats.friedmanchisquare(*means.T)
    assert across.friedman is not None and across.friedman.p_value == pytest.approx(friedman.pvalue)
    assert across.mean_ranks == {"best": 1.0, "close": 2.0, "weak": 3.0}
    assert across.critical_difference == pytest.approx(2.343 * np.sqrt(3 * 4 / (6 * 4)), abs=1e-3)


def test_mcnemar_option_combines_exact_tests_over_seeds(toy_store: Path) -> None:
    board = build(toy_store, settings=Settings(test="mcnemar"))
    close = board.task_tests.comparisons[("toy/a", "close")].result
    # close = best with 4 right answers turned wrong in each seed: n01 = 0, n10 = 4 -> exact p = 0.125 per seed.
    per_seed = scipy.stats.binomtest(0, 4, 0.5).pvalue
    assert close.p_value == pytest.approx(scipy.stats.combine_pvalues([per_seed] * 3, method="fisher").pvalue)


def test_every_format_is_deterministic_and_consistent(toy_store: Path, tmp_path: Path) -> None:
    outputs = []
    for folder in ("one", "two"):
        board = leaderboard.build(RunStore(toy_store), "toy", TASKS, None)
        paths = leaderboard.write(board, tmp_path / folder)
        outputs.append({p.name: p.read_bytes() for p in paths})
    assert outputs[0] == outputs[1]  # PDF figures included
    figures = {f"toy-{kind}.{ext}" for kind in ("pareto", "groups", "tasks", "cd") for ext in ("svg", "pdf")}
    assert set(outputs[0]) == {"toy.md", "toy.tex", "toy-table.tex", "toy-hparams-table.tex", "toy.html", "toy.csv",
                               "toy-hparams.csv", "toy.json", *figures}
    rows = list(csv.DictReader(io.StringIO(outputs[0]["toy.csv"].decode())))
    weak_a = next(r for r in rows if r["method"] == "weak" and r["column"] == "toy/a")
    data = json.loads(outputs[0]["toy.json"])
    assert float(weak_a["mean"]) == next(c["mean"] for c in data["cells"]
                                         if c["method"] == "weak" and c["column"] == "toy/a")
    assert weak_a["not_worse_than_best"] == "False" and float(weak_a["p_holm"]) < 0.05
    assert data["significance"]["across_tasks"]["best"] == "best"
    markdown = outputs[0]["toy.md"].decode()
    assert "## Statistics" in markdown and "![Critical-difference diagram](toy-cd.svg)" in markdown
    assert "- curves: no per-epoch history in the final run records" in markdown  # the toy records have none


def test_reference_rows_form_their_own_labelled_block(tmp_path: Path) -> None:
    from bench.reference import load_references

    write_run(tmp_path, "fgvc/cub", "deep_share", 0, np.ones(10, dtype=bool), protocol_seeds=5)
    board = leaderboard.build(RunStore(tmp_path), "fgvc", ["fgvc/cub", "fgvc/nabirds"], None,
                              references=load_references(), plots=False)
    blocks = [r.block for r in board.rows]
    assert blocks[0] == "runs" and set(blocks[1:]) == {"reference"}
    vpt = row(board, "vpt_deep [vpt_2022]")
    assert vpt.entries[0].value == 88.5 and vpt.entries[0].place == 0  # reference rows never take a mark
    markdown = leaderboard.render_markdown(board)
    assert "Published reference rows (not run here" in markdown and "- \\[vpt_2022\\]: Jia, Tang" in markdown
    assert "(n=1)" in markdown


@pytest.mark.skipif(shutil.which("pdflatex") is None,
                    reason="pdflatex not installed (apt install texlive-latex-base texlive-latex-recommended)")
def test_latex_compiles(toy_store: Path, tmp_path: Path) -> None:
    from bench.reference import load_references

    board = leaderboard.build(RunStore(toy_store), "toy_suite & more", TASKS, None, references=load_references(),
                              groups={"natural": ["toy/a", "toy/c"], "structured": ["toy/b", "toy/d"]})
    written = leaderboard.write(board, tmp_path, ("tex",))
    assert sorted(p.name for p in written if p.suffix == ".tex") == [
        "toy_suite-more-hparams-table.tex", "toy_suite-more-table.tex", "toy_suite-more.tex"]
    table = (tmp_path / "toy_suite-more-table.tex").read_text()
    assert r"\multicolumn{4}{c}{Natural}" in table and r"\cmidrule(lr){2-5}" in table  # a, c under Natural
    assert r"\begin{tabular}{@{}lr@{\,}lr@{\,}l" in table and "longtable" not in table
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "toy_suite-more.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Rerun" not in done.stdout  # one pass is enough
    assert (tmp_path / "toy_suite-more.pdf").stat().st_size > 10_000


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(chromium() is None, reason="no headless Chromium (apt install chromium)")
def test_html_opens_in_a_headless_browser_with_table_and_plots(toy_store: Path, tmp_path: Path) -> None:
    board = leaderboard.build(RunStore(toy_store), "toy", TASKS, None)
    page = tmp_path / "toy.html"
    page.write_text(leaderboard.render_html(board))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    done = subprocess.run([str(chromium()), *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                          timeout=120)
    dom = done.stdout
    assert done.returncode == 0 and '<table class="sortable">' in dom, done.stderr[-2000:]
    assert dom.count("<svg") == len(board.plots) == 4 and "<strong>" in dom and "Statistics" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([str(chromium()), *flags, f"--screenshot={shot}", "--window-size=1400,1000", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_cli_writes_the_formats_and_refuses_bad_options(toy_store: Path, tmp_path: Path) -> None:
    common = ["--results", str(toy_store)]
    assert main(["leaderboard", *common, "--out", str(tmp_path / "out"), "--format", "md,csv", "--no-plots"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["all-hparams.csv", "all.csv", "all.md"]
    assert main(["leaderboard", *common, "--out", str(tmp_path / "board.md")]) == 2
    assert main(["leaderboard", *common, "--format", "pdf"]) == 2
    assert main(["leaderboard", *common, "--alpha", "2"]) == 2


def test_cli_without_out_writes_beside_the_store_and_names_every_file(toy_store: Path, tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """No --out: <results>/../leaderboards/local (never the committed boards' folder). One line per file written
    or removed and per figure not drawn; --record-commit puts this checkout's commit into the JSON."""
    from bench.leaderboard.provenance import git_commit

    local = tmp_path / "leaderboards" / "local"
    local.mkdir(parents=True)
    (local / "all-pareto.svg").write_text("from an earlier build")
    (local / "notes.txt").write_text("not the leaderboard's")
    with caplog.at_level("INFO"):
        assert main(["leaderboard", "--results", str(toy_store), "--format", "md,json", "--no-plots",
                     "--resamples", "50", "--record-commit"]) == 0
    assert sorted(p.name for p in local.iterdir()) == ["all.json", "all.md", "notes.txt"]
    assert f"wrote {local / 'all.md'}" in caplog.text and f"wrote {local / 'all.json'}" in caplog.text
    assert f"removed {local / 'all-pareto.svg'}" in caplog.text
    assert "figure not drawn, all: plots not requested (--no-plots)" in caplog.text
    assert json.loads((local / "all.json").read_text())["provenance"]["git_commit"] == git_commit()


def test_committed_example_leaderboards_rebuild_byte_for_byte(tmp_path: Path) -> None:
    committed = ROOT / "results" / "leaderboards"
    for suite in ("mini", "mini-nlg"):
        assert main(["leaderboard", "--suite", suite, "--results", str(ROOT / "results" / "example-runs"),
                     "--out", str(tmp_path)]) == 0
    expected = sorted(p.name for p in committed.iterdir() if p.is_file())
    assert expected == sorted(p.name for p in tmp_path.iterdir())
    for name in expected:
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes(), name


def test_language_cells_are_tested_on_corpus_bleu_and_with_sacrebleu_randomisation() -> None:
    """On the committed mini-nlg runs: E2E compares corpus BLEU recomputed from per-item statistics; the
    randomisation option runs sacrebleu's approximate randomisation per matched seed."""
    store = RunStore(ROOT / "results" / "example-runs")
    board = leaderboard.build(store, "e2e", ["mini/e2e"], None, plots=False)
    cells = leaderboard.collect(store, ["mini/e2e"], None).cells
    comparison = board.task_tests.comparisons[("mini/e2e", "deep_share")]
    assert comparison.best == "full_ft"
    best = load_examples(cells[("mini/e2e", "full_ft")].run_dirs, cells[("mini/e2e", "full_ft")].seeds, "BLEU")
    other = load_examples(cells[("mini/e2e", "deep_share")].run_dirs, cells[("mini/e2e", "deep_share")].seeds, "BLEU")
    assert isinstance(best, Examples) and isinstance(other, Examples) and best.is_corpus
    assert comparison.result.detail["score_a"] == pytest.approx(cells[("mini/e2e", "full_ft")].mean, abs=1e-6)
    direct = stats.paired_bootstrap(best.values, other.values, score=stats.bleu_from_stats, seed=12345)
    assert comparison.result.p_value == direct.p_value
    randomised = leaderboard.build(store, "e2e", ["mini/e2e"], None, plots=False,
                                   settings=Settings(test="randomization", resamples=200))
    result = randomised.task_tests.comparisons[("mini/e2e", "deep_share")].result
    per_seed = [stats.sacrebleu_paired_bleu(other.values[i], best.values[i], "ar", n=200) for i in range(3)]
    assert result.p_value == pytest.approx(stats.combine_seeds(per_seed, "ar").p_value)


def test_a_damaged_predictions_file_leaves_that_run_out_and_says_so(toy_store: Path) -> None:
    damaged = sorted((toy_store / "toy/a/weak/final").glob("*/predictions.npz"))[0]
    damaged.write_bytes(b"not a zip file")
    board = build(toy_store)
    assert row(board, "weak").entries[0].seeds == 2  # the other two seeds of that configuration
    assert list(board.rejected) == [str(damaged.parent)]
    assert "predictions.npz does not match the checksum" in board.rejected[str(damaged.parent)][0]
    assert "1 stored record was left out" in provenance_text(board)
    assert ("toy/b", "weak") in board.task_tests.comparisons


def test_an_unreadable_predictions_file_with_a_matching_checksum_is_left_out_too(toy_store: Path) -> None:
    """A run that wrote a broken file and checksummed it (not something bench does) is still never used."""
    damaged = sorted((toy_store / "toy/a/weak/final").glob("*/predictions.npz"))[0]
    damaged.write_bytes(b"not a zip file")
    path = damaged.parent / "run.json"
    record = json.loads(path.read_text())
    record["files"]["predictions.npz"] = hashlib.sha256(b"not a zip file").hexdigest()
    record["checksum"] = record_checksum(record)
    path.write_text(json.dumps(record))
    board = build(toy_store)
    assert row(board, "weak").entries[0].seeds == 2
    assert "predictions.npz cannot be read" in board.rejected[str(damaged.parent)][0]


def test_reproduced_vs_published_differences_with_a_t_interval(tmp_path: Path) -> None:
    from bench.reference import load_references

    for seed, accuracy in ((0, 0.88), (1, 0.89)):
        correct = np.arange(100) < accuracy * 100
        write_run(tmp_path, "fgvc/cub", "deep_share", seed, correct, protocol_seeds=5)
    board = leaderboard.build(RunStore(tmp_path), "fgvc", ["fgvc/cub"], None, references=load_references(),
                              plots=False)
    (row,) = [r for r in board.reproduction if r.method == "deep_share"]
    assert row.source == "reparamprefix_2025_figure2" and row.published == 87.8  # read from the paper's figure
    assert row.difference == pytest.approx(88.5 - 87.8)
    half = scipy.stats.t.ppf(0.975, 1) * np.std([88.0, 89.0], ddof=1) / np.sqrt(2)  # = 12.706 x 0.5
    assert (row.ci_low, row.ci_high) == pytest.approx((0.7 - half, 0.7 + half))
    markdown = leaderboard.render_markdown(board)
    assert "### Reproduced vs published" in markdown
    assert "| deep_share | fgvc/cub | reparamprefix_2025_figure2 |" in markdown
