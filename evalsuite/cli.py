"""The ``evalsuite`` command line. Maps errors to exit codes: 2 bad input, 1 runtime."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from evalsuite import __version__
from evalsuite.cli_options import MODEL, EvalOptions, evaluation_options
from evalsuite.core.errors import EvalsuiteError, SpecError
from evalsuite.metrics import registry
from evalsuite.record import RunRecord

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


def format_table(rec: RunRecord) -> str:
    """A plain-text score table: one row per task × prompt variant, then each task's headline with n and chance."""
    rows = [("task", "prompt", "n", "headline", "value", "baseline", "normalized", "other metrics")]
    summary = []
    for task, t in rec.tasks.items():
        head = t.headline_metric
        norm = t.aggregate.normalized if t.aggregate else {}
        for pid, p in t.prompts.items():
            m = p.metrics
            hv = m[head].value if head in m else None
            base = m[head].baseline if head in m else None
            others = ", ".join(f"{k}={_fmt(v.value)}" for k, v in m.items() if k != head)
            rows.append((task, pid, str(p.n), head, _fmt(hv), _fmt(base), _fmt(norm.get(pid)), others))
        h = t.aggregate.headlines.get("max") if t.aggregate else None
        if h is not None:
            n = f"n={t.n_examples}" + (f"/{t.n_full}" if t.n_full is not None and t.n_full != t.n_examples else "")
            what = "normalized" if t.aggregate and t.aggregate.normalizable else "raw (lower is better)" \
                if not (registry.find(head) or registry.get("acc")).higher_is_better else "raw"
            ci = f" [{_fmt(h.ci_low)}, {_fmt(h.ci_high)}]" if h.ci_low is not None else ""
            chance = f"; chance {_fmt(h.chance)} [{_fmt(h.chance_low)}, {_fmt(h.chance_high)}]" if h.chance is not None else ""
            summary.append(f"{task}: best prompt {_fmt(h.value)}{ci} {what}{chance}; {n}")
    widths = [max(len(r[i]) for r in rows) for i in range(7)]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(r[i].ljust(widths[i]) for i in range(7)) + "  " + r[7])
        if k == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 13)
    return "\n".join(lines + [""] + summary)


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


@app.command()
@evaluation_options
def run(
    model: Annotated[str, typer.Option("--model", "-m", help="Local model folder or hub id.", rich_help_panel=MODEL)],
    opts: EvalOptions,
) -> None:
    """Evaluate MODEL on a suite or tasks; the last line printed is the results JSON path."""
    from evalsuite.runner import run as do_run

    cfg = opts.run_config(model)
    result = _guard(lambda: do_run(cfg, progress=not opts.quiet, argv=["evalsuite"] + sys.argv[1:]))
    typer.echo(format_table(result.record))
    t = result.record.timings
    typer.echo(f"{t['unique_requests']} unique requests ({t['requests']} total; {t['cache']['hits']} from the cache) "
               f"in {t['compute_s']:.1f}s compute, {t['total_s']:.1f}s total")
    engine = result.record.model.backend.get("engine")
    if engine:
        typer.echo(f"scoring engine: {engine} ({result.record.model.backend.get('engine_reason')})")
    for name, why in result.record.skipped_tasks.items():
        typer.echo(f"skipped {name}: no data ({why})", err=True)
    bad = {name: sum(len(p.errors) for p in task.prompts.values()) for name, task in result.record.tasks.items()}
    for name, n in bad.items():
        if n:
            typer.echo(f"warning: {name}: {n} example(s) dropped because the model returned non-finite log-probabilities "
                       "(listed under 'errors' in the results)", err=True)
    typer.echo(str(result.results_path))


@app.command()
def validate(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Task/suite files or folders (default: all shipped tasks).")] = None,
    override_tasks: Annotated[bool, typer.Option(help="Let an --include task replace a shipped task of the same name (otherwise an error naming both files).")] = False,
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
        problems = []
        try:
            # with the shipped tasks: a user task may not silently shadow a shipped one
            known = Catalog.discover(list(paths or []), allow_override=override_tasks) if paths else cat
        except SpecError as shadowing:
            problems.extend(shadowing.problems)
            known = cat
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


def data_needs(t: Any) -> tuple[str, str | None]:
    """(where a task's data comes from, the path under --data-dir its file needs or None).

    ``shipped``: a sample beside the task file; ``hub``: a hub dataset (``--data-dir`` optional when the
    task also names a local file); ``--data-dir``: only a local file the user supplies."""
    d = t.spec.data
    local = d.local.path if d.local is not None and not Path(d.local.path).is_absolute() else None
    if local is not None and (t.file.parent / local).exists():
        return "shipped", None
    if d.hub is not None:
        return ("hub or --data-dir" if local else "hub"), local
    return ("--data-dir" if local else "local"), local


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
        "data_kind": data_needs(t)[0], "data_dir_file": data_needs(t)[1],
    }


