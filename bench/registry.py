"""Finds tasks, suites and methods: built-in folders, user folders (--tasks-dir / --methods-dir) and the
`bench.methods` entry-point group. Unknown names get a 'did you mean' error, never a silent default.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

from bench.errors import BenchError, did_you_mean
from bench.method import METHODS, Method
from bench.peft_spec import PREFIX as PEFT_PREFIX
from bench.peft_spec import is_peft_method
from bench.spec import AnyTaskSpec, SuiteSpec, is_suite_file, load_suite, load_task

PACKAGE_DIR = Path(__file__).resolve().parent
ENTRY_POINT_GROUP = "bench.methods"


def builtin_dir(kind: str) -> Path:
    """tasks/ or methods/: inside the installed wheel (bench/_builtin/) or at the top of the source tree."""
    packaged = PACKAGE_DIR / "_builtin" / kind
    if packaged.is_dir():
        return packaged
    return PACKAGE_DIR.parent / kind


# ---------------------------------------------------------------- tasks and suites


@dataclass(frozen=True)
class SpecFile:
    name: str
    path: Path
    is_suite: bool


def spec_files(tasks_dirs: tuple[Path, ...] = ()) -> dict[str, SpecFile]:
    """name -> file for every task and suite; a name is the path below its tasks folder, without '.yaml'."""
    found: dict[str, SpecFile] = {}
    for root in (builtin_dir("tasks"), *tasks_dirs):
        if root.exists() and not root.is_dir():
            raise BenchError(
                f"--tasks-dir {root} is a file, not a folder.", hint="Give the folder holding your task YAML files."
            )
        if not root.is_dir():
            raise BenchError(f"tasks folder {root} does not exist.", hint="Pass an existing folder to --tasks-dir.")
        for path in sorted(root.rglob("*.yaml")):
            if path.name.startswith("_"):
                continue  # shared bases, only used through include:
            name = path.relative_to(root).with_suffix("").as_posix()
            if name in found and found[name].path != path:
                # A second file of the same name would write its runs into the first one's folders.
                raise BenchError(
                    f"task or suite '{name}' is defined twice: by {found[name].path} and by {path}.",
                    file=path,
                    field="name",
                    hint="A task's name is its path below its tasks folder; rename or move one of them "
                    "(e.g. into a subfolder of your --tasks-dir).",
                )
            found[name] = SpecFile(name, path, is_suite_file(path))
    return found


def _lookup(files: dict[str, SpecFile], name: str) -> SpecFile | None:
    """Exact name, else a unique last path component ('cub' -> 'fgvc/cub'). When a real task and an offline
    mini task share the last component ('e2e': nlg/e2e, mini/e2e), the real one is meant; any other
    ambiguity is an error that lists the candidates."""
    if name in files:
        return files[name]
    matches = [key for key in files if key.rsplit("/", 1)[-1] == name]
    real = [key for key in matches if not key.startswith("mini/")]
    if len(matches) == 1 or len(real) == 1:
        return files[(real or matches)[0]]
    if matches:
        raise BenchError(f"'{name}' is ambiguous: {', '.join(sorted(matches))}.", hint="Give the full name.")
    return None


def load_task_by_name(name: str, tasks_dirs: tuple[Path, ...] = (), profile: str | None = None) -> AnyTaskSpec:
    files = spec_files(tasks_dirs)
    entry = _lookup(files, name)
    if entry is None or entry.is_suite:
        tasks = [n for n, f in files.items() if not f.is_suite]
        raise BenchError(f"unknown task '{name}'.{did_you_mean(name, tasks)}", hint="See `bench list tasks`.")
    return with_peft_names(load_task(entry.path, entry.name, profile), entry.path)


def resolve_tasks(
    name: str, tasks_dirs: tuple[Path, ...] = (), profile: str | None = None
) -> tuple[SuiteSpec | None, list[AnyTaskSpec]]:
    """A task name gives that task; a suite name gives the suite and its tasks, in suite order; `profile` (e.g.
    'paper') is applied to each task, and a task without it is an error naming the task file."""
    files = spec_files(tasks_dirs)
    entry = _lookup(files, name)
    if entry is None:
        raise BenchError(
            f"unknown task or suite '{name}'.{did_you_mean(name, list(files))}",
            hint="See `bench list tasks` and `bench list suites`.",
        )
    if not entry.is_suite:
        return None, [with_peft_names(load_task(entry.path, entry.name, profile), entry.path)]
    suite = load_suite(entry.path, entry.name)
    tasks: list[AnyTaskSpec] = []
    for task_name in suite.tasks:
        member = files.get(task_name)
        if member is None or member.is_suite:
            raise BenchError(
                f"suite '{suite.name}' lists unknown task '{task_name}'.",
                file=entry.path,
                field="tasks",
                hint=did_you_mean(task_name, [n for n, f in files.items() if not f.is_suite]).strip(),
            )
        tasks.append(with_peft_names(load_task(member.path, task_name, profile), member.path))
    for group, members in suite.groups.items():
        for member_name in members:
            if member_name not in suite.tasks:
                raise BenchError(
                    f"group '{group}' names '{member_name}', which is not in the suite's tasks.",
                    file=entry.path,
                    field=f"groups.{group}",
                )
    return suite, tasks


def with_peft_names(task: AnyTaskSpec, path: Path) -> AnyTaskSpec:
    """HF peft hook: protocol.methods keys written as `peft:` configs become the names their runs are stored under
    (bench.peft_spec), so that those settings apply to them; a task without such keys is returned unchanged.
    protocol.methods is not part of any run's identity, so no key changes."""
    if not any(name.startswith(PEFT_PREFIX) for name in task.protocol.methods):
        return task
    from bench.peft_spec import resolve

    methods = {
        resolve(name, f"protocol.methods.{name}", str(path)).name if name.startswith(PEFT_PREFIX) else name: value
        for name, value in task.protocol.methods.items()
    }
    return task.model_copy(update={"protocol": task.protocol.model_copy(update={"methods": methods})})


