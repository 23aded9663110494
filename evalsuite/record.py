"""The typed run record: what one results file holds, written by ``store`` and read back by one reader.

``RunRecord.to_dict()`` is the JSON written to ``results_*.json``; ``read_record(path)`` is the
only way ``track``, ``signal``, ``leaderboard`` and ``compare`` read one. Files of the previous
schema (``evalsuite.results/1``) still load: their baselines are taken from the old
``random_baseline`` map and their aggregate is recomputed without intervals.
``docs/results-schema.md`` is generated from the field documentation here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "evalsuite.results/2"
SCHEMA_V1 = "evalsuite.results/1"
READABLE = (SCHEMA_V1, SCHEMA)


class RecordError(ValueError):
    """A results file that is not a readable run record; the message names the file and field."""


def _f(doc: str, **kw: Any) -> Any:
    return field(metadata={"doc": doc}, **kw)


@dataclass(frozen=True)
class MetricRecord:
    """One metric of one prompt variant."""

    name: str = _f("metric name (see docs/metrics.md)")
    value: float | None = _f("value on the metric's scale (0–100, ×100 for correlations, raw for bits per byte); null when undefined")
    higher_is_better: bool = _f("direction")
    signature: str = _f("how it was computed: metric|options|prompt|backend|version")
    flag: str | None = _f("why the value is undefined or degenerate", default=None)
    stderr: float | None = _f("bootstrap standard error (seeded, clusters resampled together)", default=None)
    ci: tuple[float, float] | None = _f("95% bootstrap percentile interval on the metric's scale", default=None)
    baseline: float | None = _f("trivial baseline on the metric's scale (null: not normalized)", default=None)
    baseline_kind: str | None = _f("which candidate the baseline is: uniform random, label-prior random, constant:<label>, "
                                   "derangement, zero, fixed", default=None)


@dataclass(frozen=True)
class PromptRecord:
    """One prompt variant of a task."""

    n: int = _f("examples scored for this variant")
    metrics: dict[str, MetricRecord] = _f("metric name → value")
    n_truncated: int = _f("examples whose input was cut from the left to fit the model", default=0)
    errors: list[str] = _f("examples dropped because the backend returned a non-finite value", default_factory=list)
    details: dict[str, Any] = _f("breakdowns: per_class_f1, breakdown (per diagnostic category), baselines "
                                 "(every baseline candidate per metric)", default_factory=dict)


@dataclass(frozen=True)
class HeadlineRecord:
    """One across-prompt statistic of the headline metric, on the normalized scale."""

    value: float = _f("the statistic (max, median or mean over prompts) of normalized, unclipped scores")
    ci_low: float | None = _f("interval low end", default=None)
    ci_high: float | None = _f("interval high end", default=None)
    chance: float | None = _f("expected value of the statistic for as many chance-level prompts", default=None)
    chance_low: float | None = _f("central 95% of the chance-level statistic: low end", default=None)
    chance_high: float | None = _f("central 95% of the chance-level statistic: high end", default=None)
    method: str = _f("how the interval was made", default="")


@dataclass(frozen=True)
class AggregateRecord:
    """The task's headline metric across prompts (computed once, in ``aggregate.aggregate_task``)."""

    metric: str = _f("the headline metric")
    normalizable: bool = _f("false for bits per byte / perplexity: values are raw, not in suite scores")
    normalized: dict[str, float] = _f("prompt id → normalized unclipped score (raw value when not normalizable)")
    headlines: dict[str, HeadlineRecord] = _f("max / median / mean → value, interval and chance")


