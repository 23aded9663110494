"""The ``evalsuite`` command line. Maps errors to exit codes: 2 bad input, 1 runtime."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from evalsuite import __version__
from evalsuite.core.errors import EvalsuiteError, SpecError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Evaluate language models on multilingual and Arabic-first task suites.")
tasks_app = typer.Typer(no_args_is_help=True, help="List and inspect tasks.")
app.add_typer(tasks_app, name="tasks")
cache_app = typer.Typer(no_args_is_help=True, help="Inspect or clear the request cache.")
calame_app = typer.Typer(no_args_is_help=True, help="Build CALAME-style last-word items from raw text.")
app.add_typer(calame_app, name="calame")
leaderboard_app = typer.Typer(no_args_is_help=True, help="Build static HTML leaderboards from results.")
app.add_typer(leaderboard_app, name="leaderboard")
app.add_typer(cache_app, name="cache")


class VLLMStrategy(str, Enum):
    auto = "auto"
    naive = "naive"


class BackendName(str, Enum):
    hf = "hf"
    vllm = "vllm"
    auto = "auto"
    fake = "fake"


def _fail(e: EvalsuiteError) -> None:
    if isinstance(e, SpecError):
        n = len(e.problems)
        typer.echo(f"error: {n} problem{'s' if n != 1 else ''} found:", err=True)
        for p in e.problems:
            typer.echo(f"  {p}", err=True)
    else:
        typer.echo(f"error: {e}", err=True)
    raise typer.Exit(e.exit_code)


def _guard(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except EvalsuiteError as e:
        _fail(e)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


def _one_or_many(paths: Optional[list[Path]]) -> Path | list[Path] | None:
    if not paths:
        return None
    return paths[0] if len(paths) == 1 else list(paths)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"evalsuite {__version__}")
        raise typer.Exit(0)


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False) -> None:
    """evalsuite: evaluation harness and static leaderboards."""


def format_table(result_record: dict[str, Any]) -> str:
    """A plain-text score table: one row per task × prompt variant."""
    rows = [("task", "prompt", "n", "headline", "value", "baseline", "other metrics")]
    for task, t in result_record["tasks"].items():
        head = t["headline_metric"]
        for pid, p in t["prompts"].items():
            m = p["metrics"]
            hv = m.get(head, {}).get("value")
            base = p["random_baseline"].get(head)
            others = ", ".join(f"{k}={_fmt(v['value'])}" for k, v in m.items() if k != head)
            rows.append((task, pid, str(p["n"]), head, _fmt(hv), _fmt(base), others))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(r[i].ljust(widths[i]) for i in range(6)) + "  " + r[6])
        if k == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 13)
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


@app.command()
def run(
    model: Annotated[str, typer.Option("--model", "-m", help="Local model folder or hub id.")],
    suite: Annotated[Optional[str], typer.Option(help="Suite name (see 'evalsuite tasks list').")] = None,
    tasks: Annotated[Optional[str], typer.Option(help="Comma-separated task names or task YAML files/folders.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Results folder.")] = Path("results"),
    limit: Annotated[Optional[int], typer.Option(min=1, help="Evaluate only the first N examples of each task.")] = None,
    prompts: Annotated[Optional[str], typer.Option(help="Comma-separated prompt variant ids (default: all).")] = None,
    shots: Annotated[Optional[int], typer.Option(min=0, max=64, help="Few-shot examples (overrides the task).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for few-shot sampling.")] = None,
    backend: Annotated[BackendName, typer.Option(help="Backend: hf (transformers), vllm, auto (vllm when a GPU and vllm are present, else hf) or fake (deterministic, for tests).")] = BackendName.auto,
    tensor_parallel_size: Annotated[int, typer.Option(min=1, help="vllm: GPUs per model replica.")] = 1,
    gpu_memory_utilization: Annotated[float, typer.Option(min=0.05, max=1.0, help="vllm: share of GPU memory for the engine.")] = 0.9,
    enforce_eager: Annotated[bool, typer.Option(help="vllm: no CUDA graphs / compilation (faster start).")] = False,
    data_parallel_size: Annotated[int, typer.Option(min=1, help="vllm: engine replicas, one process each (GPUs used: this x tensor-parallel-size).")] = 1,
    block_size: Annotated[Optional[int], typer.Option(min=1, help="vllm: KV-cache block size (prefix-cache hits are whole blocks; default: vLLM's, 16 on GPUs, 128 on CPUs, where it must be a multiple of 32).")] = None,
    prefix_caching: Annotated[bool, typer.Option("--prefix-caching/--no-prefix-caching", help="vllm: automatic prefix caching.")] = True,
    vllm_strategy: Annotated[VLLMStrategy, typer.Option(help="vllm: scoring strategy; naive (prompt log-probs, no cache reuse) is for comparison.")] = VLLMStrategy.auto,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16.")] = "auto",
    batch_tokens: Annotated[Optional[int], typer.Option(min=1, help="Token budget per forward batch (default: 1024 on CPU, 4096 on GPU).")] = None,
    packing: Annotated[bool, typer.Option("--packing/--no-packing", help="hf: pack each prefix group into one tree-masked row (off: prefix key/value cache).")] = True,
    max_length: Annotated[Optional[int], typer.Option(min=2, help="Override the model's context length.")] = None,
    add_bos: Annotated[bool, typer.Option("--add-bos/--no-add-bos", help="Start every sequence with BOS (lm-eval's default is no).")] = False,
    data_dir: Annotated[Optional[list[Path]], typer.Option(help="Folder holding local data files named by the tasks' data.local.path (repeatable: each task uses the first folder that has its file).")] = None,
    include: Annotated[Optional[list[Path]], typer.Option(help="Extra folder of task YAML files (repeatable).")] = None,
    trust_remote_code: Annotated[bool, typer.Option(help="Allow model code from the checkpoint to run.")] = False,
    prefix_sharing: Annotated[bool, typer.Option("--prefix-sharing/--no-prefix-sharing", help="hf: compute shared prompt prefixes once (off: every sequence whole, for comparison).")] = True,
    allow_any_path: Annotated[bool, typer.Option(help="Let task data paths leave the task folder / --data-dir.")] = False,
    skip_unavailable: Annotated[Optional[bool], typer.Option("--skip-unavailable/--no-skip-unavailable", help="Skip (and list) tasks whose data cannot be had (default: on for --suite, off for --tasks).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the request cache.")] = False,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Request cache folder (default: $EVALSUITE_CACHE/requests or ~/.cache/evalsuite/requests).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Evaluate MODEL on a suite or tasks; the last line printed is the results JSON path."""
    from evalsuite.runner import RunConfig
    from evalsuite.runner import run as do_run

    cfg = RunConfig(
        model=model, suite=suite, tasks=tasks, output=output, limit=limit,
        prompts=[p.strip() for p in prompts.split(",") if p.strip()] if prompts else None,
        shots=shots, seed=seed, backend=backend.value, device=device, dtype=dtype, batch_tokens=batch_tokens, packing=packing,
        max_length=max_length, add_bos=add_bos, data_dir=_one_or_many(data_dir), include=list(include or []),
        trust_remote_code=trust_remote_code, share_prefixes=prefix_sharing, allow_any_path=allow_any_path,
        use_cache=not no_cache, cache_dir=cache_dir, skip_unavailable=skip_unavailable,
        tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=gpu_memory_utilization, enforce_eager=enforce_eager,
        data_parallel_size=data_parallel_size, block_size=block_size, enable_prefix_caching=prefix_caching,
        vllm_strategy=vllm_strategy.value,
    )
    result = _guard(lambda: do_run(cfg, progress=not quiet, argv=["evalsuite"] + sys.argv[1:]))
    typer.echo(format_table(result.record))
    t = result.record["timings"]
    typer.echo(f"{t['unique_requests']} unique requests ({t['requests']} total; {t['cache']['hits']} from the cache) "
               f"in {t['compute_s']:.1f}s compute, {t['total_s']:.1f}s total")
    engine = result.record["model"]["backend"].get("engine")
    if engine:
        typer.echo(f"scoring engine: {engine} ({result.record['model']['backend'].get('engine_reason')})")
    for name, why in result.record.get("skipped_tasks", {}).items():
        typer.echo(f"skipped {name}: no data ({why})", err=True)
    bad = {name: sum(len(p["errors"]) for p in task["prompts"].values()) for name, task in result.record["tasks"].items()}
    for name, n in bad.items():
        if n:
            typer.echo(f"warning: {name}: {n} example(s) dropped because the model returned non-finite log-probabilities "
                       "(listed under 'errors' in the results)", err=True)
    typer.echo(str(result.results_path))


