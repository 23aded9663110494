"""One Ray task per checkpoint (``--executor ray``).

Each task reserves ``num_gpus`` = tensor-parallel × data-parallel size (0 on CPU);
inside it, multi-GPU stays vLLM's own parallelism. A task whose worker process
dies (node lost, OOM-killed) is retried by Ray up to ``max_retries`` times; an
exception raised by the job itself is not retried (it is recorded as a failure).
"""

from __future__ import annotations

import time
from typing import Any

from evalsuite.executors import RayOptions, require
from evalsuite.executors.jobs import JobOutcome, JobSpec, _write_state, run_job


class RayExecutor:
    name = "ray"
    scheduler: str | None = None  # tasks live as long as the driver; their state files say the rest

    def __init__(self, options: RayOptions, gpus_per_job: int) -> None:
        self.options = options
        self.gpus = gpus_per_job
        self.ray = require("ray", "ray")
        self._pending: list[tuple[JobSpec, Any]] = []

    def _connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        if self.options.address:
            ray.init(address=self.options.address, include_dashboard=False, log_to_driver=False)
        else:  # a cluster on this machine, for a laptop or a single node
            ray.init(include_dashboard=False, log_to_driver=False)

    def submit(self, specs: list[JobSpec]) -> list[str]:
        self._connect()
        remote = self.ray.remote(num_gpus=self.gpus, num_cpus=self.options.num_cpus,
                                 max_retries=self.options.max_retries, retry_exceptions=False)(run_job)
        ids = []
        for spec in specs:
            ref = remote.remote(spec)
            self._pending.append((spec, ref))
            ids.append(ref.task_id().hex())
        return ids

    def wait(self, timeout: float | None = None) -> list[JobOutcome]:
        """Outcomes of every submitted task; one not finished after ``timeout`` seconds (each) is a failure."""
        out = []
        pending, self._pending = self._pending, []
        for spec, ref in pending:
            try:
                out.append(self.ray.get(ref, timeout=timeout))
            except Exception as e:  # noqa: BLE001 - worker died more often than retried, or the job raised
                err = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                now = time.time()
                _write_state(spec, spec.config.output, by_job=False, state="failed", error=err, ended=now)
                out.append(JobOutcome(spec.checkpoint, "failed", False, error=err, ended=now))
        return out
