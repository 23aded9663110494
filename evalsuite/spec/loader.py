"""Load and validate task and suite files, reporting every problem at once."""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pydantic

from evalsuite.core.errors import Problem, SpecError
from evalsuite.core.records import OutputType, stable_hash
from evalsuite.core.templates import compile_template, template_error_message
from evalsuite.metrics import registry
from evalsuite.spec.models import MetricName, SuiteSpec, TaskSpec
from evalsuite.spec.yamlpos import PathT, Positions, load_yaml

METRICS_BY_OUTPUT: dict[OutputType, set[str]] = {t: set(registry.for_output_type(t)) for t in OutputType}


@dataclass(frozen=True)
class LoadedTask:
    """A validated task spec plus where it came from."""

    spec: TaskSpec
    file: Path
    """Absolute path of the task YAML."""
    display: str
    """Path as shown in messages."""
    positions: Positions

    @property
    def hash(self) -> str:
        """Hash of the resolved spec: changes whenever anything that affects scores changes."""
        return stable_hash(self.spec.model_dump(mode="json"), 16)

    def problem(self, path: PathT, message: str) -> Problem:
        return self.positions.problem(path, message)


@dataclass(frozen=True)
class LoadedSuite:
    spec: SuiteSpec
    file: Path
    display: str
    positions: Positions


def _unwrap(ann: Any) -> list[Any]:
    """Model classes reachable from an annotation (through Optional, list, dict, Annotated)."""
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(ann)[0])
    if origin in (typing.Union, types.UnionType, list, dict, tuple):
        out: list[Any] = []
        for a in typing.get_args(ann):
            out.extend(_unwrap(a))
        return out
    if isinstance(ann, type) and issubclass(ann, pydantic.BaseModel):
        return [ann]
    return []


def _fields_at(model: type[pydantic.BaseModel], loc: PathT) -> list[str]:
    """Field names allowed at ``loc`` (a path to a mapping), for suggestions."""
    current: list[type[pydantic.BaseModel]] = [model]
    for key in loc:
        if isinstance(key, int):
            continue
        nxt: list[type[pydantic.BaseModel]] = []
        for m in current:
            f = m.model_fields.get(str(key))
            if f is not None:
                nxt.extend(_unwrap(f.annotation))
        current = nxt or current
    names: list[str] = []
    for m in current:
        names.extend(m.model_fields)
    return names


def _clean_loc(data: Any, loc: PathT, err_type: str) -> PathT:
    """Trim pydantic's union tags from ``loc`` so it names a real place in the file."""
    out: list[Any] = []
    cur = data
    for key in loc:
        if isinstance(cur, dict) and key in cur:
            out.append(key)
            cur = cur[key]
        elif isinstance(cur, list) and isinstance(key, int) and 0 <= key < len(cur):
            out.append(key)
            cur = cur[key]
        else:
            if err_type == "missing" and isinstance(key, str) and isinstance(cur, dict):
                out.append(key)
            break
    return tuple(out)


