"""Model fingerprints: a hash of weight *contents*, tokenizer files and config.

Checkpoints of one training run share config, file names, sizes and even
safetensors headers, so anything less than the contents would confuse step 1000
with step 2000. Full hashes are memoised per (path, size, mtime) in the user
cache, so a second run does not re-read the weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from evalsuite.store import atomic_write_json

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".model", ".json", ".txt", ".tiktoken")
_SKIP = {"trainer_state.json", "training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth"}


def _memo_path() -> Path:
    root = os.environ.get("EVALSUITE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "evalsuite")
    return Path(root) / "fingerprints.json"


def _file_digest(path: Path, memo: dict[str, str]) -> str:
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    if key in memo:
        return memo[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    memo[key] = h.hexdigest()
    return memo[key]


def model_files(folder: Path) -> list[Path]:
    """Files that determine a model's outputs (weights, config, tokenizer)."""
    out = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.name not in _SKIP and p.name.endswith(_WEIGHT_SUFFIXES) and not p.name.startswith("."):
            out.append(p)
    return out


def fingerprint(model: str, revision: str | None = None) -> str:
    """``sha256:<hex>`` of a local model folder's contents, or ``hub:<id>@<rev>`` otherwise."""
    folder = Path(model)
    if not folder.is_dir():
        return f"hub:{model}@{revision or 'default'}"
    memo_file = _memo_path()
    try:
        memo = json.loads(memo_file.read_text(encoding="utf-8"))
        if not isinstance(memo, dict):
            memo = {}
    except (OSError, ValueError):
        memo = {}
    before = len(memo)
    h = hashlib.sha256()
    for p in model_files(folder):
        h.update(p.name.encode("utf-8") + b"\0" + _file_digest(p, memo).encode("ascii") + b"\n")
    if len(memo) != before:
        try:
            atomic_write_json(memo_file, memo)
        except OSError:
            pass  # memoisation is an optimisation only
    return "sha256:" + h.hexdigest()[:32]
