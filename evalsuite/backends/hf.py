"""Transformers backend: the reference implementation, CPU and GPU.

Log-likelihoods: requests are encoded once, planned into shared-prefix groups
over the whole run (``plan.py``), and each group's prefix is computed once:
packed into one row with its members' tails under a tree mask, or its key/value
cache gathered under the tails of all members. Prefix and tail batches are
right-padded (real tokens never attend to padding; no query row is fully
masked), sorted by length and bounded by a token budget. Which engine a model
gets (and whether prefixes are reused at all) depends on its attention: see
``exactness.py``; the choice is checked against plain forwards at start-up.

Generation: batched greedy ``generate`` with left padding and stop sequences.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from evalsuite.backends.base import PairEncoder, Sink, score_rolling
from evalsuite.backends.exactness import choose, fallback, refusal
from evalsuite.backends.plan import Group, Item, plan_groups
from evalsuite.core.errors import BackendError, ModelLoadError, UsageError
from evalsuite.core.records import Request, RequestKind, Response


@dataclass
class HFOptions:
    device: str = "auto"
    dtype: str = "auto"
    batch_tokens: int | None = None
    """Token budget per forward batch (rows × padded length); None: 1024 on CPU (measured fastest
    for small models, see benchmarks/README.md), 4096 on GPUs."""
    max_length: int | None = None
    """Override the model's context length."""
    add_bos: bool = False
    trust_remote_code: bool = False
    share_prefixes: bool = True
    """Compute shared token prefixes once (off = one plain forward per request)."""
    packing: bool = True
    """Pack a group's prefix and all its members' tails into one row with a tree-shaped attention
    mask (no key/value gather, no padding between members, lm head only at scored positions).
    Used where the model passes a self-check; otherwise the prefix-cache path runs."""
    row_tokens: int = 1024
    """Longest packed row; a longer group is split into rows that each repeat its prefix."""
    gen_batch_size: int = 16
    tokenizer: str | None = None
    """Folder or hub id of the tokenizer (None: the model's own; see ``evalsuite.checkpoint``)."""


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not (device in ("cpu", "cuda", "mps") or (device.startswith("cuda:") and device[5:].isdigit())):
        from evalsuite.core.errors import UsageError

        raise UsageError(f"--device {device}: not a device evalsuite can compute on; use auto, cpu, cuda or cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(f"--device {device} was asked but no CUDA device is available")
    return device


def _dtype(name: str, device: str, model: str = "") -> Any:
    """The torch dtype of ``--dtype name`` (``auto`` resolved as for every backend, see ``dtypes``)."""
    import torch

    from evalsuite.backends.dtypes import resolve_dtype

    return getattr(torch, resolve_dtype(name, "cpu" if device == "cpu" else "gpu", model))


def config_max_length(model_id: str) -> int | None:
    """max_position_embeddings from a local config.json, without loading the model."""
    import json

    cfg = Path(model_id) / "config.json"
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(data.get(key), int):
            return int(data[key])
    text = data.get("text_config")
    if isinstance(text, dict) and isinstance(text.get("max_position_embeddings"), int):
        return int(text["max_position_embeddings"])
    return None


def static_identity(model_id: str, options: HFOptions, fingerprint: str | None) -> dict[str, Any]:
    """What determines this backend's numbers, computed without loading weights (keys the cache)."""
    device = resolve_device(options.device)
    dtype = _dtype(options.dtype, device, model_id)
    return {
        "backend": "hf",
        "model": model_id,
        "fingerprint": fingerprint,
        "dtype": str(dtype).removeprefix("torch."),
        "max_length": int(options.max_length or config_max_length(model_id) or 2048),
        "add_bos": options.add_bos,
        "tokenization": "lmeval-0.4.13-pairs",
    }


def _import_transformers_lean() -> None:
    """Import transformers' model classes without scikit-learn.

    transformers imports scikit-learn (and with it scipy) at import time, only for the
    confidence threshold of assisted generation, which evalsuite never uses; that import
    is 1.5–2.5 s of every run's start-up on a small CPU. Telling transformers' generation
    module that sklearn is absent, before its first import, skips it. Set
    EVALSUITE_KEEP_SKLEARN_IMPORT=1 to leave transformers alone.
    """
    if os.environ.get("EVALSUITE_KEEP_SKLEARN_IMPORT") or "transformers.generation.candidate_generator" in sys.modules:
        return
    try:
        import transformers.utils as tu

        real = tu.is_sklearn_available
        tu.is_sklearn_available = lambda: False
        try:
            import transformers.generation.candidate_generator  # noqa: F401
        finally:
            tu.is_sklearn_available = real
    except Exception:  # noqa: BLE001 - any other transformers layout: import it the usual way
        return


def load_model_and_tokenizer(model_id: str, device: str, dtype: Any, trust_remote_code: bool,
                             tokenizer: str | None = None) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer from a local folder or a hub id, with clear errors."""
    _import_transformers_lean()
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    p = Path(model_id)
    if p.exists() and p.is_dir() and not (p / "config.json").exists():
        from evalsuite.checkpoint import check_model_folder

        check_model_folder(p, model_id)
    if p.exists() and p.is_file():
        raise BackendError(f"{model_id}: is a file; give a model folder or a hub id")
    looks_local = p.exists() or model_id.startswith((".", "/", "~")) or model_id.count("/") > 1
    if looks_local and not p.exists():
        raise BackendError(f"{model_id}: no such model folder")
    try:  # the config alone (no weights) says whether this architecture can be scored at all
        config = AutoConfig.from_pretrained(model_id, trust_remote_code=trust_remote_code)
    except Exception:  # noqa: BLE001 - loading the model below gives the clear error
        config = None
    why = refusal(config) if config is not None else None
    if why:
        raise UsageError(f"{model_id}: {why}")

    from evalsuite.checkpoint import check_tokenizer_encodes

    tok_source = tokenizer or model_id
    try:
        tok = AutoTokenizer.from_pretrained(tok_source, trust_remote_code=trust_remote_code)
    except Exception as e:
        hint = "" if Path(tok_source).exists() else " (hub ids need network access or a local copy in the HF cache; offline, pass a local folder)"
        err = ModelLoadError if Path(tok_source).exists() else BackendError  # a local folder that will not load: a corrupt checkpoint
        raise err(f"{tok_source}: cannot load the tokenizer: {str(e).splitlines()[0][:300]}{hint}") from None
    check_tokenizer_encodes(tok, tok_source)
    try:
        model = AutoModelForCausalLM.from_pretrained(model_id, dtype=dtype, trust_remote_code=trust_remote_code)
    except Exception as e:
        hint = "" if p.exists() else " (hub ids need network access or a local copy in the HF cache; offline, pass a local folder)"
        err = ModelLoadError if p.exists() else BackendError  # a local folder that will not load: a corrupt checkpoint
        raise err(f"{model_id}: cannot load the model: {str(e).splitlines()[0][:300]}{hint}") from None
    model.to(device)
    model.eval()
    return model, tok


def _cache_layers(cache: Any) -> list[tuple[Any, Any]]:
    """(keys, values) per layer of a transformers cache, across cache API versions."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    if hasattr(cache, "key_cache"):
        return list(zip(cache.key_cache, cache.value_cache))
    return [(k, v) for k, v in cache]


def _make_cache(layers: list[tuple[Any, Any]], config: Any) -> Any:
    from transformers import DynamicCache

    try:
        cache = DynamicCache(config=config)
    except TypeError:
        cache = DynamicCache()
    for i, (k, v) in enumerate(layers):
        cache.update(k, v, i)
    return cache


class HFBackend:
    """Scores requests with a transformers causal LM."""

    name = "hf"

    def __init__(self, model_id: str, options: HFOptions | None = None, fingerprint: str | None = None,
                 model: Any = None, tokenizer: Any = None):
        import torch

        self.opts = options or HFOptions()
        self.model_id = model_id
        self.device = resolve_device(self.opts.device)
        self.torch_dtype = _dtype(self.opts.dtype, self.device, model_id)
        if model is None:
            model, tokenizer = load_model_and_tokenizer(model_id, self.device, self.torch_dtype, self.opts.trust_remote_code,
                                                        self.opts.tokenizer)
        self.model = model
        self.tok = tokenizer
        self.fingerprint = fingerprint
        cfg_len = config_max_length(model_id) or getattr(model.config, "max_position_embeddings", None) or 2048
        self.max_length = int(self.opts.max_length or cfg_len)
        self.encoder = PairEncoder(tokenizer, self.max_length, self.opts.add_bos)
        self.calls = 0
        self.tokens_computed = 0
        self.truncated = 0
        self.oom_retries = 0
        self.batch_tokens = max(1, self.opts.batch_tokens or (1024 if self.device == "cpu" else 4096))
        self.forward_s = 0.0
        """Seconds inside the model's forward passes (the harness's own compute; the rest is overhead)."""
        self._window: int | None = None
        self._slot_positions = False
        self._check_error: str | None = None
        self._row_tokens = self.opts.row_tokens
        self.engine_info: dict[str, str] | None = None
        """``engine`` and ``engine_reason`` once the first log-likelihoods are scored (see exactness.py)."""
        self._body: Any = None
        self._head: Any = None
        if self.device == "cpu" and os.environ.get("OMP_NUM_THREADS") is None:
            torch.set_num_threads(max(1, os.cpu_count() or 1))

    def identity(self) -> dict[str, Any]:
        return {
            "backend": "hf",
            "model": self.model_id,
            "fingerprint": self.fingerprint,
            "dtype": str(self.torch_dtype).removeprefix("torch."),
            "max_length": self.max_length,
            "add_bos": self.opts.add_bos,
            "tokenization": "lmeval-0.4.13-pairs",
            "prefix_token": self.encoder.prefix_token,
        }

    def close(self) -> None:
        self.model = None

    # ---- dispatch -------------------------------------------------------
    def compute(self, requests: Sequence[Request], sink: Sink) -> None:
        import torch

        # no_grad, not a global switch: the caller's process (e.g. a training loop) keeps its grad mode
        with torch.no_grad():
            self._compute(requests, sink)

    def _compute(self, requests: Sequence[Request], sink: Sink) -> None:
        ll = [r for r in requests if r.kind is RequestKind.LOGLIKELIHOOD]
        roll = [r for r in requests if r.kind is RequestKind.ROLLING_LOGLIKELIHOOD]
        gen = [r for r in requests if r.kind is RequestKind.GENERATE]
        if ll:
            self._loglikelihood(ll, sink)
        if roll:
            self._rolling(roll, sink)
        if gen:
            self._generate(gen, sink)

    def _loglikelihood(self, requests: list[Request], sink: Sink) -> None:
        encoded = self.encoder.pairs([(r.context, r.continuation) for r in requests])
        items = [e.item for e in encoded]
        self.truncated += sum(e.truncated for e in encoded)

        def done(i: int, lp: float, greedy: bool) -> None:
            e = encoded[i]
            err = None if math.isfinite(lp) else f"non-finite log-likelihood ({lp})"
            sink(Response(requests[i].id, loglikelihood=lp, is_greedy=greedy,
                          n_tokens=len(e.item.tokens) - e.item.start, truncated=e.truncated, error=err))

        self.score_items(items, done)

    def _rolling(self, requests: list[Request], sink: Sink) -> None:
        score_rolling(requests, self.encoder, self.score_items, sink)

    # ---- the scoring engine ----------------------------------------------
    def score_items(self, items: list[Item], done: Any) -> None:
        """Call ``done(i, logprob_sum, is_greedy)`` for every item, in plan order."""
        import torch

        if self.engine_info is None:
            self._choose_engine(items, torch)
        assert self.engine_info is not None
        self._score(self.engine_info["engine"], items, done, torch)

    def _score(self, engine: str, items: list[Item], done: Any, torch: Any) -> None:
        """Score ``items`` with one engine of ``exactness.ENGINES``."""
        groups = plan_groups(items, share_prefixes=self.opts.share_prefixes and engine != "plain")
        if engine == "packed":
            rows, rest = self._pack_rows(items, groups)
            if rows:
                self._score_packed(items, rows, done, torch)
            groups = rest
        # prefix-cache-single (and, under a window, the groups too long for a packed row):
        # one prefix group per batch (no padded prefix), except that groups may share a batch
        # while its whole padded width (prefix + longest tail) stays inside an attention window that positions
        # taken from position ids (not from slot indices) make the only constraint
        single = engine == "prefix-cache-single" or (engine == "packed" and self._window is not None)  # rows too long
        roomy = self._window if single and self._window and not self._slot_positions else 0
        groups.sort(key=lambda g: (g.depth, len(g.members)))
        budget = self.batch_tokens
        chunk: list[Group] = []
        longest = 0
        tail_tokens = 0
        widest = 0
        for g in groups:
            g_tail = sum(len(items[m].tokens) - g.depth for m in g.members)
            g_width = max(len(items[m].tokens) - 1 for m in g.members)  # prefix + this group's longest tail
            # groups are sorted by depth, so g.depth is the chunk's padded prefix width
            new_widest = max(longest, g.depth) + max(widest - longest, g_width - g.depth)
            if chunk and ((single and new_widest >= roomy)
                          or (len(chunk) + 1) * max(longest, g.depth) > budget or tail_tokens + g_tail > 4 * budget):
                self._halving(lambda c: self._run_chunk(items, c, done, torch), chunk,
                              lambda c: f"a single prefix of {c[0].depth} tokens")
                chunk, longest, tail_tokens, widest = [], 0, 0, 0
            chunk.append(g)
            widest = max(longest, g.depth) + max(widest - longest, g_width - g.depth)
            longest = max(longest, g.depth)
            tail_tokens += g_tail
        if chunk:
            self._halving(lambda c: self._run_chunk(items, c, done, torch), chunk,
                          lambda c: f"a single prefix of {c[0].depth} tokens")

    def _choose_engine(self, items: list[Item], torch: Any) -> None:
        """Pick the engine from the config (``exactness.choose``), then check it against plain forwards
        on this model; on a mismatch fall back to the next engine and say so in ``engine_reason``."""
        choice = choose(self.model.config, packing=self.opts.packing, share_prefixes=self.opts.share_prefixes)
        engine, reason = choice.engine, choice.reason
        self._window, self._slot_positions = choice.window, choice.slot_positions
        if engine == "packed":
            why_not = self._packing_unsupported()
            if why_not:
                engine = fallback(engine, choice)
                reason += f"; packed rows unsupported ({why_not}), so {engine} runs"
        longest = max((len(it.tokens) for it in items), default=2)
        tol = 1e-4
        if self.torch_dtype != torch.float32 and engine != "plain":
            # half precision: batched and unbatched forwards differ by rounding alone; the plain engine (exact in
            # arithmetic) measures that noise, and an engine must stay within 0.02 nats or 4x the noise
            try:
                tol = max(0.02, 4 * self._self_check("plain", longest, choice.window, torch))
            except _OutOfMemory:
                pass
        while engine != "plain":
            try:
                worst = self._self_check(engine, longest, choice.window, torch)
            except _OutOfMemory:
                reason += f"; self-check ran out of memory, {engine} kept unchecked"
                break
            if worst <= tol:
                reason += f"; self-check max |delta| {worst:.1e} <= {tol:.3g} nats"
                break
            nxt = fallback(engine, choice)
            if self._check_error:
                reason += f"; self-check: {engine} fails on this model ({self._check_error}), so {nxt} runs"
                self._check_error = None
            else:
                reason += f"; self-check: {engine} was off plain forwards by {worst:.3g} nats, so {nxt} runs"
            engine = nxt
        self.engine_info = {"engine": engine, "engine_reason": reason}

    def _self_check(self, engine: str, longest: int, window: int | None, torch: Any) -> float:
        """The largest difference (nats) between ``engine`` and one plain forward per sequence on this
        model (inf if the engine fails on it). The sequences are min(window + 8, longest)
        tokens long (a window the run never exceeds cannot matter), in three prefix groups of different
        lengths, each shared by three continuations, scored together in one batch."""
        cfg = self.model.config
        vocab = int(getattr(cfg, "vocab_size", 0) or self.model.get_output_embeddings().weight.shape[0])
        n = max(8, min(longest, (window or 24) + 8))
        g = torch.Generator().manual_seed(0)

        def rand(k: int) -> list[int]:
            return torch.randint(0, vocab, (k,), generator=g).tolist()

        items = []
        for depth, tails in ((n - 4, (1, 2, 4)), (max(2, n // 2), (1, 3, n - n // 2)), (2, (2, n // 3 + 1, n - 2))):
            prefix = rand(depth)
            for k, t in enumerate(tails):
                toks = prefix + rand(max(1, t))
                start = max(1, depth - 2) if k == 0 else depth  # one member also scores the prefix's last tokens
                items.append(Item(tuple(toks), min(start, len(toks) - 1)))
        runs: list[dict[int, float]] = []
        saved = (self.calls, self.tokens_computed, self.forward_s, self.batch_tokens)
        self.batch_tokens = 10**9  # all groups in one batch
        try:
            # packed: with the run's row length (long groups take the cache path) and with every group in a row
            for row_tokens in ((self._row_tokens, 10**9) if engine == "packed" else (self._row_tokens,)):
                got: dict[int, float] = {}
                self._row_tokens = row_tokens
                self._score(engine, items, lambda i, lp, _g, got=got: got.__setitem__(i, lp), torch)
                runs.append(got)
            want = []
            for it in items:
                ids = torch.tensor([it.tokens[:-1]], device=self.device)
                lp = torch.log_softmax(self.model(input_ids=ids).logits[0].float(), -1)
                tgt = torch.tensor(it.tokens[1:], device=self.device)
                want.append(float(lp.gather(1, tgt[:, None])[it.start - 1:, 0].double().sum()))
        except Exception as e:  # noqa: BLE001 - an architecture that refuses a 4D mask, explicit positions, a cache
            if isinstance(e, _OutOfMemory) or "out of memory" in str(e).lower():
                raise _OutOfMemory(str(e)) from None
            if os.environ.get("EVALSUITE_DEBUG"):
                raise
            self._check_error = f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
            return float("inf")
        finally:
            self.calls, self.tokens_computed, self.forward_s, self.batch_tokens = saved
            self._row_tokens = self.opts.row_tokens
        return max(abs(got[i] - w) if i in got and math.isfinite(got[i]) else float("inf")
                   for got in runs for i, w in enumerate(want))

    def _halving(self, run: Callable[[list], None], batch: list, alone: Callable[[list], str]) -> None:
        """Run a batch; on out-of-memory, halve it and retry each half, down to one element
        (then a BackendError that ``alone(batch)`` describes)."""
        try:
            run(batch)
        except _OutOfMemory as e:
            if len(batch) == 1:
                raise BackendError(f"out of memory even for {alone(batch)} ({e}); use a smaller --batch-tokens or "
                                   "--max-length, another --dtype or a larger device") from None
            self.oom_retries += 1
            half = len(batch) // 2
            self._halving(run, batch[:half], alone)
            self._halving(run, batch[half:], alone)

    def _forward(self, input_ids: Any, attention_mask: Any, position_ids: Any, past: Any = None,
                 use_cache: bool = True) -> Any:
        self.calls += 1
        t = time.perf_counter()
        try:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             past_key_values=past, use_cache=use_cache)
        except RuntimeError as e:
            _raise_if_oom(e, input_ids.shape)
            raise
        self.forward_s += time.perf_counter() - t
        self.tokens_computed += int(attention_mask[:, -input_ids.shape[1]:].sum())
        return out

    # ---- packed rows: prefix + every member's tail in one row, tree attention ----
    def _packing_unsupported(self) -> str | None:
        """Why packed rows cannot run on this model (None: they can; the self-check then measures them).

        Needs a custom 4D attention mask (sdpa or eager attention) and the model split into a body and
        an lm head."""
        impl = getattr(self.model.config, "_attn_implementation", None)
        if impl not in ("sdpa", "eager"):
            return f"attention implementation {impl!r} takes no 4D mask"
        body = getattr(self.model, getattr(self.model, "base_model_prefix", "model"), None)
        head = self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
        if body is None or head is None:
            return "no separate body and lm head"
        self._body, self._head = body, head
        return None

    def _tree_masks(self, allowed: Any, pos: Any, torch: Any) -> Any:
        """The attention mask(s) of packed rows: ``allowed`` (B, 1, L, L) is the tree; under a sliding window a
        token also sees only ancestors fewer than ``window`` positions back (by position, not slot). Models with
        per-layer attention types get one mask per type."""
        eager = self.model.config._attn_implementation == "eager"

        def fmt(a: Any) -> Any:
            if eager:
                a = torch.zeros(a.shape, dtype=self.torch_dtype).masked_fill(~a, torch.finfo(self.torch_dtype).min)
            return a.to(self.device)

        if not self._window:
            return fmt(allowed)
        near = ((pos[:, :, None] - pos[:, None, :]) < self._window).unsqueeze(1)
        windowed = fmt(allowed & near)
        types = set(getattr(self.model.config, "layer_types", None) or [])
        if not types:
            return windowed
        full = fmt(allowed)
        return {t: full if t == "full_attention" else windowed for t in types}

    def _pack_rows(self, items: list[Item], groups: list[Group]) -> tuple[list[tuple[int, tuple[int, ...]]], list[Group]]:
        """(depth, members) rows of at most ``row_tokens`` tokens; groups too long for that stay on the cache path.

        A group longer than a row is split into rows that each repeat its prefix, when the prefix is
        short enough (an eighth of a row) for that repetition to cost less than the gather it saves.
        """
        cap = max(2, self._row_tokens)
        rows: list[tuple[int, tuple[int, ...]]] = []
        rest: list[Group] = []
        for g in groups:
            tails = [len(items[m].tokens) - 1 - g.depth for m in g.members]
            if g.depth + sum(tails) <= cap:
                rows.append((g.depth, g.members))
            elif g.depth <= cap // 8 and all(g.depth + t <= cap for t in tails):
                cur: list[int] = []
                used = g.depth
                for m, t in zip(g.members, tails):
                    if cur and used + t > cap:
                        rows.append((g.depth, tuple(cur)))
                        cur, used = [], g.depth
                    cur.append(m)
                    used += t
                rows.append((g.depth, tuple(cur)))
            else:
                rest.append(g)
        return rows, rest

    def _score_packed(self, items: list[Item], rows: list[tuple[int, tuple[int, ...]]], done: Any, torch: Any) -> None:
        def length(r: tuple[int, tuple[int, ...]]) -> int:
            return r[0] + sum(len(items[m].tokens) - 1 - r[0] for m in r[1])

        rows = sorted(rows, key=length)
        budget = self.batch_tokens
        i = 0
        while i < len(rows):
            j = i + 1
            while j < len(rows) and (j - i + 1) * length(rows[j]) <= budget:
                j += 1
            self._halving(lambda b: self._run_rows(items, b, done, torch), rows[i:j], lambda b: "one packed row")
            i = j

    def _run_rows(self, items: list[Item], rows: list[tuple[int, tuple[int, ...]]], done: Any, torch: Any) -> None:
        """One forward over packed rows. A row holds the token trie of its members' inputs in depth-first
        order: every distinct prefix once (the group's shared prefix, and any further sharing such as a
        common answer word), each token at its own position id, attending to exactly its ancestors.
        In depth-first order the ancestors of node i are the nodes j <= i whose subtree reaches i."""
        dev = self.device
        B = len(rows)
        tries = [_trie_row([items[m].tokens for m in ms]) for _, ms in rows]
        L = max(len(t[0]) for t in tries)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = torch.full((B, L), pad, dtype=torch.long)
        pos = torch.zeros((B, L), dtype=torch.long)
        end = torch.arange(1, L + 1, dtype=torch.long).repeat(B, 1)  # padding: a subtree of itself only
        where_b: list[int] = []  # per scored token: row, node, target, member
        where_c: list[int] = []
        targets: list[int] = []
        owner: list[int] = []
        members: list[int] = []
        for b, ((_, ms), (toks, depth, ends, paths)) in enumerate(zip(rows, tries)):
            n = len(toks)
            ids[b, :n] = torch.tensor(toks, dtype=torch.long)
            pos[b, :n] = torch.tensor(depth, dtype=torch.long)
            end[b, :n] = torch.tensor(ends, dtype=torch.long)
            for m, path in zip(ms, paths):
                it = items[m]
                for t in range(it.start, len(it.tokens)):  # token t is predicted at the node of tokens[:t]
                    where_b.append(b)
                    where_c.append(path[t - 1])
                    targets.append(it.tokens[t])
                    owner.append(len(members))
                members.append(m)
        idx = torch.arange(L)
        allowed = (idx[None, None, :] <= idx[None, :, None]) & (idx[None, :, None] < end[:, None, :])
        mask = self._tree_masks(allowed.unsqueeze(1), pos, torch)
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        self.calls += 1
        t0 = time.perf_counter()
        try:
            hidden = self._body(input_ids=ids.to(dev), attention_mask=mask, position_ids=pos.to(dev),
                                use_cache=False).last_hidden_state
            # the lm head only where a token is scored, once per distinct position
            flat = torch.tensor(where_b, dtype=torch.long) * L + torch.tensor(where_c, dtype=torch.long)
            uniq, inv = torch.unique(flat, return_inverse=True)
            h = hidden.reshape(B * L, -1).index_select(0, uniq.to(dev))
            tgt = torch.tensor(targets, dtype=torch.long, device=dev)
            inv = inv.to(dev)
            tok_lp = torch.empty(len(targets), dtype=torch.float32, device=dev)
            greedy = torch.empty(len(targets), dtype=torch.bool, device=dev)
            step = max(1, (1 << 24) // max(1, int(self._head.weight.shape[0])))  # logits buffer ≤ 64 MB in fp32
            for s0 in range(0, h.shape[0], step):
                logits = self._head(h[s0:s0 + step]).float()
                if cap:  # Gemma 2's final soft-capping, as its forward applies it
                    logits = torch.tanh(logits / cap) * cap
                sel = ((inv >= s0) & (inv < s0 + step)).nonzero().squeeze(1)
                r, t = inv[sel] - s0, tgt[sel]
                tok_lp[sel] = logits[r, t] - torch.logsumexp(logits, -1)[r]
                greedy[sel] = logits.argmax(-1)[r] == t
                del logits
        except RuntimeError as e:
            _raise_if_oom(e, ids.shape)
            raise
        self.forward_s += time.perf_counter() - t0
        self.tokens_computed += sum(len(t[0]) for t in tries)
        own = torch.tensor(owner, dtype=torch.long, device=dev)
        sums = torch.zeros(len(members), dtype=torch.float64, device=dev).index_add_(0, own, tok_lp.double()).tolist()
        misses = torch.zeros(len(members), dtype=torch.long, device=dev).index_add_(0, own, (~greedy).long()).tolist()
        for k, m in enumerate(members):
            done(m, sums[k], misses[k] == 0)

    def _run_chunk(self, items: list[Item], chunk: list[Group], done: Any, torch: Any) -> None:
        dev = self.device
        G = len(chunk)
        P = max(g.depth for g in chunk)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = torch.full((G, P), pad, dtype=torch.long)
        mask = torch.zeros((G, P), dtype=torch.long)
        for gi, g in enumerate(chunk):
            pref = items[g.members[0]].tokens[: g.depth]
            ids[gi, : g.depth] = torch.tensor(pref, dtype=torch.long)
            mask[gi, : g.depth] = 1
        pos = torch.arange(P, dtype=torch.long).unsqueeze(0).expand(G, P).contiguous()
        ids, mask, pos = ids.to(dev), mask.to(dev), pos.to(dev)
        has_tails = any(len(items[m].tokens) - g.depth >= 2 for g in chunk for m in g.members)
        out = self._forward(ids, mask, pos, use_cache=has_tails)
        logits = out.logits
        layers = _cache_layers(out.past_key_values) if has_tails else []

        # Shared-prefix scores: cumulative log-probs of prefix tokens 1..depth-1 (only if a member starts inside).
        prefix_cum: dict[int, tuple[list[float], list[bool]]] = {}
        last_rows = []
        for gi, g in enumerate(chunk):
            last_rows.append(logits[gi, g.depth - 1])
            if any(items[m].start < g.depth for m in g.members):
                toks = torch.tensor(items[g.members[0]].tokens[1: g.depth], dtype=torch.long, device=dev)
                lp = torch.log_softmax(logits[gi, : g.depth - 1].float(), dim=-1)
                tok_lp = lp.gather(1, toks.unsqueeze(1)).squeeze(1)
                greedy = lp.argmax(dim=-1) == toks
                cum = [0.0] + torch.cumsum(tok_lp.double(), 0).tolist()
                gcum = [0] + torch.cumsum((~greedy).long(), 0).tolist()
                prefix_cum[gi] = (cum, gcum)
        last_lp = torch.log_softmax(torch.stack(last_rows).float(), dim=-1)
        last_argmax = last_lp.argmax(dim=-1).tolist()
        del logits, out

        # Per member: prefix part + first tail token.
        partial: dict[tuple[int, int], tuple[float, bool]] = {}
        tails: list[tuple[int, int]] = []  # (group index in chunk, item index)
        for gi, g in enumerate(chunk):
            for m in g.members:
                it = items[m]
                first = it.tokens[g.depth]
                lp_sum = 0.0
                greedy = True
                if it.start < g.depth:
                    cum, gcum = prefix_cum[gi]
                    # tokens start..depth-1 are predicted by prefix positions start-1..depth-2 -> cum index
                    lp_sum += cum[g.depth - 1] - cum[it.start - 1]
                    greedy = greedy and (gcum[g.depth - 1] - gcum[it.start - 1]) == 0
                if it.start <= g.depth:  # token `depth` is scored
                    lp_sum += float(last_lp[gi, first])
                    greedy = greedy and last_argmax[gi] == first
                if len(it.tokens) - g.depth >= 2:
                    partial[(gi, m)] = (lp_sum, greedy)
                    tails.append((gi, m))
                else:
                    done(m, lp_sum, greedy)

        # Tails: batched by length on top of the gathered prefix cache.
        tails.sort(key=lambda t: len(items[t[1]].tokens) - chunk[t[0]].depth)
        budget = self.batch_tokens
        i = 0
        while i < len(tails):
            j = i
            longest = 0
            while j < len(tails):
                L = len(items[tails[j][1]].tokens) - chunk[tails[j][0]].depth - 1
                if j > i and (j - i + 1) * max(longest, L) > budget:
                    break
                longest = max(longest, L)
                j += 1
            self._halving(lambda b: self._run_tails(items, chunk, b, layers, mask, partial, done, torch), tails[i:j],
                          lambda b: "one continuation")
            i = j

    def _run_tails(self, items: list[Item], chunk: list[Group], batch: list[tuple[int, int]],
                   layers: list[tuple[Any, Any]], prefix_mask: Any, partial: dict, done: Any, torch: Any) -> None:
        dev = self.device
        T = max(len(items[m].tokens) - chunk[gi].depth - 1 for gi, m in batch)
        B = len(batch)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = torch.full((B, T), pad, dtype=torch.long)
        tmask = torch.zeros((B, T), dtype=torch.long)
        pos = torch.zeros((B, T), dtype=torch.long)
        scored = torch.zeros((B, T), dtype=torch.long)
        targets = []
        for b, (gi, m) in enumerate(batch):
            d = chunk[gi].depth
            tail = items[m].tokens[d:]
            n = len(tail) - 1
            ids[b, :n] = torch.tensor(tail[:-1], dtype=torch.long)
            tmask[b, :n] = 1
            # target k of this row is token d+1+k of the item; score it when it is at or past `start`
            first = max(0, items[m].start - d - 1)
            scored[b, first:n] = 1
            pos[b, :] = torch.arange(d, d + T)
            targets.append(tail[1:])
        rows = torch.tensor([gi for gi, _ in batch], dtype=torch.long, device=dev)
        gathered = [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in layers]
        past = _make_cache(gathered, self.model.config)
        full_mask = torch.cat([prefix_mask.index_select(0, rows), tmask.to(dev)], dim=1)
        out = self._forward(ids.to(dev), full_mask, pos.to(dev), past)
        lp = torch.log_softmax(out.logits.float(), dim=-1)
        tgt = torch.full((B, T), 0, dtype=torch.long)
        for b, t in enumerate(targets):
            tgt[b, : len(t)] = torch.tensor(t, dtype=torch.long)
        tgt = tgt.to(dev)
        tok_lp = lp.gather(2, tgt.unsqueeze(2)).squeeze(2)
        greedy = lp.argmax(dim=-1) == tgt
        scored = scored.to(dev)
        tok_lp = (tok_lp.double() * scored).sum(dim=1).tolist()
        all_greedy = (greedy | (scored == 0)).all(dim=1).tolist()
        for b, (gi, m) in enumerate(batch):
            base_lp, base_greedy = partial[(gi, m)]
            done(m, base_lp + tok_lp[b], base_greedy and bool(all_greedy[b]))

    # ---- generation -------------------------------------------------------
    def _generate(self, requests: list[Request], sink: Sink) -> None:
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i].context))
        bs = max(1, self.opts.gen_batch_size)
        for s in range(0, len(order), bs):
            # group by generation params so one generate() call shares them
            by_params: dict[Any, list[int]] = {}
            for i in order[s: s + bs]:
                by_params.setdefault(requests[i].generation, []).append(i)
            for params, members in by_params.items():
                self._halving(lambda b, p=params: self._generate_batch(requests, b, p, sink), members,
                              lambda b: "a single prompt")

    def _generate_batch(self, requests: list[Request], members: list[int], params: Any, sink: Sink) -> None:
        import torch

        tok = self.tok
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if pad is None:
            pad = 0
        cut = [self.encoder.generation_prompt(requests[i].context, self.max_length, params.max_new_tokens) for i in members]
        encs = [e for e, _ in cut]
        trunc = [t for _, t in cut]
        L = max(len(e) for e in encs)
        ids = torch.full((len(encs), L), pad, dtype=torch.long)
        mask = torch.zeros((len(encs), L), dtype=torch.long)
        for b, e in enumerate(encs):
            ids[b, L - len(e):] = torch.tensor(e, dtype=torch.long)
            mask[b, L - len(e):] = 1
        self.calls += 1
        kwargs: dict[str, Any] = dict(max_new_tokens=params.max_new_tokens, do_sample=False,
                                      repetition_penalty=params.repetition_penalty, pad_token_id=pad,
                                      num_beams=1, temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs["stop_strings"] = list(params.stop)
            kwargs["tokenizer"] = tok
        t0 = time.perf_counter()
        try:
            out = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **kwargs)
        except RuntimeError as e:
            _raise_if_oom(e, ids.shape)
            raise
        self.forward_s += time.perf_counter() - t0  # generate() is forward passes plus its own decoding loop
        # prompt tokens once, then one token per row per step (finished rows too: generate() keeps them in the batch)
        self.tokens_computed += int(mask.sum()) + len(encs) * (out.shape[1] - L)
        for b, i in enumerate(members):
            new = out[b, L:].tolist()
            if tok.eos_token_id is not None and tok.eos_token_id in new:
                new = new[: new.index(tok.eos_token_id)]
            text = cut_at_stop(tok.decode(new, skip_special_tokens=True), params.stop)
            sink(Response(requests[i].id, text=text, n_tokens=len(new), truncated=trunc[b]))


def _trie_row(seqs: list[tuple[int, ...]]) -> tuple[list[int], list[int], list[int], list[list[int]]]:
    """The trie of the model inputs ``s[:-1]`` of ``seqs``, in depth-first order.

    Returns per node its token, its position (depth), and the end (exclusive) of its subtree in
    that order; and per sequence the node of each of its input positions. Sorted insertion makes
    the creation order depth-first: a sequence adds nodes only below its longest common prefix
    with the previous one, and that prefix's deeper nodes are closed for good.
    """
    toks: list[int] = []
    depth: list[int] = []
    ends: list[int] = []
    paths: list[list[int]] = [[] for _ in seqs]
    path: list[int] = []
    prev: tuple[int, ...] = ()
    for k in sorted(range(len(seqs)), key=lambda i: seqs[i]):
        s = seqs[k][:-1]
        n = min(len(prev), len(s))
        common = 0
        while common < n and prev[common] == s[common]:
            common += 1
        for node in path[common:]:
            ends[node] = len(toks)
        del path[common:]
        for p in range(common, len(s)):
            path.append(len(toks))
            toks.append(s[p])
            depth.append(p)
            ends.append(-1)
        paths[k] = list(path)
        prev = s
    for node in path:
        ends[node] = len(toks)
    return toks, depth, ends, paths


class _OutOfMemory(Exception):
    """Internal: a forward pass ran out of device memory (the caller halves the batch)."""


def _raise_if_oom(e: BaseException, shape: Any) -> None:
    if "out of memory" in str(e).lower():
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # pragma: no cover
            pass
        raise _OutOfMemory(f"batch {tuple(shape)}") from None


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """Cut ``text`` at the earliest occurrence of any stop sequence."""
    cut = len(text)
    for s in stop:
        if s:
            k = text.find(s)
            if k != -1:
                cut = min(cut, k)
    return text[:cut]
