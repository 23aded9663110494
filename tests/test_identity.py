"""Issue 16, "nothing stale": what identifies a model, its data and the code that scored it.

Each test reproduces one way a result could be served from stale identity (or overwrite
another run's files) and fails on the code before the fix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from evalsuite.runner import RunConfig, run

MC_TASK = """\
task: {name}
title: Identity test task
category: test
languages: [arb_Arab]
output_type: multiple_choice
data:
  local:
    path: data.jsonl
example_id: "{{{{ id }}}}"
labels: [pos, neg]
doc_to_target: "{{{{ label }}}}"
prompts:
  - id: p1
    doc_to_text: "{{{{ text }}}}?"
    doc_to_choice: ["yes", "no"]
metrics: [acc]
"""


def write_task(folder: Path, name: str = "ident_mc", labels: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(MC_TASK.format(name=name), encoding="utf-8")
    labels = labels or ["pos", "neg"] * 10
    rows = [{"id": f"e{i}", "text": f"sentence number {i}", "label": lab} for i, lab in enumerate(labels)]
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder / f"{name}.yaml"


def fake_cfg(task_file: Path, out: Path, **kw) -> RunConfig:
    return RunConfig(model="fake-model", tasks=str(task_file), output=out, backend="fake", **kw)


# ---------------------------------------------------------------- item 5: data edited in place

def test_data_edit_changes_run_key_and_never_overwrites_samples(tmp_path: Path) -> None:
    task = write_task(tmp_path / "t")
    out = tmp_path / "out"
    first = run(fake_cfg(task, out), progress=False)
    t1 = first.record.to_dict()["tasks"]["ident_mc"]
    samples1 = first.results_path.parent / t1["samples_file"]
    before = samples1.read_bytes()
    assert t1["data_digest"].startswith("sha256:")
    assert first.record.to_dict()["scoring_version"]
    # edit the data in place: every gold label flips
    write_task(tmp_path / "t", labels=["neg", "pos"] * 10)
    second = run(fake_cfg(task, out), progress=False)
    t2 = second.record.to_dict()["tasks"]["ident_mc"]
    assert t2["data_digest"] != t1["data_digest"]
    assert t2["samples_file"] != t1["samples_file"], "a different run must not reuse the samples file name"
    assert samples1.read_bytes() == before, "the first run's samples were overwritten"
    acc = lambda rec: rec["tasks"]["ident_mc"]["prompts"]["p1"]["metrics"]["acc"]["value"]
    assert acc(first.record.to_dict()) + acc(second.record.to_dict()) == pytest.approx(100.0)  # labels flipped, two choices


def test_track_reruns_after_data_edit(tmp_path: Path) -> None:
    from evalsuite.series import discover
    from evalsuite.track import track

    task = write_task(tmp_path / "t")
    cp = tmp_path / "series" / "checkpoint-100"
    cp.mkdir(parents=True)
    (cp / "config.json").write_text("{}", encoding="utf-8")
    base = RunConfig(model="-", tasks="ident_mc", include=[task.parent], output=tmp_path / "out", backend="fake")
    first = track(discover(str(tmp_path / "series")), base)
    assert first.evaluated == ["checkpoint-100"]
    again = track(discover(str(tmp_path / "series")), base)
    assert again.reused == ["checkpoint-100"] and not again.evaluated
    write_task(tmp_path / "t", labels=["neg", "pos"] * 10)
    third = track(discover(str(tmp_path / "series")), base)
    assert third.evaluated == ["checkpoint-100"], "track said 'up to date' after the data changed"


def test_track_reruns_after_scoring_version_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import evalsuite.track as track_mod
    from evalsuite.series import discover

    task = write_task(tmp_path / "t")
    cp = tmp_path / "series" / "checkpoint-100"
    cp.mkdir(parents=True)
    (cp / "config.json").write_text("{}", encoding="utf-8")
    base = RunConfig(model="-", tasks="ident_mc", include=[task.parent], output=tmp_path / "out", backend="fake")
    assert track_mod.track(discover(str(tmp_path / "series")), base).evaluated == ["checkpoint-100"]
    monkeypatch.setattr(track_mod, "SCORING_VERSION", "999")
    assert track_mod.track(discover(str(tmp_path / "series")), base).evaluated == ["checkpoint-100"]


# ---------------------------------------------------------------- item 6: --include shadowing a shipped task

def _cli(args: list[str]):
    from typer.testing import CliRunner

    from evalsuite.cli import app

    return CliRunner().invoke(app, args)


def test_include_shadowing_shipped_task_is_an_error_naming_both_files(tmp_path: Path) -> None:
    inc = tmp_path / "mine"
    write_task(inc, name="demo_sentiment_ar")
    out = tmp_path / "out"
    res = _cli(["run", "--backend", "fake", "--model", "m", "--tasks", "demo_sentiment_ar", "--include", str(inc),
                "-o", str(out), "-q"])
    assert res.exit_code == 2, res.output
    assert "demo_sentiment_ar.yaml" in res.output and "demo/demo_sentiment_ar.yaml" in res.output
    assert "--override-tasks" in res.output
    assert not out.exists(), "nothing may be written for a refused run"
    val = _cli(["validate", str(inc)])
    assert val.exit_code == 2 and "shadows the shipped task" in val.output


def test_override_flag_records_override_and_task_file_digest(tmp_path: Path) -> None:
    import hashlib

    inc = tmp_path / "mine"
    f = write_task(inc, name="demo_sentiment_ar")
    res = _cli(["run", "--backend", "fake", "--model", "m", "--tasks", "demo_sentiment_ar", "--include", str(inc),
                "--override-tasks", "-o", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 0, res.output
    rec = json.loads(Path(res.output.strip().splitlines()[-1]).read_text(encoding="utf-8"))
    t = rec["tasks"]["demo_sentiment_ar"]
    assert t["overrides_shipped"].endswith("demo/demo_sentiment_ar.yaml")
    assert t["task_file_digest"] == "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest()[:32]
    assert t["n_examples"] == 20  # the included file's data, not the shipped 24 reviews


def test_missing_include_folder_is_an_error(tmp_path: Path) -> None:
    res = _cli(["run", "--backend", "fake", "--model", "m", "--tasks", "demo_sentiment_ar", "--include",
                str(tmp_path / "nope"), "-o", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 2 and "no such file or folder" in res.output


# ---------------------------------------------------------------- items 1-4: model identity

def _blob_snapshot(repo: Path, commit: str, src: Path, perturb: float = 0.0) -> None:
    """Lay ``src``'s files out as the hub cache does: blobs/<sha256> and snapshots/<commit>/<name> -> blob."""
    import hashlib

    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for f in sorted(src.iterdir()):
        if not f.is_file():
            continue
        data = f.read_bytes()
        if perturb and f.name == "model.safetensors":
            from safetensors.torch import load_file, save

            tensors = load_file(str(f))
            tensors = {k: (v + perturb) if v.is_floating_point() else v for k, v in tensors.items()}
            data = save(tensors)
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / f.name).symlink_to(os.path.relpath(blob, snap))


