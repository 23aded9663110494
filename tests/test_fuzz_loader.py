"""Fuzzing the task loader: any YAML structure gives a SpecError, never a traceback."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalsuite.core.errors import SpecError
from evalsuite.spec.catalog import Catalog
from evalsuite.spec.loader import load_task

KEYS = ["task", "languages", "output_type", "data", "labels", "doc_to_target", "prompts", "metrics", "fewshot",
        "generation", "local", "hub", "path", "id", "doc_to_text", "doc_to_choice", "name", "k", "random_baseline",
        "example_id", "cluster", "rename", "label_map", "bogus"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(allow_nan=True), st.text(max_size=20),
                    st.sampled_from(["multiple_choice", "generate", "arb_Arab", "acc", "{{ x }}", "{% for %}", "{{ x.__class__ }}"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)), max_leaves=20)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=10)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents)
def test_random_task_structures_raise_spec_errors_only(tmp_path_factory, doc):
    f = Path(tmp_path_factory.mktemp("fuzz")) / "t.yaml"
    f.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    try:
        load_task(f)
    except SpecError as e:
        assert e.problems and all(p.file == str(f) for p in e.problems)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_random_text_is_refused_cleanly(tmp_path_factory, text):
    d = Path(tmp_path_factory.mktemp("fuzztext"))
    (d / "t.yaml").write_text(text, encoding="utf-8")
    cat = Catalog.discover([d], include_shipped=False)
    # either a valid task (vanishingly rare) or a listed broken file, never an exception
    assert len(cat.tasks) + len(cat.broken) <= 1
