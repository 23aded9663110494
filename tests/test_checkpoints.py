"""Issue 17: checkpoints as training runs leave them (no tokenizer files, native layouts) and readable names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalsuite.cli import app

TASK = ["--tasks", "demo_sentiment_ar", "--limit", "3", "--device", "cpu", "-q"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's tiny byte-level BPE (trained locally), saved alone."""
    from evalsuite.tiny import build_tiny_model

    built = build_tiny_model(tmp_path_factory.mktemp("tok") / "m", steps=0)
    out = tmp_path_factory.mktemp("tokenizer")
    for f in built.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens")):
            shutil.copy(f, out / f.name)
    return out


def _vocab(tokenizer_dir: Path) -> int:
    return len(json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]) + 8


def _save_qwen2(folder: Path, vocab: int, seed: int) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)).save_pretrained(folder)


def _save_gpt2(folder: Path, vocab: int, seed: int) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=256,
                               bos_token_id=1, eos_token_id=2)).save_pretrained(folder)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    """A new user's runs: a Qwen2 series and a GPT-2 checkpoint, saved WITHOUT tokenizer files;
    the tokenizer was saved once at each run's root."""
    root = tmp_path_factory.mktemp("user") / "runs"
    vocab = _vocab(tokenizer_dir)
    for run_name in ("my-qwen2", "my-gpt2"):
        (root / run_name).mkdir(parents=True)
        for f in tokenizer_dir.iterdir():
            shutil.copy(f, root / run_name / f.name)
    _save_qwen2(root / "my-qwen2" / "checkpoint-100", vocab, 1)
    _save_qwen2(root / "my-qwen2" / "checkpoint-200", vocab, 2)
    _save_gpt2(root / "my-gpt2" / "checkpoint-50", vocab, 3)
    for ck in root.glob("*/checkpoint-*"):
        assert not any((ck / n).exists() for n in TOKENIZER_FILES)
    return root


def _results(out: Path) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("*/results_*.json"))]


