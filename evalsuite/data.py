"""Dataset loading: a hub dataset (via ``datasets``) or a local file.

Local files keep the exact layout of their original release; the task's
``rename`` maps task field names to file columns. Every problem names the file
and, where there is one, the line.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalsuite.core.errors import DataUnavailableError, Problem, SpecError
from evalsuite.core.records import Example
from evalsuite.spec.loader import LoadedTask
from evalsuite.spec.models import HubSource, LocalSource

csv.field_size_limit(1 << 28)


@dataclass(frozen=True)
class Rows:
    """Raw rows of a split, each with its origin (``file:line``)."""

    rows: list[dict[str, Any]]
    origins: list[str]
    source: str
    """Human description of the source (file path or hub id)."""
    label_map: dict[str, str]


def resolve_local_path(
    task: LoadedTask, src: LocalSource, data_dir: Path | None, allow_any_path: bool = False
) -> Path:
    """Resolve a local data path against ``--data-dir`` or the task's folder; refuse escapes."""
    base = (data_dir if data_dir is not None else task.file.parent).resolve()
    raw = Path(src.path)
    if raw.is_absolute():
        if not allow_any_path:
            raise SpecError(task.problem(("data", "local", "path"),
                                         f"absolute path '{src.path}' is refused; give a path relative to "
                                         f"{'--data-dir' if data_dir else 'the task file'} or pass --allow-any-path"))
        return raw
    # Checked after resolving symlinks: a link inside the folder that points outside it is an escape too.
    path = Path(os.path.normpath(base / raw))
    if not allow_any_path and not path.resolve().is_relative_to(base):
        raise SpecError(task.problem(("data", "local", "path"),
                                     f"path '{src.path}' escapes {base} (after following symlinks); keep data under "
                                     f"{'--data-dir' if data_dir else 'the task folder'} or pass --allow-any-path"))
    return path


def check_hub_path(task: LoadedTask, src: HubSource, where: tuple[str, ...], allow_any_path: bool = False) -> None:
    """A hub ``path`` that names a local folder or file is read from disk by ``datasets``: confine it
    to the task's folder as a local path would be (``--allow-any-path`` lifts this)."""
    if allow_any_path:
        return
    p = Path(src.path).expanduser()
    if not (p.is_absolute() or src.path.startswith((".", "~")) or p.exists()):
        return  # a hub id
    base = task.file.parent.resolve()
    if not p.resolve().is_relative_to(base):
        raise SpecError(task.problem(where + ("path",),
                                     f"'{src.path}' is a local path outside the task folder {base}; give a hub dataset "
                                     "id, move the data under the task folder (data.local), or pass --allow-any-path"))


def _format_of(src: LocalSource, path: Path) -> str:
    if src.format:
        return src.format
    suffix = path.suffix.lower().lstrip(".")
    return {"txt": "tsv", "tab": "tsv", "jsonl": "jsonl", "ndjson": "jsonl"}.get(suffix, suffix)


def _read_text(path: Path, display: str, encoding: str) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataUnavailableError(f"{display}: data file not found") from None
    except OSError as e:
        raise DataUnavailableError(f"{display}: cannot read data file: {e.strerror or e}") from None
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise SpecError(Problem(display, line, None, "-", f"file is not valid {encoding} (byte {e.start}); "
                                "convert it to UTF-8 or set data.local.encoding")) from None
    except LookupError:
        raise SpecError(Problem(display, None, None, "encoding", f"unknown encoding '{encoding}'")) from None
    return text.removeprefix("\ufeff")


