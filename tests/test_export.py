"""`bench export`: one row per stored run (grid and final), read back with pandas from parquet and CSV with the
records' own values; a record that fails its checks is left out and named; bad input is one paragraph, exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import api
from bench.cli import main
from bench.store import RECORD, RunStore


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny/colors with linear: the grid (4 points), two selected final seeds, and one final run fixed by --set."""
    from tests.conftest import TINY_TASK, write_tiny_dataset

    folder = tmp_path_factory.mktemp("exported")
    tasks = folder / "tasks"
    (tasks / "tiny").mkdir(parents=True)
    (tasks / "tiny" / "colors.yaml").write_text(TINY_TASK.format(root=write_tiny_dataset(folder / "data")))
    common = ["--task", "tiny/colors", "--method", "linear", "--tasks-dir", str(tasks), "--results",
              str(folder / "runs")]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENCH_CACHE", str(folder / "cache"))
        assert main(["run", *common]) == 0
        assert main(["run", *common, "--set", "base_lr=0.1", "--set", "weight_decay=0.0", "--seeds", "42"]) == 0
    return folder


def records(root: Path) -> dict[str, dict]:
    return {r["key"]: r for r in RunStore(root).records()}


def export(*args: str) -> int:
    return main(["export", *args])


def test_one_row_per_run_with_the_records_values(stored: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    runs = records(stored / "runs")
    assert len(runs) == 7 and len(list((stored / "runs").rglob(RECORD))) == 7
    assert export("--results", str(stored / "runs"), "--out", f"{tmp_path}/table/") == 0
    assert "exported 7 runs" in capsys.readouterr().out
    parquet = pd.read_parquet(tmp_path / "table" / "runs.parquet")
    csv = pd.read_csv(tmp_path / "table" / "runs.csv", dtype={"key": str, "configuration": str, "method_code": str})
    jsonl = [json.loads(line) for line in (tmp_path / "table" / "runs.jsonl").read_text().splitlines()]
    assert len(parquet) == len(csv) == len(jsonl) == 7
    assert list(parquet.columns) == list(csv.columns) == list(jsonl[0])
    for table in (parquet, csv):
        assert set(table["key"]) == set(runs)
        assert (table["export_schema"] == 1).all()
        for row in table.to_dict("records"):
            record = runs[row["key"]]
            run, identity = record["run"], record["identity"]
            assert (row["task"], row["method"], row["stage"], row["seed"]) == (
                run["task"], run["method"], run["stage"], run["seed"])
            assert row["metric.top1"] == record["metrics"]["top1"] == row["score"]
            assert row["split"] == record["metrics"]["split"] == ("val" if run["stage"] == "grid" else "test")
            assert row["hp.base_lr"] == run["optim"]["base_lr"]
            assert row["hp.weight_decay"] == run["optim"]["weight_decay"]
            assert row["params.trainable"] == record["params"]["trainable"]
            assert row["cost.wall_s"] == record["cost"]["wall_s"]
            assert row["cost.peak_memory_bytes"] == record["cost"]["peak_memory_bytes"]
            assert row["device"] == record["cost"]["device"]
            assert (row["runner_version"], row["method_code"]) == (identity["runner_version"],
                                                                   identity["method_code"])
            assert row["profile"] == "clean"
    by_how = parquet.groupby("chosen_by")["stage"].agg(list).to_dict()
    assert by_how == {"grid": ["grid"] * 4, "val": ["final"] * 2, "set": ["final"]}
    fixed = parquet[parquet["chosen_by"] == "set"].iloc[0]
    assert json.loads(fixed["set"]) == {"base_lr": 0.1, "weight_decay": 0.0}
    selected = parquet[parquet["chosen_by"] == "val"]
    assert selected["set"].isna().all() and selected["selection.val_top1"].notna().all()
    assert str(parquet["seed"].dtype) == "Int64" and str(parquet["metric.top1"].dtype) == "float64"


def test_the_api_filters_by_task_and_method(stored: Path) -> None:
    table = api.export(stored / "runs", task="tiny/colors", methods=["linear"],
                       tasks_dirs=[stored / "tasks"])
    assert len(table.rows) == 7 and not table.left_out
    assert len(table.frame()) == 7
    assert api.export(stored / "runs", task="tiny").rows == table.rows  # a name known only to the store
    with pytest.raises(Exception, match="unknown method 'linaer'.*Did you mean 'linear'"):
        api.export(stored / "runs", methods=["linaer"])


def test_a_damaged_record_is_left_out_and_reported(stored: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    results = tmp_path / "runs"
    shutil.copytree(stored / "runs", results)
    damaged = sorted(results.rglob(RECORD))[0]
    record = json.loads(damaged.read_text())
    record["metrics"]["top1"] = 99.0  # an edited metric: the record's checksum no longer matches
    damaged.write_text(json.dumps(record, indent=1))
    capsys.readouterr()
    assert export("--results", str(results), "--out", str(tmp_path / "out" / "mini"), "--format", "parquet") == 0
    out, err = capsys.readouterr()
    assert f"left out {damaged.parent}" in err and "checksum" in err
    assert "exported 6 runs" in out and "1 record(s) left out" in out
    table = pd.read_parquet(tmp_path / "out" / "mini.parquet")
    assert len(table) == 6 and record["key"] not in set(table["key"])
    assert not (tmp_path / "out" / "mini.csv").exists()  # only the formats asked for


@pytest.mark.parametrize(("case", "field"), [
    ("missing results", "--results"), ("results is a file", "--results"), ("out is a file", "--out"),
    ("unknown format", "--format"),
])
def test_bad_input_is_one_paragraph_and_exit_2(case: str, field: str, stored: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder\n")
    results, out, formats = str(stored / "runs"), str(tmp_path / "out") + "/", "csv,parquet"
    if case == "missing results":
        results = str(tmp_path / "nowhere")
    elif case == "results is a file":
        results = str(a_file)
    elif case == "out is a file":
        out = str(a_file)
    else:
        formats = "csv,xlsx"
    capsys.readouterr()
    assert export("--results", results, "--out", out, "--format", formats) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and f"field '{field}'" in err and "Traceback" not in err
    assert all(line.strip() for line in err.rstrip("\n").splitlines())  # one paragraph
    assert not (tmp_path / "out").exists() and a_file.read_text() == "not a folder\n"
