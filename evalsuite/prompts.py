"""Render prompt variants and few-shot contexts (sandboxed jinja2) into Requests.

Examples × prompt variants × shots expand into ``PromptedExample`` records, each
holding the immutable requests it needs. Request ids are content hashes, so the
runner computes identical requests (across variants or tasks) once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from evalsuite.core.errors import Problem, SpecError
from evalsuite.core.records import Example, GenerationParams, OutputType, Request, RequestKind, stable_hash
from evalsuite.core.templates import render, template_error_message
from evalsuite.spec.loader import LoadedTask
from evalsuite.spec.models import PromptVariant
from evalsuite.spec.yamlpos import PathT


@dataclass(frozen=True)
class PromptedExample:
    """One (example, prompt variant): its rendered text, gold answer and requests."""

    task: str
    prompt_id: str
    example_id: str
    context: str
    """Full context: description, shots and the example's own text."""
    choices: tuple[str, ...]
    """Rendered choices (multiple_choice), without the target delimiter."""
    gold: int | None
    """Index of the gold choice (multiple_choice)."""
    target: str
    """Gold label name (multiple_choice), reference text / target word, or the number (regression)."""
    cluster: str
    """Cluster key for the bootstrap (the example id when the task has none)."""
    requests: tuple[Request, ...]
    gold_labels: tuple[str, ...] = ()
    """multi_label: the labels whose answer is yes."""
    categories: tuple[str, ...] = ()
    """The task's ``breakdown`` columns this example belongs to."""


class _Renderer:
    def __init__(self, task: LoadedTask):
        self.task = task

    def __call__(self, source: str, fields: dict[str, Any], path: PathT, origin: str, **extra: Any) -> str:
        try:
            # every template also sees the whole row as `doc` (for column names that are not identifiers)
            return render(source, {**fields, "doc": fields, **extra})
        except Exception as e:
            raise SpecError(self.task.problem(path, f"{template_error_message(e)} (while rendering {origin})")) from None


def gold_label(task: LoadedTask, fields: dict[str, Any], origin: str, label_map: dict[str, str]) -> str:
    raw = _Renderer(task)(task.spec.doc_to_target, fields, ("doc_to_target",), origin).strip()
    return label_map.get(raw, raw)


def _answer_text(task: LoadedTask, p: PromptVariant, pi: int, fields: dict[str, Any], origin: str,
                 label_map: dict[str, str]) -> str:
    """The text a shot shows after its prompt (the gold choice, or the target)."""
    r = _Renderer(task)
    gold = gold_label(task, fields, origin, label_map)
    if task.spec.output_type is OutputType.MULTIPLE_CHOICE:
        labels = task.spec.labels or []
        if gold not in labels:
            raise SpecError(task.problem(("doc_to_target",), f"label '{gold}' (from {origin}) is not among labels {labels}"))
        assert p.doc_to_choice is not None
        return r(p.doc_to_choice[labels.index(gold)], fields, ("prompts", pi, "doc_to_choice", labels.index(gold)), origin)
    return gold


