"""Decide what to submit, submit it, and report status per checkpoint.

What is done is read from the results folder alone: a checkpoint is done when
the fingerprint memo its job wrote still matches the files' (name, size, mtime)
and every selected task has results for that fingerprint with the same spec hash
and settings (``track.existing_tasks``). The submitting host never hashes weights.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from evalsuite.core.errors import EvalsuiteError
from evalsuite.executors import Executor
from evalsuite.executors.jobs import (
    JobSpec,
    SweepReport,
    absolute_config,
    jobs_dir,
    make_specs,
    memo_fingerprint,
    read_json,
    snapshot_key,
    state_path,
    submission_path,
)
from evalsuite.runner import RunConfig
from evalsuite.series import CompletenessWatch, Series, discover
from evalsuite.store import atomic_write_json

STATES = ("done", "running", "failed", "missing")


@dataclass(frozen=True)
class CheckpointStatus:
    """One checkpoint of a sweep."""

    checkpoint: str
    step: int | None
    state: str
    """done, running (queued or running), failed, or missing (never submitted, or lost without a trace)."""
    corrupt: bool = False
    """The checkpoint could not be read; not resubmitted until its files change."""
    job_id: str | None = None
    error: str | None = None
    fingerprint: str | None = None
    anomaly: bool = False
    """Suite score inside the chance interval while both neighbours are above it."""

    @property
    def name(self) -> str:
        return Path(self.checkpoint).name


def _task_hashes(base: RunConfig) -> dict[str, str]:
    from evalsuite.spec.catalog import Catalog, resolve_selection

    _suite, selection = resolve_selection(Catalog.discover(base.include), base.suite, base.tasks)
    return {t.spec.task: t.hash for t, _limit, _shots in selection}


def _pid_alive(host: str | None, pid: int | None) -> bool | None:
    """Whether a process on this host is alive; None when it ran elsewhere."""
    if host != socket.gethostname() or not pid:
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _live_slurm_jobs(job_ids: list[str]) -> dict[str, str] | None:
    import shutil

    if not job_ids or shutil.which("squeue") is None:
        return None
    from evalsuite.executors.slurm_exec import slurm_states

    return slurm_states(job_ids)


def status(series: Series, base: RunConfig, anomalies: bool = True) -> list[CheckpointStatus]:
    """Per checkpoint: done / running / failed / missing, from the results folder and the scheduler.

    Slurm jobs are looked up with squeue/scontrol; a job that is neither done nor known
    to the scheduler any more failed (cancelled, timed out, node lost). Jobs of other
    executors are judged by their state file and, on this host, by their process.
    """
    from evalsuite.track import existing_tasks

    from evalsuite.runner import resolve_backend

    cfg = absolute_config(base)
    if cfg.backend == "auto":  # results record the backend 'auto' resolved to, as track compares
        cfg = replace(cfg, backend=resolve_backend(cfg.backend))
    out = cfg.output
    hashes = _task_hashes(cfg)
    rows: list[tuple] = []
    slurm_ids: list[str] = []
    for cp in series.checkpoints:
        path = str(cp.path.resolve())
        fp = memo_fingerprint(out, path)
        state = read_json(state_path(out, series.name, path)) or {}
        sub = read_json(submission_path(out, series.name, path)) or {}
        # a newer submission than the last state written by a job: the state belongs to an older attempt
        if sub and state and float(sub.get("submitted", 0)) > float(state.get("started", 0)):
            state = {}
        jid = str(sub.get("job_id") or state.get("job_id") or "") or None
        if jid and sub.get("scheduler") == "slurm":
            slurm_ids.append(jid)
        rows.append((cp, path, fp, state, sub, jid))
    live = _live_slurm_jobs(slurm_ids)
    result = []
    for cp, path, fp, state, sub, jid in rows:
        done = fp is not None and not (set(hashes) - existing_tasks(out, fp, replace(cfg, model=path), hashes))
        corrupt = bool(state.get("corrupt")) and state.get("snapshot") == snapshot_key(path)
        s = state.get("state")
        error = state.get("error")
        on_slurm = sub.get("scheduler") == "slurm" and live is not None
        if done:
            st = "done"
        elif corrupt or s == "failed":
            st = "failed"
        elif on_slurm and jid in live:  # type: ignore[operator]
            st = "running"
        elif on_slurm:
            st, error = "failed", error or "job ended without finishing (cancelled, timed out or node lost)"
        elif s == "running":
            here = _pid_alive(state.get("host"), state.get("pid"))
            st = "failed" if here is False else "running"
            if here is False:
                error = error or "job process ended without finishing (killed?)"
        elif sub:
            st = "running"  # submitted, not started yet
        else:
            st = "missing"
        result.append(CheckpointStatus(path, cp.step, st, corrupt, jid, error, fp))
    if anomalies:
        result = _flag_anomalies(result, out, set(hashes))
    return result


def _flag_anomalies(rows: list[CheckpointStatus], out: Path, tasks: set[str]) -> list[CheckpointStatus]:
    from evalsuite.anomaly import series_anomalies

    steps_fps = [(r.step, r.fingerprint) for r in rows if r.state == "done" and r.step is not None and r.fingerprint]
    _points, flagged = series_anomalies(steps_fps, out, tasks)  # type: ignore[arg-type]
    return [replace(r, anomaly=r.step in flagged) if r.state == "done" else r for r in rows]


def to_submit(rows: list[CheckpointStatus], resubmit_failed: bool) -> tuple[list[str], dict[str, str]]:
    """Checkpoints to submit, and the others (not done) with the reason they are not."""
    go, why = [], {}
    for r in rows:
        if r.state == "done":
            continue
        if r.state == "running":
            why[r.checkpoint] = f"running (job {r.job_id})"
        elif r.corrupt:
            why[r.checkpoint] = f"corrupt checkpoint, not retried until its files change: {r.error}"
        elif r.state == "failed" and not resubmit_failed:
            why[r.checkpoint] = f"failed ({r.error}); use --resubmit-failed"
        else:
            go.append(r.checkpoint)
    return go, why


def sweep(series: Series, base: RunConfig, executor: Executor, resubmit_failed: bool = False, wait: bool = True,
          say: Callable[[str], None] | None = None) -> SweepReport:
    """Submit one job per checkpoint that is not done; wait for them unless ``wait`` is False."""
    say = say or (lambda s: None)
    rows = status(series, base, anomalies=False)
    go, why = to_submit(rows, resubmit_failed)
    report = SweepReport(up_to_date=[r.checkpoint for r in rows if r.state == "done"], skipped=why)
    wanted = set(go)
    cps = tuple(c for c in series.checkpoints if str(c.path.resolve()) in wanted)
    specs = make_specs(Series(series.name, cps), base, executor.name, publish_cache=executor.name != "local")
    if specs and executor.name != "local":
        specs = [replace(s, config=_shared_cache(s.config)) for s in specs]
    _submit(specs, executor, report, say)
    if wait:
        report.outcomes = executor.wait()
    return report


def _shared_cache(cfg: RunConfig) -> RunConfig:
    """Cluster jobs share the request cache in the results folder unless one was named."""
    return cfg if cfg.cache_dir is not None else replace(cfg, cache_dir=cfg.output / "request-cache")


def _submit(specs: list[JobSpec], executor: Executor, report: SweepReport, say: Callable[[str], None]) -> None:
    if not specs:
        return
    submitted = time.time()
    ids = executor.submit(specs)
    for spec, jid in zip(specs, ids):
        out = spec.config.output
        atomic_write_json(submission_path(out, spec.series, spec.checkpoint),
                          {"checkpoint": spec.checkpoint, "job_id": jid, "executor": executor.name,
                           "scheduler": getattr(executor, "scheduler", None), "submitted": submitted})
        report.submitted.append(spec.checkpoint)
        report.job_ids[spec.checkpoint] = jid
        say(f"submitted {Path(spec.checkpoint).name} as {executor.name} job {jid}")


def watch_sweep(spec: str, base: RunConfig, executor: Executor, interval: float = 60.0, max_polls: int | None = None,
                say: Callable[[str], None] | None = None, wait: bool = True) -> SweepReport:
    """Poll ``spec``; submit a job for each checkpoint once it is completely written (Ctrl-C stops polling)."""
    say = say or (lambda s: None)
    watcher = CompletenessWatch()
    total = SweepReport()
    handled: set[str] = set()
    polls = 0
    try:
        while max_polls is None or polls < max_polls:
            polls += 1
            try:
                s = discover(spec)
            except EvalsuiteError:  # the run folder may not exist yet
                s = None
            if s is not None:
                ready = tuple(c for c in s.checkpoints if str(c.path.resolve()) not in handled and watcher.is_complete(c.path))
                if ready:
                    rep = sweep(Series(s.name, ready), base, executor, wait=False, say=say)
                    total.submitted += rep.submitted
                    total.job_ids.update(rep.job_ids)
                    total.up_to_date += rep.up_to_date
                    total.skipped.update(rep.skipped)
                    handled |= {str(c.path.resolve()) for c in ready}
            if max_polls is not None and polls >= max_polls:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        say("stopped watching")
    if wait:
        total.outcomes = executor.wait()
    return total


# ---------------------------------------------------------------- the plan (--dry-run)

@dataclass(frozen=True)
class Plan:
    """What a sweep would submit."""

    checkpoints: list[str]
    skipped: dict[str, str]
    done: int
    tasks: list[str]
    requests_per_job: int
    tokens_per_job: int
    tokens_exact: bool
    """True when counted with the first checkpoint's tokenizer; else UTF-8 bytes / 4."""


