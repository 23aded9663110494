"""Jobs run one after another in this process (what ``track`` always did)."""

from __future__ import annotations

import os

from evalsuite.executors.jobs import JobOutcome, JobSpec, run_job


class LocalExecutor:
    name = "local"
    scheduler: str | None = None

    def __init__(self) -> None:
        self._outcomes: list[JobOutcome] = []
        self._n = 0

    def submit(self, specs: list[JobSpec]) -> list[str]:
        ids = []
        for spec in specs:
            self._n += 1
            ids.append(f"local-{os.getpid()}-{self._n}")
            self._outcomes.append(run_job(spec))
        return ids

    def wait(self) -> list[JobOutcome]:
        done, self._outcomes = self._outcomes, []
        return done
