"""Evaluate a checkpoint series incrementally, optionally watching a training run.

Wires ``series`` (discovery, completeness) to ``runner`` (one run per checkpoint):
a checkpoint whose fingerprint already has results for a task with the same spec
hash and settings is not run again, so a second pass loads no weights and makes
no backend calls. Results of a checkpoint may be spread over several run files
(a task added later); ``collect`` merges them, newest first.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from evalsuite import SCORING_VERSION
from evalsuite.checkpoint import check_model_folder, resolve_tokenizer
from evalsuite.core.errors import EvalsuiteError, ModelLoadError
from evalsuite.fingerprint import fingerprint, memo_fingerprint, write_memo
from evalsuite.runner import RunConfig, resolve_backend, run, task_data_digest
from evalsuite.spec.catalog import Catalog, resolve_selection
from evalsuite.record import RecordError, RunRecord, read_record
from evalsuite.series import Checkpoint, CompletenessWatch, Series, StepScores, discover, step_scores, task_signal
from evalsuite.store import atomic_write_json, safe_name

# settings that change numbers: results made with other values are not reused
_MATCH_KEYS = ("limit", "prompts", "shots", "seed", "backend", "dtype", "max_length", "add_bos", "data_dir")


@dataclass
class TrackReport:
    evaluated: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)
    """Failed because the checkpoint itself cannot be read or loaded (not worth retrying unchanged)."""
    results: list[Path] = field(default_factory=list)
    backend_calls: int = 0
    models_loaded: int = 0


def _results_files(out_dir: Path) -> list[Path]:
    return sorted(out_dir.glob("*/results_*.json"), reverse=True) if out_dir.is_dir() else []


def _load(path: Path) -> RunRecord | None:
    try:
        return read_record(path)
    except RecordError:
        return None


def existing_tasks(out_dir: Path, fp: str, cfg: RunConfig, task_hashes: dict[str, str],
                   tokenizer_fp: str | None = None, data_digests: dict[str, str | None] | None = None) -> set[str]:
    """Tasks already evaluated for fingerprint ``fp`` (and tokenizer ``tokenizer_fp``, when given) with the same
    spec hash, data, scoring version and settings."""
    done: set[str] = set()
    want = {k: _cfg_value(cfg, k) for k in _MATCH_KEYS}
    for f in _results_files(out_dir):
        rec = _load(f)
        if rec is None or rec.model.fingerprint != fp:
            continue
        if tokenizer_fp is not None and (rec.model.tokenizer or {}).get("fingerprint") != tokenizer_fp:
            continue
        if any(rec.config.get(k) != v for k, v in want.items()):
            continue
        if rec.scoring_version != SCORING_VERSION:
            continue
        for name, t in rec.tasks.items():
            if task_hashes.get(name) != t.spec_hash:
                continue
            # data edited in place: the stored numbers are of other data
            want_digest = (data_digests or {}).get(name)
            if want_digest is not None and t.data_digest != want_digest:
                continue
            done.add(name)
    return done


def _cfg_value(cfg: RunConfig, key: str) -> Any:
    v = getattr(cfg, key)
    if isinstance(v, list) and v and isinstance(v[0], Path):
        return [str(x) for x in v]
    return str(v) if isinstance(v, Path) else v


def series_root(series: Series) -> Path:
    """The folder holding a series' checkpoints (their common parent): the top of the tokenizer search."""
    parents = [str(c.path.resolve().parent) for c in series.checkpoints]
    return Path(os.path.commonpath(parents)) if parents else Path(".")


def track(series: Series, base: RunConfig, newest_first: bool = False, on_event: Callable[[str], None] | None = None,
          make_backend: Callable[[RunConfig], Any] | None = None, progress: bool = False) -> TrackReport:
    """Evaluate every checkpoint of ``series`` that lacks results for the selected tasks."""
    say = on_event or (lambda s: None)
    report = TrackReport()
    # Spec hashes come from the task files alone: an up-to-date series never reads data or weights.
    _suite, selection = resolve_selection(Catalog.discover(base.include, allow_override=base.override_tasks), base.suite, base.tasks)
    task_hashes = {t.spec.task: t.hash for t, _limit, _shots in selection}
    # The data is read (not the weights): a task whose data changed is evaluated again.
    data_digests = {t.spec.task: task_data_digest(t, base, shots) for t, _limit, shots in selection}
    cps = list(series.checkpoints)[::-1] if newest_first else list(series.checkpoints)
    out = base.output
    if base.tokenizer_root is None:
        base = replace(base, tokenizer_root=series_root(series))
    if base.backend == "auto":  # results record the backend that ran, so compare with that
        base = replace(base, backend=resolve_backend(base.backend))
    for cp in cps:
        label = f"{cp.name} (step {cp.step})"
        if base.backend != "fake":
            check_model_folder(cp.path, str(cp.path))  # a native training checkpoint: say how to convert it (exit 2)
        try:
            fp = fingerprint(str(cp.path))
        except OSError as e:
            report.failed[cp.name] = f"cannot read checkpoint: {e}"
            report.corrupt.add(cp.name)
            _record_failure(out, series, cp, report.failed[cp.name])
            say(f"failed {label}: {report.failed[cp.name]}")
            continue
        _remember(out, cp, fp)
        tok_fp = None
        if make_backend is None and base.backend != "fake":  # which tokenizer: part of being up to date
            try:
                tok_fp = resolve_tokenizer(str(cp.path), base.tokenizer, base.tokenizer_root).fingerprint
            except EvalsuiteError as e:  # this checkpoint only: the watcher goes on
                report.failed[cp.name] = str(e)
                _record_failure(out, series, cp, str(e))
                say(f"failed {label}: {e}")
                continue
        done = existing_tasks(out, fp, replace(base, model=str(cp.path)), task_hashes, tok_fp, data_digests)
        todo = [t for t in task_hashes if t not in done]
        if not todo:
            report.reused.append(cp.name)
            say(f"up to date {label}")
            continue
        cfg = replace(base, model=str(cp.path), suite=None, tasks=",".join(todo),
                      series=base.name or series.name, step=cp.step, name=None)
        try:
            backend = make_backend(cfg) if make_backend else None
            res = run(cfg, backend=backend, progress=progress, argv=["evalsuite", "track"] + sys.argv[2:])
        except EvalsuiteError as e:
            if e.exit_code == 2:
                raise
            report.failed[cp.name] = str(e)
            if isinstance(e, ModelLoadError):
                report.corrupt.add(cp.name)
            _record_failure(out, series, cp, str(e))
            say(f"failed {label}: {e}")
            continue
        except Exception as e:  # a corrupt checkpoint must not stop the watcher
            report.failed[cp.name] = f"{type(e).__name__}: {e}"
            report.corrupt.add(cp.name)
            _record_failure(out, series, cp, report.failed[cp.name])
            say(f"failed {label}: {report.failed[cp.name]}")
            continue
        report.models_loaded += 1
        report.backend_calls += int(res.record.timings.get("backend_calls") or 0)
        report.evaluated.append(cp.name)
        report.results.append(res.results_path)
        say(f"evaluated {label}: {res.results_path}")
    return report


