"""Finds what the Java-based metrics need: a working `java` and the jars shipped in the pycocoevalcap wheel.

METEOR 1.5 and the Stanford PTB tokenizer run as Java programs; without them those metrics are reported as
unavailable, never approximated.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from functools import cache
from pathlib import Path

JAVA_MISSING = "Java not found: install default-jre-headless (apt) to get METEOR / PTB-tokenised ROUGE-L and CIDEr"
COCO_MISSING = ("pycocoevalcap is not installed (it ships the METEOR 1.5 and Stanford PTB jars): "
                "pip install 'peft-bench[nlp]'")


@cache
def java_available() -> bool:
    """True when `java` is on PATH and `java -version` succeeds (checked once per process)."""
    java = shutil.which("java")
    if java is None:
        return False
    try:
        subprocess.run([java, "-version"], capture_output=True, timeout=120, check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


@cache
def coco_dir() -> Path | None:
    """The installed pycocoevalcap folder (a namespace package: it has no __init__.py), or None."""
    try:
        spec = importlib.util.find_spec("pycocoevalcap")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location)
        if (folder / "meteor" / "meteor-1.5.jar").is_file() and (folder / "tokenizer").is_dir():
            return folder
    return None


def java_missing_reason(java: bool) -> str | None:
    """Why the Java metrics cannot run (`java` is the result of java_available()), or None when they can."""
    if not java:
        return JAVA_MISSING
    if coco_dir() is None:
        return COCO_MISSING
    return None