@app.command()
def validate(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Task/suite files or folders (default: all shipped tasks).")] = None,
) -> None:
    """Check task and suite YAML files; every problem is printed as file:line:col: field: message."""
    from evalsuite.spec.catalog import Catalog

    def go() -> None:
        if paths:
            missing = [p for p in paths if not p.exists()]
            if missing:
                raise SpecError([SpecError(f"{p}: no such file or folder").problems[0] for p in missing])
            cat = Catalog.discover(list(paths), include_shipped=False)
        else:
            cat = Catalog.discover()
        # suites must name known tasks
        known = Catalog.discover(list(paths or [])) if paths else cat
        problems = []
        for s in cat.suites.values():
            for i, e in enumerate(s.spec.tasks):
                if e.task not in known.tasks:
                    problems.append(s.positions.problem(("tasks", i, "task"), f"unknown task '{e.task}'"))
        for e in cat.broken:
            problems.extend(e.problems)
        if problems:
            raise SpecError(problems)
        typer.echo(f"ok: {len(cat.tasks)} tasks, {len(cat.suites)} suites")

    _guard(go)


def _task_info(t: Any) -> dict[str, Any]:
    s = t.spec
    src: dict[str, Any] = {}
    if s.data.hub:
        src["hub"] = s.data.hub.model_dump(exclude_defaults=True)
    if s.data.local:
        src["local"] = s.data.local.model_dump(exclude_defaults=True)
    return {
        "name": s.task, "title": s.title, "languages": s.languages, "output_type": s.output_type.value,
        "category": s.category, "prompts": [p.id for p in s.prompts], "metrics": [m.name for m in s.metrics],
        "labels": s.labels, "data": src, "file": t.display, "card": s.card,
    }


