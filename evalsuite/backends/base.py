"""The backend seam: one method, ``compute``, shared by fake, hf and vllm.

Also the tokenization policy every log-likelihood backend must share, so that
vllm and hf score exactly the same token sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any, Callable, Protocol, Sequence

from evalsuite.backends.plan import Item
from evalsuite.core.records import Request, Response

Sink = Callable[[Response], None]


class Backend(Protocol):
    name: str
    calls: int
    """Number of model forward/generate calls made (0 when everything came from a cache)."""

    def identity(self) -> dict[str, Any]:
        """What makes this backend's numbers what they are: model fingerprint, dtype,
        maximum length, special-token policy. Keys the request cache; never batch size or device."""
        ...

    def compute(self, requests: Sequence[Request], sink: Sink) -> None:
        """Compute every request, calling ``sink`` once per response as soon as it is ready."""
        ...

    def close(self) -> None:
        ...


@dataclass(frozen=True)
class EncodedPair:
    item: Item
    truncated: bool
    n_continuation: int
    """Continuation tokens before truncation."""


class PairEncoder:
    """Tokenize (context, continuation) the way lm-eval 0.4.13 does.

    - trailing whitespace of the context moves to the continuation;
    - context+continuation are encoded together and split at the context's length
      (no lost leading space, no merge across the boundary);
    - no special tokens are added, except that an empty context becomes the
      prefix token (BOS, else EOS); with ``add_bos`` every sequence starts with BOS;
    - sequences longer than ``max_length`` input tokens are cut from the left.
    """

    def __init__(self, tokenizer: Any, max_length: int, add_bos: bool = False):
        self.tok = tokenizer
        self.max_length = max_length
        self.add_bos = add_bos
        bos = getattr(tokenizer, "bos_token_id", None)
        eos = getattr(tokenizer, "eos_token_id", None)
        self.prefix_token = bos if bos is not None else eos
        if self.prefix_token is None:
            from evalsuite.core.errors import BackendError

            raise BackendError("the tokenizer has neither a BOS nor an EOS token, so an empty context cannot be scored; "
                               "add one to the tokenizer (special_tokens_map.json) or use prompts with a non-empty context")
        if add_bos and bos is None:
            from evalsuite.core.errors import BackendError

            raise BackendError("--add-bos was given but the tokenizer has no BOS token")

    def encode(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def encode_many(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        return [list(x) for x in self.tok(texts, add_special_tokens=False)["input_ids"]]

    def pairs(self, pairs: list[tuple[str, str]]) -> list[EncodedPair]:
        ctxs: list[str] = []
        wholes: list[str] = []
        for context, continuation in pairs:
            n = len(context) - len(context.rstrip())
            if n:
                continuation = context[-n:] + continuation
                context = context[:-n]
            ctxs.append(context)
            wholes.append(context + continuation)
        ctx_ids = self.encode_many(ctxs)
        whole_ids = self.encode_many(wholes)
        out = []
        for (context, continuation), c, w, ctx_text in zip(pairs, ctx_ids, whole_ids, ctxs):
            if not ctx_text:
                c, cont = [], w
            else:
                cont = w[len(c):]
                if not cont:  # the continuation merged into the context's last token
                    cont = self.encode(continuation)
            head = [self.prefix_token] if (self.add_bos or not c) else []
            if self.add_bos and c and c[0] == self.prefix_token:
                head = []
            out.append(self._item(head + c, cont))
        return out

    def _item(self, ctx: list[int], cont: list[int]) -> EncodedPair:
        full = ctx + cont
        n_cont = len(cont)
        truncated = False
        if len(full) - 1 > self.max_length:
            full = full[-(self.max_length + 1):]
            truncated = True
        start = max(1, len(full) - n_cont)
        return EncodedPair(Item(tuple(full), start), truncated, n_cont)

    def generation_prompt(self, context: str, max_length: int, max_new_tokens: int) -> tuple[list[int], bool]:
        """Token ids of a generation prompt (BOS when asked or when the context is empty), cut from the left so
        that prompt + new tokens fit ``max_length``; and whether it was cut."""
        e = self.encode(context)
        if self.add_bos or not e:
            e = [self.prefix_token] + e
        room = max(1, max_length - max_new_tokens)
        return e[-room:], len(e) > room

    def rolling(self, text: str) -> list[Item]:
        """Windows covering every token of ``text``, each conditioned on up to max_length tokens."""
        toks = [self.prefix_token] + self.encode(text)
        items = []
        pos = 1
        while pos < len(toks):
            end = min(len(toks), pos + self.max_length)
            lo = max(0, end - self.max_length - 1)
            items.append(Item(tuple(toks[lo:end]), pos - lo))
            pos = end
        return items


def score_rolling(requests: Sequence[Request], encoder: PairEncoder,
                  score_items: Callable[[list[Item], Callable[[int, float, bool], None]], None], sink: Sink) -> None:
    """Rolling log-likelihood of whole texts: windows scored by ``score_items``, summed per text."""
    windows: list[Item] = []
    owner: list[int] = []
    for i, r in enumerate(requests):
        for w in encoder.rolling(r.context):
            windows.append(w)
            owner.append(i)
    left = [0] * len(requests)
    for o in owner:
        left[o] += 1
    totals = [0.0] * len(requests)
    ntok = [0] * len(requests)
    for i, r in enumerate(requests):
        if left[i] == 0:  # empty text: nothing to score
            sink(Response(r.id, loglikelihood=0.0, n_tokens=0))

    def done(wi: int, lp: float, greedy: bool) -> None:
        o = owner[wi]
        totals[o] += lp
        ntok[o] += len(windows[wi].tokens) - windows[wi].start
        left[o] -= 1
        if left[o] == 0:
            err = None if math.isfinite(totals[o]) else "non-finite log-likelihood"
            sink(Response(requests[o].id, loglikelihood=totals[o], n_tokens=ntok[o], error=err))

    score_items(windows, done)
