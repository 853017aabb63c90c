"""Arguments several commands share (task and method folders, the run store) and value parsers."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.errors import BenchError


def add_dirs(parser: argparse.ArgumentParser, results: bool = False) -> None:
    parser.add_argument("--tasks-dir", type=Path, action="append", default=[], help="extra folder of task YAMLs")
    parser.add_argument("--methods-dir", type=Path, action="append", default=[], help="extra folder of method files")
    if results:
        parser.add_argument("--results", type=Path, default=None,
                            help="run store folder (default: $BENCH_RESULTS or results/runs)")


def tasks_dirs(args: argparse.Namespace) -> tuple[Path, ...]:
    return tuple(getattr(args, "tasks_dir", []) or [])


def methods_dirs(args: argparse.Namespace) -> tuple[Path, ...]:
    return tuple(getattr(args, "methods_dir", []) or [])


def results_dir(args: argparse.Namespace) -> Path:
    from bench.api import default_results_dir

    return args.results if args.results is not None else default_results_dir()


def out_folder(path: Path | None, flag: str = "--out") -> Path | None:
    """An output folder option: refused in one paragraph when it names an existing file."""
    if path is not None and path.exists() and not path.is_dir():
        raise BenchError(f"{flag} {path} is a file, not a folder.", field=flag,
                         hint="Give a folder (it is created when missing).")
    return path


def int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def names(text: str) -> tuple[str, ...]:
    """'a, b,c' -> ('a', 'b', 'c'); commas inside brackets stay in their name, so a `peft:` method keeps its
    arguments: 'lora,peft:LoraConfig(r=8,target_modules=[qkv])' -> ('lora', 'peft:LoraConfig(...)')."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += (char in "([{") - (char in ")]}")
        if char == "," and depth <= 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return tuple(name.strip() for name in parts if name.strip())


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """--set KEY=VALUE pairs; values are read as YAML scalars (numbers, booleans, strings)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise BenchError(f"--set expects KEY=VALUE, got {item!r}.")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, list | dict):
            raise BenchError(f"--set fixes one value, got {value!r} for {name.strip()}.",
                             hint="To search several values, put them in the task spec's protocol.grid.")
        out[name.strip()] = parsed
    return out