@dataclass(frozen=True)
class TaskRecord:
    """One task of the run."""

    spec_hash: str = _f("hash of the resolved task spec (changes whenever anything that affects scores changes)")
    version: int = _f("the task's own version field")
    file: str = _f("task file the spec came from")
    output_type: str = _f("output type")
    languages: list[str] = _f("languages (ISO 639-3 + script)")
    category: str = _f("leaderboard category")
    headline_metric: str = _f("the task's first metric")
    data_source: str = _f("the file path or hub:<path>/<name>:<split> actually read")
    n_examples: int = _f("examples evaluated (after --limit)")
    n_full: int | None = _f("examples in the data before --limit (null: unknown, older files)", default=None)
    limit: int | None = _f("--limit (or the suite's limit) in force", default=None)
    shots: int = _f("few-shot examples per prompt", default=0)
    samples_file: str | None = _f("the per-sample JSONL beside this file, named by the run key", default=None)
    prompts: dict[str, PromptRecord] = _f("prompt id → per-variant scores", default_factory=dict)
    aggregate: AggregateRecord | None = _f("the headline across prompts", default=None)
    title: str = _f("the task's title", default="")
    data_digest: str | None = _f("content digest of the data actually read (keys the run and track's up-to-date check)",
                                 default=None)
    task_file_digest: str | None = _f("content digest of the task YAML file", default=None)
    overrides_shipped: str | None = _f("the shipped task file this --include task replaced (--override-tasks)", default=None)
    spec: dict[str, Any] = _f("the full resolved task spec", default_factory=dict)
    extra: dict[str, Any] = _f("other keys, kept as written (digests and identities added by later versions)",
                               default_factory=dict)


@dataclass(frozen=True)
class ModelRecord:
    """The evaluated model."""

    name: str = _f("display name (--model as given unless a name was set)")
    fingerprint: str | None = _f("content fingerprint: sha256 of weights, tokenizer and config (local), hub id@revision, fake-…")
    backend: dict[str, Any] = _f("what determines the numbers and keys the request cache (backend, dtype actually run, "
                                 "effective max_length, add_bos, tokenization policy, tokenizer fingerprint), plus "
                                 "`engine` and `engine_reason`: which hf scoring engine ran and why (packed, "
                                 "prefix-cache, prefix-cache-single or plain; not part of the cache key, absent when "
                                 "everything came from the cache)", default_factory=dict)
    series: str | None = _f("checkpoint series (evalsuite track)", default=None)
    step: int | None = _f("training step (evalsuite track)", default=None)
    display_name: str | None = _f("the stable name shown on the site (--name; else series + step, or the folder name)",
                                  default=None)
    tokenizer: dict[str, Any] | None = _f("the tokenizer used: source, fingerprint, found (checkpoint, parent, option, hub)",
                                          default=None)
    hub: dict[str, Any] | None = _f("hub models: the id, the revision asked for and the commit actually loaded", default=None)
    extra: dict[str, Any] = _f("other keys, kept as written", default_factory=dict)


