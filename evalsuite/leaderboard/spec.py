"""Leaderboard definitions (``leaderboards/*.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from evalsuite.core.errors import SpecError
from evalsuite.spec.loader import _validate
from evalsuite.spec.yamlpos import load_yaml


class LeaderboardSpec(BaseModel):
    """What a leaderboard shows and how it aggregates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    leaderboard: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
    title: str = "Leaderboard"
    description: str = ""
    note: str = ""
    """Shown prominently under the title (e.g. what the numbers are comparable with)."""
    results: list[str] = Field(default_factory=lambda: ["../results"])
    """Result folders, relative to this file (``--results`` overrides)."""
    headline: Literal["max", "median", "mean"] = "max"
    """How a task's score is taken across prompt variants."""
    columns: list[str] = Field(default_factory=list)
    """Tasks shown, in order (default: every task found)."""
    column_labels: dict[str, str] = Field(default_factory=dict)
    """Display names of task columns."""
    categories: dict[str, list[str]] = Field(default_factory=dict)
    """Category → tasks (default: each task's own category)."""
    display_names: dict[str, str] = Field(default_factory=dict)
    """Name shown for a model: key = its recorded display name, ``--model`` path or fingerprint (globs
    allowed; several keys may give one name, as aliases), value = the name shown."""
    include: list[str] = Field(default_factory=lambda: ["*"])
    """Model name globs to include."""
    exclude: list[str] = Field(default_factory=list)
    decimals: int = Field(1, ge=0, le=4)
    samples_per_task: int = Field(50, ge=0, le=10_000)
    """Per-sample rows shown per task and prompt on model pages."""
    bootstrap: int = Field(1000, ge=0, le=100_000)
    """Bootstrap resamples for confidence intervals (0 = none)."""


def load_leaderboard(path: Path) -> LeaderboardSpec:
    data, pos = load_yaml(path)
    spec = _validate(LeaderboardSpec, data, pos, "leaderboard")
    problems = []
    for cat, tasks in spec.categories.items():
        for i, t in enumerate(tasks):
            if spec.columns and t not in spec.columns:
                problems.append(pos.problem(("categories", cat, i), f"task '{t}' is not among columns"))
    if problems:
        raise SpecError(problems)
    return spec
