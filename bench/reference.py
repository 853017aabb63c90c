"""Published numbers (results/reference/*.yaml), loaded as data with their citation, for reference rows.

They are never mixed with our runs: a leaderboard shows them as separate, labelled rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from bench.registry import PACKAGE_DIR
from bench.spec import StrictModel, read_yaml, validate


class ReferenceTable(StrictModel):
    """One publication's numbers: method -> task -> score; optionally the group means it printed."""

    title: str
    citation: str
    kind: Literal["table", "figure"] = Field(description="figure = values read off a plot, not printed numbers")
    metric: str
    methods: dict[str, dict[str, float]]
    group_means: dict[str, dict[str, float]] = Field(default_factory=dict)
    unmatched_methods: list[str] = Field(
        default_factory=list,
        description="methods of the publication that this benchmark does not implement, kept under the "
        "publication's names; every other method key must be one of ours",
    )

    @model_validator(mode="after")
    def _unmatched_are_listed(self) -> ReferenceTable:
        unknown = sorted(set(self.unmatched_methods) - set(self.methods))
        if unknown:
            raise ValueError(f"unmatched_methods names methods without numbers: {', '.join(unknown)}")
        return self


def reference_dir() -> Path:
    packaged = PACKAGE_DIR / "_builtin" / "reference"
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / "results" / "reference"


def load_references(folder: Path | None = None) -> dict[str, ReferenceTable]:
    """name (file stem) -> table, for every YAML file of the reference folder."""
    tables = {}
    for path in sorted((folder or reference_dir()).glob("*.yaml")):
        table: ReferenceTable = validate(ReferenceTable, read_yaml(path), path)
        tables[path.stem] = table
    return tables