def plan(series: Series, base: RunConfig, resubmit_failed: bool = False) -> Plan:
    """The job plan: which checkpoints, which tasks, how many requests and tokens per job. Submits nothing."""
    from evalsuite.runner import prepare

    rows = status(series, base, anomalies=False)
    go, why = to_submit(rows, resubmit_failed)
    cfg = absolute_config(base)
    prepared = prepare(replace(cfg, model=go[0] if go else "-"))
    unique: dict[str, str] = {}
    for p in prepared:
        for pe in p.prompted:
            for r in pe.requests:
                unique.setdefault(r.id, r.context + r.continuation)
    texts = list(unique.values())
    tokens, exact = _count_tokens(texts, go[0] if go else None)
    return Plan(go, why, sum(r.state == "done" for r in rows), [p.task.spec.task for p in prepared], len(texts), tokens, exact)


def _count_tokens(texts: list[str], model: str | None) -> tuple[int, bool]:
    if model and (Path(model) / "tokenizer.json").is_file():
        try:
            from tokenizers import Tokenizer

            tk = Tokenizer.from_file(str(Path(model) / "tokenizer.json"))
            return sum(len(e.ids) for e in tk.encode_batch(texts)), True
        except Exception:  # noqa: BLE001, S110 - an unusual tokenizer: fall back to the estimate
            pass
    return sum(len(t.encode("utf-8")) for t in texts) // 4, False


