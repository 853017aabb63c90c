"""Where `bench perf` figures are kept: the last run of each benchmark in `--perf-dir` (results/perf/<what>.json,
ignored by git), and with `--record DIR` a file pair per benchmark and machine, DIR/<what>-<machine>.json + .md,
meant to be committed (results/measurements/perf/). Both carry the machine's description; a record never holds
the date in its name, so re-measuring on the same machine replaces it."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from pathlib import Path
from typing import Any

import torch

from bench.store import atomic_write_bytes, atomic_write_json

SCHEMA_VERSION = 1


def describe_machine(device: torch.device) -> dict[str, Any]:
    """The hardware and software the figures were measured on, and how busy the machine was at the start."""
    import transformers

    cpu = _cpu_model()
    description: dict[str, Any] = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({cpu})",
        "cpu": cpu, "cpu_cores": os.cpu_count(), "memory_gib": _memory_gib(),
        "torch_threads": torch.get_num_threads(), "load_average_1min": _load_average(),
        "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        description["device_memory_gib"] = round(properties.total_memory / 2**30, 1)
    return description


def machine_slug(machine: dict[str, Any]) -> str:
    """A file-name part: the GPU's name ("NVIDIA H200" -> nvidia-h200), or cpu-<cores>-cores."""
    if str(machine["device"]).startswith("cuda"):
        return re.sub(r"[^a-z0-9]+", "-", str(machine["device_name"]).lower()).strip("-")
    return f"cpu-{machine['cpu_cores']}-cores"


def envelope(what: str, machine: dict[str, Any], command: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The record: what, when it finished, the command (without where its files went), the machine (with the load
    average at the start and at the end: on a shared machine, how much other work the figures competed with)."""
    machine = {**machine, "load_average_1min_end": _load_average()}
    return {"what": what, "schema_version": SCHEMA_VERSION,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "command": _portable(command),
            "platform": machine["platform"], "machine": machine, **payload}


def _portable(command: str) -> str:
    """The command without --perf-dir / --record and their folders, which change nothing measured."""
    return re.sub(r" --(perf-dir|record)(=| )\S+", "", command)


def write_last(perf_dir: Path, record: dict[str, Any]) -> Path:
    """<perf-dir>/<what>.json: the figures of the last run, whatever the machine."""
    path = perf_dir / f"{record['what']}.json"
    atomic_write_json(path, record)
    return path


def write_record(directory: Path, record: dict[str, Any], report: str) -> list[Path]:
    """DIR/<what>-<machine>.json and .md (the printed report, with the machine and the command)."""
    machine = record["machine"]
    stem = f"{record['what']}-{machine_slug(machine)}"
    json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
    atomic_write_json(json_path, record)
    load, load_end = machine.get("load_average_1min"), machine.get("load_average_1min_end")
    lines = [f"# `bench perf {record['what']}` on {machine['device_name']}", "",
             f"- machine: {machine['cpu_cores']} CPU cores ({machine['cpu']}), {machine['memory_gib']} GiB memory"
             + (f", GPU {machine['device_name']} ({machine.get('device_memory_gib')} GiB)"
                if str(machine["device"]).startswith("cuda") else ", no GPU")
             + (f"; 1-minute load average {load:.1f} at the start, {load_end:.1f} at the end"
                if load is not None and load_end is not None else ""),
             f"- software: Python {machine['python']}, torch {machine['torch']}, transformers "
             f"{machine['transformers']}; {machine['platform']}",
             f"- finished {record['created_at']}; command `{record['command']}`",
             f"- figures: [{json_path.name}]({json_path.name})", "", "```text", report.rstrip(), "```", ""]
    atomic_write_bytes(md_path, "\n".join(lines).encode())
    return [json_path, md_path]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None
