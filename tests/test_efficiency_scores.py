"""The opt-in efficiency-aware leaderboard columns (bench.leaderboard.efficiency): V-PETL Bench's PPT and
PEFT-Bench's PSCP on hand-computed cases and published rows, per cell and per row in every format, a missing
quantity left empty with its reason, and boards without --efficiency unchanged."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bench import api, leaderboard
from bench.cli import main
from bench.errors import BenchError
from bench.leaderboard.board import Row
from bench.leaderboard.efficiency import parse, ppt, pscp, pscp_penalty
from bench.leaderboard.latex import latex_files
from bench.leaderboard.machine import render_json
from bench.store import RunStore
from tests.stored import store_run

# --- the formulas on hand-computed cases --------------------------------------------------------------------------


def test_ppt_reproduces_v_petl_bench_rows() -> None:
    # FGVC Adapter in V-PETL Bench's README: Mean 85.66, Params 0.41 M, PPT 0.84.
    # log10(0.41e6 / 1e7 + 1) = log10(1.041) = 0.0174507; exp(-0.0174507) = 0.9827007; 0.8566 x 0.9827007 = 0.84178
    assert ppt(85.66, 410_000) == pytest.approx(0.84178, abs=1e-5)
    assert round(ppt(85.66, 410_000), 2) == 0.84
    # Linear probing trains 0 M parameters: PPT is the accuracy as a fraction (FGVC 79.32 -> 0.79).
    assert ppt(79.32, 0) == pytest.approx(0.7932)
    # VTAB LST: Mean 71.70, 2.38 M -> log10(1.238) = 0.0927206, exp(-0.0927206) = 0.9114481, x 0.717 = 0.65351 (0.65).
    assert ppt(71.70, 2_380_000) == pytest.approx(0.65351, abs=1e-5)
    assert round(ppt(71.70, 2_380_000), 2) == 0.65


def test_pscp_reproduces_the_peft_bench_table_script() -> None:
    # kinit-sk/PEFT-Factory scripts/peftbench/cal_psqp.py, LoRA on Llama-3-8B: performance 80.1, 14,680,064
    # trainable parameters, 0 extra TFLOPs (8.38 - 8.38), 27.75 GB. With beta = 1:
    # 1 / (1 + 14680064 / 5e8) = 1 / 1.0293601 = 0.9714773; 1 / (1 + 27.75 / 94) = 94 / 121.75 = 0.7720739;
    # 80.1 x 0.9714773 x 0.7720739 = 60.0792.
    assert pscp_penalty(14_680_064, 5e8) == pytest.approx(0.9714773, abs=1e-7)
    assert pscp_penalty(27.75, 94.0) == pytest.approx(94 / 121.75)
    assert pscp(80.1, 14_680_064, 27.75, extra_tflops=0.0) == pytest.approx(60.0792, abs=1e-4)
    # Prompt tuning: 50.0, 409,600 parameters, 10.05 - 8.38 = 1.67 extra TFLOPs, 42.47 GB:
    # 0.9991815 x 1 / 1.167 (= 0.8568980) x 1 / (1 + 42.47 / 94) (= 0.6887961) x 50 = 29.4872.
    assert pscp(50.0, 409_600, 42.47, extra_tflops=1.67) == pytest.approx(29.4872, abs=1e-4)
    # Without a FLOPs count the factor is left out: an upper bound of the full score.
    assert pscp(50.0, 409_600, 42.47) == pytest.approx(29.4872 / 0.8568980, abs=1e-3)
    assert pscp(50.0, 409_600, 42.47) > pscp(50.0, 409_600, 42.47, extra_tflops=1.67)


def test_unknown_score_names_are_errors_with_a_suggestion() -> None:
    assert parse(["PPT", "pscp", "ppt"]) == ("ppt", "pscp")
    with pytest.raises(BenchError, match="Did you mean 'ppt'"):
        parse(["ppx"])


# --- per cell and per row, in every format --------------------------------------------------------------------------

TASKS = ["toy/a", "toy/b"]
GB = 10**9


def store_cell(root: Path, task: str, method: str, scores: tuple[float, ...], trainable: int | None,
               memory: int | None, metric: str = "top1") -> None:
    for seed, score in enumerate(scores):
        cost: dict[str, object] = {"wall_s": 60.0, "device": "cuda (test)"}
        if memory is not None:
            cost |= {"peak_memory_bytes": memory, "peak_memory_kind": "cuda_allocated"}
        metrics = {"top1": score} if metric == "top1" else {"primary": metric, metric: score}
        store_run(root, {"status": "completed", "created_at": "2026-01-01",
                         "run": {"task": task, "method": method, "stage": "final", "seed": seed, "hparams": {},
                                 "optim": {"base_lr": 0.1, "weight_decay": 0.0}},
                         "metrics": metrics,
                         "params": {"trainable_percent": 1.0} | ({} if trainable is None else {"trainable": trainable}),
                         "cost": cost, "task_spec": {"protocol": {"seeds": list(range(len(scores)))}}})


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    store_cell(root, "toy/a", "big", (80.0, 82.0), 2_000_000, 4 * GB)
    store_cell(root, "toy/b", "big", (60.0, 62.0), 2_000_000, 4 * GB)
    store_cell(root, "toy/a", "small", (78.0, 80.0), 100_000, 2 * GB)
    store_cell(root, "toy/b", "small", (58.0, 60.0), 100_000, 2 * GB)
    store_cell(root, "toy/a", "nomem", (70.0, 70.0), 0, None)
    store_cell(root, "toy/b", "nomem", (50.0, 50.0), 0, None)
    return root


def board_of(root: Path, efficiency: tuple[str, ...] = ("ppt", "pscp")) -> leaderboard.Board:
    return leaderboard.build(RunStore(root), "toy", TASKS, None, plots=False, efficiency=efficiency)


def row(board: leaderboard.Board, method: str) -> Row:
    return next(r for r in board.rows if r.label == method)


def test_scores_per_cell_and_per_row(store: Path) -> None:
    board = board_of(store)
    assert [(c.key, c.label) for c in board.efficiency] == [("ppt", "PPT"), ("pscp", "PSCP (no FLOPs)")]
    # big: 2 M trainable -> exp(-log10(2e6 / 1e7 + 1)) = exp(-log10(1.2)) = exp(-0.0791812) = 0.9238725;
    # toy/a mean 81 -> 0.81 x 0.9238725 = 0.748337; toy/b mean 61 -> 0.563562; the row: their mean 0.655949.
    cells = board.efficiency_cells
    assert cells[("toy/a", "big")]["ppt"].value == pytest.approx(0.748337, abs=1e-6)
    assert cells[("toy/b", "big")]["ppt"].value == pytest.approx(0.563562, abs=1e-6)
    assert row(board, "big").efficiency[0].value == pytest.approx(0.655949, abs=1e-6)
    # small: 0.1 M -> exp(-log10(1.01)) = 0.9956879; (0.79 + 0.59) / 2 x 0.9956879 = 0.687025: the best PPT.
    assert row(board, "small").efficiency[0].value == pytest.approx(0.687025, abs=1e-6)
    # PSCP of big on toy/a: 81 / (1 + 2e6 / 5e8) / (1 + 4 GB / 94) = 81 / 1.004 x 94 / 98 = 77.38434.
    assert cells[("toy/a", "big")]["pscp"].value == pytest.approx(77.38434, abs=1e-5)
    # small on toy/a: 79 / (1 + 1e5 / 5e8) / (1 + 2 / 94) = 77.33870, just below big.
    assert cells[("toy/a", "small")]["pscp"].value == pytest.approx(77.33870, abs=1e-5)
    assert cells[("toy/a", "big")]["pscp"].place == 1 and cells[("toy/a", "small")]["pscp"].place == 2
    # nomem: 0 trainable parameters, PPT = (0.70 + 0.50) / 2; no peak memory recorded: no PSCP, and why.
    assert row(board, "nomem").efficiency[0].value == pytest.approx(0.60)
    missing = cells[("toy/a", "nomem")]["pscp"]
    notes = {board.footnote_mark(t): t for t in board.footnotes}
    assert missing.value is None and missing.footnote is not None
    assert notes[missing.footnote] == ("PSCP: not every run record of this cell holds a peak memory "
                                       "(cost.peak_memory_bytes)")
    assert row(board, "nomem").efficiency[1].value is None
    places = {r.label: r.efficiency[0].place for r in board.rows}
    assert places == {"small": 1, "big": 2, "nomem": 0}


def test_every_format_shows_the_columns_with_formula_and_source(store: Path, tmp_path: Path) -> None:
    board = board_of(store)
    ppt_mark, pscp_mark = board.efficiency_notes["ppt"], board.efficiency_notes["pscp"]
    markdown = leaderboard.render_markdown(board)
    header = next(line for line in markdown.splitlines() if line.startswith("| Method"))
    assert header.endswith(f"| PPT<sup>{ppt_mark}</sup> | PSCP (no FLOPs)<sup>{pscp_mark}</sup> |")
    small = next(line for line in markdown.splitlines() if line.startswith("| small "))
    # PPT with 3 decimals; PSCP with 2, in the score's unit: (77.33870 + 57.75928) / 2 = 67.549, second to big's
    # (77.38434 + 58.27710) / 2 = 67.831.
    assert small.endswith("| **0.687** | <ins>67.55</ins> |")
    assert "exp(−log10(P / C + 1))" in markdown and "C = 10^7" in markdown and "commit c188fad" in markdown
    assert "C_p = 5·10^8" in markdown and "C_m = 94" in markdown and "kinit-sk/PEFT-Factory" in markdown
    assert "Not applied here: the FLOPs factor" in markdown and "as PEFT-Bench measures it" in markdown

    records = list(csv.DictReader(io.StringIO(leaderboard.render_csv(board))))
    efficiency = {(r["method"], r["column"]): r for r in records if r["kind"] == "efficiency"}
    assert float(efficiency[("big", "ppt:toy/a")]["mean"]) == pytest.approx(0.748337, abs=1e-6)
    assert float(efficiency[("big", "ppt")]["mean"]) == pytest.approx(0.655949, abs=1e-6)
    assert efficiency[("nomem", "pscp:toy/b")]["mean"] == ""
    assert "holds a peak memory" in efficiency[("nomem", "pscp:toy/b")]["missing_reason"]
    assert len(efficiency) == 3 * 2 * (2 + 1)  # rows x scores x (two cells + the row's value)

    data = json.loads(render_json(board))
    assert data["efficiency"]["ppt"]["columns"] == ["ppt"] and data["efficiency"]["pscp"]["footnote"] == pscp_mark
    assert "V-PETL Bench" in data["efficiency"]["ppt"]["definition"]

    page = leaderboard.render_html(board)
    assert f"<th>PPT ({ppt_mark})</th>" in page and "<strong>0.687</strong>" in page

    files = latex_files(board, "toy")
    table = files["toy-table.tex"]
    assert rf"PPT\textsuperscript{{{ppt_mark}}}" in table and r"\textbf{0.687}" in table
    assert r"\ensuremath{\beta}" in table  # the PSCP footnote's beta, typeset
    if shutil.which("pdflatex") is not None:
        for name, text in files.items():
            (tmp_path / name).write_text(text)
        done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "toy.tex"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-3000:]


def test_without_a_mean_each_task_gets_its_own_column(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    store_cell(root, "toy/a", "lora", (20.0, 22.0), 500_000, GB, metric="BLEU")
    store_cell(root, "toy/b", "lora", (30.0, 30.0), 500_000, GB, metric="ROUGE-2")
    board = board_of(root, ("ppt",))
    assert board.mean_index is None
    assert [c.key for c in board.efficiency] == ["ppt:toy/a", "ppt:toy/b"]
    # 21 BLEU, 0.5 M: 0.21 x exp(-log10(1.05)) = 0.21 x exp(-0.0211893) = 0.21 x 0.9790336 = 0.205597.
    assert row(board, "lora").efficiency[0].value == pytest.approx(0.205597, abs=1e-6)
    assert "never averaged" in board.footnotes[-1]


def test_a_record_without_a_parameter_count_gets_no_score(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    store_cell(root, "toy/a", "old", (70.0, 72.0), None, GB)
    store_cell(root, "toy/b", "old", (50.0, 52.0), None, GB)
    board = board_of(root)
    notes = {board.footnote_mark(t): t for t in board.footnotes}
    for score in ("ppt", "pscp"):
        entry = board.efficiency_cells[("toy/a", "old")][score]
        assert entry.value is None and entry.footnote is not None  # never read as 0 trainable parameters
        assert "holds no trainable-parameter count" in notes[entry.footnote]
    assert row(board, "old").efficiency[0].value is None


def test_boards_without_efficiency_are_unchanged(store: Path) -> None:
    board = board_of(store, ())
    assert board.efficiency == [] and all(r.efficiency == [] for r in board.rows)
    assert "PPT" not in leaderboard.render_markdown(board)
    assert "efficiency" not in json.loads(render_json(board))
    assert "efficiency" not in leaderboard.render_csv(board)
    with_scores = board_of(store)
    assert [r.entries for r in with_scores.rows] == [r.entries for r in board.rows]  # the score columns as before


def test_command_line_and_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "runs"
    store_cell(root, "fgvc/cub", "lora", (88.0, 89.0), 300_000, 3 * GB)
    assert main(["leaderboard", "--task", "fgvc/cub", "--results", str(root), "--out", str(tmp_path / "out"),
                 "--no-plots", "--format", "md,csv", "--efficiency", "ppt,pscp"]) == 0
    out = capsys.readouterr().out
    # 88.5 x exp(-log10(1.03)) / 100 = 0.885 x 0.9872465 = 0.874; 88.5 / 1.0006 / (1 + 3 / 94) = 85.71.
    assert "| PPT<sup>" in out and "| **0.874** | **85.71** |" in out
    board = api.leaderboard("fgvc/cub", results=root, efficiency=["pscp"])
    assert [c.key for c in board.efficiency] == ["pscp"]
    assert api.leaderboard("fgvc/cub", results=root).efficiency == []
    assert main(["leaderboard", "--task", "fgvc/cub", "--results", str(root), "--efficiency", "ppx"]) == 2
    assert "Did you mean 'ppt'" in capsys.readouterr().err

