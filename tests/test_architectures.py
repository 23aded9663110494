"""Architecture matrix: every decoder family the hf backend accepts gives plain-forward numbers.

Tiny models (hidden 32-64, 2 layers, untrained but with a large ``initializer_range`` so logits
are far from uniform) are built from transformers configs, with attention windows shorter than
the test sequences. Each scores multiple-choice requests (prefix groups of different lengths,
each shared by several continuations, sequences longer than the window) through the hf backend
at several token budgets, and every request's log-likelihood is compared with one plain,
unbatched ``model(context + continuation)`` call.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from evalsuite.backends.hf import HFBackend, HFOptions
from evalsuite.core.records import GenerationParams, Request, RequestKind
from evalsuite.runner import compute

TOL = 1e-4
WINDOW = 8


def _common(tok: Any) -> dict[str, Any]:
    return dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id, tie_word_embeddings=False)


def _configs(tok: Any) -> dict[str, Any]:
    """name -> (config, engine expected after the fix)."""
    import transformers as tf

    c = _common(tok)
    llama_like = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=512, initializer_range=0.2)
    return {
        "llama": tf.LlamaConfig(**llama_like, **c),
        "mistral-window": tf.MistralConfig(**llama_like, sliding_window=WINDOW, **c),
        "qwen2-window": tf.Qwen2Config(**llama_like, use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1,
                                       **c),
        "mistral-window32": tf.MistralConfig(**llama_like, sliding_window=4 * WINDOW, **c),
        "starcoder2-window": tf.Starcoder2Config(**llama_like, sliding_window=WINDOW, **c),
        "gemma2": tf.Gemma2Config(**llama_like, head_dim=16, query_pre_attn_scalar=16, sliding_window=WINDOW,
                                  attn_logit_softcapping=50.0, final_logit_softcapping=30.0, **c),
        "gptneo-local": tf.GPTNeoConfig(hidden_size=64, num_layers=2, num_heads=4, attention_types=[[["global", "local"], 1]],
                                        window_size=WINDOW, max_position_embeddings=512, initializer_range=0.2, **c),
        "mpt-alibi": tf.MptConfig(d_model=64, n_heads=4, n_layers=2, expansion_ratio=2, max_seq_len=512,
                                  initializer_range=0.2, **c),
        "gpt2": tf.GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=512, initializer_range=0.2, **c),
        "bloom-alibi": tf.BloomConfig(hidden_size=64, n_layer=2, n_head=4, initializer_range=0.2, **c),
        "opt": tf.OPTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=128,
                            word_embed_proj_dim=64, max_position_embeddings=512, init_std=0.2, **c),
        "gptneox": tf.GPTNeoXConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                                    max_position_embeddings=512, initializer_range=0.2, **c),
        "falcon": tf.FalconConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_kv_heads=4,
                                  max_position_embeddings=512, initializer_range=0.2, **c),
    }


FAST = {"llama", "gpt2", "bloom-alibi", "opt", "gptneox", "falcon"}
"""Plain causal attention with positions from position ids: packed rows stay exact and are kept."""
SLOT = {"gptneo-local", "mpt-alibi"}
"""Attention that depends on the slot index in a row: no packing, one prefix group per batch."""
ARCHS = ["llama", "mistral-window", "qwen2-window", "starcoder2-window", "gemma2", "gptneo-local", "mpt-alibi",
         "gpt2", "bloom-alibi", "opt", "gptneox", "falcon"]
MODES = {"default": {}, "batch-1": {"batch_tokens": 1}, "batch-64": {"batch_tokens": 64},
         "batch-all": {"batch_tokens": 10**7}, "no-packing": {"packing": False},
         "short-rows": {"row_tokens": 24}}  # packed rows of 24 tokens: longer groups take the cache path


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from evalsuite.tiny import build_tokenizer, corpus

    return build_tokenizer(corpus(), vocab=400)


_MODELS: dict[str, Any] = {}


def build(name: str, tok: Any) -> Any:
    """The model of one row, built once per module (seeded)."""
    if name not in _MODELS:
        from transformers import AutoModelForCausalLM

        torch.manual_seed(0)
        _MODELS[name] = AutoModelForCausalLM.from_config(_configs(tok)[name], dtype=torch.float32).eval()
    return _MODELS[name]


def mc_requests() -> list[Request]:
    """Multiple-choice requests: prefix groups of 2 to ~70 tokens, each shared by 3-4 continuations
    of 1-12 tokens; some contexts share a long few-shot-like preamble."""
    from evalsuite.tiny import corpus

    lines = corpus()
    answers = [" نعم", " لا", " ربما", " يقرأ الطلاب الكتب في المكتبة"]
    preamble = "أجب عن السؤال بنعم أو لا أو ربما. " + lines[0] + " " + lines[1]
    reqs: list[Request] = []
    contexts = ["هل", lines[2][:20], lines[3], preamble + " سؤال: " + lines[4][:30], preamble + " سؤال: " + lines[5][:12],
                lines[6] + " " + lines[7], "The model is"]
    for ctx in contexts:
        for a in answers:
            reqs.append(Request(RequestKind.LOGLIKELIHOOD, ctx, a))
    reqs.append(Request(RequestKind.LOGLIKELIHOOD, "", " " + lines[8]))  # empty context: prefix token only
    return reqs


def reference(model: Any, items: list[Any]) -> list[float]:
    """One plain forward per item: no batching, no padding, no cache."""
    out = []
    for it in items:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([it.tokens[:-1]])).logits[0].float()
        lp = torch.log_softmax(logits, -1).gather(1, torch.tensor(it.tokens[1:])[:, None])[:, 0]
        out.append(float(lp[it.start - 1:].double().sum()))
    return out


_REFS: dict[str, list[float]] = {}


def worst_delta(name: str, tok: Any, mode: str) -> tuple[float, int, HFBackend]:
    """(max |delta| against the reference, how many requests are over TOL, the backend) for one row and mode."""
    model = build(name, tok)
    reqs = mc_requests()
    backend = HFBackend("x", HFOptions(device="cpu", dtype="float32", **MODES[mode]), model=model, tokenizer=tok)
    got = compute(backend, reqs)
    if name not in _REFS:
        _REFS[name] = reference(model, [e.item for e in backend.encoder.pairs([(r.context, r.continuation) for r in reqs])])
    ref = _REFS[name]
    deltas = [abs(got[r.id].loglikelihood - w) for r, w in zip(reqs, ref)]
    return max(deltas), sum(d > TOL for d in deltas), backend


def test_requests_are_longer_than_the_window(tok):
    from evalsuite.backends.base import PairEncoder

    enc = PairEncoder(tok, 512)
    lens = sorted(len(e.item.tokens) for e in enc.pairs([(r.context, r.continuation) for r in mc_requests()]))
    assert lens[0] <= WINDOW < 3 * WINDOW < lens[-1]


@pytest.mark.parametrize("name", ARCHS)
def test_logits_are_far_from_uniform(name, tok):
    """Errors cannot hide under the tolerance: log-probs spread over several nats."""
    model = build(name, tok)
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=torch.tensor([list(range(3, 40))])).logits[0].float(), -1)
    assert float((lp.max(-1).values - lp.min(-1).values).min()) > 2.0


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", ARCHS)
def test_loglikelihood_matches_plain_forward(name, mode, tok):
    worst, n_bad, backend = worst_delta(name, tok, mode)
    assert worst < TOL, f"{name} {mode}: max |delta| {worst:.3g} nats, {n_bad} requests over {TOL}"
    # plain causal and windowed rows keep packed rows; slot-index rows reuse one prefix at a time; BLOOM builds
    # ALiBi from a 2D mask, so it takes no tree mask and uses the (exact, multi-prefix) cache engine
    if name in SLOT:
        want = "prefix-cache-single"
    elif name == "bloom-alibi":
        want = "prefix-cache"
        assert "packed fails on this model (ValueError" in backend.engine_info["engine_reason"] or mode == "no-packing"
    elif mode == "no-packing":
        want = "prefix-cache" if name in FAST else "prefix-cache-single"
    else:
        want = "packed"
    assert backend.engine_info["engine"] == want, backend.engine_info


@pytest.mark.parametrize(("extra", "engine"), [
    ({}, "packed"),
    ({"sliding_window": 4096}, "packed"),
    ({"sliding_window": 4096, "use_sliding_window": False}, "packed"),  # Qwen2 checkpoints ship both
    ({"layer_types": ["full_attention", "full_attention"], "sliding_window": 8}, "packed"),
    ({"layer_types": ["sliding_attention", "full_attention"], "sliding_window": 8}, "packed"),
    ({"sliding_window": 4096, "model_type": "mpt"}, "prefix-cache-single"),
    ({"local_window": 128}, "plain"),  # a window evalsuite does not know: no reuse at all
    ({"attention_window": [64, 64]}, "plain"),
])
def test_engine_from_config(extra, engine):
    from evalsuite.backends.exactness import choose

    cfg = {"model_type": "llama", "num_hidden_layers": 2, "sliding_window": None, **extra}
    got = choose(cfg)
    assert got.engine == engine, got
    assert got.reason


def test_engine_from_config_for_known_families(tok):
    from evalsuite.backends.exactness import choose

    cfgs = _configs(tok)
    assert choose(cfgs["mpt-alibi"]).engine == "prefix-cache-single" and "ALiBi" in choose(cfgs["mpt-alibi"]).reason
    assert choose(cfgs["gptneo-local"]).window == WINDOW
    neo_global = _configs(tok)["gptneo-local"]
    neo_global.attention_layers = ["global", "global"]
    assert choose(neo_global).engine == "packed"
    assert choose(cfgs["gemma2"]).window == WINDOW
    assert choose(cfgs["bloom-alibi"]).engine == choose(cfgs["falcon"]).engine == "packed"
    assert choose(cfgs["mistral-window"], share_prefixes=False).engine == "plain"
    assert choose(cfgs["mistral-window"], packing=False).engine == "prefix-cache-single"


def test_unknown_window_key_runs_the_plain_engine_and_says_so(tok):
    """A config key with 'window' in its name that evalsuite does not know: no reuse, exact numbers, and the reason."""
    import copy

    model = copy.deepcopy(build("llama", tok))
    model.config.experimental_window = 16
    reqs = mc_requests()
    b = HFBackend("x", HFOptions(device="cpu", dtype="float32"), model=model, tokenizer=tok)
    got = compute(b, reqs)
    assert b.engine_info["engine"] == "plain" and "experimental_window=16" in b.engine_info["engine_reason"]
    ref = reference(model, [e.item for e in b.encoder.pairs([(r.context, r.continuation) for r in reqs])])
    assert max(abs(got[r.id].loglikelihood - w) for r, w in zip(reqs, ref)) < TOL


@pytest.mark.parametrize(("name", "final"), [("mistral-window", "plain"), ("mpt-alibi", "plain"), ("gptneo-local", "plain")])
def test_self_check_catches_a_wrong_engine_and_switches(name, final, tok, monkeypatch):
    """Were the config misread as plain causal attention, the start-up check (float32, 1e-4, sequences longer than
    the window, several prefix groups in one batch) finds packed rows and the padded prefix cache wrong on these
    models, falls back to plain forwards, and says why."""
    import evalsuite.backends.hf as hf
    from evalsuite.backends.exactness import EngineChoice

    monkeypatch.setattr(hf, "choose", lambda cfg, **kw: EngineChoice("packed", "misread as full attention", None))
    worst, n_bad, b = worst_delta(name, tok, "default")
    reason = b.engine_info["engine_reason"]
    assert b.engine_info["engine"] == final, reason
    assert "self-check: packed was off plain forwards" in reason and "self-check: prefix-cache was off" in reason
    assert worst < TOL, f"{n_bad} requests over {TOL}"


def test_self_check_passes_the_right_engine_without_counting_its_work(tok):
    b = HFBackend("x", HFOptions(device="cpu", dtype="float32"), model=build("mistral-window", tok), tokenizer=tok)
    compute(b, mc_requests()[:4])
    assert "self-check max |delta|" in b.engine_info["engine_reason"] and "was off" not in b.engine_info["engine_reason"]
    items = [e.item for e in b.encoder.pairs([(r.context, r.continuation) for r in mc_requests()[:4]])]
    assert b.tokens_computed <= sum(len(it.tokens) for it in items)  # the check's own forwards are not counted


@pytest.mark.parametrize("name", ["mistral-window", "gemma2"])
def test_rolling_windows_equal_plain_forwards(name, tok):
    """Bits per byte: every rolling window (32 tokens, four attention windows) scores as a plain forward over it."""
    texts = [" ".join(corpus_lines()[i:i + 4]) for i in range(0, 12, 3)]
    model = build(name, tok)
    b = HFBackend("x", HFOptions(device="cpu", dtype="float32", max_length=32), model=model, tokenizer=tok)
    reqs = [Request(RequestKind.ROLLING_LOGLIKELIHOOD, t) for t in texts]
    got = compute(b, reqs)
    for r in reqs:
        windows = b.encoder.rolling(r.context)
        assert len(windows) >= 2 and max(len(w.tokens) for w in windows) > 3 * WINDOW
        assert abs(got[r.id].loglikelihood - sum(reference(model, windows))) < TOL


@pytest.mark.parametrize("name", ["mistral-window", "gemma2", "mpt-alibi"])
def test_greedy_generation_equals_token_by_token_decode(name, tok):
    """Batched, left-padded generation past the window gives the text of a plain token-by-token greedy loop."""
    model = build(name, tok)
    gp = GenerationParams(max_new_tokens=3 * WINDOW)
    prompts = ["هل", corpus_lines()[2], corpus_lines()[3][:25], "The model is"]
    reqs = [Request(RequestKind.GENERATE, p, "", gp) for p in prompts]
    b = HFBackend("x", HFOptions(device="cpu", dtype="float32"), model=model, tokenizer=tok)
    got = compute(b, reqs)
    for r in reqs:
        ids = tok(r.context, add_special_tokens=False)["input_ids"]
        new: list[int] = []
        for _ in range(gp.max_new_tokens):
            with torch.no_grad():
                nxt = int(model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
            if nxt == tok.eos_token_id:
                break
            new.append(nxt)
        assert got[r.id].text == tok.decode(new, skip_special_tokens=True)


def corpus_lines() -> list[str]:
    from evalsuite.tiny import corpus

    return corpus()


@pytest.mark.parametrize(("config_name", "says"), [("T5Config", "encoder-decoder"), ("MambaConfig", "state-space / recurrent"),
                                                   ("RecurrentGemmaConfig", "state-space / recurrent")])
def test_unsupported_architectures_are_refused_before_loading(config_name, says, tmp_path):
    """A checkpoint folder holding only config.json: refused with exit 2, naming the architecture and what is
    supported, before any tokenizer or weight is read (there are none to read)."""
    import transformers as tf
    from typer.testing import CliRunner

    from evalsuite.backends.hf import load_model_and_tokenizer
    from evalsuite.cli import app
    from evalsuite.core.errors import UsageError

    cfg = getattr(tf, config_name)()
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg.to_dict(), default=str), encoding="utf-8")
    res = CliRunner().invoke(app, ["run", "--backend", "hf", "--model", str(tmp_path / "m"), "--suite", "demo",
                                   "-o", str(tmp_path / "out"), "-q", "--no-cache"])
    assert res.exit_code == 2, res.output
    assert says in res.output and f"model_type '{cfg.model_type}'" in res.output and "decoder-only" in res.output
    assert not (tmp_path / "out").exists()
    with pytest.raises(UsageError, match=says):  # the backend itself refuses too (hub ids skip the folder check)
        load_model_and_tokenizer(str(tmp_path / "m"), "cpu", torch.float32, False)


def test_decoder_configs_are_not_refused(tok):
    from evalsuite.backends.exactness import refusal

    for name, cfg in _configs(tok).items():
        assert refusal(cfg) is None, name


def test_self_check_in_bfloat16_keeps_the_fast_path_and_catches_a_wrong_engine(tok, monkeypatch):
    """Half precision: the tolerance is 0.02 nats or 4x the rounding noise of plain batched forwards, loose enough
    for packed rows on Llama and tight enough to catch packed rows on a windowed model."""
    import copy

    import evalsuite.backends.hf as hf
    from evalsuite.backends.exactness import EngineChoice

    reqs = mc_requests()[:8]
    llama = copy.deepcopy(build("llama", tok)).to(torch.bfloat16)
    b = HFBackend("x", HFOptions(device="cpu", dtype="bfloat16"), model=llama, tokenizer=tok)
    compute(b, reqs)
    assert b.engine_info["engine"] == "packed", b.engine_info
    monkeypatch.setattr(hf, "choose", lambda cfg, **kw: EngineChoice("packed", "misread as full attention", None))
    mistral = copy.deepcopy(build("mistral-window", tok)).to(torch.bfloat16)
    b = HFBackend("x", HFOptions(device="cpu", dtype="bfloat16"), model=mistral, tokenizer=tok)
    compute(b, reqs)
    assert b.engine_info["engine"] == "plain", b.engine_info


def test_results_file_and_summary_name_the_engine(tok, tmp_path):
    """End to end from a saved checkpoint: the results record model.backend.engine / engine_reason; the summary says it."""
    from typer.testing import CliRunner

    from evalsuite.cli import app

    build("mistral-window", tok).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    res = CliRunner().invoke(app, ["run", "--backend", "hf", "--model", str(tmp_path / "m"), "--tasks", "demo_sentiment_ar",
                                   "--dtype", "float32", "-o", str(tmp_path / "out"), "-q", "--no-cache"])
    assert res.exit_code == 0, res.output
    from pathlib import Path

    rec = json.loads(Path(res.output.strip().splitlines()[-1]).read_text(encoding="utf-8"))
    assert rec["model"]["backend"]["engine"] == "packed"
    assert "sliding_window 8" in rec["model"]["backend"]["engine_reason"]
    assert "scoring engine: packed (sliding_window 8" in res.output


def test_windowed_engine_batches_prefix_groups_that_fit_in_the_window(tok):
    """Under a window of 32 tokens, the short groups share prefix batches (the window masks nothing there) and the
    long ones run alone; all numbers stay exact."""
    from evalsuite.backends.plan import plan_groups

    model = build("mistral-window32", tok)
    reqs = mc_requests()
    b = HFBackend("x", HFOptions(device="cpu", dtype="float32", packing=False), model=model, tokenizer=tok)
    got = compute(b, reqs)
    assert b.engine_info["engine"] == "prefix-cache-single"
    items = [e.item for e in b.encoder.pairs([(r.context, r.continuation) for r in reqs])]
    assert min(len(it.tokens) for it in items) < 4 * WINDOW < max(len(it.tokens) for it in items)
    narrow = HFBackend("x", HFOptions(device="cpu", dtype="float32", packing=False), model=build("mistral-window", tok),
                       tokenizer=tok)
    compute(narrow, reqs)  # window 8: (nearly) every group alone
    assert b.calls < narrow.calls and narrow.calls > len(plan_groups(items))
    ref = reference(model, items)
    assert max(abs(got[r.id].loglikelihood - w) for r, w in zip(reqs, ref)) < TOL
