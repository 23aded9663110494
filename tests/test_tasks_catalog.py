"""The shipped task catalog: validation, golden prompt renders, real files, the CALAME builder, suites."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalsuite.calame import build, target_ok
from evalsuite.cli import app
from evalsuite.prompts import build as build_prompts
from evalsuite.runner import RunConfig, prepare
from evalsuite.spec.catalog import Catalog
from evalsuite.core.records import Example

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden" / "prompts.json"


def _realistic(task) -> dict:
    """A realistic example for any shipped task: every field its templates could use."""
    f = {"premise": "ذهب الولد إلى المدرسة صباحا.", "hypothesis": "الولد في المدرسة.", "label": (task.spec.labels or ["x"])[0],
         "question1": "ما هي عاصمة مصر؟", "question2": "ما اسم عاصمة مصر؟", "sentence": "شلونك اليوم؟", "city": (task.spec.labels or ["x"])[0],
         "text": "كان الطعام لذيذا جدا 😀", "off": "OFF", "hs": "NOT_HS", "tweet": "يوم جميل", "score": "0.6", "ID": "2018-Ar-1",
         "Tweet": "يوم جميل", "id": "1", "context": "في الصباح شربت فنجانا من", "last_word": "القهوة", "document": "أعلنت الوزارة اليوم عن خطة جديدة.",
         "title": "خطة جديدة", "ar": "أين المحطة؟", "en": "Where is the station?", "prompt": "صباح", "answer": "الخير", "country": (task.spec.labels or ["x"])[0],
         "pairID": "7", "target": "القهوة", "gold_label": "entailment", "source": "انت رايح فين؟", "summary": "خطة جديدة",
         "paraphrase": "الولد ذهب", "arabizi": "7abibi", "arabic": "حبيبي", "variety": "Egyptian", "question": "ما الخطة؟"}
    for lab in task.spec.labels or []:
        f.setdefault(lab, "1")
    return f


def test_every_shipped_task_validates_and_has_enough_prompts():
    cat = Catalog.discover()
    assert not cat.broken
    assert len(cat.tasks) >= 35
    for name, t in cat.tasks.items():
        if name.startswith("demo_") and t.spec.output_type.value == "rolling_loglikelihood":
            continue
        assert 3 <= len(t.spec.prompts) <= 7, name
    for suite in ("arabic", "alue", "argen", "xnli", "dialect", "calame", "multilingual"):
        assert suite in cat.suites
    assert [e.task for e in cat.suites["alue"].spec.tasks][:8] == ["alue_mq2q", "alue_mdd", "alue_svreg", "alue_sec", "alue_fid",
                                                                   "alue_oold", "xnli_ar", "alue_ohsd"]
    assert len(cat.suites["xnli"].spec.tasks) == 15


def test_golden_prompt_renders():
    """Every prompt variant of every task on a realistic example, byte-exact (RTL text included)."""
    cat = Catalog.discover()
    got: dict[str, dict[str, list[str]]] = {}
    for name in sorted(cat.tasks):
        t = cat.tasks[name]
        ex = Example("golden", 0, _realistic(t), "golden:1")
        pes = build_prompts(t, [ex], {})
        got[name] = {pe.prompt_id: [pe.context] + [r.continuation for r in pe.requests[:3]] for pe in pes}
    text = json.dumps(got, ensure_ascii=False, indent=1, sort_keys=True)
    if os.environ.get("EVALSUITE_UPDATE_GOLDEN") or not GOLDEN.exists():
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")
    assert "صحيح? نعم," in got["xnli_ar"]["lmeval"][1]  # lm-eval's words, kept for comparability
    assert "، صحيح؟ أيضًا، " in got["xnli_ar"]["native"][2]  # the corrected Arabic variant


REAL = [
    ("alue_mdd", 5200, None), ("alue_oold", 1000, {"OFF": 179}), ("alue_ohsd", 1000, {"HS": 44}), ("alue_fid", 1006, {"ironic": 523}),
    ("alue_mq2q", 11997, {"duplicate": 5397}), ("alue_diag", 1147, {"entailment": 538, "neutral": 369, "contradiction": 240}),
    ("xnli_ar", 2490, {"entailment": 830}),
]


@pytest.mark.parametrize("task,n,counts", REAL, ids=[r[0] for r in REAL])
def test_real_files_load_with_counts_from_benchmarks_md(shared_data, task, n, counts):
    (p,) = prepare(RunConfig(model="m", tasks=task, data_dir=shared_data / "alue", prompts=None))
    assert p.n_examples == n
    first = p.prompted[0].prompt_id
    targets = [pe.target for pe in p.prompted if pe.prompt_id == first]
    if task == "alue_mdd":
        from collections import Counter

        c = Counter(targets)
        assert len(c) == 26 and set(c.values()) == {200}
    for label, k in (counts or {}).items():
        assert targets.count(label) == k


def test_real_semeval_files(shared_data):
    (sec,) = prepare(RunConfig(model="m", tasks="alue_sec", data_dir=shared_data / "alue"))
    assert sec.n_examples == 585
    pe = next(p for p in sec.prompted if p.prompt_id == "native")
    assert len(pe.requests) == 22  # 11 emotions × yes/no
    (sv,) = prepare(RunConfig(model="m", tasks="alue_svreg", data_dir=shared_data / "alue"))
    assert sv.n_examples == 138
    assert all(0.0 <= float(p.target) <= 1.0 for p in sv.prompted)
    (ntg,) = prepare(RunConfig(model="m", tasks="argen_ntg", data_dir=shared_data / "argen"))
    assert ntg.n_examples == 100


def test_calame_ar_set_follows_the_rules():
    rows = [json.loads(x) for x in (ROOT / "tasks" / "calame" / "data" / "calame_ar.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 100
    assert sum(r["variety"] == "dialect" for r in rows) >= 15
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(r["context"] and r["last_word"] and " " not in r["last_word"] for r in rows)


def test_calame_builder_rules_and_context_filter():
    text = ("ذهبنا إلى السوق صباحا واشترينا الكثير من الفواكه. ثم عدنا إلى البيت وأكلنا البرتقال.\n\n"
            "في الليل نامت القطة قرب المدفأة. دفعت الفاتورة وكان المبلغ 250.\n\n"
            "قال لي صديقي إنه سيأتي إلى. جلسنا نتحدث طويلا في المساء عن أيام الدراسة في")
    items = build(text, "arb_Arab")
    words = [i.last_word for i in items]
    assert words == ["الفواكه", "البرتقال", "المدفأة"]  # no digits, no stopword target ("إلى", "في")
    assert items[1].context.startswith("ذهبنا إلى السوق")  # the previous sentence is kept as context
    assert not target_ok("250", "Arab") and not target_ok("في", "Arab") and not target_ok("book", "Arab")
    # a scripted reference model that "knows" one completion from the last sentence alone
    filtered = build(text, "arb_Arab", predicts=lambda ctx, tgt: tgt == "المدفأة" and ctx.startswith("في الليل"))
    assert [i.last_word for i in filtered] == ["الفواكه", "البرتقال"]
    pt = build("Ontem fomos à praia e nadámos no mar azul. Depois comemos um gelado de morango.", "por_Latn")
    assert [i.last_word for i in pt] == ["azul", "morango"]


def test_calame_build_cli(tmp_path):
    src = tmp_path / "c.txt"
    src.write_text("في الصباح ذهب الأطفال مسرعين إلى المدرسة القريبة.\n", encoding="utf-8")
    out = tmp_path / "items.jsonl"
    r = CliRunner().invoke(app, ["calame", "build", "-i", str(src), "--lang", "arb_Arab", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text(encoding="utf-8").splitlines()[0])["last_word"] == "القريبة"
    bad = CliRunner().invoke(app, ["calame", "build", "-i", str(src), "--lang", "arabic", "-o", str(out)])
    assert bad.exit_code == 2


def test_docs_tasks_md_is_up_to_date():
    from evalsuite.taskdocs import render_tasks_md

    assert (ROOT / "docs" / "tasks.md").read_text(encoding="utf-8") == render_tasks_md(Catalog.discover()), \
        "run: evalsuite tasks docs"


@pytest.mark.slow
def test_arabic_suite_runs_end_to_end_with_the_tiny_model(tiny_model, shared_data, tmp_path):
    r = CliRunner().invoke(app, ["run", "--model", str(tiny_model), "--suite", "arabic", "--limit", "20", "--device", "cpu",
                                 "--data-dir", str(shared_data / "alue"), "--data-dir", str(shared_data / "argen"),
                                 "-o", str(tmp_path), "-q", "--no-cache"])
    assert r.exit_code == 0, r.output
    rec = json.loads(Path(r.output.strip().splitlines()[-1]).read_text(encoding="utf-8"))
    ran = set(rec["tasks"])
    assert {"alue_mq2q", "alue_mdd", "alue_svreg", "alue_sec", "alue_fid", "alue_oold", "xnli_ar", "alue_ohsd", "alue_diag",
            "calame_ar", "calame_ar_gen", "argen_ntg", "argen_mt_ar_en", "dialect_region"} <= ran
    assert set(rec["skipped_tasks"]) == {"nadi2021_country", "madar6"}  # registration-only data
    for t in rec["tasks"].values():
        for p in t["prompts"].values():
            head = p["metrics"][t["headline_metric"]]
            assert head["value"] is not None or head["flag"]


def test_diag_category_breakdown(shared_data, tmp_path):
    from evalsuite.runner import run

    r = run(RunConfig(model="m", tasks="alue_diag", backend="fake", data_dir=shared_data / "alue", output=tmp_path,
                      prompts=["native"], use_cache=False), progress=False)
    bd = r.record.tasks["alue_diag"].prompts["native"].details["breakdown"]
    lines = (shared_data / "alue" / "DIAG" / "diagnostic.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    samples = {json.loads(x)["example_id"]: json.loads(x) for x in
               (r.results_path.parent / r.record.tasks["alue_diag"].samples_file).read_text(encoding="utf-8").splitlines()}
    for cat in ("Lexical Semantics_coarse", "Logic_coarse", "Knowledge_coarse", "Predicate-Argument Structure_coarse"):
        col = header.index(cat)
        ids = [row.split("\t")[0] for row in lines[1:] if row.split("\t")[col].strip() == "1"]
        assert bd[cat]["n"] == len(ids)
        acc = sum(samples[i]["prediction"] == samples[i]["gold"] for i in ids) / len(ids) * 100
        assert abs(bd[cat]["acc"] - acc) < 1e-9