@tasks_app.command("list")
def tasks_list(
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    include: Annotated[Optional[list[Path]], typer.Option(help="Extra task folder (repeatable).")] = None,
) -> None:
    """List shipped (and included) tasks and suites."""
    from evalsuite.spec.catalog import Catalog

    cat = _guard(lambda: Catalog.discover(list(include or [])))
    if json_out:
        typer.echo(json.dumps({
            "tasks": [_task_info(cat.tasks[n]) for n in sorted(cat.tasks)],
            "suites": {n: [e.task for e in s.spec.tasks] for n, s in sorted(cat.suites.items())},
            "broken": [str(p) for e in cat.broken for p in e.problems],
        }, ensure_ascii=False, indent=2))
        return
    width = max([len(n) for n in cat.tasks] + [4])
    typer.echo(f"{'task'.ljust(width)}  {'type':<22} {'languages':<18} {'data':<18} prompt variants")
    typer.echo(f"{'-' * width}  {'-' * 22} {'-' * 18} {'-' * 18} {'-' * 15}")
    local: list[tuple[str, str]] = []
    for n in sorted(cat.tasks):
        s = cat.tasks[n].spec
        kind, needs = data_needs(cat.tasks[n])
        if needs:
            local.append((n, needs))
        typer.echo(f"{n.ljust(width)}  {s.output_type.value:<22} {','.join(s.languages):<18} {kind:<18} "
                   f"{', '.join(p.id for p in s.prompts)}")
    if local:
        typer.echo("")
        typer.echo("Tasks that read a local file: pass --data-dir DIR, with the file at:")
        for n, needs in local:
            typer.echo(f"  {n.ljust(width)}  DIR/{needs}")
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


@app.command("docs")
def docs_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into.")] = Path("docs"),
) -> None:
    """Write docs/tasks.md, docs/metrics.md and docs/results-schema.md from the code that defines them."""
    from evalsuite.metrics.registry import metrics_markdown
    from evalsuite.record import schema_markdown
    from evalsuite.spec.catalog import Catalog
    from evalsuite.store import atomic_write_bytes
    from evalsuite.taskdocs import render_tasks_md

    for name, text in (("tasks.md", render_tasks_md(Catalog.discover())), ("metrics.md", metrics_markdown()),
                       ("results-schema.md", schema_markdown())):
        atomic_write_bytes(out / name, text.encode("utf-8"))
        typer.echo(str(out / name))


@app.command()
def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where the demo model and results go.")] = Path("evalsuite-demo"),
    site: Annotated[Optional[Path], typer.Option(help="Where the demo leaderboard goes (default reports/demo/).")] = None,
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
    index, _view = _guard(lambda: build_leaderboard(lb, [output / "results"], site or default_site(lb)))
    typer.echo(f"leaderboard: {index}")


