"""What ``--dtype`` means, once for every backend.

``auto`` is float32 on a CPU and the checkpoint's own dtype (``torch_dtype`` in its
config.json; float32 when it names none) on a GPU, for hf and vllm alike: left to
itself vLLM's ``auto`` runs bfloat16 on a CPU while hf runs float32, and the two then
differ by ~0.2 nats per request with nothing saying why. The resolved name is what a
backend runs, what the results record and what keys the request cache.
"""

from __future__ import annotations

import json
from pathlib import Path

from evalsuite.core.errors import UsageError

_CANONICAL = {"float32": "float32", "fp32": "float32", "float": "float32", "float16": "float16", "fp16": "float16",
              "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}


def checkpoint_dtype(model: str) -> str | None:
    """The dtype a local checkpoint was saved in (config.json ``torch_dtype`` or ``dtype``), canonical, or None."""
    try:
        cfg = json.loads((Path(model) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(cfg, dict):
        return None
    for c in (cfg, cfg.get("text_config")):
        if isinstance(c, dict):
            for key in ("torch_dtype", "dtype"):
                v = c.get(key)
                if isinstance(v, str) and v.removeprefix("torch.") in _CANONICAL:
                    return _CANONICAL[v.removeprefix("torch.")]
    return None


def resolve_dtype(name: str, device: str, model: str) -> str:
    """The dtype a backend really runs for ``--dtype name`` on ``device`` ("cpu" or a GPU) with ``model``."""
    if name == "auto":
        if device == "cpu":
            return "float32"
        return checkpoint_dtype(model) or "float32"
    if name not in _CANONICAL:
        raise UsageError(f"unknown --dtype '{name}'; use auto, float32, bfloat16 or float16")
    return _CANONICAL[name]
