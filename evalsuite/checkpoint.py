"""What a model folder is, as training runs leave them: its tokenizer, its layout, its name.

- Trainers often save the tokenizer once at the run's root (or not at all), so a checkpoint
  folder may hold no tokenizer files; transformers then builds an *empty* tokenizer that
  encodes everything to nothing. ``resolve_tokenizer`` looks in the checkpoint, then in its
  parent folders up to a root, and says which folder it used; ``check_tokenizer_encodes``
  refuses a tokenizer that encodes a test string to no tokens.
- Native training checkpoints (DeepSpeed, Megatron, torch distributed, bare safetensors) are
  not ``save_pretrained`` folders; ``native_layout_error`` names the layout, what is missing and
  the conversion to run.

No heavy imports here: this runs before any model is loaded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalsuite.core.errors import UsageError

# A folder holds a usable tokenizer when it has one of these (vocabulary-bearing) files.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "vocab.json",
                   "vocab.txt", "tekken.json")
# Files that change how the tokenizer encodes, hashed into its fingerprint.
TOKENIZER_SIDE_FILES = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "merges.txt")
TEST_STRING = "evalsuite test: النص العربي 123"


@dataclass(frozen=True)
class TokenizerSource:
    """The tokenizer a run uses and where it came from."""

    source: str
    """Folder or hub id handed to ``AutoTokenizer.from_pretrained``."""
    fingerprint: str
    """``sha256:<hex>`` of the tokenizer files (a folder), or ``hub:<id>``."""
    found: str
    """``checkpoint`` (the model folder itself), ``parent`` (a parent folder of the checkpoint),
    ``option`` (``--tokenizer``) or ``hub`` (the model's hub id)."""

    def record(self) -> dict[str, Any]:
        return {"source": self.source, "fingerprint": self.fingerprint, "found": self.found}


def has_tokenizer_files(folder: Path) -> bool:
    return any((folder / n).is_file() for n in TOKENIZER_FILES) or any(folder.glob("*.tiktoken"))


def tokenizer_fingerprint(source: str) -> str:
    """Hash of the files that define a local tokenizer (names and contents); ``hub:<id>`` otherwise."""
    folder = Path(source)
    if not folder.is_dir():
        return f"hub:{source}"
    h = hashlib.sha256()
    files = [folder / n for n in TOKENIZER_FILES + TOKENIZER_SIDE_FILES] + sorted(folder.glob("*.tiktoken"))
    for p in files:
        if p.is_file():
            h.update(p.name.encode("utf-8") + b"\0" + hashlib.sha256(p.read_bytes()).hexdigest().encode("ascii") + b"\n")
    return "sha256:" + h.hexdigest()[:32]


def _missing_hint(model: str, searched: list[Path]) -> str:
    where = ", ".join(str(p) for p in searched)
    return (f"{model}: no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, vocab.json+merges.txt, ...) in the checkpoint "
            f"or its parent folders (searched: {where}); pass --tokenizer PATH_OR_ID: the folder your training run saved its "
            "tokenizer to, or the base model's hub id")


def resolve_tokenizer(model: str, explicit: str | None = None, root: Path | None = None) -> TokenizerSource:
    """The tokenizer for ``model``: ``--tokenizer`` if given, else the model folder's own, else the
    nearest parent folder with tokenizer files, searching up to ``root`` (default: the model folder's
    parent). A hub id uses its own tokenizer."""
    if explicit:
        p = Path(explicit)
        if p.exists() and not p.is_dir():
            raise UsageError(f"--tokenizer {explicit}: is a file; give the folder that holds tokenizer.json "
                             "(or tokenizer.model / vocab.json) or a hub id")
        looks_local = p.exists() or explicit.startswith((".", "/", "~")) or explicit.count("/") > 1
        if looks_local and not p.exists():
            raise UsageError(f"--tokenizer {explicit}: no such folder")
        return TokenizerSource(explicit, tokenizer_fingerprint(explicit), "option")
    folder = Path(model)
    if not folder.is_dir():
        return TokenizerSource(model, tokenizer_fingerprint(model), "hub")
    if has_tokenizer_files(folder):
        return TokenizerSource(model, tokenizer_fingerprint(model), "checkpoint")
    stop = (root if root is not None else folder.parent).resolve()
    searched = [folder]
    here = folder.resolve()
    while here != stop and stop in here.parents:
        here = here.parent
        searched.append(here)
        if has_tokenizer_files(here):
            return TokenizerSource(str(here), tokenizer_fingerprint(str(here)), "parent")
    raise UsageError(_missing_hint(model, searched))


def check_tokenizer_encodes(tok: Any, source: str) -> None:
    """Refuse a tokenizer that encodes text to no tokens (transformers builds one from a folder without files)."""
    try:
        ids = tok(TEST_STRING, add_special_tokens=False)["input_ids"]
    except Exception as e:  # noqa: BLE001 - any failure here means the tokenizer is unusable
        raise UsageError(f"tokenizer {source}: cannot encode text ({type(e).__name__}: {str(e)[:200]}); "
                         "pass --tokenizer PATH_OR_ID naming a folder with tokenizer files or a hub id") from None
    if not ids:
        raise UsageError(f"tokenizer {source}: encodes the test string {TEST_STRING!r} to no tokens: the folder has no "
                         "usable tokenizer files (tokenizer.json, tokenizer.model or vocab.json+merges.txt); pass "
                         "--tokenizer PATH_OR_ID: the folder your training run saved its tokenizer to, or the base "
                         "model's hub id")


def default_display_name(model: str, series: str | None = None, step: int | None = None) -> str:
    """A stable, readable name: ``<series> step <N>`` for a checkpoint of a series, else the model
    folder's name (wherever it is run from), else the hub id."""
    if series and step is not None:
        return f"{series} step {step}"
    p = Path(model)
    if p.is_dir():
        from evalsuite.series import parse_step

        here = p.resolve()
        step = parse_step(here)
        if step is not None and here.parent.name:  # runs/exp1/checkpoint-300 -> "exp1 step 300"
            return f"{here.parent.name} step {step}"
        return here.name or model
    return model


def output_folder_name(display_name: str, fingerprint: str | None) -> str:
    """``<display-name slug>-<8 hex of the fingerprint>``: readable, distinct for different weights,
    and the same when the same model is run from another folder."""
    import re

    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", display_name).strip("-._")[:60].rstrip("-._") or "model"
    digits = re.sub(r"[^0-9a-f]", "", (fingerprint or "").split(":", 1)[-1].lower())
    if len(digits) < 8:  # hub ids and other non-hash fingerprints: hash them
        digits = hashlib.sha256((fingerprint or display_name).encode("utf-8")).hexdigest()
    return f"{slug}-{digits[:8]}"


# ---------------------------------------------------------------- native training checkpoints

_HF_WEIGHTS = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json", "pytorch_model*.bin.index.json")


def _find(folder: Path, pattern: str) -> Path | None:
    """First match of ``pattern`` in ``folder`` or one level below (sorted, so messages are stable)."""
    hits = sorted(folder.glob(pattern)) or sorted(folder.glob(f"*/{pattern}"))
    return hits[0] if hits else None


def native_layout_problem(folder: Path) -> str | None:
    """What is wrong with a folder that is not a ``save_pretrained`` model folder, and how to fix it.

    Recognises DeepSpeed, Megatron-LM and torch distributed checkpoints and bare weight files
    without ``config.json``; None for a folder that has ``config.json`` (or is not a folder).
    """
    if not folder.is_dir() or (folder / "config.json").is_file():
        return None
    ds = _find(folder, "mp_rank_*_model_states.pt") or _find(folder, "*zero_pp_rank_*_optim_states.pt")
    if ds is not None:
        return (f"{folder}: a DeepSpeed checkpoint ({ds.relative_to(folder)}), not a Hugging Face model folder: it has no "
                "config.json and no model.safetensors. Convert it with the zero_to_fp32.py script DeepSpeed saved in the run "
                "folder: `python zero_to_fp32.py RUN_DIR OUT_DIR --tag global_step<N> --safe_serialization`, copy the "
                "model's config.json (and tokenizer files) into OUT_DIR, then pass --model OUT_DIR")
    meg = _find(folder, "mp_rank_*/model_optim_rng.pt") or _find(folder, "mp_rank_*/*.pt")
    if meg is None and (folder / "latest_checkpointed_iteration.txt").is_file():
        meg = folder / "latest_checkpointed_iteration.txt"
    if meg is not None or (folder.name.startswith("iter_") and any(folder.glob("mp_rank_*"))):
        what = meg.relative_to(folder) if meg is not None else "mp_rank_*"
        return (f"{folder}: a Megatron-LM checkpoint ({what}), not a Hugging Face model folder: it has no config.json and "
                "no model.safetensors. Convert it with Megatron-LM's tools/checkpoint/convert.py (a saver that writes the "
                "Hugging Face format, e.g. --saver llama_mistral) or transformers' convert_megatron_gpt2_checkpoint.py for "
                "GPT-2 models, then pass --model at the converted folder")
    dcp = _find(folder, "*.distcp")
    if dcp is not None:
        return (f"{folder}: a torch distributed checkpoint ({dcp.relative_to(folder)}), not a Hugging Face model folder: it "
                "has no config.json and no model.safetensors. Convert it with `accelerate merge-weights DCP_DIR OUT_DIR` (FSDP "
                "runs with Accelerate) or `python -m torch.distributed.checkpoint.format_utils dcp_to_torch DCP_DIR model.pt` "
                "and save_pretrained the loaded state dict; copy the model's config.json (and tokenizer files) into OUT_DIR, "
                "then pass --model OUT_DIR")
    weights = next((p for pat in _HF_WEIGHTS for p in sorted(folder.glob(pat))), None)
    if weights is not None:
        return (f"{folder}: has {weights.name} but no config.json, so the architecture is unknown. Copy the config.json "
                "of the model this run was trained from (same architecture and sizes) into the folder, or save with "
                "model.save_pretrained(); tokenizer files may stay at the run root (or pass --tokenizer)")
    return None


def check_model_folder(folder: Path, given: str) -> None:
    """Refuse a folder that is not a ``save_pretrained`` model folder, naming the layout and the fix (exit 2)."""
    if not folder.is_dir() or (folder / "config.json").is_file():
        return
    problem = native_layout_problem(folder)
    if problem is not None:
        raise UsageError(problem)
    raise UsageError(f"--model {given}: not a model folder (no config.json); give a checkpoint saved with save_pretrained")


# ---------------------------------------------------------------- hub ids without a network

HUB_HINT = "hub ids need network access or a local copy in the HF cache; offline, pass a local folder"


def _hf_hub_cache() -> Path:
    import os

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                                       "huggingface")
    return Path(home) / "hub"


def hub_model_cached(repo_id: str, needs: str = "config.json") -> bool:
    """Is file ``needs`` of hub repo ``repo_id`` in the local HF cache (read at call time from HF_HUB_CACHE / HF_HOME)?"""
    folder = _hf_hub_cache() / ("models--" + repo_id.replace("/", "--")) / "snapshots"
    return any(folder.glob(f"*/{needs}")) if folder.is_dir() else False


def check_hub_model_reachable(model: str, what: str = "model", needs: str = "config.json") -> None:
    """Fail in seconds, with the usual message, for a hub id that is neither cached nor reachable
    (``HF_HUB_OFFLINE=1``, or no route to the hub) instead of after a minute of download retries."""
    import os

    from evalsuite.core.errors import BackendError
    from evalsuite.data import hub_reachable

    if Path(model).exists() or hub_model_cached(model, needs):
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    if offline or not hub_reachable():
        why = "HF_HUB_OFFLINE is set" if offline else "the hub cannot be reached"
        raise BackendError(f"{model}: cannot load the {what}: {why} and it is not in the HF cache ({HUB_HINT})")
