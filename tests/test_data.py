"""Local data files in their original layouts, few-shot sampling, and the real ALUE files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalsuite.core.errors import SpecError
from evalsuite.data import source_rows, to_examples
from evalsuite.prompts import build
from evalsuite.runner import RunConfig, prepare
from evalsuite.spec.catalog import Catalog
from evalsuite.spec.loader import load_task


def _task(tmp_path: Path, body: str, name: str = "t.yaml"):
    f = tmp_path / name
    f.write_text(body, encoding="utf-8")
    return load_task(f)


MC = """task: t
languages: [arb_Arab]
output_type: multiple_choice
data:
  local:
{local}
labels: [{labels}]
doc_to_target: "{{{{ label }}}}"
prompts:
  - id: p
    doc_to_text: "{{{{ text }}}}"
    doc_to_choice: [{choices}]
metrics: [acc]
"""


def test_headerless_tsv_with_column_names(tmp_path: Path):
    (tmp_path / "d.tsv").write_text('جملة "بعلامة اقتباس\tCAI\nأخرى\tMSA\n\n', encoding="utf-8")
    t = _task(tmp_path, MC.format(local="    path: d.tsv\n    header: false\n    column_names: [text, label]",
                                  labels="CAI, MSA", choices='"a", "b"'))
    rows, renamed = source_rows(t, None)
    assert [r["label"] for r in renamed] == ["CAI", "MSA"]
    assert renamed[0]["text"] == 'جملة "بعلامة اقتباس'  # quotes are literal in tsv
    assert rows.origins[1].endswith(":2")


def test_csv_with_quoted_commas_and_label_map(tmp_path: Path):
    (tmp_path / "d.csv").write_text('id,text,label\n1,"نص، فيه, فواصل",1\n2,نص,0\n', encoding="utf-8")
    t = _task(tmp_path, MC.format(local='    path: d.csv\n    label_map: {"1": ironic, "0": not_ironic}',
                                  labels="ironic, not_ironic", choices='"a", "b"'))
    rows, renamed = source_rows(t, None)
    exs = to_examples(t, rows, renamed)
    pes = build(t, exs, rows.label_map)
    assert renamed[0]["text"] == "نص، فيه, فواصل"
    assert [p.target for p in pes] == ["ironic", "not_ironic"] and [p.gold for p in pes] == [0, 1]


def test_parquet_and_jsonl(tmp_path: Path):
    import pandas as pd

    pd.DataFrame({"text": ["أ", "ب"], "label": ["x", "y"]}).to_parquet(tmp_path / "d.parquet")
    t = _task(tmp_path, MC.format(local="    path: d.parquet", labels="x, y", choices='"a", "b"'))
    assert [r["text"] for r in source_rows(t, None)[1]] == ["أ", "ب"]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps({"text": s, "label": "x"}, ensure_ascii=False) for s in "أب") + "\n",
                                      encoding="utf-8")
    t2 = _task(tmp_path, MC.format(local="    path: d.jsonl", labels="x, y", choices='"a", "b"'), "t2.yaml")
    assert len(source_rows(t2, None)[1]) == 2


def test_bad_encoding_names_file_and_line(tmp_path: Path):
    (tmp_path / "d.tsv").write_bytes("text\tlabel\nجيد\tx\n".encode("utf-8") + b"\xff\xfe bad\tx\n")
    t = _task(tmp_path, MC.format(local="    path: d.tsv", labels="x", choices='"a"'))
    with pytest.raises(SpecError) as e:
        source_rows(t, None)
    assert "d.tsv:3" in str(e.value) and "UTF-8" in str(e.value).upper()


def test_few_shot_never_uses_the_evaluated_example_and_is_deterministic():
    cat = Catalog.discover()
    task = cat.task("demo_sentiment_ar")
    rows, renamed = source_rows(task, None)
    exs = to_examples(task, rows, renamed)
    a = build(task, exs, rows.label_map, shots=5)
    b = build(task, exs, rows.label_map, shots=5)
    assert [p.context for p in a] == [p.context for p in b]
    by_id = {e.id: e.fields["text"] for e in exs}
    for p in a:
        own = by_id[p.example_id]
        assert p.context.count(own) == 1  # only as the evaluated example, never as a shot
    # every prompt variant of an example sees the same shots (in its own wording)
    native = {p.example_id: p.context for p in a if p.prompt_id == "native"}
    en = {p.example_id: p.context for p in a if p.prompt_id == "en_instruct"}
    for ex in exs:
        shots_native = [s for s in by_id.values() if s in native[ex.id] and s != by_id[ex.id]]
        shots_en = [s for s in by_id.values() if s in en[ex.id] and s != by_id[ex.id]]
        assert sorted(shots_native) == sorted(shots_en) and len(shots_native) == 5


def test_real_xnli_ar_file_loads_with_the_shipped_task(xnli_file: Path):
    prepared = prepare(RunConfig(model="m", tasks="xnli_ar", data_dir=xnli_file.parent.parent))
    (p,) = prepared
    assert p.n_examples == 2490
    assert len(p.prompted) == 2490 * 4
    golds = [pe.gold for pe in p.prompted if pe.prompt_id == "lmeval"]
    assert golds.count(0) == golds.count(1) == golds.count(2) == 830
    # 830 premises: the cluster key groups 3 hypotheses each
    assert len({pe.cluster for pe in p.prompted}) == 830
    lm = next(pe for pe in p.prompted if pe.prompt_id == "lmeval")
    assert lm.context == "" and ", صحيح? نعم, " in lm.requests[0].continuation
    assert lm.requests[0].continuation.startswith(" ")
