"""What `bench data status` says about one task's data: ready, on demand, missing, incomplete or corrupt."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataStatus:
    task: str
    state: str  # ready | on demand | missing | incomplete | corrupt
    detail: str
    fix: str
