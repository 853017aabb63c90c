"""The README's "Adding a method" example, taken verbatim from README.md, runs end to end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.cli import main
from bench.method import METHODS
from bench.store import RunStore

ROOT = Path(__file__).resolve().parents[1]


def readme_method_source() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"```python\n(# my_methods/bias_only\.py\n.*?)```", text, re.S)
    assert match, "the README lost its method example"
    return match.group(1)


@pytest.mark.slow
def test_readme_method_runs_with_methods_dir_on_the_mini_suite(tmp_path: Path) -> None:
    folder = tmp_path / "my_methods"
    folder.mkdir()
    (folder / "bias_only.py").write_text(readme_method_source())
    results = tmp_path / "runs"
    try:
        assert main(["run", "--task", "mini", "--method", "bias_only", "--methods-dir", str(folder),
                     "--seeds", "42", "--results", str(results)]) == 0
    finally:
        METHODS.pop("bias_only", None)
    grid = list(RunStore(results).records(stage="grid"))
    final = list(RunStore(results).records(stage="final"))
    assert len(grid) == 3 * 4 and len(final) == 3  # 3 tasks x (2 lrs x 1 wd x include_norms {False, True})
    assert {r["run"]["hparams"]["include_norms"] for r in grid} == {False, True}
    trainable = {r["run"]["hparams"]["include_norms"]: r["params"]["trainable"] for r in grid}
    assert 0 < trainable[False] < trainable[True]
