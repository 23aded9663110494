"""A deterministic fake backend for fast tests and ``--dry-run``.

Its numbers are a pure function of the request content, so runs are
reproducible and identical requests get identical answers.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

from evalsuite.backends.base import Sink
from evalsuite.core.records import Request, RequestKind, Response


def _u(*parts: str) -> float:
    h = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2**64


class FakeBackend:
    """Pseudo log-likelihoods in (-len-1, -1]; generations echo the context's last word."""

    name = "fake"

    def __init__(self, seed: str = "0"):
        self.seed = seed
        self.calls = 0
        self.seen: list[str] = []

    def identity(self) -> dict[str, Any]:
        return {"backend": "fake", "fingerprint": f"fake-{self.seed}", "dtype": "none", "max_length": 0}

    def close(self) -> None:
        pass

    def compute(self, requests: Sequence[Request], sink: Sink) -> None:
        if requests:
            self.calls += 1
        for r in requests:
            self.seen.append(r.id)
            match r.kind:
                case RequestKind.LOGLIKELIHOOD:
                    n = max(1, len(r.continuation.split()))
                    u = _u(self.seed, r.context, r.continuation)
                    sink(Response(r.id, loglikelihood=-(1.0 + u * 3.0 * n), is_greedy=u < 0.2, n_tokens=n))
                case RequestKind.ROLLING_LOGLIKELIHOOD:
                    n = max(1, len(r.context))
                    sink(Response(r.id, loglikelihood=-(0.5 + _u(self.seed, r.context)) * n, n_tokens=n))
                case RequestKind.GENERATE:
                    words = r.context.split()
                    text = (" " + words[-1]) if words else ""
                    sink(Response(r.id, text=text.strip(), n_tokens=1))
