"""Safe loading everywhere: a scan of the project's own code for calls that could run code from a file (pickle,
unsafe YAML, torch.load without weights_only, remote code), and the behaviour behind the rules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench.errors import BenchError

ROOT = Path(__file__).resolve().parents[1]
SCANNED = [p for folder in ("bench", "methods", "scripts") for p in sorted((ROOT / folder).rglob("*.py"))]
FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
# The only places that import modules by name: method plug-ins from the folders / entry points the user named,
# and data.prepare functions (restricted to the bench package); the Java check only looks for a module.
# Modules that import by name: plug-ins from named paths, `data.prepare` (bench.* only), and the fixed table of
# modality implementations (bench.train.modality.MODALITIES, never user input).
DYNAMIC_IMPORTS = {"bench/registry.py", "bench/data/splits.py", "bench/metrics/java.py", "bench/train/modality.py"}


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def unsafe_calls(path: Path) -> list[str]:
    """Every unsafe construct in one source file, as 'file:line: what'."""
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(ROOT).as_posix()
    found = []
    for node in ast.walk(tree):
        line = f"{where}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{line}: imports {n}" for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name == "torch.load":
                weights_only = _keyword(node, "weights_only")
                if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                    found.append(f"{line}: torch.load without weights_only=True")
            elif name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all"):
                found.append(f"{line}: {name} (use yaml.safe_load)")
            elif name.endswith("np.load") or name == "numpy.load":
                allow = _keyword(node, "allow_pickle")
                if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                    found.append(f"{line}: np.load with allow_pickle")
            elif name in ("eval", "exec", "compile", "__import__"):
                found.append(f"{line}: {name}()")
            elif name in ("importlib.import_module", "importlib.util.spec_from_file_location") and \
                    where not in DYNAMIC_IMPORTS:
                found.append(f"{line}: {name} outside the plug-in loaders")
            if _keyword(node, "trust_remote_code") is not None:
                found.append(f"{line}: trust_remote_code")
        elif isinstance(node, ast.Constant) and node.value == "trust_remote_code":
            found.append(f"{line}: trust_remote_code")
    return found


def test_the_code_has_no_unsafe_loading() -> None:
    assert len(SCANNED) > 50
    assert [problem for path in SCANNED for problem in unsafe_calls(path)] == []


def test_the_scan_catches_each_unsafe_pattern(tmp_path: Path) -> None:
    """The scanner itself, on a file with one of every forbidden construct (so the test above can fail)."""
    bad = ROOT / "bench" / "_scan_probe_unsafe.py"
    bad.write_text("import pickle\nimport yaml, torch, numpy as np, importlib\n"
                   "torch.load('x')\ntorch.load('x', weights_only=False)\nyaml.load('a')\n"
                   "np.load('x', allow_pickle=True)\neval('1')\nimportlib.import_module('os')\n"
                   "f(trust_remote_code=True)\n")
    try:
        problems = unsafe_calls(bad)
    finally:
        bad.unlink()
    assert len(problems) == 8, problems


class Payload:
    """Any class: unpickling it would run the code of its module."""


def test_torch_files_are_loaded_weights_only(tmp_path: Path) -> None:
    """A checkpoint that would need pickle to load (an arbitrary object) is refused, not executed."""
    import io

    import torch

    from bench.store import write_checked
    from bench.train.checkpoint import load_torch

    buffer = io.BytesIO()
    torch.save({"object": Payload()}, buffer)
    write_checked(tmp_path / "checkpoint.pt", buffer.getvalue())
    with pytest.raises(Exception, match="[Ww]eights only load failed|weights_only"):
        load_torch(tmp_path / "checkpoint.pt")


def test_a_task_file_cannot_name_code_outside_bench(tmp_path: Path) -> None:
    from bench.data.splits import _call_prepare

    with pytest.raises(BenchError, match="outside the bench package"):
        _call_prepare("os:system", tmp_path, "evil/task")
