"""Issue 16, "nothing lost, nothing escapes": the cache, the leaderboard and task files against
careless and hostile inputs, and clear errors instead of tracebacks.

Each test reproduces a failure found by an adversarial pass and fails on the code before the fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalsuite.cli import app
from evalsuite.core.records import Response

ROOT = Path(__file__).resolve().parents[1]


def cli(args: list[str]):
    return CliRunner().invoke(app, args)


# ---------------------------------------------------------------- item 8: cache clear deletes only its own folders

def test_cache_clear_keeps_foreign_folders(tmp_path: Path) -> None:
    from evalsuite.cache import RequestCache, info

    root = tmp_path / "cache"
    for name in ("my_checkpoints", "datasets"):
        (root / name).mkdir(parents=True)
        (root / name / "precious.bin").write_bytes(b"x")
    c = RequestCache({"backend": "fake", "fingerprint": "f1"}, root)
    c.put(Response("r1", loglikelihood=-1.0))
    c.close()
    assert [r["namespace"] for r in info(root)] == [c.dir.name]  # foreign folders are not namespaces
    shown = cli(["cache", "info", "--cache-dir", str(root)])
    assert "datasets/" in shown.output and "my_checkpoints/" in shown.output
    res = cli(["cache", "clear", "--cache-dir", str(root), "-y"])
    assert res.exit_code == 0 and "removed 1 namespace" in res.output
    assert (root / "my_checkpoints" / "precious.bin").exists() and (root / "datasets" / "precious.bin").exists()
    assert not c.dir.exists()


# ---------------------------------------------------------------- item 9: cache clear during a running writer

def test_writer_recreates_a_shard_removed_under_it(tmp_path: Path) -> None:
    from evalsuite.cache import RequestCache, clear

    ident = {"backend": "fake", "fingerprint": "f2"}
    w = RequestCache(ident, tmp_path)
    w.put(Response("before", loglikelihood=-1.0))
    assert clear(tmp_path) == 1  # cleared while the writer keeps running
    w.put(Response("after", loglikelihood=-2.0))
    # no close(): the writer may be SIGKILLed now; what it wrote after the clear must be on disk
    found = RequestCache(ident, tmp_path).lookup(["before", "after"])
    assert set(found) == {"after"}
    w.close()


# ---------------------------------------------------------------- items 10-11: leaderboard paths

@pytest.fixture
def one_result(tmp_path: Path) -> Path:
    """A real results file (fake backend) whose copies the tests make hostile."""
    res = cli(["run", "--backend", "fake", "--model", "m", "--tasks", "demo_sentiment_ar", "--limit", "4",
               "-o", str(tmp_path / "base"), "-q"])
    assert res.exit_code == 0, res.output
    return Path(res.output.strip().splitlines()[-1])


def _variant(src: Path, folder: Path, model: str, task: str | None = None, samples: object = "keep",
             fingerprint: str | None = None) -> Path:
    rec = json.loads(src.read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    t = rec["tasks"].pop("demo_sentiment_ar")
    if samples == "keep":
        (folder / t["samples_file"]).write_bytes((src.parent / t["samples_file"]).read_bytes())
    else:
        t["samples_file"] = samples
    rec["tasks"][task or "demo_sentiment_ar"] = t
    rec["model"]["name"] = rec["model"]["display_name"] = model
    if fingerprint is not None:
        rec["model"]["fingerprint"] = fingerprint
    out = folder / f"results_{len(list(folder.glob('results_*')))}.json"
    out.write_text(json.dumps(rec), encoding="utf-8")
    return out


def _build(tmp_path: Path, results: Path, out: Path, extra: str = ""):
    lb = tmp_path / "lb.yaml"
    lb.write_text(f"leaderboard: t\nbootstrap: 0\n{extra}", encoding="utf-8")
    return cli(["leaderboard", "build", str(lb), "--results", str(results), "--out", str(out)])


def test_task_name_cannot_escape_the_site_folder(one_result: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    res_dir = tmp_path / "hostile"
    _variant(one_result, res_dir, "evil", task="../../../../victim/page")
    _variant(one_result, res_dir, "evil2", task="../../../../../victim/page")
    # a leaderboard whose columns leave the hostile task out: the samples page used the raw name
    res = _build(tmp_path, res_dir, tmp_path / "site" / "deep", "columns: [demo_sentiment_ar]\n")
    assert res.exit_code == 0, res.output
    res = _build(tmp_path, res_dir, tmp_path / "site2" / "deep")
    assert res.exit_code == 0, res.output
    assert list(victim.iterdir()) == [], "a page was written outside --out"
    written = [p for p in tmp_path.rglob("*.html")]
    assert written and all(("site" in p.parts[len(tmp_path.parts)]) for p in written)


def test_names_that_slug_alike_get_different_pages(one_result: Path, tmp_path: Path) -> None:
    res_dir = tmp_path / "r"
    _variant(one_result, res_dir, "team-x/final", fingerprint="sha256:same")
    _variant(one_result, res_dir, "team-y/final", fingerprint="sha256:same")
    _variant(one_result, res_dir, "team-x/final", task="arabic_exams:stem", fingerprint="sha256:same")
    _variant(one_result, res_dir, "team-x/final", task="arabic_exams_stem", fingerprint="sha256:same")
    out = tmp_path / "site"
    res = _build(tmp_path, res_dir, out)
    assert res.exit_code == 0, res.output
    models = sorted(p.name for p in (out / "models").iterdir())
    assert len(models) == 2, models
    pages = {p.read_text(encoding="utf-8").count("team-x/final") > 0 for p in (out / "models").iterdir()}
    assert pages == {True, False}
    tasks = sorted(p.name for p in (out / "tasks").iterdir())
    assert len(tasks) == 3 and "arabic_exams_stem.html" in tasks, tasks
    # the plain name keeps its page; the other one is slugged with a hash of its exact name
    assert any(t.startswith("arabic_exams_stem~") for t in tasks)


def test_samples_file_only_beside_the_results_file(one_result: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "leak.jsonl"
    secret.write_text(json.dumps({"prompt_id": "native", "example_id": "SECRET-ROW", "requests": []}) + "\n", encoding="utf-8")
    res_dir = tmp_path / "r"
    _variant(one_result, res_dir, "abs", samples=str(secret))
    _variant(one_result, res_dir, "rel", samples="../outside/leak.jsonl")
    (res_dir / "link.jsonl").symlink_to(secret)
    _variant(one_result, res_dir, "link", samples="link.jsonl")
    _variant(one_result, res_dir, "zero", samples="/dev/zero")
    (res_dir / "zero.jsonl").symlink_to("/dev/zero")
    _variant(one_result, res_dir, "zero-link", samples="zero.jsonl")
    out = tmp_path / "site"
    t0 = time.monotonic()
    res = _build(tmp_path, res_dir, out)
    assert res.exit_code == 0, res.output
    assert time.monotonic() - t0 < 30
    for page in out.rglob("*.html"):
        assert "SECRET-ROW" not in page.read_text(encoding="utf-8"), page


def test_samples_file_size_capped(one_result: Path, tmp_path: Path) -> None:
    from evalsuite.record import MAX_SAMPLES_BYTES, samples_path

    res = _variant(one_result, tmp_path / "r", "big")
    name = json.loads(res.read_text(encoding="utf-8"))["tasks"]["demo_sentiment_ar"]["samples_file"]
    assert samples_path(res, name) is not None
    with open(res.parent / name, "r+b") as f:
        f.truncate(MAX_SAMPLES_BYTES + 1)  # sparse: nothing written on disk
    assert samples_path(res, name) is None


# ---------------------------------------------------------------- item 12: data confinement

TASK = """\
task: {name}
title: Hostile test task
category: test
languages: [arb_Arab]
output_type: multiple_choice
data:
{data}
example_id: "{{{{ id }}}}"
labels: [pos, neg]
doc_to_target: "{{{{ label }}}}"
prompts:
  - id: p1
    doc_to_text: "{text}"
    doc_to_choice: ["pos", "neg"]