@cache_app.command("info")
def cache_info(
    cache_dir: Annotated[Optional[Path], typer.Option(help="Request cache folder.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List cached models (namespaces): shards, responses and size."""
    from evalsuite.cache import default_root, foreign, info

    rows = info(cache_dir)
    others = foreign(cache_dir)
    if json_out:
        typer.echo(json.dumps({"root": str(cache_dir or default_root()), "namespaces": rows, "foreign": others},
                              ensure_ascii=False, indent=2))
        return
    typer.echo(f"cache: {cache_dir or default_root()}")
    for r in rows:
        ident = r["identity"] or {}
        typer.echo(f"  {r['namespace']}  {r['responses']:>8} responses  {r['shards']:>3} shards  {r['bytes'] / 1e6:8.2f} MB  "
                   f"{ident.get('backend', '?')} {ident.get('model', '?')} {ident.get('dtype', '')}")
    if not rows:
        typer.echo("  (empty)")
    for name in others:
        typer.echo(f"  not evalsuite's (left alone): {name}/")


@cache_app.command("clear")
def cache_clear(
    cache_dir: Annotated[Optional[Path], typer.Option(help="Request cache folder.")] = None,
    namespace: Annotated[Optional[str], typer.Option(help="Only this namespace (prefix).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete cached responses."""
    from evalsuite.cache import clear, default_root, foreign

    if not yes and not typer.confirm(f"delete cached responses under {cache_dir or default_root()}?"):
        raise typer.Exit(1)
    n = clear(cache_dir, namespace)
    typer.echo(f"removed {n} namespace(s)")
    for name in foreign(cache_dir):
        typer.echo(f"left alone (not created by evalsuite): {name}/")


def default_site(definition: Path) -> Path:
    """Where a leaderboard's site goes unless told otherwise: ``reports/<leaderboard>/``."""
    from evalsuite.leaderboard.spec import load_leaderboard

    return Path("reports") / load_leaderboard(definition).leaderboard


def build_leaderboard(definition: Path, results: list[Path] | None, out: Path) -> tuple[Path, Any]:
    """Build the static site; returns (index.html, view)."""
    from evalsuite.leaderboard.render import render_site
    from evalsuite.leaderboard.spec import load_leaderboard
    from evalsuite.leaderboard.view import build_view, load_results

    from evalsuite.core.errors import UsageError

    spec = load_leaderboard(definition)
    folders = list(results) if results else [(definition.parent / r) for r in spec.results]
    missing = [f for f in folders if not f.exists()]
    if missing:
        where = "--results" if results else f"{definition}: results"
        raise UsageError(f"{where}: no such file or folder: {', '.join(str(m) for m in missing)}")
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
        return build_leaderboard(definition, results, out or default_site(definition))

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


SERIES = "Series"
CLUSTER = "Cluster (one job per checkpoint)"


class ExecutorName(str, Enum):
    local = "local"
    ray = "ray"
    slurm = "slurm"


# options shared by `track` and `sweep` (checkpoint sweeps on a cluster; see docs/scale-out.md)
ExecutorOpt = Annotated[Optional[ExecutorName], typer.Option(rich_help_panel=CLUSTER, help="Run one job per checkpoint: local (this process), ray or slurm (a job array through submitit).")]
StatusOpt = Annotated[bool, typer.Option("--status", rich_help_panel=CLUSTER, help="List done / running / failed / missing per checkpoint (results folder + squeue/scontrol) and exit.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", rich_help_panel=CLUSTER, help="Print the job plan (checkpoints, tasks, requests, tokens); submit nothing.")]
ResubmitOpt = Annotated[bool, typer.Option("--resubmit-failed", rich_help_panel=CLUSTER, help="Also resubmit failed jobs (a corrupt checkpoint only once its files change).")]
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", rich_help_panel=CLUSTER, help="Wait for the jobs to finish (slurm: --no-wait returns once submitted).")]
RayAddressOpt = Annotated[Optional[str], typer.Option(rich_help_panel=CLUSTER, help="ray: 'auto' (a running cluster) or HOST:PORT; default: start Ray on this machine.")]
PartitionOpt = Annotated[Optional[str], typer.Option(rich_help_panel=CLUSTER, help="slurm: sbatch --partition.")]
GpusOpt = Annotated[int, typer.Option(min=0, rich_help_panel=CLUSTER, help="slurm: sbatch --gpus-per-node (default: tensor x data parallel size on GPUs, 0 on CPU).")]
TimeOpt = Annotated[Optional[str], typer.Option(rich_help_panel=CLUSTER, help="slurm: sbatch --time (minutes, HH:MM:SS or D-HH:MM:SS).")]
AccountOpt = Annotated[Optional[str], typer.Option(rich_help_panel=CLUSTER, help="slurm: sbatch --account.")]
CpusOpt = Annotated[int, typer.Option(min=1, rich_help_panel=CLUSTER, help="slurm: sbatch --cpus-per-task.")]
MemOpt = Annotated[Optional[float], typer.Option(min=0.1, rich_help_panel=CLUSTER, help="slurm: sbatch --mem, in GB.")]
MaxParallelOpt = Annotated[Optional[int], typer.Option(min=1, rich_help_panel=CLUSTER, help="slurm: at most K jobs at once (job array throttle --array=...%K).")]
SbatchOpt = Annotated[Optional[list[str]], typer.Option("--slurm-option", rich_help_panel=CLUSTER, help="slurm: any other sbatch option as KEY=VALUE (repeatable), e.g. qos=high.")]


def _sweep_options(executor: Optional[ExecutorName], status: bool, dry_run: bool, resubmit_failed: bool, wait: bool,
                   watch: bool, interval: float, ray_address: Optional[str], partition: Optional[str], gpus: int,
                   time_: Optional[str], account: Optional[str], cpus: int, mem: Optional[float], max_parallel: Optional[int],
                   sbatch: Optional[list[str]]) -> Any:
    from evalsuite.executors import RayOptions, SlurmOptions
    from evalsuite.executors.command import SweepOptions, parse_sbatch_options

    import os

    # submitit's local executor runs the slurm code path without Slurm (tests, laptops)
    cluster = "local" if os.environ.get("EVALSUITE_SUBMITIT_CLUSTER") == "local" else "slurm"
    return SweepOptions(
        executor=(executor.value if executor else "local"), status=status, dry_run=dry_run, resubmit_failed=resubmit_failed,
        wait=wait, watch=watch, interval=interval, ray=RayOptions(address=ray_address),
        slurm=SlurmOptions(partition=partition, gpus_per_job=gpus, time=time_, account=account, max_parallel=max_parallel,
                           cpus_per_job=cpus, mem_gb=mem, extra=parse_sbatch_options(sbatch), cluster=cluster))


@app.command()
@evaluation_options
def track(
    series: Annotated[str, typer.Argument(help="Folder of checkpoints (checkpoint-<N>, step<N>, ...), a glob, or a comma-separated list.")],
    opts: EvalOptions,
    watch: Annotated[bool, typer.Option("--watch", help="Keep polling; evaluate new checkpoints once completely written.", rich_help_panel=SERIES)] = False,
    interval: Annotated[float, typer.Option(min=0.1, metavar="SEC", help="Seconds between polls with --watch.", rich_help_panel=SERIES)] = 60.0,
    newest_first: Annotated[bool, typer.Option("--newest-first", help="Evaluate the newest checkpoints first.", rich_help_panel=SERIES)] = False,
    every: Annotated[Optional[int], typer.Option(min=1, metavar="K", help="Only steps divisible by K.", rich_help_panel=SERIES)] = None,
    steps: Annotated[Optional[str], typer.Option(metavar="LIST", help="Only these steps, e.g. 1000,2000.", rich_help_panel=SERIES)] = None,
    log_to: Annotated[Optional[str], typer.Option(metavar="NAME", help="tensorboard or wandb: also log scalars (skipped if not installed).", rich_help_panel=SERIES)] = None,
    executor: ExecutorOpt = None,
    status: StatusOpt = False,
    dry_run: DryRunOpt = False,
    resubmit_failed: ResubmitOpt = False,
    wait_jobs: WaitOpt = True,
    ray_address: RayAddressOpt = None,
    slurm_partition: PartitionOpt = None,
    slurm_gpus_per_job: GpusOpt = 0,
    slurm_time: TimeOpt = None,
    slurm_account: AccountOpt = None,
    slurm_cpus_per_job: CpusOpt = 1,
    slurm_mem_gb: MemOpt = None,
    max_parallel: MaxParallelOpt = None,
    slurm_option: SbatchOpt = None,
) -> None:
    """Evaluate every checkpoint of a series not yet evaluated (incremental; --watch beside training).

    With --executor ray|slurm each checkpoint becomes one job on that engine; --status, --dry-run and
    --resubmit-failed inspect and repair such a sweep.

    Takes every option of 'run'; --name names the series (checkpoints are shown as '<name> step <N>'), and tokenizer files are searched for up to the series folder.
    """
    from evalsuite.series import discover
    from evalsuite.track import log_scalars, track as do_track, watch as do_watch

    base = opts.run_config("-")  # --name names the series; each checkpoint is shown as '<name> step <N>'
    output = opts.output
    say = lambda s: typer.echo(s, err=True)  # noqa: E731
    if executor is not None or status or dry_run or resubmit_failed:
        from evalsuite.executors.command import run_command

        sweep_opts = _sweep_options(executor, status, dry_run, resubmit_failed, wait_jobs, watch, interval, ray_address,
                                    slurm_partition, slurm_gpus_per_job, slurm_time, slurm_account, slurm_cpus_per_job,
                                    slurm_mem_gb, max_parallel, slurm_option)
        code = _guard(lambda: run_command(lambda: discover(series, every=every, steps=_steps(steps)), series, base, sweep_opts,
                                          typer.echo, say))
        raise typer.Exit(code)

    def go() -> Any:
        if watch:
            say(f"watching {series} every {interval:g}s (Ctrl-C to stop)")
            return do_watch(series, base, interval, newest_first, say, progress=not opts.quiet)
        s = discover(series, every=every, steps=_steps(steps))
        return do_track(s, base, newest_first, say, progress=not opts.quiet)

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
@evaluation_options
def sweep(
    models: Annotated[list[str], typer.Argument(help="Model (checkpoint) folders, one job each.")],
    opts: EvalOptions,
    executor: ExecutorOpt = None,
    status: StatusOpt = False,
    dry_run: DryRunOpt = False,
    resubmit_failed: ResubmitOpt = False,
    wait_jobs: WaitOpt = True,
    ray_address: RayAddressOpt = None,
    slurm_partition: PartitionOpt = None,
    slurm_gpus_per_job: GpusOpt = 0,
    slurm_time: TimeOpt = None,
    slurm_account: AccountOpt = None,
    slurm_cpus_per_job: CpusOpt = 1,
    slurm_mem_gb: MemOpt = None,
    max_parallel: MaxParallelOpt = None,
    slurm_option: SbatchOpt = None,
) -> None:
    """Evaluate an explicit list of models, one job per model (local, ray or slurm); --name names the set."""
    from evalsuite.executors.command import run_command, series_of_models

    base = opts.run_config("-")
    sweep_opts = _sweep_options(executor, status, dry_run, resubmit_failed, wait_jobs, False, 60.0, ray_address,
                                slurm_partition, slurm_gpus_per_job, slurm_time, slurm_account, slurm_cpus_per_job,
                                slurm_mem_gb, max_parallel, slurm_option)
    say = lambda s: typer.echo(s, err=True)  # noqa: E731
    name = opts.name
    code = _guard(lambda: run_command(lambda: series_of_models(models, name), name or "sweep", base, sweep_opts, typer.echo, say))
    raise typer.Exit(code)


@app.command()
def compare(
    a: Annotated[Path, typer.Argument(help="Results JSON of model A.")],
    b: Annotated[Path, typer.Argument(help="Results JSON of model B (same tasks, same examples).")],
    n_boot: Annotated[int, typer.Option("--bootstrap", help="Bootstrap replicates.", min=100, max=100_000)] = 2000,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per-task paired differences of the headline (max over prompts, normalized), with intervals and p-values."""
    from dataclasses import asdict

    from evalsuite.compare import compare as do_compare

    rows = _guard(lambda: do_compare(a, b, n_boot))
    if json_out:
        typer.echo(json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=2))
        return
    typer.echo(f"A = {a}\nB = {b}\n(normalized headline: max over prompts, re-selected in every bootstrap replicate)")
    typer.echo(f"{'task':<22} {'metric':<12} {'A':>7} {'B':>7} {'A-B':>7} {'95% CI':>17} {'p':>7} {'n':>6}  McNemar")
    for r in rows:
        if r.diff is None:
            typer.echo(f"{r.task:<22} {r.metric:<12} {r.note}")
            continue
        ci = f"[{r.ci[0]:.2f}, {r.ci[1]:.2f}]" if r.ci else "–"
        mc = f"{r.mcnemar_p:.4f}" if r.mcnemar_p is not None else "–"
        typer.echo(f"{r.task:<22} {r.metric:<12} {r.a:7.2f} {r.b:7.2f} {r.diff:7.2f} {ci:>17} {r.p:7.4f} {r.n:6d}  {mc}")


@app.command()
def signal(
    series: Annotated[str, typer.Argument(help="Checkpoint series (as for 'track').")],
    output: Annotated[Path, typer.Option("--results", "-r", help="Results folder used by 'track'.")] = Path("results"),
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Early-signal statistics per task over a series (on the median across prompt variants)."""
    from evalsuite.anomaly import series_flags
    from evalsuite.series import THRESHOLDS, discover
    from evalsuite.track import signal_table

    s = _guard(lambda: discover(series))
    rows = _guard(lambda: signal_table(s, output))
    points, flagged = series_flags(s, output)
    if json_out:
        typer.echo(json.dumps({"thresholds": THRESHOLDS, "tasks": rows, "anomalies": flagged}, ensure_ascii=False, indent=2))
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
    by_step = {p.step: p for p in points}
    names = {c.step: c.name for c in s.checkpoints}
    for step in flagged:
        p = by_step[step]
        typer.echo(f"anomaly: {names.get(step, step)} (step {step}): suite score {p.score:.2f} inside the chance interval "
                   f"(<= {p.chance_upper:.2f}) while both neighbours lie above it; re-check this checkpoint (a corrupted read?)")


if __name__ == "__main__":  # pragma: no cover
    app()