def _pydantic_problems(
    model: type[pydantic.BaseModel], data: Any, err: pydantic.ValidationError, pos: Positions
) -> list[Problem]:
    merged: dict[PathT, list[str]] = {}
    for e in err.errors(include_url=False):
        loc = _clean_loc(data, tuple(e["loc"]), e["type"])
        if e["type"] == "extra_forbidden":
            key = str(loc[-1]) if loc else "?"
            allowed = _fields_at(model, loc[:-1])
            close = difflib.get_close_matches(key, allowed, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; allowed: {', '.join(sorted(allowed))}"
            msg = f"unknown key '{key}'{hint}"
        elif e["type"] == "missing":
            msg = "required field is missing"
        else:
            msg = e["msg"]
            raw_loc = tuple(e["loc"])
            if e["type"] == "literal_error" and len(raw_loc) >= 3 and raw_loc[0] == "metrics" and raw_loc[-1] == "name":
                bad = e.get("input")
                choices = list(typing.get_args(MetricName))
                close = difflib.get_close_matches(str(bad), choices, n=3, cutoff=0.5)
                msg = f"unknown metric '{bad}'; " + (f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(choices)}")
        if isinstance(e.get("input"), bool) and e["type"] in ("string_type", "literal_error"):
            msg += " (YAML reads yes/no/on/off/true/false as booleans: put the value in quotes)"
        msgs = merged.setdefault(loc, [])
        if msg not in msgs:
            msgs.append(msg)
    return [pos.problem(loc, " or ".join(msgs)) for loc, msgs in merged.items()]


def _check_template(task_pos: Positions, path: PathT, source: str | None, problems: list[Problem]) -> None:
    if source is None:
        return
    try:
        compile_template(source)
    except (jinja2.TemplateSyntaxError, jinja2.exceptions.SecurityError) as e:
        problems.append(task_pos.problem(path, template_error_message(e)))


def _semantic_problems(spec: TaskSpec, pos: Positions) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, p in enumerate(spec.prompts):
        if p.id in seen:
            problems.append(pos.problem(("prompts", i, "id"), f"duplicate prompt id '{p.id}' (also prompts.{seen[p.id]})"))
        seen[p.id] = i
        _check_template(pos, ("prompts", i, "description"), p.description, problems)
        _check_template(pos, ("prompts", i, "doc_to_text"), p.doc_to_text, problems)
        for j, c in enumerate(p.doc_to_choice or []):
            _check_template(pos, ("prompts", i, "doc_to_choice", j), c, problems)
    for name in ("doc_to_target", "example_id", "cluster"):
        _check_template(pos, (name,), getattr(spec, name), problems)

    mc = spec.output_type in (OutputType.MULTIPLE_CHOICE, OutputType.REGRESSION, OutputType.MULTI_LABEL)
    if spec.output_type is OutputType.REGRESSION:
        if not spec.label_values or len(spec.label_values) != len(spec.labels or []):
            problems.append(pos.problem(("label_values",), "regression tasks need label_values: one number per label (bin)"))
    elif spec.label_values is not None:
        problems.append(pos.problem(("label_values",), "'label_values' only applies to regression tasks"))
    for i, p in enumerate(spec.prompts):
        if spec.output_type is OutputType.MULTI_LABEL:
            if not p.yes_no or len(p.yes_no) != 2:
                problems.append(pos.problem(("prompts", i), "multi_label prompt variants need 'yes_no': the two answer words, yes first"))
        elif p.yes_no is not None:
            problems.append(pos.problem(("prompts", i, "yes_no"), "'yes_no' only applies to multi_label tasks"))
    if mc:
        if not spec.labels:
            problems.append(pos.problem(("labels",), f"{spec.output_type.value} tasks need a non-empty 'labels' list"))
        elif len(set(spec.labels)) != len(spec.labels):
            problems.append(pos.problem(("labels",), "labels must be unique"))
        for i, p in enumerate(spec.prompts):
            if p.doc_to_choice is None:
                problems.append(pos.problem(("prompts", i), f"{spec.output_type.value} prompt variants need 'doc_to_choice' (one template per label)"))
            elif spec.labels and len(p.doc_to_choice) != len(spec.labels):
                problems.append(pos.problem(
                    ("prompts", i, "doc_to_choice"),
                    f"has {len(p.doc_to_choice)} choices but the task has {len(spec.labels)} labels",
                ))
    else:
        if spec.labels is not None:
            problems.append(pos.problem(("labels",), f"'labels' only applies to multiple_choice tasks, not {spec.output_type.value}"))
        for i, p in enumerate(spec.prompts):
            if p.doc_to_choice is not None:
                problems.append(pos.problem(("prompts", i, "doc_to_choice"), f"'doc_to_choice' only applies to multiple_choice tasks, not {spec.output_type.value}"))

    allowed = METRICS_BY_OUTPUT[spec.output_type]
    for i, m in enumerate(spec.metrics):
        if m.name not in allowed:
            problems.append(pos.problem(("metrics", i, "name"), f"metric '{m.name}' does not apply to {spec.output_type.value} tasks; use one of {', '.join(sorted(allowed))}"))
        if m.normalize is not None and m.name != "exact_match":
            problems.append(pos.problem(("metrics", i, "normalize"), "'normalize' applies only to exact_match"))
        if m.name == "f1_binary" and (m.positive is None or m.positive not in (spec.labels or [])):
            problems.append(pos.problem(("metrics", i), f"f1_binary needs 'positive': one of the labels {spec.labels}"))
        elif m.positive is not None and m.name != "f1_binary":
            problems.append(pos.problem(("metrics", i, "positive"), "'positive' applies only to f1_binary"))

    if spec.data.hub is None and spec.data.local is None:
        problems.append(pos.problem(("data",), "give a data source: 'hub' (a hub dataset) and/or 'local' (a file)"))
    labels = set(spec.labels or [])
    for src_name in ("hub", "local"):
        src = getattr(spec.data, src_name)
        if src is not None and spec.output_type is OutputType.MULTIPLE_CHOICE and labels:
            for raw, lab in src.label_map.items():
                if lab not in labels:
                    problems.append(pos.problem(("data", src_name, "label_map", raw), f"maps to '{lab}', which is not among labels {sorted(labels)}"))
    fs = spec.fewshot
    if spec.output_type is OutputType.MULTI_LABEL and fs.k:
        problems.append(pos.problem(("fewshot", "k"), "few-shot is not supported for multi_label tasks; use k: 0"))
    if fs.source == "hub_split" and (fs.hub_split is None or spec.data.hub is None):
        problems.append(pos.problem(("fewshot", "source"), "source 'hub_split' needs fewshot.hub_split and a data.hub source"))
    if fs.source == "local" and fs.local is None:
        problems.append(pos.problem(("fewshot", "source"), "source 'local' needs fewshot.local (a file)"))
    if isinstance(spec.random_baseline, float) and not 0 <= spec.random_baseline <= 100:
        problems.append(pos.problem(("random_baseline",), "must be 'auto' or a number between 0 and 100"))
    return problems


def _validate(model: type[pydantic.BaseModel], data: Any, pos: Positions, kind: str) -> Any:
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise SpecError(pos.problem((), f"a {kind} file must be a YAML mapping, got {got}"))
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as e:
        raise SpecError(_pydantic_problems(model, data, e, pos)) from None


def parse_task(data: Any, pos: Positions, file: Path) -> LoadedTask:
    spec = _validate(TaskSpec, data, pos, "task")
    problems = _semantic_problems(spec, pos)
    if problems:
        raise SpecError(problems)
    return LoadedTask(spec, file.resolve(), pos.file, pos)


def load_task(path: Path, display: str | None = None) -> LoadedTask:
    """Load one task file; raises ``SpecError`` listing every problem."""
    data, pos = load_yaml(path, display)
    return parse_task(data, pos, path)


def load_suite(path: Path, display: str | None = None) -> LoadedSuite:
    data, pos = load_yaml(path, display)
    spec = _validate(SuiteSpec, data, pos, "suite")
    return LoadedSuite(spec, path.resolve(), pos.file, pos)


def file_kind(data: Any) -> str | None:
    """'task' or 'suite' from the top-level key, or None."""
    if isinstance(data, dict):
        if "suite" in data and "task" not in data:
            return "suite"
        if "task" in data:
            return "task"
    return None