metrics: [acc]
"""


def write_task(folder: Path, name: str = "hostile_mc", data: str = "  local:\n    path: data.jsonl",
               text: str = "{{ text }}?", rows: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    f = folder / f"{name}.yaml"
    f.write_text(TASK.format(name=name, data=data, text=text.replace('"', '\\"')), encoding="utf-8")
    if rows:
        lines = [json.dumps({"id": f"e{i}", "text": f"t{i}", "label": "pos" if i % 2 else "neg"}) for i in range(6)]
        (folder / "data.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return f


def _secret_data(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "train.jsonl").write_text(json.dumps({"id": "s", "text": "SECRET", "label": "pos"}) + "\n", encoding="utf-8")
    return outside


def test_symlink_out_of_the_task_folder_is_refused(tmp_path: Path) -> None:
    outside = _secret_data(tmp_path)
    task = write_task(tmp_path / "t", rows=False)
    (tmp_path / "t" / "data.jsonl").symlink_to(outside / "train.jsonl")
    args = ["run", "--backend", "fake", "--model", "m", "--tasks", str(task), "-o", str(tmp_path / "out"), "-q"]
    res = cli(args)
    assert res.exit_code == 2, res.output
    assert "hostile_mc.yaml" in res.output and "data.local.path" in res.output and "--allow-any-path" in res.output
    assert cli(args + ["--allow-any-path"]).exit_code == 0  # the opt-in still works


def test_hub_path_naming_a_local_folder_outside_is_refused(tmp_path: Path) -> None:
    outside = _secret_data(tmp_path)
    for i, hub_path in enumerate([str(outside), os.path.relpath(outside, tmp_path / "t")]):
        task = write_task(tmp_path / "t", name=f"hub_mc{i}", data=f"  hub:\n    path: {json.dumps(hub_path)}\n    split: train", rows=False)
        res = cli(["run", "--backend", "fake", "--model", "m", "--tasks", str(task), "-o", str(tmp_path / "out"), "-q"])
        assert res.exit_code == 2, res.output
        assert "data.hub.path" in res.output and "outside the task folder" in res.output


# ---------------------------------------------------------------- item 13: resource exhaustion

_SHIM = """
import os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
pid = os.fork()
if pid == 0:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.execv(sys.executable, [sys.executable, "-m", "evalsuite", *sys.argv[1:]])
_pid, status, usage = os.wait4(pid, 0)
sys.stdout.write(f"{usage.ru_utime + usage.ru_stime} {usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _measured(args: list[str], cwd: Path) -> tuple[int, str, float, float]:
    """Run the CLI capped at 2 GB of address space: (exit code, stderr, CPU seconds, peak RSS in MB).

    CPU seconds (user + system) rather than wall time: CI machines are shared, and wall time measures the neighbours.
    The CLI is started from a small Python shim: a process forked from this (large) test process would report the
    parent's size as its peak (Linux keeps the pre-exec high-water mark), the shim's own children do not.
    """
    import tempfile

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-c", _SHIM, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=err,
                           timeout=60)
        assert time.monotonic() - t0 < 30, "wall time far over the limit"
        seconds, peak_kb = (float(x) for x in p.stdout.decode().split())
        err.seek(0)
        return p.returncode, err.read().decode("utf-8", "replace"), seconds, peak_kb / 1024


