"""The hf backend's log-likelihoods equal plain, unbatched forward passes to 1e-4."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from evalsuite.backends.hf import HFBackend, HFOptions
from evalsuite.core.records import Request, RequestKind
from evalsuite.runner import RunConfig, compute, prepare

TOL = 1e-4


def _requests(data_dir: Path | None, limit: int) -> list[Request]:
    cfgs = [RunConfig(model="x", suite="demo")]
    if data_dir is not None:
        cfgs.append(RunConfig(model="x", tasks="xnli_ar", data_dir=data_dir, limit=limit))
    unique: dict[str, Request] = {}
    for cfg in cfgs:
        for p in prepare(cfg):
            for pe in p.prompted:
                for r in pe.requests:
                    unique.setdefault(r.id, r)
    return list(unique.values())


def _reference(model, items) -> list[tuple[float, bool]]:
    """Plain forward of one sequence at a time: no batching, no padding, no cache."""
    out = []
    for it in items:
        ids = torch.tensor([it.tokens[:-1]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0].float()
        lp = torch.log_softmax(logits, dim=-1)
        tgt = torch.tensor(it.tokens[1:])
        tok = lp.gather(1, tgt[:, None])[:, 0]
        s = it.start - 1
        out.append((float(tok[s:].double().sum()), bool((lp.argmax(-1) == tgt)[s:].all())))
    return out


@pytest.fixture(scope="module")
def loaded(tiny_model):
    return HFBackend(str(tiny_model), HFOptions(device="cpu", dtype="float32"))


@pytest.fixture(scope="module")
def reqs(request):
    data = None
    try:
        data = request.getfixturevalue("shared_data") / "alue"
    except pytest.skip.Exception:
        data = None
    return _requests(data, 40)


@pytest.fixture(scope="module")
def reference(loaded, reqs):
    ll = [r for r in reqs if r.kind is RequestKind.LOGLIKELIHOOD]
    enc = loaded.encoder.pairs([(r.context, r.continuation) for r in ll])
    ref = _reference(loaded.model, [e.item for e in enc])
    return {r.id: v for r, v in zip(ll, ref)}


@pytest.mark.parametrize("engine", ["packed", "packed-short-rows", "prefix-cache"])
@pytest.mark.parametrize("share", [True, False], ids=["prefix-reuse", "no-reuse"])
@pytest.mark.parametrize("budget", [1, 64, 512, 10**7], ids=["one-request", "64tok", "512tok", "all"])
def test_loglikelihood_matches_unbatched_forward(tiny_model, loaded, reqs, reference, share, budget, engine):
    # packed-short-rows: rows of 24 tokens, so long groups are split into rows or left to the prefix-cache path
    opts = HFOptions(device="cpu", dtype="float32", batch_tokens=budget, share_prefixes=share,
                     packing=engine != "prefix-cache", row_tokens=24 if engine == "packed-short-rows" else 1024)
    backend = HFBackend(str(tiny_model), opts, model=loaded.model, tokenizer=loaded.tok)
    ll = [r for r in reqs if r.kind is RequestKind.LOGLIKELIHOOD]
    got = compute(backend, ll)
    want = "prefix-cache" if engine == "prefix-cache" else "packed"
    assert backend.engine_info["engine"] == want, backend.engine_info
    assert len(got) == len(ll) > 100
    worst = max(abs(got[r.id].loglikelihood - reference[r.id][0]) for r in ll)
    assert worst < TOL, worst
    assert all(got[r.id].is_greedy == reference[r.id][1] for r in ll)
    # the model is trained: some continuations are greedy, most are not
    greedy = sum(reference[r.id][1] for r in ll)
    assert 0 < greedy < len(ll)


def test_trie_row_shares_every_common_prefix():
    from evalsuite.backends.hf import _trie_row

    seqs = [(1, 2, 3, 9), (1, 2, 4, 9), (1, 2, 3, 9), (1, 2, 9), (5, 6, 9)]  # inputs drop the last token
    toks, depth, ends, paths = _trie_row(seqs)
    # inputs (1,2,3) (1,2,4) (1,2,3) (1,2) (5,6): nodes 1,2,3,4 under one root, then 5,6
    assert toks == [1, 2, 3, 4, 5, 6]
    assert depth == [0, 1, 2, 2, 0, 1]
    assert ends == [4, 4, 3, 4, 6, 6]
    assert paths == [[0, 1, 2], [0, 1, 3], [0, 1, 2], [0, 1], [4, 5]]
    for p, s in zip(paths, seqs):  # each path spells its sequence's inputs
        assert [toks[n] for n in p] == list(s[:-1])


def test_packing_refused_when_logits_are_not_head_of_body(tiny_model, loaded, reqs, reference):
    """A model whose logits are more than lm_head(hidden) (soft-capping, scaling) keeps the prefix-cache path."""
    import copy

    model = copy.deepcopy(loaded.model)
    plain = model.forward

    def scaled(*a, **kw):
        out = plain(*a, **kw)
        out.logits = out.logits * 0.5
        return out

    model.forward = scaled
    b = HFBackend(str(tiny_model), HFOptions(device="cpu", dtype="float32"), model=model, tokenizer=loaded.tok)
    ll = [r for r in reqs if r.kind is RequestKind.LOGLIKELIHOOD][:30]
    compute(b, ll)
    assert b.engine_info["engine"] == "prefix-cache"
    assert "self-check: packed was off plain forwards" in b.engine_info["engine_reason"]


def test_packing_with_eager_attention(tiny_model, loaded, reqs, reference):
    """Eager attention takes an additive float mask; the packed rows build it and agree with the reference."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32, attn_implementation="eager").eval()
    b = HFBackend(str(tiny_model), HFOptions(device="cpu", dtype="float32"), model=model, tokenizer=loaded.tok)
    ll = [r for r in reqs if r.kind is RequestKind.LOGLIKELIHOOD]
    got = compute(b, ll)
    assert b.engine_info["engine"] == "packed"
    assert max(abs(got[r.id].loglikelihood - reference[r.id][0]) for r in ll) < TOL
    assert all(got[r.id].is_greedy == reference[r.id][1] for r in ll)


