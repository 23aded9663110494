"""The command line end to end with the fake backend, and the results files it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from evalsuite.cli import app
from evalsuite.store import SCHEMA

runner = CliRunner()


def _run(args: list[str]):
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return res


def test_run_writes_results_and_samples(tmp_path: Path):
    res = _run(["run", "--backend", "fake", "--model", "fake-model", "--suite", "demo", "-o", str(tmp_path), "-q"])
    last = res.output.strip().splitlines()[-1]
    path = Path(last)
    assert path.exists() and path.name.startswith("results_") and path.suffix == ".json"
    rec = json.loads(path.read_text(encoding="utf-8"))
    assert rec["schema"] == SCHEMA
    assert set(rec["tasks"]) == {"demo_sentiment_ar", "demo_lastword_ar", "demo_phrases_ar", "demo_bpb_ar"}
    t = rec["tasks"]["demo_sentiment_ar"]
    assert set(t["prompts"]) == {"native", "native_short", "en_instruct"}
    assert t["prompts"]["native"]["n"] == 24
    assert t["prompts"]["native"]["metrics"]["acc"]["baseline"] == 50.0  # balanced two-way task: 50 by every candidate
    assert t["aggregate"]["metric"] == "acc" and set(t["aggregate"]["headlines"]) == {"max", "median", "mean"}
    assert len(t["spec_hash"]) == 16 and t["spec"]["task"] == "demo_sentiment_ar"
    assert rec["model"]["fingerprint"] == "fake-fake-model"
    assert "python" in rec["versions"] and rec["timings"]["unique_requests"] > 0
    samples = [json.loads(x) for x in (path.parent / t["samples_file"]).read_text(encoding="utf-8").splitlines()]
    assert len(samples) == 24 * 3
    s = samples[0]
    for key in ("task", "prompt_id", "example_id", "target", "requests", "metrics", "prediction"):
        assert key in s
    assert {"context", "continuation", "loglikelihood", "is_greedy"} <= set(s["requests"][0])
    # the per-sample metric values average to the reported score
    for pid, p in t["prompts"].items():
        vals = [x["metrics"]["acc"] for x in samples if x["prompt_id"] == pid]
        assert abs(sum(vals) / len(vals) - p["metrics"]["acc"]["value"]) < 1e-9
    gen = [json.loads(x) for x in (path.parent / rec["tasks"]["demo_phrases_ar"]["samples_file"]).read_text(encoding="utf-8").splitlines()]
    assert "generation" in gen[0]["requests"][0] and "prediction" in gen[0]


def test_identical_requests_are_computed_once(tmp_path: Path):
    from evalsuite.backends.fake import FakeBackend
    from evalsuite.runner import RunConfig, run

    fb = FakeBackend()
    # the same task twice (as a name and as a file) creates identical requests
    task_file = Path(__file__).resolve().parents[1] / "tasks" / "demo" / "demo_sentiment_ar.yaml"
    other = tmp_path / "copy.yaml"
    other.write_text(task_file.read_text(encoding="utf-8").replace("task: demo_sentiment_ar", "task: demo_sentiment_copy"),
                     encoding="utf-8")
    (tmp_path / "data").symlink_to(task_file.parent / "data")
    one = run(RunConfig(model="m", tasks="demo_sentiment_ar", output=tmp_path / "o1", use_cache=False), backend=FakeBackend(),
              progress=False)
    r = run(RunConfig(model="m", tasks=f"demo_sentiment_ar,{other}", output=tmp_path / "o", use_cache=False), backend=fb,
            progress=False)
    assert r.record.timings["requests"] == 2 * one.record.timings["requests"]
    assert r.record.timings["unique_requests"] == one.record.timings["unique_requests"]
    assert len(fb.seen) == len(set(fb.seen)) == r.record.timings["unique_requests"]


def test_limit_prompts_and_shots(tmp_path: Path):
    res = _run(["run", "--backend", "fake", "--model", "m", "--tasks", "demo_sentiment_ar", "--limit", "5",
                "--prompts", "native", "--shots", "2", "--seed", "7", "-o", str(tmp_path), "-q"])
    rec = json.loads(Path(res.output.strip().splitlines()[-1]).read_text(encoding="utf-8"))
    t = rec["tasks"]["demo_sentiment_ar"]
    assert list(t["prompts"]) == ["native"] and t["prompts"]["native"]["n"] == 5
    samples = [json.loads(x) for x in (Path(res.output.strip().splitlines()[-1]).parent / t["samples_file"]).read_text(encoding="utf-8").splitlines()]
    ctx = samples[0]["requests"][0]["context"]
    assert ctx.count("الجواب:") == 3  # two shots + the example


def test_tasks_list_and_show_json():
    res = _run(["tasks", "list", "--json"])
    data = json.loads(res.output)
    names = {t["name"] for t in data["tasks"]}
    assert {"xnli_ar", "demo_sentiment_ar"} <= names
    x = next(t for t in data["tasks"] if t["name"] == "xnli_ar")
    assert x["output_type"] == "multiple_choice" and "lmeval" in x["prompts"] and x["languages"] == ["arb_Arab"]
    assert x["data"]["hub"]["path"] == "facebook/xnli" and x["data"]["local"]["path"] == "XNLI/arabic_dev.tsv"
    show = json.loads(_run(["tasks", "show", "xnli_ar", "--json"]).output)
    assert show["metrics"][0] == "acc"
    bad = runner.invoke(app, ["tasks", "show", "xnli_arr"])
    assert bad.exit_code == 2 and "did you mean xnli_ar" in bad.output


def test_validate_shipped_tasks():
    res = _run(["validate"])
    assert res.output.startswith("ok:")


def test_usage_errors_exit_2(tmp_path: Path):
    r = runner.invoke(app, ["run", "--backend", "fake", "--model", "m", "-o", str(tmp_path)])
    assert r.exit_code == 2 and "exactly one of --suite" in r.output
    r = runner.invoke(app, ["run", "--backend", "fake", "--model", "m", "--suite", "nope", "-o", str(tmp_path)])
    assert r.exit_code == 2 and "unknown suite 'nope'" in r.output
    r = runner.invoke(app, ["run", "--backend", "fake", "--model", "m", "--tasks", "demo_sentiment_ar", "--prompts", "zzz", "-o", str(tmp_path)])
    assert r.exit_code == 2 and "native" in r.output


def test_bad_model_arguments_exit_2(tmp_path: Path):
    notmodel = tmp_path / "not-a-model"
    notmodel.mkdir()
    r = runner.invoke(app, ["run", "--model", str(notmodel), "--tasks", "demo_sentiment_ar", "-o", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 2 and "not a model folder" in r.output
    r = runner.invoke(app, ["run", "--model", str(tmp_path / "missing"), "--tasks", "demo_sentiment_ar", "-o", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 2 and "no such model folder" in r.output


def test_offline_hub_task_fails_fast_with_a_local_hint(tmp_path: Path):
    r = runner.invoke(app, ["run", "--backend", "fake", "--model", "m", "--tasks", "xnli_ar", "-o", str(tmp_path), "-q"])
    assert r.exit_code == 2
    assert "facebook/xnli" in r.output and "--data-dir" in r.output and "XNLI/arabic_dev.tsv" in r.output


def test_import_and_help_load_no_heavy_modules():
    code = ("import sys, evalsuite.cli, evalsuite.runner; "
            "heavy = [m for m in ('torch', 'transformers', 'datasets', 'vllm', 'pandas', 'sacrebleu') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
