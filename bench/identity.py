"""The computed parts of a run's identity: the code of its method and the weights of its backbone.

A method's code identity is a hash of its source file with comments, docstrings and layout removed (the AST), plus
the helper modules of its own folder that it imports: editing how a method computes gives its runs new keys, while
rewording a comment does not. A class may compute its own (`own_code_identity()`: the `peft:` methods add the
installed peft version). The engine's own code is identified by bench.train.config.RUNNER_VERSION, bumped by
hand when a change moves results. Backbone weights are identified by the SHA-256 of their files when they are
local (cached per file size and modification time), else by hub name and revision.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import inspect
import sys
from functools import cache
from pathlib import Path
from typing import Any

from bench.spec import default_cache_dir, resolve_asset


def normalized_source(path: Path) -> str:
    """The file's AST without docstrings: what the code does, not how it is worded or laid out."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def code_identity(cls: type) -> str:
    """Hash of the normalized source of the module defining `cls` and of the sibling modules it imports."""
    own = getattr(cls, "own_code_identity", None)
    if callable(own):  # a method whose computation is also another package's code (bench.peft_methods: + peft version)
        return str(own())
    source = inspect.getsourcefile(cls)
    if source is None:
        return f"unknown:{cls.__module__}.{cls.__qualname__}"
    files = sorted({Path(source).resolve(), *_sibling_imports(cls.__module__, Path(source).resolve().parent)})
    return _hash_files(tuple((path, path.stat().st_mtime_ns, path.stat().st_size) for path in files))


def _sibling_imports(module_name: str, folder: Path) -> list[Path]:
    """Modules from the same folder that the method's module has imported (plug-in helper files)."""
    module = sys.modules.get(module_name)
    found = []
    for value in vars(module).values() if module is not None else []:
        origin = getattr(value, "__file__", None) or getattr(
            sys.modules.get(getattr(value, "__module__", "")), "__file__", None
        )
        if origin and Path(origin).resolve().parent == folder and Path(origin).suffix == ".py":
            found.append(Path(origin).resolve())
    return found


@cache
def _hash_files(files: tuple[tuple[Path, int, int], ...]) -> str:
    """Keyed by (path, mtime, size) too, so an edited file is hashed again."""
    digest = hashlib.sha256()
    for path, _, _ in files:
        digest.update(path.name.encode())
        digest.update(normalized_source(path).encode())
    return digest.hexdigest()[:16]


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".npz", ".json", ".txt", ".model")


def weights_identity(backbone: Any) -> dict[str, Any]:
    """Where the backbone's weights come from and, for local files, their content (a folder: every weight,
    config and tokenizer file in it)."""
    if not backbone.pretrained:
        return {"pretrained": False}
    local = getattr(backbone, "weights", None) or backbone.model
    path = resolve_asset(local)
    if path.is_file():
        return {"files": {path.name: file_digest(path)}}
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
        return {"files": {p.name: file_digest(p) for p in files}}
    return {"hub": backbone.model, "revision": getattr(backbone, "revision", None) or "main"}


def file_digest(path: Path) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) in $BENCH_CACHE/digests.json."""
    stat = path.stat()
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    known = _digests()
    if key not in known:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        known[key] = digest.hexdigest()
        _save_digests(known)
    return known[key]


_DIGESTS: dict[str, str] | None = None


def _digests() -> dict[str, str]:
    global _DIGESTS
    if _DIGESTS is None:
        from bench.store import read_json_object

        _DIGESTS = read_json_object(default_cache_dir() / "digests.json")
    return _DIGESTS


def _save_digests(known: dict[str, str]) -> None:
    from bench.store import atomic_write_json

    with contextlib.suppress(OSError):  # a read-only cache only costs hashing again
        atomic_write_json(default_cache_dir() / "digests.json", known)
