"""Listing methods, validating and refusing a mistyped method answer from the catalog without importing torch, and
any change to a method file is seen at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Runs the CLI in a fresh interpreter and reports whether torch got imported.
PROBE = """
import sys
from bench.cli import main
code = main(sys.argv[1:])
print("TORCH" if "torch" in sys.modules else "NO-TORCH", code)
"""


def bench(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BENCH_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.slow  # in CI's slow tier: keeps `make test` within 3 minutes on 2 cores
def test_a_second_listing_answers_without_torch_and_says_the_same(tmp_path: Path) -> None:
    first = bench(tmp_path, "list", "methods")
    assert last_line(first) == "TORCH 0"  # nothing cached yet: the method files are imported
    second = bench(tmp_path, "list", "methods")
    assert last_line(second) == "NO-TORCH 0"
    assert second.stdout.splitlines()[:-1] == first.stdout.splitlines()[:-1]
    assert "deep_share" in second.stdout and "num_tokens, dropout, mlp_hidden, share_type" in second.stdout
    typo = bench(tmp_path, "run", "--task", "mini", "--method", "deep_shar", "--dry-run")
    assert last_line(typo) == "NO-TORCH 2"
    assert "unknown method 'deep_shar'. Did you mean 'deep_share'?" in " ".join(typo.stderr.split())
    bad_set = bench(tmp_path, "run", "--task", "mini", "--method", "lora", "--set", "rank=0", "--dry-run")
    assert last_line(bad_set) == "NO-TORCH 2"
    assert ("field 'rank': invalid hyper-parameter for method 'lora': Input should be greater than or equal to 1"
            in " ".join(bad_set.stderr.split()))
    validated = bench(tmp_path, "validate")
    assert last_line(validated) == "NO-TORCH 0" and "15 methods" in validated.stdout


@pytest.mark.slow
def test_an_edited_or_new_method_file_is_imported_again(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    source = (
        "from torch import nn\n\nfrom bench.method import Method, MethodHParams, register_method\n\n"
        "class HP(MethodHParams):\n    width: int = 1\n\n"
        "@register_method('mine')\nclass Mine(Method[HP]):\n    '''My own method.'''\n    HParams = HP\n\n"
        "    def attach(self, backbone):\n        return nn.Identity()\n"
    )
    (folder / "mine.py").write_text(source)
    cache = tmp_path / "cache"
    assert "My own method." in bench(cache, "list", "methods", "--methods-dir", str(folder)).stdout
    (folder / "mine.py").write_text(source.replace("width", "depth").replace("My own", "Renamed"))
    again = bench(cache, "list", "methods", "--methods-dir", str(folder))
    assert last_line(again) == "TORCH 0" and "Renamed method." in again.stdout and "depth" in again.stdout
    (folder / "other.py").write_text(source.replace("'mine'", "'other'").replace("Mine", "Other"))
    assert "other" in bench(cache, "list", "methods", "--methods-dir", str(folder)).stdout
    without = bench(cache, "list", "methods")  # the built-in set alone: another key, no user methods
    assert "mine" not in without.stdout.split() and "other" not in without.stdout.split()


@pytest.mark.slow
def test_a_damaged_catalog_costs_an_import_never_an_answer(tmp_path: Path) -> None:
    assert last_line(bench(tmp_path, "list", "methods")) == "TORCH 0"
    catalog = tmp_path / "method-catalog.json"
    entries = json.loads(catalog.read_text())
    for broken in ("{not json", "[]", json.dumps({key: [{"name": 3}] for key in entries})):
        catalog.write_text(broken)
        result = bench(tmp_path, "list", "methods")
        assert last_line(result) == "TORCH 0" and "deep_share" in result.stdout
    (tmp_path / "a-file").write_text("")  # a cache folder that cannot be created: answers, writes nothing
    assert "deep_share" in bench(tmp_path / "a-file" / "cache", "list", "methods").stdout


def test_a_method_registered_by_a_script_is_known(request: pytest.FixtureRequest) -> None:
    """The Python API: a method a script registers in its own process is a live fact beside the catalog."""
    from bench import api
    from bench.method import METHODS, Method, MethodHParams, register_method

    request.addfinalizer(lambda: METHODS.pop("script_only_method", None))  # other tests see the usual methods

    class HP(MethodHParams):
        pass

    @register_method("script_only_method")
    class ScriptOnly(Method[HP]):
        HParams = HP

        def attach(self, backbone):  # type: ignore[no-untyped-def]
            from torch import nn

            return nn.Identity()  # nothing to train; these tests only name the method

    assert [m.name for m in api.methods(["script_only_method"])] == ["script_only_method"]
    stored = json.loads((Path(os.environ["BENCH_CACHE"]) / "method-catalog.json").read_text())
    assert all("script_only_method" not in {e["name"] for e in entries} for entries in stored.values())


def test_the_catalog_refuses_what_the_class_refuses_and_leaves_the_rest_to_it() -> None:
    """Every bound the schema carries is enforced early with the class's own message; a custom validator, which no
    schema shows, is left to the class (never an early pass that the class would refuse unchecked)."""
    from pydantic import field_validator

    from bench import registry
    from bench.errors import BenchError
    from bench.method import Method, MethodHParams
    from bench.method_catalog import describe, refuse_bad_values

    for name, values in [("lora", {"rank": 0}), ("lora", {"dropout": 1.0}), ("deep_share", {"share_type": "cubic"}),
                         ("no_share", {"num_tokens": 3.5}), ("ia3", {"feedforward": "maybe"})]:
        cls = registry.get_method(name)
        with pytest.raises(BenchError) as by_class:
            cls.parse_hparams(values, "--set")
        with pytest.raises(BenchError) as by_catalog:
            refuse_bad_values(describe(cls), values, "--set")
        assert str(by_catalog.value) == str(by_class.value)
    refuse_bad_values(describe(registry.get_method("lora")), {"rank": 4, "base_lr": 0.1}, "--set")  # valid: quiet

    class Even(MethodHParams):
        width: int = 2

        @field_validator("width")
        @classmethod
        def even(cls, value: int) -> int:
            if value % 2:
                raise ValueError("width must be even")
            return value

    class EvenMethod(Method[Even]):
        HParams = Even
        name = "even_method"

        def attach(self, backbone):  # type: ignore[no-untyped-def]
            from torch import nn

            return nn.Identity()  # nothing to train; these tests only name the method

    refuse_bad_values(describe(EvenMethod), {"width": 3}, "--set")  # not visible in the schema: passes here
    with pytest.raises(BenchError, match="width must be even"):
        EvenMethod.parse_hparams({"width": 3}, "--set")  # and the class refuses it where the plan is checked
