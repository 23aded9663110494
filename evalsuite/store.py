"""Results on disk: the run's results JSON and one per-sample JSONL per task.

Every file is written to a temporary file in the same folder, flushed, fsync'ed
and renamed over the target, so a reader never sees half a file.
The results JSON layout is documented in ``docs/results-schema.md``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from contextlib import contextmanager
from typing import IO, Any, Iterable, Iterator

from evalsuite.record import SCHEMA, RunRecord, read_record  # noqa: F401  (re-exported: the one reader)


def _file_mode() -> int:
    """Permissions a plain ``open()`` would give (mkstemp's are owner-only)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _clean(obj: Any) -> Any:
    """JSON cannot hold NaN/inf: they become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


@contextmanager
def _atomic(path: Path, mode: str) -> Iterator[IO[Any]]:
    """Yield a temp file beside ``path``; on success fsync it and rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with _atomic(path, "wb") as f:
        f.write(data)


def atomic_write_json(path: Path, obj: Any) -> None:
    data = json.dumps(_clean(obj), ensure_ascii=False, indent=2, sort_keys=False, allow_nan=False) + "\n"
    atomic_write_bytes(path, data.encode("utf-8"))


def atomic_write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Stream records to a temp file, then rename (memory stays flat for big files)."""
    with _atomic(path, "w") as f:
        for rec in records:
            f.write(json.dumps(_clean(rec), ensure_ascii=False, allow_nan=False))
            f.write("\n")


def read_results(path: Path) -> RunRecord:
    """The run record of a results file (``record.read_record``)."""
    return read_record(path)


def safe_name(text: str, limit: int = 80) -> str:
    """A filesystem-safe folder name derived from a model path or id."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text.strip("/").replace("/", "__"))
    keep = keep.strip("._") or "model"
    return keep[:limit]