def build(
    task: LoadedTask,
    examples: list[Example],
    label_map: dict[str, str],
    prompt_ids: list[str] | None = None,
    shots: int | None = None,
    shot_pool: list[Example] | None = None,
    shot_label_map: dict[str, str] | None = None,
) -> list[PromptedExample]:
    """Expand examples × selected prompt variants into prompted examples with requests."""
    spec = task.spec
    r = _Renderer(task)
    variants = [(i, p) for i, p in enumerate(spec.prompts) if prompt_ids is None or p.id in prompt_ids]
    if prompt_ids is not None:
        unknown = [x for x in prompt_ids if x not in {p.id for p in spec.prompts}]
        if len(unknown) == len(prompt_ids):
            raise SpecError(Problem(task.display, None, None, "prompts",
                                    f"none of --prompts {','.join(prompt_ids)} exist; variants: {', '.join(p.id for p in spec.prompts)}"))
    k = spec.fewshot.k if shots is None else shots
    same_pool = shot_pool is None
    pool = examples if same_pool else shot_pool
    pool_map = label_map if same_pool else (shot_label_map or {})
    if k and len(pool or []) - (1 if same_pool else 0) < k:
        raise SpecError(task.problem(("fewshot", "k"), f"{k} shots asked but the shot pool has only {len(pool or [])} examples"))
    gen = None
    if spec.output_type is OutputType.GENERATE:
        g = spec.generation
        gen = GenerationParams(g.max_new_tokens, tuple(g.stop), g.repetition_penalty)
    labels = spec.labels or []
    pmi = any(m.name == "acc_pmi" for m in spec.metrics)
    bad_labels: list[Problem] = []
    out: list[PromptedExample] = []
    for ex in examples:
        ml = spec.output_type is OutputType.MULTI_LABEL
        target = "" if ml else gold_label(task, ex.fields, ex.origin, label_map)
        gold: int | None = None
        gold_set: tuple[str, ...] = ()
        if ml:
            truthy = {"1", "true", "yes", "1.0"}
            gold_set = tuple(lab for lab in labels
                             if r(spec.doc_to_target, ex.fields, ("doc_to_target",), ex.origin, label=lab).strip().lower() in truthy)
            target = "|".join(gold_set)
        elif spec.output_type is OutputType.REGRESSION:
            try:
                float(target)
            except ValueError:
                if len(bad_labels) < 10:
                    bad_labels.append(task.problem(("doc_to_target",), f"target '{target}' of {ex.origin} is not a number"))
                continue
        if spec.output_type is OutputType.MULTIPLE_CHOICE:
            if target not in labels:
                if len(bad_labels) < 10:
                    bad_labels.append(task.problem(("doc_to_target",), f"label '{target}' of {ex.origin} is not among labels {labels}; "
                                                   "fix the data or add a label_map"))
                continue
            gold = labels.index(target)
        cluster = r(spec.cluster, ex.fields, ("cluster",), ex.origin).strip() if spec.cluster else ex.id
        cats = tuple(c for c in spec.breakdown if str(ex.fields.get(c, "")).strip().lower() in ("1", "true", "yes", "1.0"))
        shots_for_ex: list[Example] = []
        if k:
            # Same shots for every prompt variant of an example, so variants differ only in wording.
            rng = random.Random(stable_hash([spec.fewshot.seed, ex.id]))
            candidates = [s for s in pool or [] if not (same_pool and s.id == ex.id)]
            shots_for_ex = rng.sample(candidates, k)
        for pi, p in variants:
            if ml:
                # the example's display context is its first per-label question
                first = labels[0] if labels else ""
                first_text = r(p.doc_to_choice[0], ex.fields, ("prompts", pi, "doc_to_choice", 0), ex.origin) if p.doc_to_choice else first
                text = r(p.doc_to_text, ex.fields, ("prompts", pi, "doc_to_text"), ex.origin, label=first, label_text=first_text)
            else:
                text = r(p.doc_to_text, ex.fields, ("prompts", pi, "doc_to_text"), ex.origin)
            parts: list[str] = []
            for s in shots_for_ex:
                s_text = r(p.doc_to_text, s.fields, ("prompts", pi, "doc_to_text"), s.origin)
                parts.append(s_text + p.target_delimiter + _answer_text(task, p, pi, s.fields, s.origin, pool_map))
            desc = r(p.description, ex.fields, ("prompts", pi, "description"), ex.origin) if p.description else ""
            context = desc + "".join(x + p.fewshot_delimiter for x in parts) + text
            choices: tuple[str, ...] = ()
            match spec.output_type:
                case OutputType.MULTIPLE_CHOICE | OutputType.REGRESSION:
                    assert p.doc_to_choice is not None
                    choices = tuple(r(c, ex.fields, ("prompts", pi, "doc_to_choice", ci), ex.origin)
                                    for ci, c in enumerate(p.doc_to_choice))
                    reqs = tuple(Request(RequestKind.LOGLIKELIHOOD, context, p.target_delimiter + c) for c in choices)
                    if any(not (context + q.continuation) for q in reqs):
                        raise SpecError(task.problem(("prompts", pi), f"empty prompt and choice for {ex.origin}"))
                    if pmi:
                        # unconditional scores for PMI: the same continuation after the prefix token only
                        reqs += tuple(Request(RequestKind.LOGLIKELIHOOD, "", p.target_delimiter + c) for c in choices)
                case OutputType.MULTI_LABEL:
                    assert p.doc_to_choice is not None and p.yes_no is not None
                    choices = tuple(r(c, ex.fields, ("prompts", pi, "doc_to_choice", ci), ex.origin)
                                    for ci, c in enumerate(p.doc_to_choice))
                    reqs = ()
                    for lab, lab_text in zip(labels, choices):
                        ctx = desc + r(p.doc_to_text, ex.fields, ("prompts", pi, "doc_to_text"), ex.origin,
                                       label=lab, label_text=lab_text)
                        reqs += tuple(Request(RequestKind.LOGLIKELIHOOD, ctx, p.target_delimiter + w) for w in p.yes_no)
                case OutputType.GENERATE:
                    g_p = gen if p.stop is None or gen is None else GenerationParams(gen.max_new_tokens, tuple(p.stop),
                                                                                   gen.repetition_penalty)
                    reqs = (Request(RequestKind.GENERATE, context, "", g_p),)
                case OutputType.TARGET_LOGLIKELIHOOD:
                    if not target:
                        raise SpecError(task.problem(("doc_to_target",), f"empty target word for {ex.origin}"))
                    reqs = (Request(RequestKind.LOGLIKELIHOOD, context, p.target_delimiter + target),)
                case OutputType.ROLLING_LOGLIKELIHOOD:
                    if not context:
                        raise SpecError(task.problem(("prompts", pi, "doc_to_text"), f"empty text for {ex.origin}"))
                    reqs = (Request(RequestKind.ROLLING_LOGLIKELIHOOD, context),)
            out.append(PromptedExample(spec.task, p.id, ex.id, context, choices, gold, target, cluster, reqs, gold_set, cats))
    if bad_labels:
        raise SpecError(bad_labels)
    return out
