"""Which of the hf backend's scoring engines gives a model plain-forward numbers (pure Python, no torch).

The engines, fastest first:

- ``packed``: a prefix group and all its members' tails in one row with a tree-shaped attention
  mask; each token gets its true position id but sits at another slot of the row. Exact where
  positions come from ``position_ids`` (rotary, learned; Falcon's ALiBi); under a sliding window
  the mask also limits each token to its ancestors fewer than ``window`` positions back (one mask
  per layer type). Not for attention by slot index (MPT, GPT-Neo local) or models that take no
  4D mask (BLOOM: the self-check sees it fail and moves on).
- ``prefix-cache``: several groups' prefixes right-padded to a common width in one batch, their
  key/value cache gathered under the members' tails. Exact for full causal attention.
- ``prefix-cache-single``: the same, one prefix group per batch, so no prefix is padded: the
  cache of a sliding-window layer keeps the group's own last tokens, and slot indices equal
  positions. Exact under sliding windows and slot-index positions (MPT's ALiBi, GPT-Neo's
  local attention). Under a window alone (positions from ``position_ids``), groups still share
  a batch while its padded width stays below the window, where the window masks nothing.
- ``plain``: every sequence whole, right-padded, no reuse: what a plain forward computes.

:func:`choose` reads the config and names the engine it expects to be exact, with the reason;
the backend then checks that engine against plain forwards on the model itself and falls back
(:func:`fallback`) on a mismatch. Unknown attention shapes (any other ``*window*`` key) get
``plain``. Encoder-decoder and state-space/recurrent models are refused (:func:`refusal`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

ENGINES = ("packed", "prefix-cache", "prefix-cache-single", "plain")
FALLBACK = {"packed": "prefix-cache", "prefix-cache": "plain", "prefix-cache-single": "plain"}
"""Where the start-up self-check sends a model whose engine did not match plain forwards."""

KNOWN_WINDOW_KEYS = {"sliding_window", "use_sliding_window", "max_window_layers", "window_size",
                     "attention_window_size", "_sliding_window_pattern", "sliding_window_pattern"}
"""Window keys whose meaning :func:`choose` knows; any other non-empty ``*window*`` key is unknown."""

SUPPORTED = "decoder-only causal LMs (AutoModelForCausalLM with attention layers)"

_ENCODER_DECODER = {"t5", "mt5", "umt5", "bart", "mbart", "pegasus", "marian", "led", "longt5", "switch_transformers",
                    "bigbird_pegasus", "blenderbot", "blenderbot-small", "prophetnet", "fsmt", "m2m_100", "nllb-moe",
                    "plbart", "t5gemma", "encoder-decoder"}
_RECURRENT = {"mamba", "mamba2", "falcon_mamba", "recurrent_gemma", "rwkv", "xlstm", "jamba", "bamba", "zamba",
              "zamba2", "falcon_h1", "granitemoehybrid", "nemotron_h", "lfm2", "minimax"}


@dataclass(frozen=True)
class EngineChoice:
    """The engine expected to be exact for a model, before measurement."""

    engine: str
    """One of :data:`ENGINES`."""
    reason: str
    """Why, in words a user can check against the model's config."""
    window: int | None
    """Smallest attention window in tokens (None: no window); the self-check's sequences exceed it."""
    slot_positions: bool = False
    """Attention depends on slot indices in the row (MPT's ALiBi, GPT-Neo's local mask), not on position ids."""


def fallback(engine: str, choice: "EngineChoice") -> str:
    """The next, more conservative engine after ``engine`` failed: under a window, packed rows fall back to
    one prefix group per batch (a padded multi-group cache is wrong there), otherwise as :data:`FALLBACK`."""
    if engine == "packed" and choice.window is not None:
        return "prefix-cache-single"
    return FALLBACK[engine]


def _as_dict(config: Any) -> dict[str, Any]:
    if isinstance(config, Mapping):
        return dict(config)
    return dict(config.to_dict())


def _text_part(cfg: dict[str, Any]) -> dict[str, Any]:
    """The language model's own config (multimodal configs nest it under ``text_config``)."""
    text = cfg.get("text_config")
    return {**cfg, **text} if isinstance(text, dict) else cfg


def refusal(config: Any) -> str | None:
    """Why this model cannot be scored (None: it can), from its config alone."""
    cfg = _as_dict(config)
    mt = str(cfg.get("model_type", "")).lower()
    arch = ", ".join(cfg.get("architectures") or []) or mt or "unknown"
    if cfg.get("is_encoder_decoder") or mt in _ENCODER_DECODER:
        return (f"{arch} (model_type '{mt}') is an encoder-decoder model; the hf backend scores {SUPPORTED} only, "
                "where log p(continuation | context) is one left-to-right pass")
    if mt in _RECURRENT or "ssm_cfg" in cfg or "state_size" in cfg and "num_attention_heads" not in cfg:
        return (f"{arch} (model_type '{mt}') is a state-space / recurrent model; the hf backend scores {SUPPORTED} only "
                "(its prefix reuse needs a key/value cache)")
    return None