def check_references(task: AnyTaskSpec, methods: dict[str, type[Method]], tasks_dirs: tuple[Path, ...] = ()) -> None:
    """Every method a task spec names under protocol.methods exists (a typo there would silently be ignored)."""
    for name in task.protocol.methods:
        if name not in methods and not is_peft_method(name):  # peft: configs are checked where they are read
            entry = spec_files(tasks_dirs).get(task.name)
            raise BenchError(
                f"protocol.methods names the method '{name}', which does not exist.{did_you_mean(name, list(methods))}",
                file=entry.path if entry else None,
                field=f"protocol.methods.{name}",
                hint="Fix the name, or load your method with --methods-dir.",
            )


# ---------------------------------------------------------------- methods


def load_methods(methods_dirs: tuple[Path, ...] = ()) -> dict[str, type[Method]]:
    """Import built-in method files, user method folders and entry points; return name -> class."""
    _load_builtin_methods()
    for folder in methods_dirs:
        _load_method_folder(Path(folder).resolve())
    _load_entry_points()
    return dict(METHODS)


def get_method(name: str, methods_dirs: tuple[Path, ...] = ()) -> type[Method]:
    if name.startswith(PEFT_PREFIX):  # HF peft hook: a `peft:` config is a method of its own, built on demand
        from bench.peft_methods import method_class

        return method_class(name)
    methods = load_methods(methods_dirs)
    if name not in methods:
        if is_peft_method(name):  # HF peft hook: the stored name of a `peft:` method's runs (config in its hparams)
            from bench.peft_methods import stored_method_class

            return stored_method_class(name)
        raise unknown_method(name, list(methods))
    return methods[name]


def unknown_method(name: str, known: list[str]) -> BenchError:
    return BenchError(
        f"unknown method '{name}'.{did_you_mean(name, known)}",
        hint="See `bench list methods`; your own methods load with --methods-dir DIR.",
    )


@cache
def _load_builtin_methods() -> None:
    _load_method_folder(builtin_dir("methods"))


@cache
def _load_method_folder(folder: Path) -> None:
    """Import every method file of a folder (names starting with '_' are helpers, imported only on demand).

    The folder becomes a package of its own (`bench_methods_<hash>`), so method files import their helpers
    relatively: `from ._shared import scale` or `from .helpers import scale`, never through sys.path.
    """
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise BenchError(
            f"methods folder {folder} {what}.", hint="Pass the folder holding your method files to --methods-dir."
        )
    package = f"bench_methods_{hashlib.sha1(str(folder).encode()).hexdigest()[:8]}"
    if package not in sys.modules:
        module = types.ModuleType(package, f"method plug-ins from {folder}")
        module.__path__ = [str(folder)]
        sys.modules[package] = module
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        name = f"{package}.{path.stem}"
        if name not in sys.modules:  # a helper another method file already imported
            _import_file(path, name)


def _import_file(path: Path, module_name: str) -> None:
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise BenchError(f"cannot import method file {path}.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    before = set(METHODS)
    try:
        spec.loader.exec_module(module)
    except BenchError:
        raise
    except Exception as exc:
        del sys.modules[module_name]
        hint = "Fix the error in that file (it is imported to register its methods)."
        if isinstance(exc, ModuleNotFoundError) and exc.name and (path.parent / f"{exc.name}.py").is_file():
            hint += f" A helper beside it is imported relatively: `from .{exc.name} import ...`."
        raise BenchError(
            f"importing the method file failed: {type(exc).__name__}: {exc}", file=path, hint=hint
        ) from exc
    for name in set(METHODS) - before:  # a method file imported as another's helper registers from its own file
        defined_in = sys.modules.get(METHODS[name].__module__)
        METHODS[name].source = getattr(defined_in, "__file__", None) or str(path)


@cache
def _load_entry_points() -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        before = set(METHODS)
        try:
            obj = ep.load()
        except Exception as exc:
            raise BenchError(
                f"entry point '{ep.name} = {ep.value}' of group '{ENTRY_POINT_GROUP}' failed to load: {exc}",
                hint="Fix or uninstall the package that provides it.",
            ) from exc
        if isinstance(obj, type) and issubclass(obj, Method) and obj.name not in METHODS:
            from bench.method import register_method

            register_method(obj.name or ep.name)(obj)
        for name in set(METHODS) - before:
            METHODS[name].source = f"entry point {ep.value}"
