"""One job = one checkpoint: what a job is, what it runs, and what it leaves in the results folder.

A job calls the same ``track`` code path a local ``evalsuite track`` uses, on a
series of one checkpoint: weights are loaded once, every selected task and
prompt variant runs, and the results JSON/JSONL land in the shared results
folder exactly as a local run writes them. Everything is keyed by content, so a
job that ran twice, a requeued job, or a sweep resumed on other hardware adds no
duplicate (checkpoint, task) results.

Besides results, a job leaves two small files in the results folder:

- ``fingerprints/<key>.json``: the checkpoint's content fingerprint together with
  the (name, size, mtime) of the files it hashed, so the submitting host decides
  what is done from a ``stat`` of each file, never by re-reading the weights;
- ``jobs/<series>/<key>.json``: the job's state (running, done, failed, and
  whether the checkpoint itself is unreadable), host, pid and times.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from evalsuite.fingerprint import checkpoint_key, file_stats, memo_fingerprint, memo_path, write_memo  # noqa: F401 - re-exported
from evalsuite.runner import RunConfig
from evalsuite.series import Checkpoint, Series
from evalsuite.store import atomic_write_json, safe_name


@dataclass(frozen=True)
class JobSpec:
    """Everything a job needs; plain data, so it pickles to a Ray worker or a Slurm node."""

    checkpoint: str
    """Absolute path of the checkpoint folder."""
    step: int | None
    """Training step (None when unknown)."""
    series: str
    """Series name (recorded in the results)."""
    config: RunConfig
    """The run settings shared by every job of the sweep (``model`` is replaced per job)."""
    publish_cache: bool = True
    """Write the request cache shard on local disk and publish it into the shared cache folder."""
    executor: str = "local"
    """Which executor ran it (recorded in the job state)."""


@dataclass(frozen=True)
class JobOutcome:
    """What one job did."""

    checkpoint: str
    state: str
    """``done`` (evaluated or already up to date) or ``failed``."""
    evaluated: bool
    """False when every task already had results: no weights were loaded."""
    corrupt: bool = False
    """The checkpoint itself could not be read or loaded; not retried until its files change."""
    error: str | None = None
    results: tuple[str, ...] = ()
    fingerprint: str | None = None
    host: str = ""
    pid: int = 0
    started: float = 0.0
    ended: float = 0.0
    backend_calls: int = 0


def jobs_dir(out: Path, series: str) -> Path:
    return out / "jobs" / safe_name(series)


def state_path(out: Path, series: str, checkpoint: str | Path) -> Path:
    return jobs_dir(out, series) / f"{checkpoint_key(checkpoint)}.json"


def submission_path(out: Path, series: str, checkpoint: str | Path) -> Path:
    return jobs_dir(out, series) / f"{checkpoint_key(checkpoint)}.submit.json"


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def snapshot_key(checkpoint: str | Path) -> str:
    """A cheap digest of the checkpoint's file stats: a corrupt checkpoint is retried only when this changes."""
    from evalsuite.core.records import stable_hash

    try:
        return stable_hash(file_stats(Path(checkpoint)), 16)
    except OSError:
        return "unreadable"


# ---------------------------------------------------------------- the job

def _job_id() -> str | None:
    """This job's id in its scheduler, when it has one."""
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    if os.environ.get("SLURM_JOB_ID"):
        return os.environ["SLURM_JOB_ID"]
    return None


def _write_state(spec: JobSpec, out: Path, by_job: bool = True, **fields: Any) -> None:
    """Update the checkpoint's job state; ``by_job=False`` when the submitting host records a failure."""
    path = state_path(out, spec.series, spec.checkpoint)
    prev = read_json(path) or {}
    if fields.get("state") == "running":  # a new attempt starts from a clean record
        rec = {"checkpoint": spec.checkpoint, "step": spec.step, "series": spec.series, "executor": spec.executor,
               "attempt": int(prev.get("attempt", 0)) + 1}
    else:
        rec = dict(prev)
    if by_job:
        rec.update(host=socket.gethostname(), pid=os.getpid(), job_id=_job_id() or prev.get("job_id"))
    rec.update(fields)
    atomic_write_json(path, rec)


def run_job(spec: JobSpec) -> JobOutcome:
    """Evaluate one checkpoint into the shared results folder (the function every executor runs)."""
    from evalsuite.cache_shared import local_scratch
    from evalsuite.track import track

    out = Path(spec.config.output)
    started = time.time()
    _write_state(spec, out, state="running", started=started)
    cfg = spec.config
    scratch = None
    if spec.publish_cache and cfg.use_cache:
        scratch = local_scratch()
        cfg = replace(cfg, cache_local=scratch)
    cp = Checkpoint(Path(spec.checkpoint), spec.step)
    try:
        rep = track(Series(spec.series, (cp,)), cfg)
    finally:
        if scratch is not None:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
    fp = None if rep.corrupt else memo_fingerprint(out, spec.checkpoint)  # track left the memo
    error = rep.failed.get(cp.name)
    outcome = JobOutcome(
        checkpoint=spec.checkpoint, state="failed" if error else "done", evaluated=bool(rep.evaluated),
        corrupt=cp.name in rep.corrupt, error=error, results=tuple(str(p) for p in rep.results), fingerprint=fp,
        host=socket.gethostname(), pid=os.getpid(), started=started, ended=time.time(), backend_calls=rep.backend_calls)
    state = {k: v for k, v in asdict(outcome).items() if k not in ("checkpoint", "host", "pid")}
    if outcome.corrupt:
        state["snapshot"] = snapshot_key(spec.checkpoint)
    _write_state(spec, out, **state)
    return outcome


def make_specs(series: Series, base: RunConfig, executor: str, publish_cache: bool) -> list[JobSpec]:
    """One ``JobSpec`` per checkpoint, with every path made absolute (jobs run elsewhere)."""
    cfg = absolute_config(base)
    return [JobSpec(str(cp.path.resolve()), cp.step, series.name, cfg, publish_cache, executor) for cp in series.checkpoints]


def absolute_config(base: RunConfig) -> RunConfig:
    def ab(p: Any) -> Any:
        if p is None:
            return None
        if isinstance(p, list):
            return [Path(x).resolve() for x in p]
        return Path(p).resolve()

    return replace(base, output=Path(base.output).resolve(), data_dir=ab(base.data_dir), include=ab(base.include) or [],
                   cache_dir=ab(base.cache_dir))


@dataclass
class SweepReport:
    """What one sweep did: jobs submitted, checkpoints skipped, outcomes of the jobs waited for."""

    submitted: list[str] = field(default_factory=list)
    job_ids: dict[str, str] = field(default_factory=dict)
    up_to_date: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Checkpoints not submitted and why (running, failed: use --resubmit-failed, corrupt)."""
    outcomes: list[JobOutcome] = field(default_factory=list)
