"""The callable a Slurm job runs; requeued by submitit on preemption or timeout.

Only imported by the slurm executor (it needs submitit). Requeueing simply runs
the job again: results and the request cache are keyed by content, so the
second attempt reuses what the first one published and adds no duplicates.
"""

from __future__ import annotations

import submitit

from evalsuite.executors.jobs import JobOutcome, JobSpec, run_job


class EvalJob(submitit.helpers.Checkpointable):
    def __call__(self, spec: JobSpec) -> JobOutcome:
        return run_job(spec)