def format_plan(p: Plan, executor: str, series: str) -> str:
    lines = [f"plan for {series} on {executor}: {len(p.checkpoints)} job(s), {p.done} checkpoint(s) already done"]
    for c in p.checkpoints:
        lines.append(f"  job: {c}")
    for c, why in p.skipped.items():
        lines.append(f"  not submitted: {c}: {why}")
    lines.append(f"tasks ({len(p.tasks)}): {', '.join(p.tasks)}")
    est = "" if p.tokens_exact else " (estimated: UTF-8 bytes / 4)"
    lines.append(f"per job: {p.requests_per_job} unique requests, {p.tokens_per_job} tokens{est}")
    lines.append(f"total: {p.requests_per_job * len(p.checkpoints)} requests, {p.tokens_per_job * len(p.checkpoints)} tokens")
    lines.append("dry run: nothing submitted")
    return "\n".join(lines)


def format_status(rows: list[CheckpointStatus]) -> str:
    width = max([len(r.name) for r in rows] + [10])
    lines = [f"{'checkpoint':<{width}}  {'step':>8}  {'state':<8}  job / note"]
    for r in rows:
        note = []
        if r.job_id:
            note.append(f"job {r.job_id}")
        if r.corrupt:
            note.append("CORRUPT (not retried)")
        if r.anomaly:
            note.append("ANOMALY: suite score inside the chance interval, neighbours above it (re-check this checkpoint)")
        if r.error and r.state == "failed":
            note.append(r.error)
        lines.append(f"{r.name:<{width}}  {'' if r.step is None else r.step:>8}  {r.state:<8}  {'; '.join(note)}")
    counts = {s: sum(r.state == s for r in rows) for s in STATES}
    lines.append(", ".join(f"{k} {v}" for k, v in counts.items()))
    return "\n".join(lines)


__all__ = ["CheckpointStatus", "Plan", "format_plan", "format_status", "jobs_dir", "plan", "status", "sweep", "watch_sweep"]
