"""Frozen records that cross stage boundaries.

A record never mixes a request with its response: the runner joins them by
``Request.id``.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


class RequestKind(str, enum.Enum):
    """What a backend is asked to compute."""

    LOGLIKELIHOOD = "loglikelihood"
    """Sum of log-probabilities of ``continuation`` given ``context``, and whether it is greedy."""
    GENERATE = "generate"
    """Greedy continuation of ``context``."""
    ROLLING_LOGLIKELIHOOD = "rolling_loglikelihood"
    """Log-likelihood of the whole ``context`` text, scored in windows."""


class OutputType(str, enum.Enum):
    """How a task turns examples into requests and responses into predictions."""

    MULTIPLE_CHOICE = "multiple_choice"
    GENERATE = "generate"
    TARGET_LOGLIKELIHOOD = "target_loglikelihood"
    ROLLING_LOGLIKELIHOOD = "rolling_loglikelihood"
    REGRESSION = "regression"
    """Score = expected value over verbalized bins (``label_values``), from choice log-likelihoods."""
    MULTI_LABEL = "multi_label"
    """One yes/no log-likelihood query per label."""


def stable_hash(obj: Any, n: int = 16) -> str:
    """Hex digest of a JSON-serialisable object, independent of dict order."""
    data = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:n]


@dataclass(frozen=True)
class Example:
    """One row of a dataset, after column mapping."""

    id: str
    """Stable id: from the task's ``example_id`` template, else the row number."""
    index: int
    """0-based position in the loaded split."""
    fields: dict[str, Any] = field(hash=False, compare=False)
    """Column values, keyed by the task's field names."""
    origin: str = ""
    """Where the row came from (``file.tsv:17``), for error messages."""


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings of a generate request (greedy only)."""

    max_new_tokens: int = 64
    """Upper bound on generated tokens."""
    stop: tuple[str, ...] = ()
    """Generation is cut at the first occurrence of any of these strings."""
    repetition_penalty: float = 1.0
    """HF-style repetition penalty (1.0 = off)."""


@dataclass(frozen=True)
class Request:
    """An immutable unit of backend work. Identical requests share one ``id``."""

    kind: RequestKind
    """What to compute."""
    context: str
    """Conditioning text (the whole text for rolling log-likelihood)."""
    continuation: str = ""
    """Scored text for log-likelihood requests."""
    generation: GenerationParams | None = None
    """Decoding settings, generate requests only."""

    @property
    def id(self) -> str:
        """Content hash: the same request from two tasks or prompt variants is computed once."""
        gen = None
        if self.generation is not None:
            g = self.generation
            gen = [g.max_new_tokens, list(g.stop), g.repetition_penalty]
        return stable_hash([self.kind.value, self.context, self.continuation, gen], 24)


@dataclass(frozen=True)
class Response:
    """What a backend returned for one request."""

    request_id: str
    """``Request.id`` this answers."""
    loglikelihood: float | None = None
    """Summed log-probability in nats (log-likelihood kinds)."""
    is_greedy: bool | None = None
    """Every continuation token is the argmax (loglikelihood kind)."""
    n_tokens: int = 0
    """Tokens scored (continuation tokens, or all tokens of a rolling text)."""
    text: str | None = None
    """Generated text after stop-sequence cutting (generate kind)."""
    truncated: bool = False
    """The input was cut from the left to fit the model's context."""
    error: str | None = None
    """Set when the backend produced a non-finite value for this request."""
