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
from typing import Any

from evalsuite.core.records import stable_hash
from evalsuite.store import atomic_write_json, safe_name

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


# ---------------------------------------------------------------- memo in a results folder (cluster sweeps)
# A job that hashed a checkpoint records the fingerprint beside the results, with the
# (name, size, mtime) of every file it covers: the submitting host, `track --status` and
# `evalsuite signal` then know the fingerprint from one stat per file, without reading weights.

def checkpoint_key(path: str | Path) -> str:
    """File-name key of a checkpoint: unique per absolute path, readable."""
    p = str(Path(path).resolve())
    return f"{safe_name(Path(p).name, 60)}-{stable_hash(p, 8)}"


def file_stats(folder: Path) -> list[list[Any]]:
    """(name, size, mtime_ns) of the files a fingerprint covers."""
    out = []
    for p in model_files(folder):
        st = p.stat()
        out.append([p.name, st.st_size, st.st_mtime_ns])
    return out


def memo_path(out: Path, checkpoint: str | Path) -> Path:
    return out / "fingerprints" / f"{checkpoint_key(checkpoint)}.json"


def write_memo(out: Path, checkpoint: str | Path, fp: str) -> None:
    """Record ``fp`` with the stats of the files it covers (written by the job that hashed them)."""
    folder = Path(checkpoint)
    atomic_write_json(memo_path(out, folder), {"checkpoint": str(folder.resolve()), "fingerprint": fp,
                                               "files": file_stats(folder)})


def memo_fingerprint(out: Path, checkpoint: str | Path) -> str | None:
    """The fingerprint a job recorded, if the checkpoint's files are unchanged since; never reads weights."""
    folder = Path(checkpoint)
    try:
        memo = json.loads(memo_path(out, folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(memo, dict) or not folder.is_dir():
        return None
    try:
        same = memo.get("files") == file_stats(folder)
    except OSError:
        return None
    return memo.get("fingerprint") if same else None