@tasks_app.command("list")
def tasks_list(
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    include: Annotated[Optional[list[Path]], typer.Option(help="Extra task folder (repeatable).")] = None,
) -> None:
    """List shipped (and included) tasks and suites."""
    from evalsuite.spec.catalog import Catalog

    cat = Catalog.discover(list(include or []))
    if json_out:
        typer.echo(json.dumps({
            "tasks": [_task_info(cat.tasks[n]) for n in sorted(cat.tasks)],
            "suites": {n: [e.task for e in s.spec.tasks] for n, s in sorted(cat.suites.items())},
            "broken": [str(p) for e in cat.broken for p in e.problems],
        }, ensure_ascii=False, indent=2))
        return
    width = max([len(n) for n in cat.tasks] + [4])
    for n in sorted(cat.tasks):
        s = cat.tasks[n].spec
        typer.echo(f"{n.ljust(width)}  {s.output_type.value:<22} {','.join(s.languages):<18} prompts: {', '.join(p.id for p in s.prompts)}")
    typer.echo("")
    for n, s in sorted(cat.suites.items()):
        typer.echo(f"suite {n}: {', '.join(e.task for e in s.spec.tasks)}")
    for e in cat.broken:
        for p in e.problems:
            typer.echo(f"warning: could not read {p}", err=True)


