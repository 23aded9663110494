"""Results on disk: the run's results JSON and one per-sample JSONL per task.

Every file is written to a temporary file in the same folder, flushed, fsync'ed
and renamed over the target, so a reader never sees half a file.
The results JSON layout is documented in ``docs/results-schema.md``.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import tempfile
import time
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
    # the writer's host and pid are in the name, so a later run can tell an orphan from a live write
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=".tmp", dir=path.parent)
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


_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"
_TMP = re.compile(r"\.(?P<target>.+)\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[^.]+\.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp_files(folder: Path, max_age_s: float = 24 * 3600) -> list[Path]:
    """Delete temp files a killed writer left in ``folder``: this host's whose process is gone, and any
    older than ``max_age_s`` (another host's, or written before names carried a pid). Returns them."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for f in folder.glob(".*.tmp"):
        if not f.name.startswith((".samples_", ".results_")):
            continue
        m = _TMP.fullmatch(f.name)
        try:
            stale = (m is not None and m["host"] == _HOST and not _alive(int(m["pid"]))) or now - f.stat().st_mtime > max_age_s
            if stale:
                f.unlink()
                removed.append(f)
        except OSError:
            continue
    return removed


def check_writable(folder: Path) -> None:
    """Raise ``OSError`` now, not after the compute, when ``folder`` cannot be created or written."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".probe.{_HOST}-{os.getpid()}.", suffix=".tmp", dir=folder)
    os.close(fd)
    os.unlink(tmp)


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
