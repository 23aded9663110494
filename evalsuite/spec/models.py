"""TaskSpec and SuiteSpec: the schema of task and suite YAML.

Unknown keys are forbidden everywhere. Field names follow lm-eval's task YAML
(``doc_to_text``, ``doc_to_choice``, ``doc_to_target``, ``target_delimiter``,
``fewshot_delimiter``) with one fixed meaning each: **always a jinja2 template**.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from evalsuite.core.records import OutputType
from evalsuite.metrics import registry

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{3}_[A-Z][a-z]{3}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class LocalSource(_Strict):
    """A dataset in a local file, with the exact column layout of its original release."""

    path: str
    """File path, relative to ``--data-dir`` (when given) or to the task file's folder."""
    format: Literal["jsonl", "json", "csv", "tsv", "parquet"] | None = None
    """File format; inferred from the suffix when omitted (``.txt`` counts as tsv)."""
    header: bool = True
    """Whether a csv/tsv file's first row names the columns."""
    column_names: list[str] | None = None
    """Column names of a headerless csv/tsv file, in order."""
    delimiter: str | None = None
    """Field separator; defaults to ``,`` for csv and a tab for tsv."""
    quoting: Literal["auto", "none", "minimal"] = "auto"
    """csv quoting; ``auto`` means quotes are honoured in csv and ignored in tsv."""
    encoding: str = "utf-8"
    """Text encoding of the file."""
    rename: dict[str, str] = Field(default_factory=dict)
    """Task field name → file column name."""
    label_map: dict[str, str] = Field(default_factory=dict)
    """Raw label value in the file → label name in the task's ``labels``."""


class HubSource(_Strict):
    """A dataset on the Hugging Face hub, loaded with ``datasets``."""

    path: str
    name: str | None = None
    split: str
    revision: str | None = None
    rename: dict[str, str] = Field(default_factory=dict)
    """Task field name → dataset column name."""
    label_map: dict[str, str] = Field(default_factory=dict)
    """Raw label value (as text, e.g. ``"0"``) → label name in the task's ``labels``."""


class DataSpec(_Strict):
    """Where examples come from: a hub dataset, a local file, or both (local wins with --data-dir)."""

    hub: HubSource | None = None
    local: LocalSource | None = None


class FewShotSpec(_Strict):
    """Few-shot settings; the evaluated example is never its own shot."""

    k: int = Field(0, ge=0, le=64)
    """Number of shots (``--shots`` overrides)."""
    seed: int = 1234
    """Seed of the per-example shot sampler."""
    source: Literal["same", "hub_split", "local"] = "same"
    """``same``: other examples of the evaluated data; ``hub_split``/``local``: see below."""
    hub_split: str | None = None
    """Split of the task's hub dataset to draw shots from (source: hub_split)."""
    local: LocalSource | None = None
    """A local file to draw shots from (source: local)."""


Postprocess = Literal["strip", "first_line", "first_word", "gloria", "none"]
"""``first_word``: the first whitespace-separated word after the language's normalization;
``gloria``: the GlórIA CALAME evaluation rule (newlines deleted, first ``\\b\\w+\\b`` match, comparison of
lower-cased text with diacritics removed)."""


class GenerationSpec(_Strict):
    """Greedy decoding settings of a generate task."""

    max_new_tokens: int = Field(64, ge=1, le=4096)
    stop: list[str] = Field(default_factory=lambda: ["\n"])
    repetition_penalty: float = Field(1.0, ge=1.0, le=10.0)
    postprocess: Postprocess = "strip"
    """How a generation becomes the prediction compared with the target (a prompt variant may override it)."""


class PromptVariant(_Strict):
    """One named way to turn an example into a prompt."""

    id: Name
    """Short stable id (``native``, ``en_instruct``, ``lmeval``)."""
    description: str = ""
    """Template rendered once before the shots (an instruction); may use example fields."""
    doc_to_text: str
    """Template of the context."""
    doc_to_choice: list[str] | None = None
    """multiple_choice: one template per label, in the order of ``labels``."""
    target_delimiter: str = " "
    """Put between the context and a choice or target."""
    yes_no: list[str] | None = None
    """multi_label: the two answer words (yes first) scored after each per-label question."""
    fewshot_delimiter: str = "\n\n"
    """Put between shots, and between the last shot and the evaluated example."""
    postprocess: Postprocess | None = None
    """generate: this variant's post-processing (default: the task's ``generation.postprocess``)."""
    stop: list[str] | None = None
    """generate: this variant's stop strings (default: the task's ``generation.stop``)."""


MetricName = Literal[registry.NAMES]  # type: ignore[valid-type]  # the registry is the one list


class MetricSpec(_Strict):
    """A metric and its options; the first metric of a task is its headline."""

    name: MetricName
    normalize: Literal["none", "strict", "lenient"] | None = None
    """Text normalization for exact_match (default strict)."""
    positive: str | None = None
    """f1_binary: the positive label (required)."""


class TaskSpec(_Strict):
    """A task: data, prompt variants, how answers are scored."""

    task: Name
    """Unique task name."""
    version: int = 1
    """Bump when a change alters scores; it is part of the spec hash."""
    title: str = ""
    card: str = ""
    """Free text for the task card: source, license, caveats."""
    category: str = "other"
    """Leaderboard category (suite score = mean of categories)."""
    languages: list[Language] = Field(min_length=1)
    """ISO 639-3 + script, e.g. ``arb_Arab``."""
    output_type: OutputType
    data: DataSpec
    example_id: str | None = None
    """Template giving a stable example id; defaults to the row number."""
    cluster: str | None = None
    """Template giving a cluster key for the bootstrap (examples sharing material)."""
    labels: list[str] | None = None
    """multiple_choice: the closed label set, as written in the data (after label_map); regression: the bins;
    multi_label: the label names (each answered yes/no)."""
    label_values: list[float] | None = None
    """regression: the numeric value of each bin in ``labels``."""
    doc_to_target: str
    """Template of the gold label (multiple_choice) or reference text / target word."""
    prompts: list[PromptVariant] = Field(min_length=1)
    fewshot: FewShotSpec = Field(default_factory=FewShotSpec)
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    metrics: list[MetricSpec] = Field(min_length=1)
    breakdown: list[str] = Field(default_factory=list)
    """Columns marking categories (1/true = the example belongs): each category is also scored on its own
    (e.g. ALUE DIAG's GLUE-style diagnostic categories)."""
    random_baseline: Literal["auto"] | float = "auto"
    """``auto``: computed from the data; or a fixed value on the metric's 0–100 scale."""

    @field_validator("metrics", mode="before")
    @classmethod
    def _metric_shorthand(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"name": m} if isinstance(m, str) else m for m in v]
        return v


class SuiteEntry(_Strict):
    task: Name
    limit: int | None = Field(None, ge=1)
    shots: int | None = Field(None, ge=0, le=64)


class SuiteSpec(_Strict):
    """A named list of tasks, with optional per-task limits and shots."""

    suite: Name
    title: str = ""
    description: str = ""
    tasks: list[SuiteEntry] = Field(min_length=1)

    @field_validator("tasks", mode="before")
    @classmethod
    def _task_shorthand(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"task": t} if isinstance(t, str) else t for t in v]
        return v