BOMB = "task: bomb\na: &a [" + ",".join(['"x"'] * 10) + "]\n" + "".join(
    f"{b}: &{b} [{','.join(['*' + a] * 10)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))

TEMPLATE_BOMBS = {
    "multiply": "{{ 'a' * 3000000000 }}",
    "nested_range": "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
    "doubling": "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "width": "{{ text|center(3000000000) }}",
    "printf": "{{ '%3000000000s' % text }}",
}


def test_yaml_alias_bomb_refused_fast_and_small(tmp_path: Path) -> None:
    f = tmp_path / "bomb.yaml"
    f.write_text(BOMB, encoding="utf-8")
    code, err, seconds, peak = _measured(["validate", str(f)], tmp_path)
    assert code == 2, err
    assert "bomb.yaml:" in err and "expands to more than" in err and "Traceback" not in err
    assert seconds <= 5 and peak <= 500, (seconds, peak)


@pytest.mark.parametrize("kind", sorted(TEMPLATE_BOMBS))
def test_template_bomb_refused_fast_and_small(kind: str, tmp_path: Path) -> None:
    task = write_task(tmp_path / "t", text=TEMPLATE_BOMBS[kind])
    code, err, seconds, peak = _measured(["run", "--backend", "fake", "--model", "m", "--tasks", str(task),
                                          "-o", str(tmp_path / "out"), "-q"], tmp_path)
    assert code == 2, err
    assert "hostile_mc.yaml:" in err and "prompts.0.doc_to_text" in err and "refused by the sandbox" in err, err
    assert "Traceback" not in err
    assert seconds <= 5 and peak <= 500, (seconds, peak)


def test_bounded_sandbox_still_renders_ordinary_templates() -> None:
    from evalsuite.core.templates import render

    src = "{% for c in choices %}{{ loop.index }}. {{ c ~ '!' }}\n{% endfor %}{{ 'ab' * 2 }} {{ 2 ** 10 }} {{ '%05d' % 42 }}"
    assert render(src, {"choices": ["x", "y"]}) == "1. x!\n2. y!\nabab 1024 00042"


# ---------------------------------------------------------------- item 14: clear errors instead of tracebacks

def _malformed(rec: dict) -> list[tuple[str, dict]]:
    """16 ways a results file can be wrong while still being a JSON object with our schema tag."""
    import copy

    def edit(fn) -> dict:
        r = copy.deepcopy(rec)
        fn(r)
        return r

    t = lambda r: r["tasks"]["demo_sentiment_ar"]
    p = lambda r: t(r)["prompts"]["native"]
    return [
        ("model_str", edit(lambda r: r.update(model="oops"))),
        ("model_name_int", edit(lambda r: r["model"].update(name=5))),
        ("tasks_list", edit(lambda r: r.update(tasks=[]))),
        ("task_str", edit(lambda r: r["tasks"].update(demo_sentiment_ar="x"))),
        ("prompts_list", edit(lambda r: t(r).update(prompts=[]))),
        ("prompt_str", edit(lambda r: t(r)["prompts"].update(native="x"))),
        ("metric_str", edit(lambda r: p(r)["metrics"].update(acc="x"))),
        ("value_str", edit(lambda r: p(r)["metrics"]["acc"].update(value="high"))),
        ("baseline_str", edit(lambda r: p(r).update(random_baseline="x"))),
        ("n_str", edit(lambda r: p(r).update(n="many"))),
        ("spec_str", edit(lambda r: t(r).update(spec="x"))),
        ("samples_int", edit(lambda r: t(r).update(samples_file=5))),
        ("config_str", edit(lambda r: r.update(config="x"))),
        ("command_int", edit(lambda r: r.update(command=5))),
        ("backend_str", edit(lambda r: r["model"].update(backend="x"))),
        ("step_str", edit(lambda r: r["model"].update(series="s", step="x"))),
    ]


def test_malformed_results_files_are_skipped_and_listed(one_result: Path, tmp_path: Path) -> None:
    rec = json.loads(one_result.read_text(encoding="utf-8"))
    bad = tmp_path / "r"
    bad.mkdir()
    for name, r in _malformed(rec):
        (bad / f"results_{name}.json").write_text(json.dumps(r), encoding="utf-8")
    good = _variant(one_result, bad, "good-model")
    lb = tmp_path / "lb.yaml"
    lb.write_text("leaderboard: t\nbootstrap: 0\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["leaderboard", "build", str(lb), "--results", str(bad), "--out", str(tmp_path / "site")])
    assert res.exit_code == 0, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    # a wrong required field skips the file (listed); a wrong optional one is read as absent (the record reader's rule)
    tolerated = {"baseline_str", "spec_str", "config_str", "command_int", "backend_str", "step_str"}
    unlisted = [name for name, _r in _malformed(rec) if name not in tolerated and f"results_{name}.json" not in res.output]
    assert not unlisted, (unlisted, res.output)
    assert good.name not in res.output


def test_signal_and_track_ignore_a_results_file_with_a_string_model(one_result: Path, tmp_path: Path) -> None:
    series = tmp_path / "series" / "checkpoint-10"
    series.mkdir(parents=True)
    (series / "config.json").write_text("{}", encoding="utf-8")
    out = tmp_path / "out" / "m"
    out.mkdir(parents=True)
    rec = json.loads(one_result.read_text(encoding="utf-8"))
    for name, r in _malformed(rec):
        (out / f"results_{name}.json").write_text(json.dumps(r), encoding="utf-8")
    sig = cli(["signal", str(tmp_path / "series"), "--results", str(tmp_path / "out")])
    assert sig.exception is None or isinstance(sig.exception, SystemExit), sig.exception
    assert "no results for this series yet" in sig.output
    tr = cli(["track", str(tmp_path / "series"), "--tasks", "demo_sentiment_ar", "--limit", "2", "--backend", "fake",
              "-o", str(tmp_path / "out")])
    assert tr.exit_code == 0 and "evaluated 1" in tr.output, (tr.output, tr.exception)


def test_multi_character_delimiter_fails_validate(tmp_path: Path) -> None:
    task = write_task(tmp_path / "t", data="  local:\n    path: data.csv\n    delimiter: \"ab\"", rows=False)
    res = cli(["validate", str(task)])
    assert res.exit_code == 2 and "data.local.delimiter" in res.output and "hostile_mc.yaml:" in res.output, res.output


def test_failing_cache_falls_back_and_full_output_is_a_clear_error(tmp_path: Path) -> None:
    """A file size limit (as a full disk) in a subprocess: the cache fails first and the run goes on without it
    (warning); with a smaller limit the results cannot be written: one clear line, exit 1, no traceback."""
    import resource
    import signal

    def limit(n: int):
        def f() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing us
            resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
        return f

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "evalsuite", "run", "--backend", "fake", "--model", "m", "--tasks", "demo_sentiment_ar",
            "--limit", "3", "--prompts", "native", "-q"]
    p = subprocess.run(base + ["-o", str(tmp_path / "o1"), "--cache-dir", str(tmp_path / "c")], preexec_fn=limit(12_000),
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "request cache" in p.stderr and "continuing without it" in p.stderr and "Traceback" not in p.stderr
    rec = json.loads(Path(p.stdout.strip().splitlines()[-1]).read_text(encoding="utf-8"))
    assert rec["timings"]["cache"]["failed"]
    p = subprocess.run(base + ["-o", str(tmp_path / "o2"), "--no-cache"], preexec_fn=limit(2_000),
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    assert p.stderr.startswith("error: cannot write results under") and "Traceback" not in p.stderr, p.stderr


def test_unwritable_output_found_before_compute(tmp_path: Path) -> None:
    from evalsuite.backends.fake import FakeBackend
    from evalsuite.core.errors import UsageError
    from evalsuite.runner import RunConfig, run

    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    backend = FakeBackend(seed="m")
    with pytest.raises(UsageError, match="--output"):
        run(RunConfig(model="m", tasks="demo_sentiment_ar", backend="fake", output=blocker / "results"), backend=backend,
            progress=False)
    assert backend.calls == 0, "the model computed before the output folder was checked"


def test_read_only_output_folder_as_non_root_user(tmp_path: Path) -> None:
    """As uid 65534 (CI runs as root, where permissions do not stop writes). The interpreter may live where
    that user cannot read, so the child imports evalsuite as root and then drops its privileges."""
    import tempfile

    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges to uid 65534")
    ro = Path(tempfile.mkdtemp(prefix="evalsuite-ro-"))
    try:
        os.chmod(ro, 0o755)  # owned by root: readable, not writable, by uid 65534
        # the CLI's own error path (_fail), after dropping privileges; click's lazy imports would need /root
        code = ("import os, sys, typer\n"
                "from pathlib import Path\n"
                "import evalsuite.cli, evalsuite.runner, evalsuite.backends.fake, evalsuite.scoring, tqdm\n"
                "from evalsuite.core.errors import EvalsuiteError\n"
                f"cfg = evalsuite.runner.RunConfig(model='m', tasks='demo_sentiment_ar', backend='fake', use_cache=False,"
                f" output=Path({str(ro / 'warm')!r}))\n"
                "evalsuite.runner.run(cfg, progress=False)  # as root: every lazy import happens now\n"
                "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
                f"cfg.output = Path({str(ro / 'results')!r})\n"
                "try:\n"
                "    evalsuite.runner.run(cfg, progress=False)\n"
                "except EvalsuiteError as e:\n"
                "    try:\n"
                "        evalsuite.cli._fail(e)\n"
                "    except typer.Exit as x:\n"
                "        sys.exit(x.exit_code)\n")
        p = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd="/",
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 2, p.stderr
        assert "--output" in p.stderr and "Permission denied" in p.stderr and "Traceback" not in p.stderr, p.stderr
    finally:
        import shutil

        shutil.rmtree(ro, ignore_errors=True)


def test_device_meta_is_a_clear_error(tmp_path: Path) -> None:
    m = tmp_path / "model"
    m.mkdir()
    (m / "config.json").write_text("{}", encoding="utf-8")
    res = cli(["run", "--backend", "hf", "--device", "meta", "--model", str(m), "--tasks", "demo_sentiment_ar",
               "-o", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 2 and "--device meta" in res.output, (res.output, res.exception)


def test_leaderboard_build_with_missing_results_folder(tmp_path: Path) -> None:
    lb = tmp_path / "lb.yaml"
    lb.write_text("leaderboard: t\n", encoding="utf-8")
    res = cli(["leaderboard", "build", str(lb), "--results", str(tmp_path / "nonexistent"), "--out", str(tmp_path / "site")])
    assert res.exit_code == 2 and "nonexistent" in res.output
    assert not (tmp_path / "site").exists()


def test_misspelled_prompt_id_is_an_error_with_suggestion(tmp_path: Path) -> None:
    res = cli(["run", "--backend", "fake", "--model", "m", "--tasks", "demo_sentiment_ar", "--prompts", "native,nativ",
               "-o", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 2 and "did you mean native" in res.output, res.output


def test_orphan_temp_files_cleaned_on_next_run(tmp_path: Path) -> None:
    import socket

    from evalsuite.checkpoint import output_folder_name

    out = tmp_path / "out" / output_folder_name("m", "fake-m")
    out.mkdir(parents=True)
    # a writer killed mid-write: this host, a pid that no longer exists
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())[:40]
    orphan = out / f".samples_demo_sentiment_ar_0123456789ab.jsonl.{host}-{dead.pid}.k3j2h1.tmp"
    orphan.write_text("half a line", encoding="utf-8")
    old = out / ".results_2020.json.q8w7e6.tmp"  # written before names carried a pid: cleaned once a day old
    old.write_text("{", encoding="utf-8")
    os.utime(old, (time.time() - 3 * 86400, time.time() - 3 * 86400))
    live = out / f".samples_x.jsonl.{host}-{os.getpid()}.abcdef.tmp"  # a write in progress: kept
    live.write_text("", encoding="utf-8")
    res = cli(["run", "--backend", "fake", "--model", "m", "--tasks", "demo_sentiment_ar", "--limit", "2",
               "-o", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 0, res.output
    assert not orphan.exists() and not old.exists() and live.exists()


def test_constant_template_bomb_fails_validate(tmp_path: Path) -> None:
    task = write_task(tmp_path / "t", text=TEMPLATE_BOMBS["multiply"])
    code, err, seconds, peak = _measured(["validate", str(task)], tmp_path)
    assert code == 2 and "prompts.0.doc_to_text" in err and "refused by the sandbox" in err, err
    assert seconds <= 5 and peak <= 500, (seconds, peak)
