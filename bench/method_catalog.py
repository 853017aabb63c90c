"""What the methods are (names, hyper-parameter names, modalities, one-line descriptions) without importing them.

Method files import torch (about 1 s of CPU), which questions like `bench list methods`, `bench validate` or a
mistyped `--method` should not pay. After every real import the registry's facts are written to
$BENCH_CACHE/method-catalog.json under a key made of the bytes of every method file (built-in folder and
--methods-dir folders, helpers included), the installed entry points, bench/method.py and the Python and torch
versions. While that key is unchanged the catalog answers; any edit, new file or upgrade imports the methods again.
An unreadable or unwritable catalog only costs the import, never an answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path
from typing import Annotated, Any, Literal

from bench.store import read_json_object

log = logging.getLogger("bench.methods")

CATALOG_FILE = "method-catalog.json"
KEPT_KEYS = 8  # catalogs of other folder sets (another --methods-dir) kept beside the current one


@dataclass(frozen=True)
class MethodInfo:
    """The facts about one method that answer listing and validation questions."""

    name: str
    description: str
    optimizer: str | None
    hparams: tuple[str, ...]
    modalities: tuple[str, ...]
    schema: dict[str, Any] = field(default_factory=dict, compare=False)  # the HParams' JSON schema


def refuse_bad_values(info: MethodInfo, values: dict[str, Any], where: str) -> None:
    """Raise the error the method's own HParams would raise for these values, from the schema in the catalog (no
    method import). It only refuses early: values it lets through are checked by the class itself later, so a
    constraint the schema cannot express (a custom validator) is never skipped, only checked later."""
    from pydantic import ValidationError

    from bench.method import hparams_error

    given = {k: v for k, v in values.items() if k in info.hparams}
    if not given:
        return
    try:
        model = _schema_model(json.dumps(info.schema, sort_keys=True))
    except Exception as exc:  # a schema pydantic cannot rebuild: the class checks the values later
        log.debug("no early check of %s's hyper-parameters (%s)", info.name, exc)
        return
    try:
        model.model_validate(given)
    except ValidationError as exc:
        raise hparams_error(info.name, exc, list(info.hparams), where) from None


def method_catalog(methods_dirs: tuple[Path, ...] = ()) -> dict[str, MethodInfo]:
    """name -> MethodInfo for the built-in methods, these folders and the entry points; imports the method files
    only when the catalog for exactly these files is missing or stale."""
    from bench.method import METHODS

    key = catalog_key(methods_dirs)
    stored = _read()
    if key in stored:
        try:
            cached = {e["name"]: MethodInfo(**{**e, "hparams": tuple(e["hparams"]),
                                               "modalities": tuple(e["modalities"])}) for e in stored[key]}
        except (TypeError, KeyError):
            log.debug("method catalog entry %s is malformed; importing the methods", key[:12])
        else:  # methods registered in this process (a script's own register_method) are live facts
            return {**cached, **{name: describe(cls) for name, cls in METHODS.items()}}
    from bench import registry

    infos = {name: describe(cls) for name, cls in registry.load_methods(methods_dirs).items()}
    stored.pop(key, None)
    stored[key] = [asdict(info) for name, info in infos.items() if _from_files(METHODS[name])]
    _write(dict(list(stored.items())[-KEPT_KEYS:]))
    return infos


def _from_files(cls: type) -> bool:
    """Methods that a method file or entry point registered (not a script's register_method of this process)."""
    source = getattr(cls, "source", None)
    return bool(source)


def describe(cls: type) -> MethodInfo:
    doc = (cls.__doc__ or "").strip()
    return MethodInfo(
        name=cls.name,  # type: ignore[attr-defined]
        description=doc.splitlines()[0] if doc else "",
        optimizer=cls.optimizer,  # type: ignore[attr-defined]
        hparams=tuple(cls.HParams.model_fields),  # type: ignore[attr-defined]
        modalities=tuple(cls.modalities),  # type: ignore[attr-defined]
        schema=cls.HParams.model_json_schema(),  # type: ignore[attr-defined]
    )


@cache
def _schema_model(schema_json: str) -> Any:
    """A pydantic model with the constraints of a JSON schema's properties (types, bounds, choices); a property
    whose schema uses anything else accepts any value here."""
    from pydantic import ConfigDict, create_model

    schema = json.loads(schema_json)
    fields: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        kind = _python_type(prop)
        fields[name] = (Any if kind is None else kind, prop.get("default", None))
    return create_model("CatalogHParams", __config__=ConfigDict(extra="forbid"), **fields)


BOUNDS = {"minimum": "ge", "exclusiveMinimum": "gt", "maximum": "le", "exclusiveMaximum": "lt"}
SCALARS: dict[str, type] = {"integer": int, "number": float, "string": str, "boolean": bool}
IGNORED = {"title", "description", "default"}


def _python_type(prop: dict[str, Any]) -> Any:
    """The annotation of one JSON-schema property, or None when it uses something not translated here."""
    from pydantic import Field

    if "anyOf" in prop and set(prop) - IGNORED == {"anyOf"}:
        options = [_python_type(option) for option in prop["anyOf"]]
        if any(option is None for option in options):
            return None
        union = options[0]
        for option in options[1:]:
            union = union | option
        return union
    if "enum" in prop and set(prop) - IGNORED <= {"enum", "type"}:
        return Literal[tuple(prop["enum"])]
    if "const" in prop and set(prop) - IGNORED <= {"const", "type"}:
        return Literal[prop["const"]]
    if prop.get("type") == "null" and set(prop) - IGNORED == {"type"}:
        return type(None)
    kind = SCALARS.get(prop.get("type", ""))
    if kind is None or set(prop) - IGNORED - {"type"} - set(BOUNDS):
        return None
    bounds = {BOUNDS[key]: value for key, value in prop.items() if key in BOUNDS}
    return Annotated[kind, Field(**bounds)] if bounds else kind


def catalog_key(methods_dirs: tuple[Path, ...]) -> str:
    """Hash of everything the registry's answer depends on; reading the method files' bytes is cheap."""
    from bench.registry import ENTRY_POINT_GROUP, builtin_dir

    digest = hashlib.sha256()
    for folder in (builtin_dir("methods"), *methods_dirs):
        folder = Path(folder).resolve()
        digest.update(f"folder {folder}\n".encode())
        if folder.is_dir():
            for path in sorted(folder.glob("*.py")):
                digest.update(f"{path.name} {hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
        dist = ep.dist
        digest.update(f"ep {ep.name}={ep.value} {dist.name if dist else ''} {dist.version if dist else ''}\n".encode())
    method_api = Path(__file__).resolve().parent / "method.py"
    digest.update(hashlib.sha256(method_api.read_bytes()).hexdigest().encode())
    digest.update(f"python {sys.version} {platform.machine()} torch {_torch_version()}".encode())
    return digest.hexdigest()


def _torch_version() -> str:
    try:
        return version("torch")
    except PackageNotFoundError:
        return "none"


def _path() -> Path:
    from bench.spec import default_cache_dir

    return default_cache_dir() / CATALOG_FILE


def _read() -> dict[str, list[dict]]:
    return read_json_object(_path())


def _write(data: dict[str, list[dict]]) -> None:
    """Atomic (temp + rename), so two processes never leave half a file; failure is not an error."""
    path = _path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("method catalog not written (%s); the next answer imports the methods again", exc)
