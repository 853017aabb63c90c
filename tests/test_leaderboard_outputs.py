"""The leaderboard's paper outputs and their safety: escaping per format with hostile names (Markdown, CSV, LaTeX,
HTML, plot labels) end to end from a store, the Mean only over one metric, the selected hyper-parameters and every
language metric from the records, heat maps and learning curves from grid runs and histories, and write() removing
the stale files of its suite (and only those) while saying why a figure was not drawn."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from bench import leaderboard
from bench.leaderboard import escape
from bench.leaderboard.latex import latex_files
from bench.store import RunStore
from tests.stored import store_run

SCRIPT = "<script>alert(1)</script>"
FORMULA = "=cmd|' /C calc'!A0"
NEWLINE = "two\nlines | pipe"
MATH = r"$\frac{1}{0}$"
SPECIAL = "50% & {x}_#~^\\"
UNICODE = "Déjà-vu ünïcode 東京"
HOSTILE = [SCRIPT, FORMULA, NEWLINE, MATH, SPECIAL, UNICODE]


def write_record(root: Path, folder: str, *, task: str, method: str, stage: str, seed: int, lr: float = 0.1,
                 wd: float = 0.0, metrics: dict[str, object] | None = None, status: str = "completed",
                 hparams: dict[str, object] | None = None, history: list[dict[str, float]] | None = None,
                 selection: dict[str, object] | None = None, device: str = "cpu", items: int = 0,
                 accuracy: float = 0.5, seeds: int = 3) -> Path:
    """A run record with the fields the leaderboard reads, stored as the store lays it out (<task>/<method>/...:
    hostile names are folder names too). `folder` names the configuration; with `items`, the top-1 is what the
    written predictions give."""
    record: dict[str, object] = {
        "status": status, "run": {"task": task, "method": method, "stage": stage, "seed": seed,
                                  "hparams": hparams or {}, "optim": {"base_lr": lr, "weight_decay": wd}},
        "metrics": dict(metrics) if metrics is not None else {"top1": 100 * accuracy},
        "history": history or [], "params": {"trainable": 1000, "trainable_percent": 0.1 + len(method) / 10},
        "cost": {"wall_s": 10.0, "device": device}, "task_spec": {"protocol": {"seeds": list(range(seeds))}}}
    if selection is not None:
        record["selection"] = selection
    files = {}
    if items:
        rng = np.random.default_rng(seed + len(method))
        correct = rng.random(items) < accuracy
        labels = np.arange(items) % 5
        buffer = io.BytesIO()
        np.savez(buffer, index=np.arange(items), label=labels, pred=np.where(correct, labels, (labels + 1) % 5))
        files["predictions.npz"] = buffer.getvalue()
        record["metrics"]["top1"] = 100 * float(correct.mean())  # type: ignore[index]
    return store_run(root, record, files, identity={"configuration": folder})


def history(epochs: int, start: float, val_every: int = 2) -> list[dict[str, float]]:
    out: list[dict[str, float]] = []
    for epoch in range(epochs):
        entry = {"epoch": epoch, "lr": 0.1, "train_loss": start / (epoch + 1), "train_top1": 10.0 * epoch}
        if epoch % val_every == val_every - 1:
            entry["val_top1"] = 20.0 + 5 * epoch
        out.append(entry)
    return out


@pytest.fixture()
def hostile_store(tmp_path: Path) -> Path:
    return write_hostile_store(tmp_path / "runs")


def write_hostile_store(root: Path) -> Path:
    """Three tasks and four methods whose names (and a hyper-parameter value, a metric name, the device) are
    hostile; every cell has three seeds with predictions, histories and a 2 x 2 lr x wd grid."""
    tasks = [FORMULA, NEWLINE, UNICODE]
    methods = [SCRIPT, MATH, SPECIAL, "plain"]
    for t, task in enumerate(tasks):
        for m, method in enumerate(methods):
            folder = f"suite/t{t}/m{m}"
            hparams = {"init_text": "<b>=1+1</b> | $x$ \\", "num_tokens": 8}
            for lr in (0.1, 1.0):
                for wd in (0.0, 0.01):
                    write_record(root, folder, task=task, method=method, stage="grid", seed=42, lr=lr, wd=wd,
                                 hparams=hparams, accuracy=0.3 + 0.1 * m + lr / 10 + wd,
                                 history=history(4, 3.0), status="diverged" if (lr, wd) == (1.0, 0.01) else
                                 "completed")
            selection = {"rule": "max val top1; ties -> smaller base_lr, then smaller weight_decay",
                         "metric": "top1", "val_top1": 45.0, "candidates": 4, "diverged": 1,
                         "point": {"base_lr": 1.0, "weight_decay": 0.0}}
            for seed in range(3):
                write_record(root, folder, task=task, method=method, stage="final", seed=seed, lr=1.0,
                             hparams=hparams, items=200, accuracy=0.4 + 0.1 * m, history=history(4, 2.0 + m),
                             selection=selection, device="cpu <i>&</i> | =1",
                             metrics={"top1": 40.0 + 10 * m + seed, "=SUM(A1)": 1.5 + seed})
    return root


def hostile_board(root: Path, plots: bool = True) -> leaderboard.Board:
    return leaderboard.build(RunStore(root), "suite <b>&</b> | x", None, None, plots=plots)


# Escaping, format by format -----------------------------------------------------------------------------------------


def test_markdown_escape_keeps_a_cell_one_cell_of_plain_text() -> None:
    for name in HOSTILE:
        text = escape.markdown(name)
        assert "\n" not in text and not re.search(r"(?<!\\)\|", text) and "<" not in text
        assert not re.search(r"(?<!\\)[`*$]", text) and not re.search(r"(?<!\\)\][(\[:]", text)
    assert escape.markdown(SCRIPT) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert escape.markdown("[x](javascript:alert(1)) ![i](a.png) [r]: u") == \
        "[x\\](javascript:alert(1)) ![i\\](a.png) [r\\]: u"  # no link, image or link definition
    assert escape.markdown("vpt_deep [vpt_2022]") == "vpt_deep [vpt_2022]"
    assert escape.markdown("deep_share") == "deep_share"  # intraword underscores stay readable
    assert escape.markdown("_x_") == "\\_x\\_"


def test_csv_escape_prefixes_formula_starts_only() -> None:
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert escape.csv_cell(f"{start}1+1") == f"'{start}1+1"
    assert escape.csv_cell(FORMULA) == "'" + FORMULA
    assert escape.csv_cell("deep_share") == "deep_share" and escape.csv_cell("a=b") == "a=b"


def test_latex_escape_covers_the_ten_specials_and_unicode() -> None:
    assert escape.latex(SPECIAL) == r"50\% \& \{x\}\_\#\textasciitilde{}\textasciicircum{}\textbackslash{}"
    assert escape.latex(UNICODE) == r"D\'{e}j\`{a}-vu \"{u}n\"{\i}code {[}U+6771{]}{[}U+4EAC{]}"
    assert escape.latex("a--b\nc") == "a-{}-b c" and escape.latex("[x]") == "{[}x{]}"
    assert escape.latex("±†–χ²") == r"\ensuremath{\pm}\dag{}--\ensuremath{\chi}\ensuremath{^2}"
    assert all(ord(c) < 128 for name in HOSTILE for c in escape.latex(name))


def test_html_and_plot_label_escapes() -> None:
    assert escape.html(SCRIPT) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert escape.html('"\'') == "&quot;&#x27;" and escape.html(NEWLINE) == "two lines | pipe"
    assert escape.plot_label(MATH) == r"\$\frac{1}{0}\$" and escape.plot_label(NEWLINE) == "two lines | pipe"
    assert escape.file_part(FORMULA) == "cmd-C-calc-A0" and escape.file_part(UNICODE) == "Deja-vu-unicode"


# End to end: a store of hostile names --------------------------------------------------------------------------------


def _cells(line: str) -> int:
    return len(re.split(r"(?<!\\)\|", line.strip())) - 2


@pytest.mark.slow  # in CI's slow tier: keeps `make test` within 3 minutes on 2 cores
def test_hostile_names_in_every_format(hostile_store: Path, tmp_path: Path) -> None:
    board = hostile_board(hostile_store)
    assert {r.label for r in board.rows} == {SCRIPT, MATH, SPECIAL, "plain"}
    assert {"pareto", "groups", "tasks", "curves", "cd"} <= set(board.plots)
    assert len([k for k in board.plots if k.startswith("heatmap-")]) == 3
    out = tmp_path / "out"
    written = leaderboard.write(board, out)
    names = sorted(p.name for p in written)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in names), names
    stem = "suite-b-b-x"

    markdown = (out / f"{stem}.md").read_text()
    assert SCRIPT not in markdown and "<b>" not in markdown and "$\\frac" not in markdown
    blocks = [b for b in markdown.split("\n\n") if b.startswith("|")]
    assert len(blocks) >= 5
    for block in blocks:  # every row of every table has the header's cell count
        lines = block.splitlines()
        assert {_cells(line) for line in lines} == {_cells(lines[0])}, block

    for name in (f"{stem}.csv", f"{stem}-hparams.csv", f"{stem}-metrics.csv"):
        rows = list(csv.reader(io.StringIO((out / name).read_text())))
        assert len(rows) > 1
        for cell in (c for row in rows for c in row):
            if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                float(cell)  # only a number may start with - or +
    data = json.loads((out / f"{stem}.json").read_text())
    assert {c["method"] for c in data["cells"]} == {SCRIPT, MATH, SPECIAL, "plain"}
    assert data["hparams"][0]["hparams"]["init_text"] == "<b>=1+1</b> | $x$ \\"

    page = (out / f"{stem}.html").read_text()

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append(tag)

    parser = Tags()
    parser.feed(page)
    assert parser.tags.count("script") == 1 and "b" not in parser.tags and "i" not in parser.tags
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page

    for kind, rendered in board.plots.items():
        root = ET.fromstring(rendered.svg.encode())
        assert root.tag.endswith("svg") and rendered.pdf.startswith(b"%PDF"), kind
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in board.plots["pareto"].svg
    assert r"$\frac{1}{0}$" in board.plots["tasks"].svg  # drawn as text, not parsed as math

    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed (apt install texlive-latex-base texlive-latex-recommended)")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"{stem}.tex"], cwd=out,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Rerun" not in done.stdout and (out / f"{stem}.pdf").stat().st_size > 10_000


# Layout rules ---------------------------------------------------------------------------------------------------------


def test_mean_only_over_one_metric(tmp_path: Path) -> None:
    for seed in range(2):
        for method, score in (("a", 10.0), ("b", 20.0)):
            for task in ("s/bleu", "s/bleu2"):
                write_record(tmp_path, f"{task}/{method}", task=task, method=method, stage="final", seed=seed,
                             metrics={"primary": "BLEU", "BLEU": score + seed, "NIST": 2.0}, seeds=2)
            write_record(tmp_path, f"s/rouge/{method}", task="s/rouge", method=method, stage="final", seed=seed,
                         metrics={"primary": "ROUGE-2", "ROUGE-2": 30 - score + seed}, seeds=2)
    tasks = ["s/bleu", "s/bleu2", "s/rouge"]
    board = leaderboard.build(RunStore(tmp_path), "s", tasks, None, plots=False,
                              groups={"g1": ["s/bleu", "s/bleu2"], "mixed": ["s/bleu", "s/rouge"],
                                      "alone": ["s/rouge"]})
    # g1: one metric, a column; mixed: BLEU and ROUGE-2, never averaged; alone: one task, its column would repeat it
    assert [c.key for c in board.columns] == [*tasks, "g1"] and board.mean_index is None
    assert board.no_mean is not None and "BLEU, ROUGE-2" in board.no_mean
    markdown = leaderboard.render_markdown(board)
    assert "| Mean |" not in markdown.splitlines()[2] and "never averaged" in markdown
    assert [t.task for t in board.metric_tables] == ["s/bleu", "s/bleu2"]  # ROUGE-2 alone: nothing more to show
    assert "| a | 10.50 ± 0.71 | 2.00 ± 0.00 |" in markdown

    same = leaderboard.build(RunStore(tmp_path), "s", ["s/bleu"], None, plots=False)
    assert same.mean_index is not None and same.columns[-1].metric == "BLEU"


def test_across_tasks_best_is_by_mean_rank_when_metrics_differ(tmp_path: Path) -> None:
    # c wins BLEU by far but is last on ROUGE-2: the best mean would be c, the best mean rank is b.
    scores = {"a": (10.0, 15.0), "b": (25.0, 20.0), "c": (90.0, 1.0)}
    for method, (bleu, rouge) in scores.items():
        for seed in range(2):
            write_record(tmp_path, f"s/bleu/{method}", task="s/bleu", method=method, stage="final", seed=seed,
                         metrics={"primary": "BLEU", "BLEU": bleu + seed}, seeds=2)
            write_record(tmp_path, f"s/rouge/{method}", task="s/rouge", method=method, stage="final", seed=seed,
                         metrics={"primary": "ROUGE-2", "ROUGE-2": rouge + seed}, seeds=2)
    board = leaderboard.build(RunStore(tmp_path), "s", ["s/bleu", "s/rouge"], None, plots=False)
    assert board.across is not None and board.across.best == "b"
    assert [r.label for r in board.rows] == ["b", "c", "a"]  # rows by mean rank too: 1.5, 2, 2.5
    assert "Wilcoxon signed-rank against the best mean rank" in leaderboard.render_markdown(board)


def test_hparams_table_heatmap_and_curves_come_from_the_records(hostile_store: Path) -> None:
    board = hostile_board(hostile_store)
    chosen = next(h for h in board.hparams if h.method == "plain" and h.task == FORMULA)
    assert (chosen.lr, chosen.wd, chosen.val_score, chosen.candidates, chosen.diverged) == (1.0, 0.0, 45.0, 4, 1)
    assert chosen.hparams == {"init_text": "<b>=1+1</b> | $x$ \\", "num_tokens": 8}
    markdown = leaderboard.render_markdown(board)
    assert "best val top1 of 4 grid points (1 diverged)" in markdown and "| 1 | 0 |" in markdown
    detail = board.details[(FORMULA, "plain")]
    assert [(p.lr, p.wd, p.score is None) for p in detail.grid] == [
        (0.1, 0.0, False), (0.1, 0.01, False), (1.0, 0.0, False), (1.0, 0.01, True)]
    assert detail.selected_grid is not None and detail.selected_grid.lr == 1.0
    heat = next(k for k in board.plots if k.startswith("heatmap-"))
    assert ">div.<" in board.plots[heat].svg and ">Train loss<" in board.plots["curves"].svg
    metric_table = board.metric_tables[0]
    assert metric_table.metrics == ["top1", "=SUM(A1)"]
    assert metric_table.rows[0].values["=SUM(A1)"] == pytest.approx((2.5, 1.0, 3))


def test_without_a_searched_grid_the_hparams_table_has_no_val_score_column(hostile_store: Path) -> None:
    """Fixed points (the demo protocol, single-point grids) have no val score: the column would be empty."""
    import dataclasses

    from bench.leaderboard.latex import render_hparams_table

    searched = hostile_board(hostile_store, plots=False)
    fixed = dataclasses.replace(searched, hparams=[dataclasses.replace(h, val_score=None) for h in searched.hparams])
    assert "| Val score |" in leaderboard.render_markdown(searched)
    assert "Val score" not in leaderboard.render_markdown(fixed).split("## Selected hyper-parameters")[1]
    for board, columns in ((searched, "lllr@{}}"), (fixed, "lll@{}}")):
        table = render_hparams_table(board, "s")
        assert table is not None and ("\\begin{tabular}{@{}llr@{}lr@{}" + columns) in table
        assert ("Val score" in table) == (board is searched)


# write(): stale files, skipped figures, the default folder ------------------------------------------------------------


@pytest.mark.slow  # in CI's slow tier: keeps `make test` within 3 minutes on 2 cores
def test_write_removes_its_stale_files_only_and_says_why_figures_are_missing(hostile_store: Path,
                                                                              tmp_path: Path) -> None:
    out = tmp_path / "boards"
    first = leaderboard.write(hostile_board(hostile_store), out)
    assert any(p.name.endswith("-pareto.pdf") for p in first) and first.removed == []
    neighbours = ["suite-b-b-x-nlg.md", "suite-b-b-x-nlg-pareto.svg", "other.txt", "suite-b-b-x.md.bak"]
    for name in neighbours:
        (out / name).write_text("not ours")
    second = leaderboard.write(hostile_board(hostile_store, plots=False), out, ("md", "json"))
    assert sorted(p.name for p in second) == ["suite-b-b-x.json", "suite-b-b-x.md"]
    assert {p.name for p in second.removed} == {p.name for p in first} - {"suite-b-b-x.json", "suite-b-b-x.md"}
    assert sorted(p.name for p in out.iterdir()) == sorted([*neighbours, "suite-b-b-x.json", "suite-b-b-x.md"])
    assert second.skipped == ["all: plots not requested (--no-plots)"]


def test_skipped_figures_are_named_with_their_reason(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for seed in range(2):
        write_record(tmp_path, "s/a/m", task="s/a", method="m", stage="final", seed=seed, seeds=2,
                     selection={"rule": "fixed (single-point grid)", "point": {}})
    board = leaderboard.build(RunStore(tmp_path), "s", None, None)
    with caplog.at_level("INFO", logger="bench.leaderboard"):
        written = leaderboard.write(board, tmp_path / "out")
    assert "heatmap-a: no method searched two or more values of both lr and weight decay on s/a: the protocol " \
           "fixes the hyper-parameters (single-point grid)" in written.skipped
    assert any(line.startswith("grid: no method searched a one-axis grid") for line in written.skipped)
    assert "curves: no per-epoch history in the final run records" in written.skipped
    assert any(line.startswith("cd: no Friedman test across tasks") for line in written.skipped)
    assert all(f"figure not drawn, {line}" in caplog.text for line in written.skipped)
    assert "Not drawn:" in (tmp_path / "out" / "s.md").read_text()


def test_default_out_dir_never_is_the_committed_examples_folder() -> None:
    assert leaderboard.default_out_dir(Path("results/runs")) == Path("results/leaderboards/local")
    assert leaderboard.default_out_dir(Path("results/example-runs")) == Path("results/leaderboards/local")
    assert leaderboard.default_out_dir(Path("/data/store")) == Path("/data/leaderboards/local")


# Which figure shows a grid; the Pareto plot of a board without complete rows ------------------------------------------


def test_one_axis_grids_are_lines_and_two_axis_grids_heat_maps(tmp_path: Path) -> None:
    """s/lr: both methods searched lr only (weight decay fixed), like the mini suite: no heat map, one panel of
    lines. s/both: a 2 x 2 lr x weight-decay grid: a heat map. Only m1 has every task, so the Pareto plot shows
    the mean of m1 alone."""
    for method, lrs in (("m1", (0.2, 1.0, 5.0)), ("m2", (0.01, 0.05))):
        for lr in lrs:
            write_record(tmp_path, f"s/lr/{method}", task="s/lr", method=method, stage="grid", seed=42, lr=lr,
                         accuracy=0.3 + lr / 10)
        for seed in range(2):
            write_record(tmp_path, f"s/lr/{method}", task="s/lr", method=method, stage="final", seed=seed,
                         lr=lrs[-1], seeds=2, selection={"rule": "max val top1", "metric": "top1", "val_top1": 50.0,
                                                          "candidates": len(lrs)})
    for lr in (0.1, 1.0):
        for wd in (0.0, 0.01):
            write_record(tmp_path, "s/both/m1", task="s/both", method="m1", stage="grid", seed=42, lr=lr, wd=wd)
    for seed in range(2):
        write_record(tmp_path, "s/both/m1", task="s/both", method="m1", stage="final", seed=seed, lr=1.0, seeds=2)
    board = leaderboard.build(RunStore(tmp_path), "s", ["s/lr", "s/both"], None)
    assert {"grid", "heatmap-both", "pareto"} <= set(board.plots) and "heatmap-lr" not in board.plots
    assert board.skipped_plots["heatmap-lr"].endswith("the grids search one axis only (see the grid figure)")
    assert ">m2<" in board.plots["grid"].svg and ">0.05<" in board.plots["grid"].svg
    assert ">m2<" not in board.plots["heatmap-both"].svg


def test_pareto_falls_back_to_one_panel_per_task_when_no_row_has_every_task(tmp_path: Path) -> None:
    for seed in range(2):
        write_record(tmp_path, "s/a/m1", task="s/a", method="m1", stage="final", seed=seed, seeds=2)
        write_record(tmp_path, "s/b/m2", task="s/b", method="m2", stage="final", seed=seed, seeds=2)
    board = leaderboard.build(RunStore(tmp_path), "s", ["s/a", "s/b"], None)
    assert board.mean_index is not None and all(r.entries[board.mean_index].value is None for r in board.rows)
    svg = board.plots["pareto"].svg
    assert svg.count("<g id=\"axes_") == 2 and ">m1<" in svg and ">m2<" in svg  # a panel per task, titled a, b
    assert ">a<" in svg and ">b<" in svg


# JSON: schema version and provenance -----------------------------------------------------------------------------


def test_json_carries_a_schema_version_and_provenance_without_machine_facts(hostile_store: Path) -> None:
    import bench
    from bench.leaderboard import provenance
    from bench.leaderboard.machine import render_json
    from bench.train.config import RUNNER_VERSION

    record = sorted(hostile_store.rglob("run.json"))[0]
    record.write_text("{not json")
    board = hostile_board(hostile_store, plots=False)
    text = render_json(board)
    data = json.loads(text)
    assert data["schema_version"] == provenance.SCHEMA_VERSION == 1
    found = data["provenance"]
    assert (found["bench_version"], found["runner_version"]) == (bench.__version__, RUNNER_VERSION)
    assert found["results"] == "runs" and found["git_commit"] is None  # only when asked for (--record-commit)
    assert found["records_left_out"] == 1
    assert found["left_out"][0]["run"] == record.parent.relative_to(hostile_store).as_posix()
    assert str(hostile_store) not in text  # no path of this machine
    cell = next(c for c in found["cells"] if (c["task"], c["method"]) == (FORMULA, "plain"))
    assert [r["seed"] for r in cell["runs"]] == [0, 1, 2] and cell["configuration"]
    for run in cell["runs"]:
        assert json.loads((hostile_store / FORMULA / "plain" / "final" / run["key"] / "run.json").read_text())[
            "run"]["seed"] == run["seed"]
    chosen = next(h for h in data["hparams"] if (h["task"], h["method"]) == (FORMULA, "plain"))
    assert [(g["lr"], g["weight_decay"], g["val_score"] is None) for g in chosen["grid"]] == [
        (0.1, 0.0, False), (0.1, 0.01, False), (1.0, 0.0, False), (1.0, 0.01, True)]  # every grid point, for scripts
    board.git_commit = "0" * 40
    assert json.loads(render_json(board))["provenance"]["git_commit"] == "0" * 40


def test_git_commit_is_this_checkout_or_none() -> None:
    from bench.leaderboard import provenance

    commit = provenance.git_commit()
    root = Path(provenance.__file__).resolve().parents[2]
    if not (root / ".git").exists() or shutil.which("git") is None:
        assert commit is None
        return
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert commit is not None and commit.removesuffix("+dirty") == head.strip()


# Language metrics ---------------------------------------------------------------------------------------------------


def test_error_rates_are_marked_lower_is_better() -> None:
    from bench.leaderboard import names

    assert names.metric("TER") == "TER ↓" and names.metric("TER_seen") == "TER_seen ↓"
    assert names.metric("BLEU") == "BLEU" and names.metric("ROUGE_L") == "ROUGE-L"
    assert escape.latex("TER ↓") == r"TER \ensuremath{\downarrow}"


def test_latex_prints_display_names_and_marks_error_rates(tmp_path: Path) -> None:
    for m, method in enumerate(("deep_share", "lora")):
        for seed in range(3):
            write_record(tmp_path, f"mini/novel_shapes/{method}", task="mini/novel_shapes", method=method,
                         stage="final", seed=seed, items=300, accuracy=0.5 + 0.2 * m,
                         metrics={"top1": 0.0, "TER": 40.0 + seed})
    board = leaderboard.build(RunStore(tmp_path), "mini_x", None, None, plots=False)
    files = latex_files(board, "mini_x")
    assert r"TER \ensuremath{\downarrow}" in files["mini_x-metrics-table.tex"]
    statistics = files["mini_x.tex"].split(r"\section*{Statistics}")[1]
    assert "Novel shapes & LoRA & Deep-share & 300 &" in statistics and "deep\\_share" not in statistics
    assert r"\begin{tabular}{@{}lllrrrrrl@{}}" in statistics  # numbers right-aligned
    assert r"\begin{table}[htbp]" in files["mini_x-table.tex"]  # the standalone's tables follow their heading


def test_a_task_without_runs_takes_its_metric_from_its_spec(tmp_path: Path) -> None:
    """Only E2E (BLEU) has runs: the XSum column still reads ROUGE-2, and no Mean is laid over the two."""
    for seed in range(2):
        write_record(tmp_path, "mini/e2e/lora", task="mini/e2e", method="lora", stage="final", seed=seed, seeds=2,
                     metrics={"primary": "BLEU", "BLEU": 3.0 + seed})
    board = leaderboard.build(RunStore(tmp_path), "mini-nlg", ["mini/e2e", "mini/xsum"], None, plots=False)
    assert [(c.key, c.metric) for c in board.columns] == [("mini/e2e", "BLEU"), ("mini/xsum", "ROUGE-2")]
    assert board.mean_index is None and board.no_mean is not None