def _remember(out: Path, cp: Checkpoint, fp: str) -> None:
    """Leave the fingerprint beside the results, so status and sweeps need not hash this checkpoint again."""
    if memo_fingerprint(out, cp.path) == fp:
        return
    try:
        write_memo(out, cp.path, fp)
    except OSError:
        pass  # an optimisation only


def _record_failure(out: Path, series: Series, cp: Checkpoint, error: str) -> None:
    path = out / f"failed_{safe_name(series.name)}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    data[str(cp.path)] = {"step": cp.step, "error": error, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_json(path, data)


def watch(spec: str, base: RunConfig, interval: float = 60.0, newest_first: bool = False,
          on_event: Callable[[str], None] | None = None, max_polls: int | None = None,
          make_backend: Callable[[RunConfig], Any] | None = None, progress: bool = False) -> TrackReport:
    """Poll ``spec`` and evaluate each checkpoint once it is completely written. Ctrl-C stops cleanly."""
    say = on_event or (lambda s: None)
    watcher = CompletenessWatch()
    total = TrackReport()
    seen_failed: set[str] = set()
    polls = 0
    try:
        while max_polls is None or polls < max_polls:
            polls += 1
            try:
                s = discover(spec)
            except EvalsuiteError:
                s = None
            if s is not None:
                ready = tuple(c for c in s.checkpoints if watcher.is_complete(c.path) and c.name not in seen_failed)
                if ready:
                    rep = track(Series(s.name, ready), base, newest_first, on_event, make_backend, progress)
                    total.evaluated += rep.evaluated
                    total.reused = sorted(set(total.reused) | set(rep.reused))
                    total.failed.update(rep.failed)
                    total.results += rep.results
                    total.backend_calls += rep.backend_calls
                    total.models_loaded += rep.models_loaded
                    seen_failed |= set(rep.failed)
            if max_polls is not None and polls >= max_polls:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        say("stopped")
    return total


# ---------------------------------------------------------------- reading a series back

def tasks_by_fingerprint(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Per model fingerprint, per task, the newest ``TaskRecord`` in ``out_dir``."""
    by_fp: dict[str, dict[str, Any]] = {}
    for f in sorted(_results_files(out_dir)):  # oldest first, newer overwrite
        rec = _load(f)
        if rec is None:
            continue
        for name, t in rec.tasks.items():
            by_fp.setdefault(rec.model.fingerprint or "", {})[name] = t
    return by_fp


def collect(series: Series, out_dir: Path) -> dict[str, list[StepScores]]:
    """Per task, the normalized headline score per prompt at each checkpoint (newest results win)."""
    by_fp = tasks_by_fingerprint(out_dir)
    per_task: dict[str, list[StepScores]] = {}
    for cp in series.checkpoints:
        if cp.step is None:
            continue
        fp = memo_fingerprint(out_dir, cp.path) or fingerprint(str(cp.path))  # a sweep's jobs left memos: no re-hashing
        for name, t in sorted(by_fp.get(fp, {}).items()):
            pt = step_scores(cp.step, t)
            if pt is not None:
                per_task.setdefault(name, []).append(pt)
    return per_task


def signal_table(series: Series, out_dir: Path) -> list[dict[str, Any]]:
    return [task_signal(task, pts).as_dict() for task, pts in sorted(collect(series, out_dir).items())]


def log_scalars(kind: str | None, log_dir: Path, series: Series, out_dir: Path) -> bool:
    """Write each task's median normalized score at each step to tensorboard or wandb.

    Returns False (quietly) when the package is not installed.
    """
    if not kind:
        return False
    per_task = collect(series, out_dir)
    if kind == "tensorboard":
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard not installed
            return False
        w = SummaryWriter(log_dir=str(log_dir / safe_name(series.name)))
        for task, pts in per_task.items():
            for p in pts:
                w.add_scalar(f"evalsuite/{task}", p.median, global_step=p.step)
        w.close()
        return True
    if kind == "wandb":
        try:
            import wandb
        except Exception:
            return False
        wr = wandb.init(project="evalsuite", name=series.name, dir=str(log_dir), reinit=True)
        for task, pts in per_task.items():
            for p in pts:
                wr.log({f"evalsuite/{task}": p.median}, step=p.step)
        wr.finish()
        return True
    return False
