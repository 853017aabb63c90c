"""V-PETL Bench's published FGVC and VTAB-1k rows (results/reference/vpetl_2024.yaml): they load, a few values are
what its README prints, every row agrees with the Mean it prints, method names are ours where the method is, and
`bench leaderboard --reference` shows them as labelled rows."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from bench import registry
from bench.cli import main
from bench.errors import BenchError
from bench.reference import ReferenceTable, load_references, reference_dir
from tests.stored import store_run

FGVC = ["fgvc/cub", "fgvc/nabirds", "fgvc/flowers", "fgvc/dogs", "fgvc/cars"]


@pytest.fixture(scope="module")
def table() -> ReferenceTable:
    return load_references()["vpetl_2024"]


def test_loads_with_its_citation(table: ReferenceTable) -> None:
    assert table.kind == "table" and "V-PETL Bench" in table.citation and "c188fad" in table.citation
    assert "best test epoch" in table.metric


def test_values_read_off_the_readme(table: ReferenceTable) -> None:
    # README of synbol/Parameter-Efficient-Transfer-Learning-Benchmark at c188fad, FGVC and VTAB tables.
    assert table.methods["adapter"]["fgvc/cub"] == 87.1
    assert table.methods["lora"]["fgvc/cars"] == 72.0
    assert table.methods["ssf"]["fgvc/flowers"] == 99.6
    assert table.methods["u_tuning"]["fgvc/cars"] == 92.1
    assert table.methods["gps"]["vtab/cifar100"] == 81.1
    assert table.methods["dtl"]["vtab/dsprites_loc"] == 93.9
    assert table.methods["bitfit"]["vtab/smallnorb_azi"] == 15.7
    assert table.methods["snf"]["vtab/smallnorb_ele"] == 42.1
    fgvc = [m for m, v in table.methods.items() if "fgvc/cub" in v]
    vtab = [m for m, v in table.methods.items() if "vtab/cifar100" in v]
    assert len(fgvc) == 13 + 2 and len(vtab) == 18 + 2  # the PETL methods plus full fine-tuning and linear probing
    assert "prefix_tuning" in fgvc and "prefix_tuning" not in vtab and "noah" in vtab and "noah" not in fgvc


def test_every_row_agrees_with_the_mean_it_prints(table: ReferenceTable) -> None:
    suite, _ = registry.resolve_tasks("vtab")
    assert suite is not None
    vtab = [t for members in suite.groups.values() for t in members]
    for method, printed in table.group_means.items():
        if "fgvc" in printed:
            assert statistics.mean(table.methods[method][t] for t in FGVC) == pytest.approx(printed["fgvc"], abs=0.01)
        if "vtab" in printed:  # V-PETL's VTAB Mean: the plain mean over the 19 tasks
            assert len(vtab) == 19
            assert statistics.mean(table.methods[method][t] for t in vtab) == pytest.approx(printed["vtab"],
                                                                                         abs=0.01)


def test_method_names_are_ours_where_the_method_is(table: ReferenceTable) -> None:
    ours = set(registry.load_methods())
    matched = set(table.methods) - set(table.unmatched_methods)
    assert matched == {"full_ft", "linear", "adapter", "vpt_shallow", "vpt_deep", "bitfit", "lora"}
    assert matched <= ours and not set(table.unmatched_methods) & ours
    tasks = set(registry.spec_files())
    assert all(set(values) <= tasks for values in table.methods.values())
    # V-PETL quotes VPT's own numbers for these rows: identical to vpt_2022.yaml.
    vpt = load_references()["vpt_2022"]
    for method in ("full_ft", "linear", "vpt_shallow", "vpt_deep"):
        assert table.methods[method] == vpt.methods[method]


def test_unmatched_methods_must_have_numbers(tmp_path: Path) -> None:
    text = (reference_dir() / "vpetl_2024.yaml").read_text()
    (tmp_path / "broken.yaml").write_text(text.replace("gps, last, snf]", "gps, last, snf, mona]"))
    with pytest.raises(BenchError, match="unmatched_methods names methods without numbers: mona"):
        load_references(tmp_path)


def test_leaderboard_shows_the_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for seed, score in ((0, 86.0), (1, 87.0)):
        store_run(tmp_path, {"status": "completed", "created_at": "2026-01-01",
                             "run": {"task": "fgvc/cub", "method": "lora", "stage": "final", "seed": seed,
                                     "hparams": {}, "optim": {"base_lr": 0.1, "weight_decay": 0.0}},
                             "metrics": {"top1": score}, "params": {"trainable": 10, "trainable_percent": 0.1}})
    assert main(["leaderboard", "--task", "fgvc", "--results", str(tmp_path), "--out", str(tmp_path / "out"),
                 "--no-plots", "--format", "md", "--reference"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert next(line for line in lines if line.startswith("| lora [vpetl_2024] ")).startswith(
        "| lora [vpetl_2024] | 85.6 | 79.8 | 98.9 | 87.6 | 72 |")
    assert any(line.startswith("| adaptformer [vpetl_2024] | 88.4 |") for line in lines)
    assert "- \\[vpetl_2024\\]: Xin, Luo, Liu" in out
    assert "| lora | fgvc/cub | vpetl_2024 | 86.50 | 85.6 | +0.90 |" in out  # reproduced vs published
