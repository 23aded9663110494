"""A Slurm job array through submitit (``--executor slurm``).

Option → sbatch mapping: ``--slurm-partition`` → ``--partition``, ``--slurm-account``
→ ``--account``, ``--slurm-time`` → ``--time``, ``--slurm-gpus-per-job`` →
``--gpus-per-node``, ``--max-parallel K`` → ``--array=0-N%K``, ``--slurm-option
KEY=VALUE`` → ``--KEY=VALUE``. Logs: ``<results>/jobs/<series>/logs/<jobid>_*``.
Job states come from ``squeue`` and ``scontrol`` (no accounting daemon needed).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from evalsuite.core.errors import UsageError
from evalsuite.executors import SlurmOptions, require
from evalsuite.executors.jobs import JobOutcome, JobSpec, _write_state

# Slurm states in which a job may still run (the rest are final)
LIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
               "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "RESV_DEL_HOLD"}


def time_minutes(text: str) -> int:
    """Slurm ``--time`` (``MM``, ``HH:MM:SS``, ``MM:SS``, ``D-HH[:MM[:SS]]``) in whole minutes (rounded up)."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise UsageError(f"--slurm-time {text}: use minutes, HH:MM:SS or D-HH:MM:SS")
    days, a, b, c = m.groups()
    if days is not None:
        secs = int(days) * 86400 + int(a) * 3600 + int(b or 0) * 60 + int(c or 0)
    elif c is not None:
        secs = int(a) * 3600 + int(b) * 60 + int(c)
    elif b is not None:
        secs = int(a) * 60 + int(b)
    else:
        secs = int(a) * 60
    return max(1, -(-secs // 60))


def sbatch_parameters(o: SlurmOptions) -> dict[str, Any]:
    """submitit AutoExecutor parameters for these options."""
    p: dict[str, Any] = {"nodes": 1, "tasks_per_node": 1, "cpus_per_task": o.cpus_per_job}
    if o.gpus_per_job:
        p["gpus_per_node"] = o.gpus_per_job
    if o.time:
        p["timeout_min"] = time_minutes(o.time)
    if o.mem_gb:
        p["mem_gb"] = o.mem_gb
    if o.partition:
        p["slurm_partition"] = o.partition
    if o.account:
        p["slurm_account"] = o.account
    if o.max_parallel:
        p["slurm_array_parallelism"] = o.max_parallel
    if o.extra:
        p["slurm_additional_parameters"] = dict(o.extra)
    return p


class SlurmExecutor:
    name = "slurm"
    scheduler: str | None

    def __init__(self, options: SlurmOptions, log_dir: Path) -> None:
        self.options = options
        self.scheduler = "slurm" if options.cluster == "slurm" else None
        self.submitit = require("submitit", "slurm")
        if options.cluster == "slurm" and shutil.which("sbatch") is None:
            raise UsageError("--executor slurm: sbatch is not on PATH (run on a Slurm login node)")
        self.log_dir = log_dir
        self._jobs: list[tuple[JobSpec, Any]] = []

    def _executor(self) -> Any:
        ex = self.submitit.AutoExecutor(folder=str(self.log_dir / "%j"), cluster=self.options.cluster)
        params = sbatch_parameters(self.options)
        if self.options.cluster != "slurm":  # the local executor knows no slurm_* or gpu options
            params = {k: v for k, v in params.items() if k in ("timeout_min",)}
        ex.update_parameters(name="evalsuite", **params)
        return ex

    def submit(self, specs: list[JobSpec]) -> list[str]:
        from evalsuite.executors._submitit_job import EvalJob

        if not specs:
            return []
        ex = self._executor()
        jobs = ex.map_array(EvalJob(), specs)
        self._jobs += list(zip(specs, jobs))
        return [str(j.job_id) for j in jobs]

    def wait(self, poll: float = 2.0) -> list[JobOutcome]:
        """Wait for every job: its result file, or Slurm no longer knowing it as queued or running.

        submitit's own ``result()`` asks ``sacct`` for a job's state; without an accounting
        daemon a cancelled job would be waited for forever, so Slurm states come from
        squeue/scontrol here, and a job that left the queue without a result failed.
        """
        jobs, self._jobs = self._jobs, []
        outcomes: dict[int, JobOutcome] = {}
        gone: dict[int, int] = {}
        while len(outcomes) < len(jobs):
            live = slurm_states([str(j.job_id) for _, j in jobs]) if self.scheduler == "slurm" else {}
            for k, (spec, job) in enumerate(jobs):
                if k in outcomes:
                    continue
                finished = job.paths.result_pickle.exists() if self.scheduler == "slurm" else job.done()
                if finished:
                    outcomes[k] = self._result(spec, job)
                elif self.scheduler == "slurm" and str(job.job_id) not in live:
                    gone[k] = gone.get(k, 0) + 1
                    if gone[k] >= 3:  # not a race with the result file being written: the job ended without one
                        outcomes[k] = self._failed(spec, job, "job ended without a result (cancelled, timed out or node lost)")
                else:
                    gone.pop(k, None)
            if len(outcomes) < len(jobs):
                time.sleep(poll)
        return [outcomes[k] for k in range(len(jobs))]

    def _result(self, spec: JobSpec, job: Any) -> JobOutcome:
        try:
            return job.result()
        except Exception as e:  # noqa: BLE001 - the job raised, or submitit could not read its result
            return self._failed(spec, job, f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}")

    def _failed(self, spec: JobSpec, job: Any, err: str) -> JobOutcome:
        now = time.time()
        _write_state(spec, spec.config.output, by_job=False, state="failed", error=err, ended=now, job_id=str(job.job_id))
        return JobOutcome(spec.checkpoint, "failed", False, error=err, ended=now)


def slurm_states(job_ids: list[str]) -> dict[str, str]:
    """State of each id that Slurm still knows as queued or running, from squeue (scontrol for stragglers)."""
    ids = [j for j in job_ids if j]
    if not ids or shutil.which("squeue") is None:
        return {}
    found: dict[str, str] = {}
    try:
        res = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    for line in res.stdout.splitlines():
        jid, _, state = line.strip().partition("|")
        if jid in ids and state in LIVE_STATES:
            found[jid] = state
    for jid in ids:
        if jid in found:
            continue
        try:
            r = subprocess.run(["scontrol", "show", "job", "-o", jid], capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        m = re.search(r"\bJobState=(\S+)", r.stdout)
        if m and m.group(1) in LIVE_STATES:
            found[jid] = m.group(1)
    return found
