"""What ``evalsuite track --executor/--status/--dry-run`` and ``evalsuite sweep`` do (the CLI only parses)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from evalsuite.core.errors import UsageError
from evalsuite.executors import EXECUTORS, RayOptions, SlurmOptions, get_executor
from evalsuite.executors.jobs import SweepReport, jobs_dir
from evalsuite.runner import RunConfig
from evalsuite.series import Checkpoint, Series, parse_step


@dataclass(frozen=True)
class SweepOptions:
    """The sweep-related command-line options."""

    executor: str = "local"
    status: bool = False
    dry_run: bool = False
    resubmit_failed: bool = False
    wait: bool = True
    watch: bool = False
    interval: float = 60.0
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    ray: RayOptions = field(default_factory=RayOptions)


def parse_sbatch_options(values: list[str] | None) -> dict[str, str]:
    """``KEY=VALUE`` (or a bare ``KEY`` flag) → {KEY: VALUE}; a leading ``--`` is dropped."""
    out: dict[str, str] = {}
    for v in values or []:
        key, sep, val = v.lstrip("-").partition("=")
        if not key:
            raise UsageError(f"--slurm-option {v!r}: use KEY=VALUE, e.g. --slurm-option qos=high")
        out[key] = val if sep else ""
    return out


def series_of_models(models: list[str], name: str | None) -> Series:
    """An explicit list of model folders as one series (``evalsuite sweep``)."""
    missing = [m for m in models if not Path(m).is_dir()]
    if missing:
        raise UsageError(f"sweep: model folder(s) not found: {', '.join(missing)} (give local checkpoint folders)")
    cps = tuple(Checkpoint(Path(m), parse_step(Path(m))) for m in models)
    return Series(name or "sweep", cps)


def gpus_per_job(base: RunConfig) -> int:
    """GPUs one job needs: tensor-parallel × data-parallel size on GPU backends, 0 on CPU."""
    if base.device == "cpu" or base.backend == "fake":
        return 0
    if base.device == "auto":
        try:
            import torch

            if not torch.cuda.is_available():
                return 0
        except ImportError:
            return 0
    return base.tensor_parallel_size * base.data_parallel_size


def run_command(series: Series | Callable[[], Series], series_spec: str, base: RunConfig, opts: SweepOptions,
                echo: Callable[[str], None], say: Callable[[str], None]) -> int:
    """Carry out a sweep command; returns the exit code."""
    from evalsuite.executors import sweep as sw

    if opts.executor not in EXECUTORS:
        raise UsageError(f"--executor {opts.executor}: use one of {', '.join(EXECUTORS)}")
    get_series = series if callable(series) else (lambda: series)
    if opts.status:
        s = get_series()
        rows = sw.status(s, base)
        echo(sw.format_status(rows))
        return 0
    if opts.dry_run:
        s = get_series()
        echo(sw.format_plan(sw.plan(s, base, opts.resubmit_failed), opts.executor, s.name))
        return 0
    if opts.slurm.max_parallel and opts.executor != "slurm":
        say("note: --max-parallel applies to --executor slurm only")
    name_for_logs = get_series().name if not opts.watch else Path(series_spec).name
    log_dir = jobs_dir(Path(base.output).resolve(), name_for_logs) / "logs"
    gpus = opts.slurm.gpus_per_job or gpus_per_job(base)
    slurm = opts.slurm if opts.slurm.gpus_per_job or not gpus else _with_gpus(opts.slurm, gpus)
    ex = get_executor(opts.executor, log_dir, slurm, opts.ray, gpus)
    if opts.watch:
        say(f"watching {series_spec} every {opts.interval:g}s; one {opts.executor} job per complete checkpoint (Ctrl-C to stop)")
        rep = sw.watch_sweep(series_spec, base, ex, opts.interval, say=say, wait=opts.wait)
    else:
        rep = sw.sweep(get_series(), base, ex, opts.resubmit_failed, wait=opts.wait, say=say)
    return report(rep, opts, echo, log_dir)


def _with_gpus(o: SlurmOptions, gpus: int) -> SlurmOptions:
    from dataclasses import replace

    return replace(o, gpus_per_job=gpus)


def report(rep: SweepReport, opts: SweepOptions, echo: Callable[[str], None], log_dir: Path) -> int:
    failed = [o for o in rep.outcomes if o.state == "failed"]
    echo(f"submitted {len(rep.submitted)} job(s) ({opts.executor}), up to date {len(rep.up_to_date)}, "
         f"not submitted {len(rep.skipped)}, finished {len(rep.outcomes) - len(failed)}, failed {len(failed)}")
    for c, why in rep.skipped.items():
        echo(f"not submitted: {Path(c).name}: {why}")
    for o in failed:
        echo(f"failed: {Path(o.checkpoint).name}: {o.error}{' (corrupt checkpoint)' if o.corrupt else ''}")
    if opts.executor == "slurm" and rep.submitted:
        echo(f"logs: {log_dir}")
    if rep.submitted and not opts.wait:
        echo("jobs run on; see: evalsuite track ... --status")
    return 1 if failed and len(failed) == len(rep.outcomes) and rep.outcomes else 0