@pytest.fixture
def hub_cache(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hub cache with org/tiny at two commits (the second with other weights); refs/main names the first."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "hub" / "models--org--tiny"
    _blob_snapshot(repo, "a" * 40, tiny_model)
    _blob_snapshot(repo, "b" * 40, tiny_model, perturb=0.05)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40, encoding="utf-8")
    return repo


def _hf_cfg(out: Path, cache: Path, **kw) -> RunConfig:
    return RunConfig(model="org/tiny", tasks="demo_sentiment_ar", limit=4, prompts=["native"], output=out,
                     backend="hf", device="cpu", cache_dir=cache, **kw)


def test_hub_revision_resolved_to_loaded_commit(hub_cache: Path, tmp_path: Path) -> None:
    first = run(_hf_cfg(tmp_path / "out", tmp_path / "cache"), progress=False)
    assert first.record.to_dict()["model"]["hub"] == {"repo_id": "org/tiny", "revision": "main", "commit": "a" * 40}
    assert first.record.to_dict()["model"]["fingerprint"].startswith("sha256:")
    again = run(_hf_cfg(tmp_path / "out", tmp_path / "cache"), progress=False)
    assert again.record.to_dict()["timings"]["cache"]["computed"] == 0 and not again.record.to_dict()["timings"]["model_loaded"]
    # the hub repo moves to new weights under the same id
    (hub_cache / "refs" / "main").write_text("b" * 40, encoding="utf-8")
    second = run(_hf_cfg(tmp_path / "out", tmp_path / "cache"), progress=False)
    assert second.record.to_dict()["model"]["hub"]["commit"] == "b" * 40
    assert second.record.to_dict()["model"]["fingerprint"] != first.record.to_dict()["model"]["fingerprint"]
    assert second.record.to_dict()["timings"]["cache"]["hits"] == 0, "new weights were served from the old weights' cache"
    ll = lambda r: [json.loads(x)["requests"][0]["loglikelihood"]
                    for x in (r.results_path.parent / r.record.to_dict()["tasks"]["demo_sentiment_ar"]["samples_file"]).read_text().splitlines()]
    assert ll(first) != ll(second)