def refusal_of_folder(folder: Path) -> str | None:
    """:func:`refusal` of a local checkpoint's config.json (None when it cannot be read: loading will say why)."""
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return refusal(cfg) if isinstance(cfg, dict) else None


def _windows(cfg: dict[str, Any]) -> tuple[int | None, str | None, list[str]]:
    """(smallest window, the config fact that sets it, unknown window keys with a value)."""
    mt = str(cfg.get("model_type", "")).lower()
    layer_types = [str(t) for t in cfg.get("layer_types") or []]
    n_layers = cfg.get("num_hidden_layers") or cfg.get("num_layers") or cfg.get("n_layer")
    if isinstance(n_layers, int) and n_layers > 0:
        layer_types = layer_types[:n_layers]
    unknown = [f"{k}={v!r}" for k, v in sorted(cfg.items())
               if "window" in k.lower() and k not in KNOWN_WINDOW_KEYS and v not in (None, False, 0, [], {})]
    limited = [t for t in layer_types if t != "full_attention"]
    sw = cfg.get("sliding_window")
    if mt == "gpt_neo":
        local = [t for t in cfg.get("attention_layers") or [] if t != "global"]
        if local:
            return int(cfg.get("window_size") or 256), f"GPT-Neo local attention in {len(local)} layer(s), window_size " \
                f"{cfg.get('window_size')}", unknown
        return None, None, unknown
    if isinstance(cfg.get("attention_window_size"), int):
        return int(cfg["attention_window_size"]), f"attention_window_size {cfg['attention_window_size']}", unknown
    if layer_types:
        if limited:
            w = sw if isinstance(sw, int) and sw > 0 else None
            return w, f"{len(limited)} of {len(layer_types)} layers are {sorted(set(limited))} (sliding_window {sw})", unknown
        return None, None, unknown  # every layer is full attention: a sliding_window value is unused
    if isinstance(sw, int) and sw > 0 and cfg.get("use_sliding_window", True) is not False:
        return int(sw), f"sliding_window {sw}", unknown
    if isinstance(cfg.get("window_size"), int) and cfg["window_size"] > 0:
        return int(cfg["window_size"]), f"window_size {cfg['window_size']}", unknown
    return None, None, unknown


def _slot_positions(cfg: dict[str, Any]) -> str | None:
    """A config whose positions come from the slot index in the row rather than from ``position_ids``."""
    mt = str(cfg.get("model_type", "")).lower()
    attn = cfg.get("attn_config")
    if mt == "mpt" and (not isinstance(attn, dict) or attn.get("alibi", True)):
        return "MPT's ALiBi biases attention by slot index and ignores position_ids"
    return None


def choose(config: Any, packing: bool = True, share_prefixes: bool = True) -> EngineChoice:
    """The engine expected to be exact for this config, given the user's options
    (``share_prefixes=False``: each sequence alone, in whichever engine)."""
    cfg = _text_part(_as_dict(config))
    window, why_window, unknown = _windows(cfg)
    slot = _slot_positions(cfg)
    if cfg.get("model_type") == "gpt_neo" and window is not None:
        slot = "GPT-Neo masks its local window by slot index"
    if unknown:
        return EngineChoice("plain", f"config has window settings evalsuite does not know ({', '.join(unknown)}): "
                                     "no prefix reuse, every sequence whole", window)
    if window is not None or slot is not None:
        facts = "; ".join(x for x in (why_window, slot) if x)
        if not share_prefixes:
            return EngineChoice("plain", f"{facts}; --no-prefix-sharing: every sequence whole", window, slot is not None)
        if slot is None and packing:
            return EngineChoice("packed", f"{facts}: packed prefix trees whose mask also limits each token to the "
                                          "window, by position", window)
        return EngineChoice("prefix-cache-single", f"{facts}: packed rows and padded multi-prefix batches are inexact, "
                                                   "so each prefix group's cache is reused alone"
                                                   + ("" if slot else " (several while a batch fits in the window)"),
                            window, slot is not None)
    if not packing:
        return EngineChoice("prefix-cache", "--no-packing: shared prefixes through the key/value cache", None)
    return EngineChoice("packed", "full causal attention with positions from position ids: packed prefix trees", None)