def read_local(path: Path, src: LocalSource, display: str) -> Rows:
    """Read every row of a local file as a dict of column → value."""
    fmt = _format_of(src, path)
    rows: list[dict[str, Any]] = []
    origins: list[str] = []
    if fmt == "parquet":
        if not path.exists():
            raise DataUnavailableError(f"{display}: data file not found")
        import pandas as pd

        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises many types
            raise SpecError(Problem(display, None, None, "-", f"cannot read parquet: {e}")) from None
        for i, rec in enumerate(df.to_dict(orient="records")):
            rows.append(rec)
            origins.append(f"{display}:row {i + 1}")
    elif fmt == "jsonl":
        text = _read_text(path, display, src.encoding)
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise SpecError(Problem(display, n, e.colno, "-", f"invalid JSON: {e.msg}")) from None
            if not isinstance(obj, dict):
                raise SpecError(Problem(display, n, None, "-", "each JSON line must be an object"))
            rows.append(obj)
            origins.append(f"{display}:{n}")
    elif fmt == "json":
        text = _read_text(path, display, src.encoding)
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(Problem(display, e.lineno, e.colno, "-", f"invalid JSON: {e.msg}")) from None
        if isinstance(obj, dict) and isinstance(obj.get("data"), list):
            obj = obj["data"]
        if not isinstance(obj, list) or not all(isinstance(o, dict) for o in obj):
            raise SpecError(Problem(display, None, None, "-", "a JSON data file must be a list of objects"))
        rows = obj
        origins = [f"{display}:item {i + 1}" for i in range(len(rows))]
    elif fmt in ("csv", "tsv"):
        text = _read_text(path, display, src.encoding)
        delim = src.delimiter or ("\t" if fmt == "tsv" else ",")
        quoting = src.quoting if src.quoting != "auto" else ("none" if fmt == "tsv" else "minimal")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim,
                            quoting=csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL)
        header: list[str] | None = list(src.column_names) if src.column_names else None
        hint = ""
        try:
            for record in reader:
                n = reader.line_num
                if not record or all(not c.strip() for c in record):
                    continue
                if header is None:
                    if not src.header:
                        raise SpecError(Problem(display, None, None, "column_names",
                                                "a headerless file needs data.local.column_names"))
                    header = [c.strip() for c in record]
                    if len(header) == 1:
                        shown = "\\t" if delim == "\t" else delim
                        hint = f"; the header has no '{shown}' in it: is the delimiter right?"
                        for other, name in (("\t", "a tab"), (",", "','"), (";", "';'")):
                            if other != delim and other in header[0]:
                                raise SpecError(Problem(display, n, None, "delimiter",
                                                        f"the header is one column but contains {name}: the file looks "
                                                        f"delimited by {name}, not '{shown}'; set data.local.format or delimiter"))
                    continue
                if len(record) != len(header):
                    raise SpecError(Problem(display, n, None, "-",
                                            f"row has {len(record)} fields but expected {len(header)}"
                                            f" ({', '.join(header[:8])}){hint}; check the delimiter and quoting"))
                rows.append(dict(zip(header, record)))
                origins.append(f"{display}:{n}")
        except csv.Error as e:
            raise SpecError(Problem(display, reader.line_num, None, "-", f"malformed {fmt}: {e}")) from None
    else:
        raise SpecError(Problem(display, None, None, "format",
                                f"unknown data format '{fmt}'; use jsonl, json, csv, tsv or parquet (data.local.format)"))
    return Rows(rows, origins, display, dict(src.label_map))


def hub_reachable(timeout: float = 3.0) -> bool:
    """Can the hub endpoint be reached at all? (Avoids minutes of retries when offline.)"""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def data_dir_hint(local_path: str | None) -> str:
    """The one fix for a missing data file, the same for every local-data task."""
    target = f"DIR/{local_path}" if local_path else "DIR/<data.local.path>"
    return f"pass --data-dir DIR (the file is read from {target})"


