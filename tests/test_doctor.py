"""bench doctor: a healthy store passes; a damaged one (unreadable record, result file not matching its
checksum, temp file of a killed writer) fails with the runs named; a missing Java is reported with its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main
from bench.metrics import java


def stored_runs(tasks_dir: Path, results: Path) -> list[Path]:
    assert main(["run", "--task", "tiny/colors", "--method", "linear", "--tasks-dir", str(tasks_dir), "--results",
                 str(results), "--stage", "final", "--seeds", "42,44", "--set", "base_lr=0.1",
                 "--set", "weight_decay=0.0"]) == 0
    return sorted(p.parent for p in results.rglob("run.json"))


def doctor(tasks_dir: Path, results: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["doctor", "--tasks-dir", str(tasks_dir), "--results", str(results)])
    return code, capsys.readouterr().out


def test_doctor_passes_a_healthy_store_and_names_every_damaged_run(tiny_tasks_dir: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "runs"
    first, second = stored_runs(tiny_tasks_dir, results)
    code, out = doctor(tiny_tasks_dir, results, capsys)
    assert code == 0 and "Nothing to fix." in out
    assert "2 records" in " ".join(out.split()) and "run store" in out

    (first / "run.json").write_text((first / "run.json").read_text()[:50])  # an edited / damaged record
    predictions = second / "predictions.npz"
    predictions.write_bytes(predictions.read_bytes()[:-10])  # a truncated result file
    (second / ".run.json.123.tmp").write_text("")
    code, out = doctor(tiny_tasks_dir, results, capsys)
    assert code == 1 and "1 check(s) failed: run store." in out
    flat = " ".join(out.split())
    assert "3 record(s) that are never used" in flat and "FAIL" in out, flat
    assert "not valid JSON" in flat and "does not match the checksum" in flat and "temp file" in flat
    assert "Move each listed run folder" in flat


def test_doctor_reports_a_missing_java_with_the_fix(tiny_tasks_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no java on PATH
    java.java_available.cache_clear()
    try:
        code, out = doctor(tiny_tasks_dir, tmp_path / "runs", capsys)
    finally:
        java.java_available.cache_clear()
    flat = " ".join(out.split())
    assert code == 0  # a missing Java only removes METEOR: a warning, not a failure
    line = next(line for line in out.splitlines() if "java (METEOR)" in line)
    assert line.startswith("warn  java (METEOR): METEOR")
    assert "Java not found: install default-jre-headless" in flat and "reported as unavailable" in flat
