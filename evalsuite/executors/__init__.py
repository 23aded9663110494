"""Checkpoint sweeps past one machine: one job per checkpoint on an existing engine.

``local`` runs jobs in this process, ``ray`` as Ray tasks, ``slurm`` as a Slurm job
array through submitit. All three run ``jobs.run_job``, which is the ordinary
``track`` code path on one checkpoint, so results are the same files a local run
writes. This package only submits and observes; the engines schedule.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from evalsuite.core.errors import EvalsuiteError
from evalsuite.executors.jobs import JobOutcome, JobSpec

EXECUTORS = ("local", "ray", "slurm")


class MissingExtraError(EvalsuiteError):
    """An optional dependency is not installed (exit 2: the user can install it)."""

    exit_code = 2


def require(module: str, extra: str) -> Any:
    """Import ``module`` or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(f"--executor {extra} needs the '{module}' package ({e}); "
                                f"install it with: pip install 'evalsuite[{extra}]'") from None


class Executor(Protocol):
    """Submit jobs and wait for them; the engine does the scheduling."""

    name: str
    scheduler: str | None
    """``slurm`` when job states can be asked of Slurm (squeue/scontrol); None otherwise."""

    def submit(self, specs: list[JobSpec]) -> list[str]:
        """Submit one job per spec; returns their scheduler ids, in order."""

    def wait(self) -> list[JobOutcome]:
        """Block until every submitted job ended; one outcome each (failures included)."""


@dataclass(frozen=True)
class SlurmOptions:
    """How Slurm jobs are requested (each maps to one sbatch option)."""

    partition: str | None = None
    """``--partition``."""
    gpus_per_job: int = 0
    """``--gpus-per-node`` (one job = one node's share)."""
    time: str | None = None
    """``--time`` (minutes, HH:MM:SS or D-HH:MM:SS)."""
    account: str | None = None
    """``--account``."""
    max_parallel: int | None = None
    """Array throttle: ``--array=0-N%max_parallel``."""
    cpus_per_job: int = 1
    """``--cpus-per-task``."""
    mem_gb: float | None = None
    """``--mem``."""
    extra: dict[str, str] = field(default_factory=dict)
    """Any other sbatch option, ``KEY=VALUE`` → ``#SBATCH --KEY=VALUE``."""
    cluster: str = "slurm"
    """submitit cluster: ``slurm``, or ``local`` (the same code path without Slurm, for tests)."""


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None
    """``auto`` (a running cluster), ``HOST:PORT``, or None (start one on this machine)."""
    max_retries: int = 3
    """Retries of a job whose worker died."""
    num_cpus: float = 1.0
    """CPUs each job reserves."""


def get_executor(name: str, log_dir: Path, slurm: SlurmOptions | None = None, ray: RayOptions | None = None,
                 gpus_per_job: int = 0) -> Executor:
    """The executor called ``name``; imports its engine only now."""
    match name:
        case "local":
            from evalsuite.executors.local import LocalExecutor

            return LocalExecutor()
        case "ray":
            from evalsuite.executors.ray_exec import RayExecutor

            return RayExecutor(ray or RayOptions(), gpus_per_job)
        case "slurm":
            from evalsuite.executors.slurm_exec import SlurmExecutor

            return SlurmExecutor(slurm or SlurmOptions(), log_dir)
    raise EvalsuiteError(f"unknown executor '{name}'; use one of {', '.join(EXECUTORS)}")
