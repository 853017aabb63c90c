"""`bench pack` and `bench import`: a store travels as one archive and arrives byte for byte; importing twice changes
nothing; an edited, traversing or linking archive is refused whole with its reason and the target store is left as
it was; a run whose key the store already holds differently is left alone; runs of other code need a flag."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.cli import main
from bench.leaderboard.collect import collect
from bench.ops.doctor import store_check
from bench.records import record_checksum
from bench.store import RECORD, RunStore

Members = list[tuple[tarfile.TarInfo, bytes]]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny/colors with linear: the grid (4 points) and two final seeds."""
    from tests.conftest import TINY_TASK, write_tiny_dataset

    folder = tmp_path_factory.mktemp("packed")
    tasks = folder / "tasks"
    (tasks / "tiny").mkdir(parents=True)
    (tasks / "tiny" / "colors.yaml").write_text(TINY_TASK.format(root=write_tiny_dataset(folder / "data")))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENCH_CACHE", str(folder / "cache"))
        assert main(["run", "--task", "tiny/colors", "--method", "linear", "--tasks-dir", str(tasks), "--results",
                     str(folder / "runs")]) == 0
    assert main(["pack", "--results", str(folder / "runs"), "--out", str(folder / "runs.tar.gz")]) == 0
    return folder