@dataclass(frozen=True)
class RunRecord:
    """One results file."""

    schema: str = _f(f"\"{SCHEMA}\"; bumped on any incompatible change")
    evalsuite_version: str = _f("package version that wrote the file")
    created: str = _f("UTC time, ISO 8601")
    command: list[str] = _f("the command line that produced the run")
    model: ModelRecord = _f("the model")
    config: dict[str, Any] = _f("every option of the run (suite, tasks, limit, prompts, shots, seed, backend, device, "
                                "dtype, batch_tokens, packing, max_length, add_bos, data_dir, …)")
    tasks: dict[str, TaskRecord] = _f("task name → task record")
    skipped_tasks: dict[str, str] = _f("tasks of the suite skipped for lack of data → reason", default_factory=dict)
    results: dict[str, dict[str, float | None]] = _f("task → {\"<metric>,<prompt_id>\": value} (lm-eval style)",
                                                    default_factory=dict)
    versions: dict[str, Any] = _f("python and package versions", default_factory=dict)
    timings: dict[str, Any] = _f("prepare_s, model_load_s, compute_s, write_s, total_s, requests, unique_requests, "
                                 "backend_calls, tokens_computed, forward_s, oom_retries, model_loaded, cache",
                                 default_factory=dict)
    scoring_version: str | None = _f("version of evalsuite's scoring (changes invalidate stored results)", default=None)
    extra: dict[str, Any] = _f("other top-level keys, kept as written", default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


# ---------------------------------------------------------------- (de)serialization

def _to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if f.name == "extra":
                out.update({k: _to_dict(x) for k, x in v.items()})
            else:
                out[f.name] = _to_dict(v)
        return out
    if isinstance(obj, dict):
        return {k: _to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_dict(v) for v in obj]
    return obj


class _Reader:
    def __init__(self, where: str):
        self.where = where

    def fail(self, path: str, msg: str) -> RecordError:
        return RecordError(f"{self.where}: {path}: {msg}")

    def obj(self, d: Any, path: str) -> dict[str, Any]:
        if not isinstance(d, dict):
            raise self.fail(path, "expected an object")
        return d

    def get(self, d: dict[str, Any], key: str, path: str, types: tuple[type, ...], default: Any = ..., none: bool = False) -> Any:
        if key not in d:
            if default is ...:
                raise self.fail(f"{path}.{key}", "missing")
            return default
        v = d[key]
        if v is None and (none or default is None):
            return None
        if types == (float,) and isinstance(v, int) and not isinstance(v, bool):
            return float(v)
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
            raise self.fail(f"{path}.{key}", f"expected {' or '.join(t.__name__ for t in types)}, got {type(v).__name__}")
        return v

    def num(self, d: dict[str, Any], key: str, path: str) -> float | None:
        v = d.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(f"{path}.{key}", f"expected a number, got {type(v).__name__}")
        return float(v)


def _known(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _metric(r: _Reader, d: Any, path: str, old_base: float | None) -> MetricRecord:
    d = r.obj(d, path)
    ci = d.get("ci")
    if ci is not None and not (isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci)):
        raise r.fail(f"{path}.ci", "expected [low, high]")
    base = r.num(d, "baseline", path) if "baseline" in d else old_base
    return MetricRecord(str(r.get(d, "name", path, (str,))), r.num(d, "value", path),
                        bool(r.get(d, "higher_is_better", path, (bool,), True)), str(d.get("signature", "")),
                        d.get("flag") if isinstance(d.get("flag"), str) else None, r.num(d, "stderr", path),
                        (float(ci[0]), float(ci[1])) if ci is not None else None, base,
                        d.get("baseline_kind") if "baseline" in d else ("uniform random (schema 1)" if old_base is not None else None))


def _prompt(r: _Reader, d: Any, path: str) -> PromptRecord:
    d = r.obj(d, path)
    old = d.get("random_baseline") if isinstance(d.get("random_baseline"), dict) else {}
    metrics = {k: _metric(r, v, f"{path}.metrics.{k}", r.num(old, k, f"{path}.random_baseline"))
               for k, v in r.obj(d.get("metrics"), f"{path}.metrics").items()}
    errors = d.get("errors") or []
    return PromptRecord(int(r.get(d, "n", path, (int,), 0) or 0), metrics, int(d.get("n_truncated") or 0),
                        [str(e) for e in errors] if isinstance(errors, list) else [],
                        d.get("details") if isinstance(d.get("details"), dict) else {})


def _aggregate(r: _Reader, d: Any, path: str) -> AggregateRecord | None:
    if d is None:
        return None
    d = r.obj(d, path)
    heads = {}
    for k, h in r.obj(d.get("headlines", {}), f"{path}.headlines").items():
        h = r.obj(h, f"{path}.headlines.{k}")
        value = r.num(h, "value", f"{path}.headlines.{k}")
        if value is None:
            raise r.fail(f"{path}.headlines.{k}.value", "missing")
        heads[k] = HeadlineRecord(value, *(r.num(h, x, f"{path}.headlines.{k}") for x in
                                           ("ci_low", "ci_high", "chance", "chance_low", "chance_high")),
                                  str(h.get("method", "")))
    norm = {str(k): float(v) for k, v in r.obj(d.get("normalized", {}), f"{path}.normalized").items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return AggregateRecord(str(r.get(d, "metric", path, (str,))), bool(d.get("normalizable", True)), norm, heads)


def _task(r: _Reader, name: str, d: Any) -> TaskRecord:
    path = f"tasks.{name}"
    d = r.obj(d, path)
    prompts = {str(k): _prompt(r, v, f"{path}.prompts.{k}") for k, v in r.obj(d.get("prompts"), f"{path}.prompts").items()}
    head = r.get(d, "headline_metric", path, (str,))
    spec = d.get("spec") if isinstance(d.get("spec"), dict) else {}
    samples = d.get("samples_file")
    if samples is not None and not isinstance(samples, str):
        raise r.fail(f"{path}.samples_file", "expected a file name")
    return TaskRecord(
        str(d.get("spec_hash", "")), int(d.get("version") or 1) if isinstance(d.get("version"), int) else 1,
        str(d.get("file", "")), str(d.get("output_type", "")),
        [str(x) for x in d.get("languages") or []] if isinstance(d.get("languages"), list) else [],
        str(d.get("category", "other")), head, str(d.get("data_source", "")),
        int(d.get("n_examples") or 0) if isinstance(d.get("n_examples"), int) else 0,
        d.get("n_full") if isinstance(d.get("n_full"), int) else None,
        d.get("limit") if isinstance(d.get("limit"), int) else None,
        d.get("shots") if isinstance(d.get("shots"), int) else 0,
        samples, prompts, _aggregate(r, d.get("aggregate"), f"{path}.aggregate"),
        str(d.get("title") or spec.get("title") or ""),
        d.get("data_digest") if isinstance(d.get("data_digest"), str) else None,
        d.get("task_file_digest") if isinstance(d.get("task_file_digest"), str) else None,
        d.get("overrides_shipped") if isinstance(d.get("overrides_shipped"), str) else None, spec,
        {k: v for k, v in d.items() if k not in _known(TaskRecord)},
    )


def from_dict(d: Any, where: str = "results") -> RunRecord:
    """A run record from its JSON form (schema 1 or 2); RecordError names the file and field when it is not one."""
    r = _Reader(where)
    d = r.obj(d, "(top level)")
    schema = d.get("schema")
    if schema not in READABLE:
        raise r.fail("schema", f"not an evalsuite results file (schema {schema!r}; readable: {', '.join(READABLE)})")
    m = r.obj(d.get("model"), "model")
    model = ModelRecord(r.get(m, "name", "model", (str,)), r.get(m, "fingerprint", "model", (str,), None),
                        m.get("backend") if isinstance(m.get("backend"), dict) else {},
                        m.get("series") if isinstance(m.get("series"), str) else None,
                        m.get("step") if isinstance(m.get("step"), int) and not isinstance(m.get("step"), bool) else None,
                        m.get("display_name") if isinstance(m.get("display_name"), str) else None,
                        m.get("tokenizer") if isinstance(m.get("tokenizer"), dict) else None,
                        m.get("hub") if isinstance(m.get("hub"), dict) else None,
                        {k: v for k, v in m.items() if k not in _known(ModelRecord)})
    tasks = {str(k): _task(r, str(k), v) for k, v in r.obj(d.get("tasks"), "tasks").items()}
    if schema == SCHEMA_V1:
        tasks = {k: _upgrade_v1(t) for k, t in tasks.items()}
    command = d.get("command")
    return RunRecord(
        SCHEMA, str(d.get("evalsuite_version", "")), str(d.get("created", "")),
        [str(x) for x in command] if isinstance(command, list) else [], model,
        d.get("config") if isinstance(d.get("config"), dict) else {}, tasks,
        d.get("skipped_tasks") if isinstance(d.get("skipped_tasks"), dict) else {},
        d.get("results") if isinstance(d.get("results"), dict) else {},
        d.get("versions") if isinstance(d.get("versions"), dict) else {},
        d.get("timings") if isinstance(d.get("timings"), dict) else {},
        str(d["scoring_version"]) if d.get("scoring_version") is not None else None,
        {k: v for k, v in d.items() if k not in _known(RunRecord)},
    )


def _upgrade_v1(t: TaskRecord) -> TaskRecord:
    """Schema 1 had no aggregate: recompute it from the stored per-prompt values (no intervals, no chance)."""
    from evalsuite.aggregate import PromptInput, aggregate_task
    from evalsuite.metrics import registry

    d = registry.find(t.headline_metric)
    if d is None or t.aggregate is not None:
        return t
    agg = aggregate_task(d, [PromptInput(pid, p.metrics[t.headline_metric].value if t.headline_metric in p.metrics else None,
                                         p.metrics[t.headline_metric].baseline if t.headline_metric in p.metrics else None, p.n)
                             for pid, p in t.prompts.items()])
    return dataclasses.replace(t, aggregate=aggregate_record(agg))


def aggregate_record(agg: Any) -> AggregateRecord:
    """The stored form of an ``aggregate.TaskAggregate``."""
    return AggregateRecord(agg.metric, agg.normalizable, dict(agg.normalized),
                           {k: HeadlineRecord(h.value, h.ci_low, h.ci_high, h.chance, h.chance_low, h.chance_high, h.method)
                            for k, h in agg.headlines.items()})


MAX_RESULTS_BYTES = 64 * 1024 * 1024
MAX_SAMPLES_BYTES = 256 * 1024 * 1024


def samples_path(results_file: Path, name: str | None) -> Path | None:
    """The samples file a run record names: only a plain file beside the results file, size-capped; else None."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or not name.endswith(".jsonl"):
        return None
    p = results_file.parent / name
    try:
        if p.is_symlink() or not p.is_file() or p.stat().st_size > MAX_SAMPLES_BYTES:
            return None
    except OSError:
        return None
    return p


def read_record(path: Path) -> RunRecord:
    """The one results reader: a RunRecord, or RecordError naming the file and what is wrong."""
    try:
        size = path.stat().st_size
        if size > MAX_RESULTS_BYTES:
            raise RecordError(f"{path}: larger than {MAX_RESULTS_BYTES // 2**20} MiB; not read")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise RecordError(f"{path}: unreadable ({type(e).__name__})") from None
    except ValueError as e:
        raise RecordError(f"{path}: not JSON ({e})") from None
    return from_dict(data, str(path))


def schema_markdown() -> str:
    """``docs/results-schema.md`` (generated; a test keeps the file in sync)."""
    lines = [f"# Results JSON schema — `{SCHEMA}`", "",
             "One file per run: `OUTPUT/<model>/results_<UTC time>-<pid>.json`, written atomically (temporary file",
             "+ rename); values that are not finite are written as `null`. The layout stays close to lm-eval's",
             "results JSON (a `results` map of task → metric values). Generated from `evalsuite/record.py`;",
             f"files of `{SCHEMA_V1}` still load (their aggregate is recomputed without intervals).", ""]
    for cls in (RunRecord, ModelRecord, TaskRecord, PromptRecord, MetricRecord, AggregateRecord, HeadlineRecord):
        lines += [f"## `{cls.__name__}`", "", (cls.__doc__ or "").strip(), "", "| key | type | meaning |", "|---|---|---|"]
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            typ = str(f.type).replace("|", "\\|")
            lines.append(f"| `{f.name}` | {typ} | {f.metadata.get('doc', '')} |")
        lines.append("")
    lines += ["## Per-sample JSONL", "",
              "One line per (example, prompt variant): `task`, `prompt_id`, `example_id`, `target`, `cluster`, `gold` and",
              "`choices` (multiple choice), `prediction`, `correct` (where a prediction is right or wrong), `requests`",
              "(each with `request_id`, `context`, and `continuation`, `loglikelihood`, `is_greedy`, `n_tokens` — or",
              "`generation` —, plus `truncated`/`error` when set) and `metrics` (per-example values, e.g. `acc`: 0 or 100).", ""]
    return "\n".join(lines)
