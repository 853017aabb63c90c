"""What makes a stored run record trustworthy, checked on every read.

A record must parse, have its sections with the right types, sit in the folder its own task / method / stage /
key name (so a copied or moved folder is caught), carry the key its identity hashes to, match the checksum written
with it (so a hand-edited metric is caught), and, when asked for the deep check, have result files that match
their checksums and a vision top-1 that its predictions reproduce. A record that fails is never used: the reasons
go to `bench doctor` and to the leaderboard's footnotes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

RECORD = "run.json"
PREDICTIONS = "predictions.npz"  # vision: index, label, pred per test image
OUTPUTS = "outputs.jsonl"  # language: hypothesis and per-item metric statistics per test item
CHECKPOINT = "checkpoint.pt"
TRAINED = "trained.pt"  # final PEFT runs: the trained parameters (method + head), for analyses


RESULT_FILES = (PREDICTIONS, OUTPUTS, TRAINED, "subset.json")  # checksummed in the record
# Files a store may leave out without the score losing its evidence: the trained parameters serve analyses, not
# the score (the committed example runs and packs made without weights omit them). Present, they must match.
MAY_BE_LEFT_OUT = frozenset({TRAINED})


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_key(identity: dict[str, Any]) -> str:
    """Content hash of everything that changes a run's result (canonical JSON)."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


RECORD_SCHEMA = 2  # 2: record checksum, configuration and how-chosen in the identity

# section -> the keys it must have, with their types
REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    "": {
        "schema_version": int,
        "key": str,
        "status": str,
        "run": dict,
        "metrics": dict,
        "identity": dict,
        "checksum": str,
    },
    "run": {"task": str, "method": str, "stage": str, "seed": int, "hparams": dict, "optim": dict},
}


def record_checksum(record: dict[str, Any]) -> str:
    """SHA-256 of the record's canonical JSON, without the checksum itself and without reader-added keys."""
    body = {k: v for k, v in record.items() if k != "checksum" and not k.startswith("_")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def shape_problems(record: Any) -> list[str]:
    """Missing sections or keys, wrong types."""
    if not isinstance(record, dict):
        return [f"the record is a {type(record).__name__}, not an object"]
    problems = []
    for section, keys in REQUIRED.items():
        where = record if not section else record.get(section)
        if not isinstance(where, dict):
            continue  # reported as a missing / mistyped key of the top level
        for name, kind in keys.items():
            label = f"{section}.{name}" if section else name
            if name not in where:
                problems.append(f"'{label}' is missing")
            elif not isinstance(where[name], kind) or (kind is int and isinstance(where[name], bool)):
                problems.append(f"'{label}' is a {type(where[name]).__name__}")
    return problems


def problems(root: Path, run_dir: Path, record: Any, deep: bool = False) -> list[str]:
    """Why this record must not be used (empty: it may). `deep` also checks result files and predictions."""
    found = shape_problems(record)
    if found:
        return found
    if record["schema_version"] < RECORD_SCHEMA:
        return [
            f"written by an older version (record schema {record['schema_version']}, now {RECORD_SCHEMA}) "
            "without a checksum; it is kept but not used"
        ]
    run = record["run"]
    expected = root / run["task"] / run["method"] / run["stage"] / record["key"]
    if run_dir.resolve() != expected.resolve():
        found.append(
            f"it is in {run_dir}, but its task, method, stage and key place it in {expected} "
            "(a copied or moved run folder)"
        )
    if run_key(record["identity"]) != record["key"]:
        found.append("its key is not the hash of its identity (the identity was edited)")
    if record_checksum(record) != record["checksum"]:
        found.append("its content does not match its checksum (the record was edited by hand)")
    if deep and not found:
        found += file_problems(run_dir, record)
    return found


def file_problems(run_dir: Path, record: dict[str, Any]) -> list[str]:
    """Result files against the checksums in the record, and a vision top-1 against its predictions."""
    found = []
    for name, digest in record.get("files", {}).items():
        path = run_dir / name
        if not path.is_file():
            if name not in MAY_BE_LEFT_OUT:
                found.append(f"{name} is missing (the record lists it)")
        elif file_sha256(path) != digest:
            found.append(f"{name} does not match the checksum in its record")
    metrics = record.get("metrics", {})
    if not found and record.get("status") == "completed" and "top1" in metrics and (run_dir / PREDICTIONS).is_file():
        import numpy as np

        try:
            with np.load(run_dir / PREDICTIONS) as predictions:
                top1 = 100.0 * float((predictions["pred"] == predictions["label"]).mean())
        except (OSError, ValueError, KeyError, EOFError) as exc:
            return [f"{PREDICTIONS} cannot be read ({type(exc).__name__}: {exc})"]
        if abs(top1 - float(metrics["top1"])) > 1e-6:
            found.append(f"its top-1 {metrics['top1']} is not what its predictions give ({top1})")
    return found