def files(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below root: its bytes and modification time."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file()}


def import_(archive: Path, results: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["import", str(archive), "--results", str(results), *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def rewrite(archive: Path, out: Path, change: Callable[[Members], Members]) -> Path:
    """A copy of the archive with its members changed (names, contents, types) by `change`."""
    with tarfile.open(archive, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]
    with tarfile.open(out, "w:gz") as tar:
        for info, data in change(members):
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out


def edit_record(members: Members, edit: Callable[[dict], None], fix_manifest: bool) -> Members:
    """Edit the first final run's record; with `fix_manifest`, also write its new SHA-256 into the manifest."""
    index = next(i for i, (m, _) in enumerate(members) if "/final/" in m.name and m.name.endswith(RECORD))
    info, data = members[index]
    record = json.loads(data)
    edit(record)
    data = json.dumps(record, indent=1).encode()
    info.size = len(data)
    members[index] = (info, data)
    if fix_manifest:
        manifest_info, manifest_data = members[0]
        manifest = json.loads(manifest_data)
        entry = next(r for r in manifest["runs"] if r["key"] == record["key"])
        entry["files"][RECORD] = hashlib.sha256(data).hexdigest()
        manifest_data = json.dumps(manifest).encode()
        manifest_info.size = len(manifest_data)
        members[0] = (manifest_info, manifest_data)
    return members


def test_a_packed_store_arrives_byte_for_byte_and_reads_the_same(stored: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    source, target = stored / "runs", tmp_path / "new-store"
    code, out = import_(stored / "runs.tar.gz", target, capsys=capsys)
    assert code == 0, out
    assert out.count("imported:") == 6 and "6 imported, 0 already present, 0 refused" in out
    source_records = {r["key"]: r for r in RunStore(source).records()}
    target_records = {r["key"]: r for r in RunStore(target).records()}
    assert set(target_records) == set(source_records) and len(target_records) == 6
    for key, record in source_records.items():
        here, there = Path(record["_dir"]), Path(target_records[key]["_dir"])
        assert here.relative_to(source) == there.relative_to(target)
        for name in [RECORD, *record["files"]]:
            assert (there / name).read_bytes() == (here / name).read_bytes()
    assert not [p for p in target.iterdir() if p.name.startswith(".")]  # no temp folder left
    assert store_check(target).status == "ok"
    cells = {pair: (c.scores, c.seeds, c.configuration, c.point) for pair, c in collect(RunStore(source)).cells.items()}
    assert cells and {pair: (c.scores, c.seeds, c.configuration, c.point)
                      for pair, c in collect(RunStore(target)).cells.items()} == cells
    # the same runs always pack to the same bytes
    assert main(["pack", "--results", str(target), "--out", str(tmp_path / "again.tar.gz")]) == 0
    assert (tmp_path / "again.tar.gz").read_bytes() == (stored / "runs.tar.gz").read_bytes()


def test_importing_twice_finds_everything_present_and_changes_nothing(stored: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "store"
    assert import_(stored / "runs.tar.gz", target, capsys=capsys)[0] == 0
    before = files(target)
    code, out = import_(stored / "runs.tar.gz", target, capsys=capsys)
    assert code == 0 and out.count("present:") == 6 and "0 imported, 6 already present, 0 refused" in out
    assert files(target) == before


def test_pack_filters_by_method(stored: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pack", "--results", str(stored / "runs"), "--out", str(tmp_path / "none.tar.gz"),
                 "--method", "bitfit"]) == 2  # no runs of it
    assert "no runs to pack" in capsys.readouterr().err


@pytest.mark.parametrize(("case", "reason"), [
    ("edited metric", "does not match its checksum"),
    ("edited metric, manifest not updated", "does not match the manifest's checksum"),
    ("member with ../", "leaves its folder"),
    ("absolute member", "absolute"),
    ("symlink member", "symbolic link"),
    ("file the manifest does not list", "disagree"),
])
def test_a_tampered_archive_is_refused_and_the_store_is_unchanged(
        case: str, reason: str, stored: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def change(members: Members) -> Members:
        if case.startswith("edited metric"):
            return edit_record(members, lambda r: r["metrics"].update(top1=99.0), fix_manifest="not" not in case)
        if case in ("member with ../", "absolute member"):
            evil = tarfile.TarInfo("../evil.txt" if "../" in case else str(tmp_path / "evil.txt"))
            evil.size = 5
            return [*members[:2], (evil, b"evil\n"), *members[2:]]
        if case == "symlink member":
            index = next(i for i, (m, _) in enumerate(members) if m.name.endswith("predictions.npz"))
            link = tarfile.TarInfo(members[index][0].name)
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            members[index] = (link, b"")
            return members
        extra = tarfile.TarInfo("runs/tiny/colors/linear/grid/0123456789abcdef/run.json")
        extra.size = 3
        return [*members, (extra, b"{}\n")]

    archive = rewrite(stored / "runs.tar.gz", tmp_path / "tampered.tar.gz", change)
    target = tmp_path / "store"
    shutil.copytree(stored / "runs", target, ignore=shutil.ignore_patterns("final"))  # a store with the grid only
    before = files(target)
    code, out = import_(archive, target, capsys=capsys)
    assert code == 1, out
    assert reason in out and "refused the archive" in out and "Nothing was imported" in out
    assert files(target) == before
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_a_different_run_with_the_same_key_is_left_alone(stored: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "store"
    shutil.copytree(stored / "runs", target)
    path = sorted(target.rglob(RECORD))[-1]
    record = json.loads(path.read_text())
    record["created_at"] = "2027-01-01T00:00:00+00:00"  # a valid record of the same run, made another time
    record["checksum"] = record_checksum(record)
    path.write_text(json.dumps(record, indent=1) + "\n")
    assert not RunStore(target).read(path.parent)[1]
    before = files(target)
    code, out = import_(stored / "runs.tar.gz", target, capsys=capsys)
    assert code == 1
    assert f"refused:         {record['run']['task']}" in out and "a different run with this key (left alone)" in out
    assert "0 imported, 5 already present, 1 refused" in out
    assert files(target) == before


def test_runs_of_other_code_need_allow_other_code(stored: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.train import config

    monkeypatch.setattr(config, "RUNNER_VERSION", config.RUNNER_VERSION + 1)  # this checkout's engine moved on
    target = tmp_path / "store"
    code, out = import_(stored / "runs.tar.gz", target, capsys=capsys)
    assert code == 1 and out.count("refused:") == 6 and "--allow-other-code" in out and "runner version" in out
    assert not target.exists()  # nothing imported into a store that did not exist
    code, out = import_(stored / "runs.tar.gz", target, "--allow-other-code", capsys=capsys)
    assert code == 0 and out.count("imported:") == 6 and "other code" in out
    assert len(list(RunStore(target).records())) == 6


def test_an_archive_over_the_size_bounds_is_refused(stored: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import share

    monkeypatch.setattr(share, "MAX_FILE_BYTES", 100)
    code, out = import_(stored / "runs.tar.gz", tmp_path / "store", capsys=capsys)
    assert code == 1 and "member 'runs/" in out and "size bounds" in out and not (tmp_path / "store").exists()
    # a header that tarfile would read whole into memory: a pax record far longer than any real one
    monkeypatch.setattr(share, "HEADER_BYTES", 1 << 16)
    bomb = tarfile.TarInfo("manifest.json")
    bomb.size, bomb.pax_headers = 2, {"comment": "x" * (1 << 20)}
    with tarfile.open(tmp_path / "bomb.tar.gz", "w:gz", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(bomb, io.BytesIO(b"{}"))
    code, out = import_(tmp_path / "bomb.tar.gz", tmp_path / "store", capsys=capsys)
    assert code == 1 and "header" in out and "size bounds" in out and not (tmp_path / "store").exists()


@pytest.mark.parametrize(("case", "field"), [
    ("missing archive", "ARCHIVE"), ("not a tar", "ARCHIVE"), ("results is a file", "--results"),
])
def test_bad_input_is_one_paragraph_and_exit_2(case: str, field: str, stored: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    archive, results = stored / "runs.tar.gz", tmp_path / "store"
    if case == "missing archive":
        archive = tmp_path / "nowhere.tar.gz"
    elif case == "not a tar":
        archive = tmp_path / "notes.tar.gz"
        archive.write_bytes(b"\x1f\x8b not really gzip")
    else:
        results = tmp_path / "notes.txt"
        results.write_text("a file\n")
    code, out = import_(archive, results, capsys=capsys)
    assert code == 2 and out.startswith("error:") and f"field '{field}'" in out and "Traceback" not in out
    assert not (tmp_path / "store").exists()