def read_hub(src: HubSource, split: str | None = None, local_hint: str | None = None) -> Rows:
    """Load a hub dataset split; fail fast and helpfully when offline (a cached copy still works)."""
    split = split or src.split
    what = src.path + (f" (config {src.name})" if src.name else "") + f", split {split}"
    hint = (f"Point the task at a local copy: {data_dir_hint(local_hint)}, "
            "or write a task YAML whose data.local names the file.")
    offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
    saved = {k: os.environ.get(k) for k in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")}
    if not offline and not hub_reachable():
        offline = True
        os.environ["HF_DATASETS_OFFLINE"] = os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import datasets

        ds = datasets.load_dataset(src.path, src.name, split=split, revision=src.revision)
    except Exception as e:
        reason = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        note = " (the hub cannot be reached and there is no cached copy)" if offline else ""
        raise DataUnavailableError(f"cannot load hub dataset {what}{note}: {reason}\n{hint}") from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    rows = [dict(r) for r in ds]
    origins = [f"{src.path}[{split}] row {i + 1}" for i in range(len(rows))]
    return Rows(rows, origins, f"hub:{src.path}/{src.name or ''}:{split}", {str(k): v for k, v in src.label_map.items()})


def _apply_rename(rows: Rows, rename: dict[str, str], task: LoadedTask, where: tuple[str, ...]) -> list[dict[str, Any]]:
    if not rows.rows:
        return []
    columns = set(rows.rows[0])
    missing = [(field, col) for field, col in rename.items() if col not in columns]
    if missing:
        problems = [task.problem(where + ("rename", field),
                                 f"column '{col}' is not in {rows.source} (columns: {', '.join(sorted(map(str, columns)))})")
                    for field, col in missing]
        raise SpecError(problems)
    out = []
    inverse = {col: field for field, col in rename.items()}
    for r in rows.rows:
        out.append({inverse.get(k, k): v for k, v in r.items()})
    return out


def choose_data_dir(task: LoadedTask, data_dirs: Path | list[Path] | None) -> Path | None:
    """Of the --data-dir folders, the first that holds the task's local file; None for a sample shipped
    beside the task when no folder has the file; else the first folder (for the error message)."""
    if isinstance(data_dirs, Path):
        data_dirs = [data_dirs]
    if data_dirs is None:
        return None
    if not data_dirs:
        return None
    src = task.spec.data.local
    if src is not None and not Path(src.path).is_absolute():
        for d in data_dirs:
            if (d / src.path).exists():
                return d
        if (task.file.parent / src.path).exists():
            return None  # a sample shipped beside the task
    return data_dirs[0]


def source_rows(task: LoadedTask, data_dir: Path | None, allow_any_path: bool = False) -> tuple[Rows, list[dict[str, Any]]]:
    """The evaluated split's rows, after renaming; picks local or hub as documented."""
    d = task.spec.data
    use_local = d.local is not None and (data_dir is not None or d.hub is None)
    if d.local is not None and not use_local:
        # A local file next to the task (shipped samples) wins over the hub.
        candidate = resolve_local_path(task, d.local, None, allow_any_path)
        use_local = candidate.exists()
    if use_local:
        assert d.local is not None
        path = resolve_local_path(task, d.local, data_dir, allow_any_path)
        if not path.exists():
            where = f"--data-dir {data_dir}" if data_dir is not None else "the task file's folder"
            raise DataUnavailableError(str(task.problem(("data", "local", "path"),
                                                        f"data file not found: {path} (resolved against {where}); "
                                                        f"{data_dir_hint(d.local.path)}")))
        rows = read_local(path, d.local, str(path))
        renamed = _apply_rename(rows, d.local.rename, task, ("data", "local"))
    else:
        assert d.hub is not None
        check_hub_path(task, d.hub, ("data", "hub"), allow_any_path)
        rows = read_hub(d.hub, local_hint=d.local.path if d.local else None)
        renamed = _apply_rename(rows, d.hub.rename, task, ("data", "hub"))
    if not renamed:
        raise SpecError(task.problem(("data",), f"the dataset {rows.source} has no rows"))
    return rows, renamed


def shot_rows(task: LoadedTask, data_dir: Path | None, allow_any_path: bool = False) -> tuple[Rows, list[dict[str, Any]]] | None:
    """Rows of a separate few-shot pool, or None when shots come from the evaluated data."""
    fs = task.spec.fewshot
    if fs.source == "same":
        return None
    if fs.source == "hub_split":
        assert task.spec.data.hub is not None
        check_hub_path(task, task.spec.data.hub, ("data", "hub"), allow_any_path)
        rows = read_hub(task.spec.data.hub, fs.hub_split)
        return rows, _apply_rename(rows, task.spec.data.hub.rename, task, ("data", "hub"))
    assert fs.local is not None
    path = resolve_local_path(task, fs.local, data_dir, allow_any_path)
    if not path.exists():
        where = f"--data-dir {data_dir}" if data_dir is not None else "the task file's folder"
        raise DataUnavailableError(str(task.problem(("fewshot", "local", "path"),
                                                    f"few-shot file not found: {path} (resolved against {where}); "
                                                    f"{data_dir_hint(fs.local.path)}")))
    rows = read_local(path, fs.local, str(path))
    return rows, _apply_rename(rows, fs.local.rename, task, ("fewshot", "local"))


def to_examples(task: LoadedTask, rows: Rows, renamed: list[dict[str, Any]], id_prefix: str = "") -> list[Example]:
    """Build Examples with stable ids (the ``example_id`` template, else the row number)."""
    from evalsuite.core.templates import render

    out: list[Example] = []
    seen: dict[str, str] = {}
    tmpl = task.spec.example_id
    for i, (fields, origin) in enumerate(zip(renamed, rows.origins)):
        if tmpl is not None:
            try:
                ex_id = render(tmpl, fields).strip()
            except Exception as e:
                from evalsuite.core.templates import template_error_message

                raise SpecError(task.problem(("example_id",), f"{template_error_message(e)} (row {origin})")) from None
            if ex_id in seen:
                raise SpecError(task.problem(("example_id",), f"duplicate example id '{ex_id}' at {origin} (first at {seen[ex_id]})"))
            seen[ex_id] = origin
        else:
            ex_id = str(i)
        out.append(Example(id=id_prefix + ex_id, index=i, fields=fields, origin=origin))
    return out