def test_track_uses_the_tokenizer_at_the_run_root(runs: Path, tmp_path: Path, tokenizer_dir: Path):
    out = tmp_path / "results"
    res = CliRunner().invoke(app, ["track", str(runs / "my-qwen2"), "-o", str(out), *TASK])
    assert res.exit_code == 0, res.output
    assert "has no tokenizer files; using the one in" in res.output and str((runs / "my-qwen2").resolve()) in res.output
    recs = _results(out)
    assert len(recs) == 2
    for rec in recs:
        tok = rec["model"]["tokenizer"]
        assert tok["found"] == "parent" and Path(tok["source"]) == (runs / "my-qwen2").resolve()
        assert tok["fingerprint"].startswith("sha256:")
        assert rec["model"]["backend"]["tokenizer"] == tok["fingerprint"]  # keys the cache and the run key
        assert rec["tasks"]["demo_sentiment_ar"]["prompts"]  # really scored
    assert sorted(r["model"]["display_name"] for r in recs) == ["my-qwen2 step 100", "my-qwen2 step 200"]
    # one folder per model (beside evalsuite's own fingerprint memos, which let status and sweeps skip hashing)
    folders = sorted(p.name for p in out.iterdir() if p.is_dir() and p.name != "fingerprints")
    assert len(folders) == 2 and all(f.startswith(("my-qwen2-step-100-", "my-qwen2-step-200-")) for f in folders)
    # up to date: no model is loaded
    again = CliRunner().invoke(app, ["track", str(runs / "my-qwen2"), "-o", str(out), *TASK])
    assert again.exit_code == 0 and "evaluated 0, up to date 2" in again.output, again.output
    # another tokenizer makes the series out of date, and its responses live in another cache namespace
    other = tmp_path / "other-tok"
    shutil.copytree(runs / "my-qwen2", other, ignore=shutil.ignore_patterns("checkpoint-*"))
    cfg = json.loads((other / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg["model_max_length"] = 123
    (other / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    third = CliRunner().invoke(app, ["track", str(runs / "my-qwen2"), "-o", str(out), "--tokenizer", str(other), *TASK])
    assert third.exit_code == 0 and "evaluated 2, up to date 0" in third.output, third.output
    spaces = {r["timings"]["cache"]["namespace"] for r in _results(out)}
    assert len(spaces) == 4
    assert {r["model"]["tokenizer"]["found"] for r in _results(out)} == {"parent", "option"}


def test_run_gpt2_checkpoint_finds_tokenizer_in_parent_and_is_named_stably(runs: Path, tmp_path: Path, monkeypatch):
    out = tmp_path / "results"
    monkeypatch.chdir(runs)
    res = CliRunner().invoke(app, ["run", "--model", "my-gpt2/checkpoint-50", "-o", str(out), *TASK])
    assert res.exit_code == 0, res.output
    (rec,) = _results(out)
    assert rec["model"]["tokenizer"]["found"] == "parent"
    assert rec["model"]["name"] == "my-gpt2/checkpoint-50" and rec["model"]["display_name"] == "my-gpt2 step 50"
    # the same model run from another folder: same readable output folder
    monkeypatch.chdir(runs / "my-gpt2")
    res = CliRunner().invoke(app, ["run", "--model", "./checkpoint-50", "-o", str(out), *TASK])
    assert res.exit_code == 0, res.output
    assert len([p for p in out.iterdir() if p.is_dir()]) == 1
    assert {r["model"]["display_name"] for r in _results(out)} == {"my-gpt2 step 50"}
    # --name wins
    res = CliRunner().invoke(app, ["run", "--model", "./checkpoint-50", "--name", "GPT-2 tiny (ours)", "-o", str(out), *TASK])
    assert res.exit_code == 0, res.output
    assert any(p.name.startswith("GPT-2-tiny-ours-") for p in out.iterdir())


def test_no_tokenizer_anywhere_is_a_clear_error(runs: Path, tmp_path: Path):
    lone = tmp_path / "exp9" / "checkpoint-7"
    shutil.copytree(runs / "my-gpt2" / "checkpoint-50", lone)
    res = CliRunner().invoke(app, ["run", "--model", str(lone), "-o", str(tmp_path / "r"), *TASK])
    assert res.exit_code == 2, res.output
    assert "no tokenizer files" in res.output and "--tokenizer PATH_OR_ID" in res.output and str(lone) in res.output
    assert "Traceback" not in res.output


def test_tokenizer_that_encodes_nothing_is_refused(runs: Path, tmp_path: Path):
    """transformers builds an empty tokenizer from a folder without tokenizer files; it is refused, not run."""
    ck = runs / "my-qwen2" / "checkpoint-100"
    res = CliRunner().invoke(app, ["run", "--model", str(ck), "--tokenizer", str(ck), "-o", str(tmp_path / "r"), "--no-cache", *TASK])
    assert res.exit_code == 2, res.output
    assert "to no tokens" in res.output and str(ck) in res.output and "--tokenizer" in res.output
    assert "bad scoring item" not in res.output and "Traceback" not in res.output


def test_display_names_in_the_leaderboard(runs: Path, tmp_path: Path):
    out = tmp_path / "results"
    res = CliRunner().invoke(app, ["track", str(runs / "my-qwen2"), "--name", "qwen-exp", "-o", str(out), *TASK])
    assert res.exit_code == 0, res.output
    lb = tmp_path / "lb.yaml"
    lb.write_text("leaderboard: mine\ntitle: Mine\nbootstrap: 0\ndisplay_names:\n  'qwen-exp step 200': Qwen2 final\n",
                  encoding="utf-8")
    res = CliRunner().invoke(app, ["leaderboard", "build", str(lb), "-r", str(out), "-o", str(tmp_path / "site")])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "qwen-exp step 100" in html and "Qwen2 final" in html
    assert "qwen-exp step 200" not in html and str(runs) not in html


def test_output_folder_names_are_distinct_under_long_paths():
    from evalsuite.checkpoint import output_folder_name

    long = "a-very-long-experiment-name-" * 4
    a = output_folder_name(f"{long} step 1000", "sha256:" + "1" * 32)
    b = output_folder_name(f"{long} step 2000", "sha256:" + "2" * 32)
    assert a != b and len(a) <= 69
    assert output_folder_name("org/model", "hub:org/model@default") == output_folder_name("org/model", "hub:org/model@default")


def _touch(path: Path, data: bytes = b"\0" * 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.mark.parametrize("layout, files, model_sub, words", [
    ("deepspeed", ["latest", "global_step10/mp_rank_00_model_states.pt", "global_step10/zero_pp_rank_0_mp_rank_00_optim_states.pt"],
     "global_step10", ["DeepSpeed", "mp_rank_00_model_states.pt", "zero_to_fp32.py", "config.json"]),
    ("megatron", ["latest_checkpointed_iteration.txt", "iter_0000100/mp_rank_00/model_optim_rng.pt"],
     "iter_0000100", ["Megatron-LM", "mp_rank_00/model_optim_rng.pt", "convert.py"]),
    ("dcp", ["step-5/__0_0.distcp", "step-5/.metadata"], "step-5", ["torch distributed checkpoint", "__0_0.distcp", "dcp_to_torch"]),
    ("bare", ["checkpoint-3/model.safetensors"], "checkpoint-3", ["model.safetensors but no config.json", "save_pretrained"]),
])
def test_native_training_checkpoints_get_a_clear_error(tmp_path: Path, layout, files, model_sub, words):
    root = tmp_path / layout
    for f in files:
        _touch(root / f)
    for cmd in (["run", "--model", str(root / model_sub)], ["track", str(root)]):
        res = CliRunner().invoke(app, [*cmd, "-o", str(tmp_path / "r"), *TASK])
        assert res.exit_code == 2, (cmd, res.output)
        assert all(w in res.output for w in words), (cmd, res.output)
        assert "Traceback" not in res.output and "Error:" not in res.output