@tasks_app.command("show")
def tasks_show(
    name: Annotated[str, typer.Argument(help="Task name.")],
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    include: Annotated[Optional[list[Path]], typer.Option(help="Extra task folder (repeatable).")] = None,
) -> None:
    """Show one task: source, prompt variants, metrics."""
    from evalsuite.spec.catalog import Catalog

    def go() -> None:
        t = Catalog.discover(list(include or [])).task(name)
        info = _task_info(t)
        if json_out:
            typer.echo(json.dumps(info, ensure_ascii=False, indent=2))
            return
        for k in ("name", "title", "languages", "output_type", "category", "metrics", "labels", "data", "file"):
            typer.echo(f"{k}: {info[k]}")
        typer.echo("prompt variants:")
        for p in t.spec.prompts:
            typer.echo(f"  - {p.id}: doc_to_text={p.doc_to_text!r}" + (f" choices={p.doc_to_choice!r}" if p.doc_to_choice else ""))
        if info["card"]:
            typer.echo(f"card: {info['card'].strip()}")

    _guard(go)


@tasks_app.command("docs")
def tasks_docs(
    out: Annotated[Path, typer.Option("--out", "-o", help="Markdown file to write.")] = Path("docs/tasks.md"),
) -> None:
    """Write docs/tasks.md from the shipped task YAML."""
    from evalsuite.spec.catalog import Catalog
    from evalsuite.store import atomic_write_bytes
    from evalsuite.taskdocs import render_tasks_md

    atomic_write_bytes(out, render_tasks_md(Catalog.discover()).encode("utf-8"))
    typer.echo(str(out))


@app.command()
def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where the demo model and results go.")] = Path("evalsuite-demo"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Offline demo: build a tiny model, run the project-written Arabic demo suite, print scores."""
    from evalsuite.runner import RunConfig
    from evalsuite.runner import run as do_run
    from evalsuite.tiny import build_tiny_model

    def go() -> Any:
        model_dir = output / "tiny-model"
        if not (model_dir / "config.json").exists():
            typer.echo(f"building a tiny Llama and tokenizer in {model_dir} (trained on project-written text) ...", err=True)
            build_tiny_model(model_dir)
        cfg = RunConfig(model=str(model_dir), suite="demo", output=output / "results", device="cpu")
        return do_run(cfg, progress=not quiet, argv=["evalsuite"] + sys.argv[1:])

    result = _guard(go)
    typer.echo(format_table(result.record))
    typer.echo(str(result.results_path))
    from evalsuite.spec.catalog import shipped_dir

    lb = shipped_dir("leaderboards") / "demo.yaml"
    index, _view = _guard(lambda: build_leaderboard(lb, [output / "results"], output / "site"))
    typer.echo(f"leaderboard: {index}")