def test_prefix_reuse_computes_fewer_tokens(tiny_model, loaded, reqs):
    ll = [r for r in reqs if r.kind is RequestKind.LOGLIKELIHOOD]
    counts = {}
    for share in (True, False):
        b = HFBackend(str(tiny_model), HFOptions(device="cpu", dtype="float32", share_prefixes=share),
                      model=loaded.model, tokenizer=loaded.tok)
        compute(b, ll)
        counts[share] = b.tokens_computed
    assert counts[True] < 0.8 * counts[False]


def test_rolling_matches_reference(loaded):
    text = "تقع المكتبة في وسط المدينة، ويزورها الطلاب كل يوم. " * 12
    b = HFBackend("x", HFOptions(device="cpu", dtype="float32", max_length=32), model=loaded.model, tokenizer=loaded.tok)
    got = compute(b, [Request(RequestKind.ROLLING_LOGLIKELIHOOD, text)])
    (resp,) = got.values()
    windows = b.encoder.rolling(text)
    assert len(windows) > 3
    ref = sum(v for v, _ in _reference(loaded.model, windows))
    toks = [b.encoder.prefix_token] + b.encoder.encode(text)
    assert resp.n_tokens == len(toks) - 1
    assert abs(resp.loglikelihood - ref) < TOL
    # windows cover every token exactly once
    covered = sum(len(w.tokens) - w.start for w in windows)
    assert covered == len(toks) - 1


def test_tokenization_split_keeps_leading_space(loaded):
    enc = loaded.encoder
    (e,) = enc.pairs([("الجملة: كتاب ", "جميل")])
    cont = loaded.tok.decode(list(e.item.tokens[e.item.start:]))
    assert cont == " جميل"  # the trailing space of the context moved to the continuation
    (empty,) = enc.pairs([("", " نعم، جملة")])
    assert empty.item.tokens[0] == enc.prefix_token and empty.item.start == 1


def test_left_truncation(loaded):
    b = HFBackend("x", HFOptions(device="cpu", dtype="float32", max_length=16), model=loaded.model, tokenizer=loaded.tok)
    long_ctx = "يحب الناس القهوة في الصباح والشاي في المساء. " * 10
    r = Request(RequestKind.LOGLIKELIHOOD, long_ctx, " القهوة")
    (resp,) = compute(b, [r]).values()
    assert resp.truncated and math.isfinite(resp.loglikelihood)
    (e,) = b.encoder.pairs([(r.context, r.continuation)])
    assert len(e.item.tokens) == 17
    assert abs(resp.loglikelihood - _reference(loaded.model, [e.item])[0][0]) < TOL


def test_batched_generation_equals_one_at_a_time(tiny_model, loaded):
    from evalsuite.core.records import GenerationParams

    gp = GenerationParams(max_new_tokens=6, stop=("\n",))
    prompts = ["صباح", "السلام", "في الصباح شربت فنجانا من", "ذهب الأطفال صباحا إلى", "The model is"]
    reqs = [Request(RequestKind.GENERATE, p, "", gp) for p in prompts]
    batched = HFBackend("x", HFOptions(device="cpu", dtype="float32"), model=loaded.model, tokenizer=loaded.tok)
    single = HFBackend("x", HFOptions(device="cpu", dtype="float32", gen_batch_size=1), model=loaded.model, tokenizer=loaded.tok)
    a = compute(batched, reqs)
    b = compute(single, reqs)
    assert [a[r.id].text for r in reqs] == [b[r.id].text for r in reqs]
    # and equals a hand-written greedy loop
    tok = loaded.tok
    for r in reqs:
        ids = tok(r.context, add_special_tokens=False)["input_ids"]
        new = []
        for _ in range(gp.max_new_tokens):
            with torch.no_grad():
                nxt = int(loaded.model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
            if nxt == tok.eos_token_id:
                break
            new.append(nxt)
        text = tok.decode(new, skip_special_tokens=True).split("\n")[0]
        assert a[r.id].text == text


def test_generation_out_of_memory_halves_the_batch(loaded, monkeypatch):
    """A device that fits two prompts at a time: the batch is halved until it fits, and the texts do not change."""
    from evalsuite.core.records import GenerationParams

    gp = GenerationParams(max_new_tokens=5, stop=("\n",))
    reqs = [Request(RequestKind.GENERATE, p, "", gp) for p in ["صباح", "السلام", "في الصباح شربت", "ذهب الأطفال", "The"]]
    want = compute(HFBackend("x", HFOptions(device="cpu", dtype="float32"), model=loaded.model, tokenizer=loaded.tok), reqs)
    generate = loaded.model.generate

    def small_device(*a, **kw):
        if kw["input_ids"].shape[0] > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return generate(*a, **kw)

    monkeypatch.setattr(loaded.model, "generate", small_device)
    b = HFBackend("x", HFOptions(device="cpu", dtype="float32"), model=loaded.model, tokenizer=loaded.tok)
    got = compute(b, reqs)
    assert b.oom_retries >= 2
    assert [got[r.id].text for r in reqs] == [want[r.id].text for r in reqs]