def test_hub_effective_max_length_keys_the_cache(hub_cache: Path, tmp_path: Path) -> None:
    from evalsuite.cache import namespace
    from evalsuite.runner import backend_identity

    for commit in ("a" * 40, "b" * 40):  # a model whose real context is 64 tokens
        cfg_file = hub_cache / "snapshots" / commit / "config.json"
        conf = json.loads(cfg_file.read_text(encoding="utf-8"))
        conf["max_position_embeddings"] = 64
        cfg_file.unlink()
        cfg_file.write_text(json.dumps(conf), encoding="utf-8")
    default = backend_identity(_hf_cfg(tmp_path / "o", tmp_path / "c"))
    explicit = backend_identity(_hf_cfg(tmp_path / "o", tmp_path / "c", max_length=2048))
    assert default["max_length"] == 64 and explicit["max_length"] == 2048
    assert namespace(default) != namespace(explicit)


def test_remote_code_files_belong_to_the_fingerprint(tmp_path: Path) -> None:
    from evalsuite.fingerprint import fingerprint

    m = tmp_path / "m"
    m.mkdir()
    (m / "config.json").write_text('{"auto_map": {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}}', encoding="utf-8")
    (m / "model.safetensors").write_bytes(b"0" * 64)
    (m / "modeling_x.py").write_text("SCALE = 1.0\n", encoding="utf-8")
    before = fingerprint(str(m))
    (m / "modeling_x.py").write_text("SCALE = 2.0\n", encoding="utf-8")
    assert fingerprint(str(m)) != before


def test_in_place_change_keeping_size_and_mtime_is_noticed(tmp_path: Path) -> None:
    from evalsuite.fingerprint import fingerprint

    m = tmp_path / "m"
    m.mkdir()
    (m / "config.json").write_text("{}", encoding="utf-8")
    w = m / "model.safetensors"
    w.write_bytes(b"A" * 4096)
    st = w.stat()
    before = fingerprint(str(m))
    # as cp -p / rsync -a do: new contents, same size, the old mtime put back
    with open(w, "r+b") as f:
        f.write(b"B" * 4096)
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert w.stat().st_size == st.st_size and w.stat().st_mtime_ns == st.st_mtime_ns
    assert fingerprint(str(m)) != before


# ---------------------------------------------------------------- item 7: --dtype auto means the same on every backend

def _model_dir(tmp_path: Path, torch_dtype: str | None) -> Path:
    m = tmp_path / f"m-{torch_dtype}"
    m.mkdir()
    conf = {"architectures": ["LlamaForCausalLM"], "max_position_embeddings": 128}
    if torch_dtype:
        conf["torch_dtype"] = torch_dtype
    (m / "config.json").write_text(json.dumps(conf), encoding="utf-8")
    return m


def test_dtype_auto_resolution_is_shared(tmp_path: Path) -> None:
    from evalsuite.backends.dtypes import resolve_dtype

    bf16 = str(_model_dir(tmp_path, "bfloat16"))
    f16 = str(_model_dir(tmp_path, "float16"))
    plain = str(_model_dir(tmp_path, None))
    assert resolve_dtype("auto", "cpu", bf16) == "float32"
    assert resolve_dtype("auto", "gpu", bf16) == "bfloat16"
    assert resolve_dtype("auto", "gpu", f16) == "float16"
    assert resolve_dtype("auto", "gpu", plain) == "float32"
    assert resolve_dtype("bf16", "cpu", plain) == "bfloat16"
    with pytest.raises(Exception, match="unknown --dtype"):
        resolve_dtype("int3", "cpu", plain)


def test_dtype_auto_recorded_and_keyed_as_run_by_both_backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a GPU both backends run float32 for auto; with one (simulated) both run the checkpoint's dtype.
    The vllm identity is computed without vllm installed: it is what would key the cache and be recorded."""
    import torch

    from evalsuite.backends.hf import HFOptions, static_identity
    from evalsuite.backends.vllm import VLLMOptions, _identity

    m = str(_model_dir(tmp_path, "bfloat16"))
    for gpu, want in ((False, "float32"), (True, "bfloat16")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda gpu=gpu: gpu)
        hf = static_identity(m, HFOptions(device="auto", dtype="auto"), "fp")
        vl = _identity(m, "fp", VLLMOptions(dtype="auto"), None)
        assert hf["dtype"] == vl["dtype"] == want, (gpu, hf["dtype"], vl["dtype"])


def test_hf_run_records_the_real_dtype(tiny_model: Path, tmp_path: Path) -> None:
    res = run(RunConfig(model=str(tiny_model), tasks="demo_sentiment_ar", limit=2, prompts=["native"], backend="hf",
                        device="cpu", dtype="auto", output=tmp_path / "out", cache_dir=tmp_path / "c"), progress=False)
    assert res.record.to_dict()["model"]["backend"]["dtype"] == "float32"