@cache_app.command("info")
def cache_info(
    cache_dir: Annotated[Optional[Path], typer.Option(help="Request cache folder.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List cached models (namespaces): shards, responses and size."""
    from evalsuite.cache import default_root, info

    rows = info(cache_dir)
    if json_out:
        typer.echo(json.dumps({"root": str(cache_dir or default_root()), "namespaces": rows}, ensure_ascii=False, indent=2))
        return
    typer.echo(f"cache: {cache_dir or default_root()}")
    for r in rows:
        ident = r["identity"] or {}
        typer.echo(f"  {r['namespace']}  {r['responses']:>8} responses  {r['shards']:>3} shards  {r['bytes'] / 1e6:8.2f} MB  "
                   f"{ident.get('backend', '?')} {ident.get('model', '?')} {ident.get('dtype', '')}")
    if not rows:
        typer.echo("  (empty)")


@cache_app.command("clear")
def cache_clear(
    cache_dir: Annotated[Optional[Path], typer.Option(help="Request cache folder.")] = None,
    namespace: Annotated[Optional[str], typer.Option(help="Only this namespace (prefix).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete cached responses."""
    from evalsuite.cache import clear, default_root

    if not yes and not typer.confirm(f"delete cached responses under {cache_dir or default_root()}?"):
        raise typer.Exit(1)
    n = clear(cache_dir, namespace)
    typer.echo(f"removed {n} namespace(s)")


def build_leaderboard(definition: Path, results: list[Path] | None, out: Path) -> tuple[Path, Any]:
    """Build the static site; returns (index.html, view)."""
    from evalsuite.leaderboard.render import render_site
    from evalsuite.leaderboard.spec import load_leaderboard
    from evalsuite.leaderboard.view import build_view, load_results

    spec = load_leaderboard(definition)
    folders = list(results) if results else [(definition.parent / r) for r in spec.results]
    view = build_view(spec, folders)
    n = len(load_results(folders)[0])
    return render_site(view, out, n), view


@leaderboard_app.command("build")
def leaderboard_build(
    definition: Annotated[Path, typer.Argument(help="Leaderboard YAML (e.g. leaderboards/arabic.yaml).")],
    results: Annotated[Optional[list[Path]], typer.Option("--results", "-r", help="Results folder or file (repeatable; overrides the YAML).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default reports/<name>/).")] = None,
) -> None:
    """Write a static leaderboard site (index, task, model, sample and series pages)."""

    def go() -> Any:
        from evalsuite.leaderboard.spec import load_leaderboard

        target = out or Path("reports") / load_leaderboard(definition).leaderboard
        return build_leaderboard(definition, results, target)

    index, view = _guard(go)
    for path, why in view.skipped:
        typer.echo(f"skipped {path}: {why}", err=True)
    typer.echo(f"{len(view.models)} models, {len(view.columns)} tasks")
    typer.echo(str(index))


@calame_app.command("build")
def calame_build(
    input: Annotated[Path, typer.Option("--input", "-i", help="Raw text (UTF-8); blank lines separate passages.")],
    lang: Annotated[str, typer.Option(help="Language, ISO 639-3 + script, e.g. arb_Arab or por_Latn.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Items JSONL (id, context, last_word).")],
    context_sentences: Annotated[int, typer.Option(min=0, max=20, help="Preceding sentences kept as context.")] = 2,
    filter_model: Annotated[Optional[Path], typer.Option(help="Drop items this model predicts from the last sentence alone.")] = None,
    device: Annotated[str, typer.Option()] = "auto",
) -> None:
    """Turn raw text into CALAME-style items (target = a sentence's last content word)."""
    import re as _re

    from evalsuite.calame import build, model_filter, write_jsonl
    from evalsuite.core.errors import UsageError

    def go() -> int:
        if not _re.fullmatch(r"[a-z]{3}_[A-Z][a-z]{3}", lang):
            raise UsageError(f"--lang {lang}: use ISO 639-3 + script, e.g. arb_Arab")
        try:
            text = input.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"{input}: cannot read as UTF-8 text ({type(e).__name__})") from None
        predicts = model_filter(str(filter_model), device) if filter_model else None
        return write_jsonl(build(text, lang, context_sentences, predicts), out)

    n = _guard(go)
    typer.echo(f"{n} items")
    typer.echo(str(out))


def _steps(value: Optional[str]) -> Optional[list[int]]:
    if not value:
        return None
    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter("--steps takes comma-separated integers, e.g. 1000,2000") from None


@app.command()
def track(
    series: Annotated[str, typer.Argument(help="Folder of checkpoints (checkpoint-<N>, step<N>, ...), a glob, or a comma-separated list.")],
    suite: Annotated[Optional[str], typer.Option(help="Suite name.")] = None,
    tasks: Annotated[Optional[str], typer.Option(help="Comma-separated task names or files.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Results folder.")] = Path("results"),
    watch: Annotated[bool, typer.Option(help="Keep polling and evaluate new checkpoints once completely written.")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between polls with --watch.")] = 60.0,
    newest_first: Annotated[bool, typer.Option(help="Evaluate the newest checkpoints first.")] = False,
    every: Annotated[Optional[int], typer.Option(min=1, help="Only steps divisible by K.")] = None,
    steps: Annotated[Optional[str], typer.Option(help="Only these steps, e.g. 1000,2000.")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="First N examples of each task.")] = None,
    prompts: Annotated[Optional[str], typer.Option(help="Comma-separated prompt variant ids.")] = None,
    shots: Annotated[Optional[int], typer.Option(min=0, max=64)] = None,
    backend: Annotated[BackendName, typer.Option(help="Backend.")] = BackendName.hf,
    device: Annotated[str, typer.Option()] = "auto",
    dtype: Annotated[str, typer.Option()] = "auto",
    batch_tokens: Annotated[Optional[int], typer.Option(min=1)] = None,
    data_dir: Annotated[Optional[list[Path]], typer.Option(help="Folder holding local data files (repeatable).")] = None,
    include: Annotated[Optional[list[Path]], typer.Option(help="Extra task folder (repeatable).")] = None,
    log_to: Annotated[Optional[str], typer.Option(help="tensorboard or wandb: also log scalars (skipped if not installed).")] = None,
) -> None:
    """Evaluate every checkpoint of a series not yet evaluated (incremental; --watch beside training)."""
    from evalsuite.runner import RunConfig
    from evalsuite.series import discover
    from evalsuite.track import log_scalars, track as do_track, watch as do_watch

    base = RunConfig(model="-", suite=suite, tasks=tasks, output=output, limit=limit,
                     prompts=[p.strip() for p in prompts.split(",") if p.strip()] if prompts else None, shots=shots,
                     backend=backend.value, device=device, dtype=dtype, batch_tokens=batch_tokens, data_dir=_one_or_many(data_dir),
                     include=list(include or []))
    say = lambda s: typer.echo(s, err=True)  # noqa: E731

    def go() -> Any:
        if watch:
            say(f"watching {series} every {interval:g}s (Ctrl-C to stop)")
            return do_watch(series, base, interval, newest_first, say)
        s = discover(series, every=every, steps=_steps(steps))
        return do_track(s, base, newest_first, say)

    rep = _guard(go)
    if log_to:
        try:
            s = discover(series, every=every, steps=_steps(steps))
            if not log_scalars(log_to, output / "logs", s, output):
                say(f"--log-to {log_to}: package not installed; skipped")
        except EvalsuiteError:
            pass
    typer.echo(f"evaluated {len(rep.evaluated)}, up to date {len(rep.reused)}, failed {len(rep.failed)}; "
               f"models loaded {rep.models_loaded}, backend calls {rep.backend_calls}")
    for name, err in rep.failed.items():
        typer.echo(f"failed: {name}: {err}")
    if rep.failed and not rep.evaluated and not rep.reused:
        raise typer.Exit(1)


@app.command()
def signal(
    series: Annotated[str, typer.Argument(help="Checkpoint series (as for 'track').")],
    output: Annotated[Path, typer.Option("--results", "-r", help="Results folder used by 'track'.")] = Path("results"),
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Early-signal statistics per task over a series (on the median across prompt variants)."""
    from evalsuite.series import THRESHOLDS, discover
    from evalsuite.track import signal_table

    rows = _guard(lambda: signal_table(discover(series), output))
    if json_out:
        typer.echo(json.dumps({"thresholds": THRESHOLDS, "tasks": rows}, ensure_ascii=False, indent=2))
        return
    if not rows:
        typer.echo("no results for this series yet; run 'evalsuite track' first")
        raise typer.Exit(1)

    def f(v: Any) -> str:
        return "n/a" if v is None else (f"{v:.2f}" if abs(v) < 1e8 else "inf")

    def mark(ok: bool) -> str:
        return "pass" if ok else "FAIL"

    head = f"{'task':<24} {'steps':>5} {'monotonic':>12} {'snr':>12} {'non-random':>12} {'switch':>10} {'cv':>6}"
    typer.echo(head)
    typer.echo("-" * len(head))
    for r in rows:
        p = r["passes"]
        typer.echo(f"{r['task']:<24} {len(r['steps']):>5} {f(r['monotonicity']):>7} {mark(p['monotonicity'])} "
                   f"{f(r['snr']):>7} {mark(p['snr'])} {f(r['non_randomness']):>7} {mark(p['non_randomness'])} "
                   f"{f(r['prompt_switch_rate']):>5} {mark(p['prompt_switch_rate'])} {f(r['trajectory_cv']):>6}")
    typer.echo(f"thresholds: monotonicity >= {THRESHOLDS['monotonicity']}, snr >= {THRESHOLDS['snr']}, "
               f"non-randomness > {THRESHOLDS['non_randomness']}, prompt switch rate <= {THRESHOLDS['prompt_switch_rate']}")


if __name__ == "__main__":  # pragma: no cover
    app()
