"""Every number a user reads: one scale, its n, baselines that constant predictors cannot beat.

Each test is one of the numbered problems of the numbers issue; most read real ALUE files from
../shared/data and check the leaderboard's own download (``leaderboard.json``) against an
independent recomputation from the samples files.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from evalsuite.aggregate import PromptInput, aggregate_task, normalize
from evalsuite.cli import app
from evalsuite.core.records import Response
from evalsuite.metrics import registry
from evalsuite.metrics.normalize import first_word, gloria_equal, gloria_word, latin_fold
from evalsuite.record import (SCHEMA, AggregateRecord, MetricRecord, ModelRecord, PromptRecord, RunRecord, TaskRecord,
                              aggregate_record, read_record)
from evalsuite.runner import RunConfig, prepare, run
from evalsuite.scoring import aggregate_prompts, score_task
from evalsuite.store import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]


def _leaderboard(tmp_path: Path, results: Path, yaml_text: str) -> dict:
    lb = tmp_path / "lb.yaml"
    lb.write_text(yaml_text, encoding="utf-8")
    out = tmp_path / "site"
    res = CliRunner().invoke(app, ["leaderboard", "build", str(lb), "-r", str(results), "-o", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "leaderboard.json").read_text(encoding="utf-8"))
    data["_out"] = out
    return data


def _const_responses(prepared, choose) -> dict[str, Response]:
    """Responses under which every example picks ``choose(prompted_example)`` (a constant or guessing predictor)."""
    out: dict[str, Response] = {}
    for p in prepared:
        for pe in p.prompted:
            pick = choose(pe)
            for j, rq in enumerate(pe.requests):
                out[rq.id] = Response(rq.id, loglikelihood=0.0 if j % len(pe.choices) == pick else -5.0, is_greedy=False,
                                      n_tokens=1)
    return out


# 1. chance on the score's scale ------------------------------------------------------------------------------------

def test_chance_column_is_on_the_normalized_scale_for_a_chance_level_model(shared_data, tmp_path):
    run(RunConfig(model="chance-model", tasks="xnli_ar", backend="fake", data_dir=shared_data / "alue", limit=300,
                  output=tmp_path / "r", use_cache=False), progress=False)
    data = _leaderboard(tmp_path, tmp_path / "r", "leaderboard: t\ncolumns: [xnli_ar]\n")
    cell = data["cells"][0]
    assert len(cell["prompts"]) == 4 and cell["n"] == 300
    # four chance-level prompts, n = 300, three choices: the expected best is 36.1 raw = about 4.2 normalized
    assert 3.5 < cell["chance"] < 5.0
    assert cell["chance_low"] <= cell["normalized_unclipped"] <= cell["chance_high"]
    assert cell["ci_low"] <= cell["normalized_unclipped"] <= cell["ci_high"]
    html = (data["_out"] / "tasks" / "xnli_ar.html").read_text(encoding="utf-8")
    assert f"{cell['chance']:.1f}" in html and "n=300/2,490" in html


# 2. SEC's interval on the score's scale ----------------------------------------------------------------------------

def test_multilabel_interval_contains_its_score(shared_data, tmp_path):
    run(RunConfig(model="m", tasks="alue_sec", backend="fake", data_dir=shared_data / "alue", limit=120,
                  output=tmp_path / "r", use_cache=False), progress=False)
    cell = _leaderboard(tmp_path, tmp_path / "r", "leaderboard: t\ncolumns: [alue_sec]\n")["cells"][0]
    assert cell["metric"] == "jaccard"
    assert cell["ci_low"] <= cell["normalized_unclipped"] <= cell["ci_high"]
    assert cell["ci_high"] - cell["ci_low"] < 100  # an interval, not [0, 100]


# 3. imported lm-eval values enter a column only with the column's metric --------------------------------------------

def _lmeval_file(folder: Path, task: str, acc: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results_lm.json").write_text(json.dumps({
        "results": {task: {"alias": task, "acc,none": acc, "acc_stderr,none": 0.01}},
        "configs": {task: {}}, "versions": {task: 1.0}, "n-samples": {task: {"original": 1000, "effective": 1000}},
        "model_name": "lm-eval-model", "date": 1.0}), encoding="utf-8")


def test_lmeval_acc_goes_only_into_an_acc_column(shared_data, tmp_path):
    run(RunConfig(model="native", tasks="alue_oold,xnli_ar", backend="fake", data_dir=shared_data / "alue", limit=200,
                  output=tmp_path / "r", use_cache=False), progress=False)
    _lmeval_file(tmp_path / "r" / "lm", "alue_oold", 0.821)
    _lmeval_file(tmp_path / "r" / "lm2", "xnli_ar", 0.50)
    data = _leaderboard(tmp_path, tmp_path / "r", "leaderboard: t\ncolumns: [alue_oold, xnli_ar]\n")
    lm = {c["task"]: c for c in data["cells"] if c["model"] == "lm-eval-model"}
    native = {c["task"]: c for c in data["cells"] if c["model"] == "native"}
    oold = lm["alue_oold"]
    assert oold["imported"] and not oold["comparable"] and oold["normalized"] is None  # acc is not the f1_macro column
    assert native["alue_oold"]["metric"] == "f1_macro"
    x = lm["xnli_ar"]
    assert x["comparable"] and x["metric"] == "acc"
    base = read_record(next((tmp_path / "r" / "native").glob("results_*.json"))).tasks["xnli_ar"].prompts["lmeval"].metrics["acc"].baseline
    assert x["normalized_unclipped"] == pytest.approx(normalize(50.0, base, registry.get("acc")))
    model_rows = {m["model"]: m for m in data["models"]}
    assert model_rows["lm-eval-model"]["coverage"] == "1/2"  # the raw acc on OOLD does not count


# 4. the max-over-prompts interval keeps its promise (reduced, seeded) -----------------------------------------------

def test_max_interval_coverage_reduced_simulation():
    spec = importlib.util.spec_from_file_location("cov", ROOT / "benchmarks" / "max_interval_coverage.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["cov"] = mod
    spec.loader.exec_module(mod)
    for s in (mod.Scenario("tied", (0.4,) * 4, 0.0, 300), mod.Scenario("separated", (0.47, 0.44, 0.40, 0.36), 0.6, 100)):
        out = mod.simulate(s, reps=200, boot=400, seed=7)
        assert out.coverage >= 0.93, out
        assert out.width_ratio <= 1.5, out
        assert out.contains_headline == 1.0


# 5. constant predictors do not beat the baseline ---------------------------------------------------------------------

@pytest.mark.parametrize("task,negative", [("alue_ohsd", "NOT_HS"), ("alue_oold", "NOT_OFF")])
def test_always_no_normalizes_to_at_most_one(shared_data, task, negative):
    cfg = RunConfig(model="m", tasks=task, backend="fake", data_dir=shared_data / "alue", prompts=None)
    prepared = prepare(cfg)
    labels = prepared[0].task.spec.labels
    for pick in (labels.index(negative), labels.index(next(x for x in labels if x != negative))):
        ps, _ = score_task(prepared[0].task, prepared[0].prompted, _const_responses(prepared, lambda pe, k=pick: k), "t")
        agg = aggregate_prompts(prepared[0].task.spec.metrics[0].name, ps)
        assert max(agg.normalized.values()) <= 1.0, (pick, agg.normalized)
    # a guesser with the gold label prior does not score above the baseline either (it is one of the candidates)
    rng = np.random.default_rng(0)
    golds = [pe.gold for pe in prepared[0].prompted]
    prior = np.bincount(golds) / len(golds)
    ps, _ = score_task(prepared[0].task, prepared[0].prompted,
                       _const_responses(prepared, lambda pe: int(rng.choice(len(prior), p=prior))), "t")
    m = ps[0].metrics[prepared[0].task.spec.metrics[0].name]
    assert m.baseline is not None and m.baseline >= 48.9 - 1e-6  # OHSD: always-"no" macro-F1 is 48.9
    assert m.ci is not None and m.ci[0] <= m.baseline  # a prior guesser is not above the baseline beyond its noise


# 7. n shown, smoke runs do not replace full runs, missing tasks rank last -------------------------------------------

def test_partial_runs_show_n_and_missing_tasks_rank_after_complete(shared_data, tmp_path):
    full = tmp_path / "r"
    run(RunConfig(model="full", tasks="alue_oold,alue_ohsd", backend="fake", data_dir=shared_data / "alue", limit=300,
                  output=full, use_cache=False), progress=False)
    # a later smoke run of the same model and configuration, 12 examples: it must not replace the 300-example run
    run(RunConfig(model="full", tasks="alue_oold", backend="fake", data_dir=shared_data / "alue", limit=12,
                  output=full, use_cache=False), progress=False)
    # a model with one of the two tasks only, rigged to score high on it
    run(RunConfig(model="partial", tasks="alue_oold", backend="fake", data_dir=shared_data / "alue", limit=300,
                  output=full, use_cache=False), progress=False)
    data = _leaderboard(tmp_path, full, "leaderboard: t\ncolumns: [alue_oold, alue_ohsd]\n")
    cells = {(c["model"], c["task"]): c for c in data["cells"]}
    assert cells[("full", "alue_oold")]["n"] == 300 and cells[("full", "alue_oold")]["n_full"] == 1000
    models = {m["model"]: m for m in data["models"]}
    assert models["full"]["coverage"] == "2/2" and models["partial"]["coverage"] == "1/2"
    assert models["full"]["rank"] < models["partial"]["rank"]
    index = (data["_out"] / "index.html").read_text(encoding="utf-8")
    assert "n=300/1,000" in index and "1/2" in index
    model_page = next((data["_out"] / "models").glob("full-*.html")).read_text(encoding="utf-8")
    assert model_page.count("results_") >= 3  # every run that fed the page is listed


# 8. series: one statistic everywhere --------------------------------------------------------------------------------

def _record(name: str, step: int, by_prompt: dict[str, float], task: str = "t1") -> RunRecord:
    acc = registry.get("acc")
    prompts = {pid: PromptRecord(100, {"acc": MetricRecord("acc", raw, True, "acc", baseline=50.0, baseline_kind="uniform random")})
               for pid, raw in by_prompt.items()}
    agg = aggregate_task(acc, [PromptInput(pid, raw, 50.0, 100) for pid, raw in by_prompt.items()])
    t = TaskRecord("h", 1, "f", "multiple_choice", ["arb_Arab"], "c", "acc", "d", 100, 100, prompts=prompts,
                   aggregate=aggregate_record(agg), title=task)
    return RunRecord(SCHEMA, "x", f"2026-01-01T00:00:{step:02d}", [], ModelRecord(name, f"fp-{name}", {}, "run", step), {},
                     {task: t})


def test_series_suite_curve_uses_the_median_like_the_task_curves(tmp_path):
    # medians flat at 60 raw (20 normalized); the max climbs -- the max would show "learning" that is prompt noise
    for i, step in enumerate((100, 200, 300)):
        rec = _record(f"ck{step}", step, {"a": 60.0, "b": 60.0, "c": 55.0 + 10 * i})
        atomic_write_json(tmp_path / "r" / f"ck{step}" / "results_x.json", rec.to_dict())
    data = _leaderboard(tmp_path, tmp_path / "r", "leaderboard: t\nheadline: max\n")
    html = (data["_out"] / "series.html").read_text(encoding="utf-8")
    import re

    suite_chart = html.split("suite score")[-1]
    ys = {float(y) for y in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', suite_chart)}
    assert len(ys) == 1, ys  # flat
    from evalsuite.series import step_scores

    medians = [step_scores(s, read_record(tmp_path / "r" / f"ck{s}" / "results_x.json").tasks["t1"]).median for s in (100, 200, 300)]
    assert medians == [20.0, 20.0, 20.0]


def test_series_handles_lower_is_better_tasks_one_way_for_signal_and_page():
    from evalsuite.series import step_scores, task_signal

    pts = [step_scores(s, TaskRecord("h", 1, "f", "rolling_loglikelihood", ["arb_Arab"], "c", "bits_per_byte", "d", 4,
                                     aggregate=AggregateRecord("bits_per_byte", False, {"plain": v}, {})))
           for s, v in ((1, 1.4), (2, 1.3), (3, 1.2))]
    assert all(p is not None and p.sign == -1.0 and p.baseline is None for p in pts)
    sig = task_signal("bpb", pts)  # type: ignore[arg-type]
    assert sig.monotonicity == pytest.approx(1.0)  # falling bits per byte is improvement
    assert sig.snr is None and sig.non_randomness is None  # no baseline: undefined, not invented


# 9. official headlines, CALAME-PT's rule, the first-word rule --------------------------------------------------------

def test_alue_headlines_follow_the_official_scoring():
    from evalsuite.spec.catalog import Catalog

    cat = Catalog.discover()
    heads = {t: cat.task(t).spec.metrics[0] for t in ("alue_mq2q", "alue_fid", "alue_diag", "alue_mdd", "xnli_ar")}
    assert (heads["alue_mq2q"].name, heads["alue_mq2q"].positive) == ("f1_binary", "duplicate")
    assert (heads["alue_fid"].name, heads["alue_fid"].positive) == ("f1_binary", "ironic")
    assert heads["alue_diag"].name == "mcc"
    assert heads["alue_mdd"].name == "f1_macro" and heads["xnli_ar"].name == "acc"
    assert "compute_metrics.py" in cat.task("alue_mq2q").spec.card and "L66" in cat.task("alue_mq2q").spec.card


@pytest.mark.parametrize("generated,target,official,ours", [
    ("\ncasa", "casa", True, False),        # newlines deleted, the text after them kept (ours stops at the newline)
    (", casa", "casa", True, True),
    ("esta", "está", True, False),          # compared without diacritics
    ("guarda-chuva.", "guarda-chuva", False, True),  # \b\w+\b takes "guarda"; our first word keeps the compound
    ("Casa", "casa ", True, True),
    ("coração", "coracao", True, False),
])
def test_calame_pt_gloria_rule(generated, target, official, ours):
    assert gloria_equal(gloria_word(generated), target) is official
    from evalsuite.metrics.normalize import normalize as norm

    cut = generated.split("\n", 1)[0]  # the other variants stop at a newline
    assert (norm(first_word(cut, "Latn"), "Latn") == norm(target, "Latn")) is ours


PT_WORDS = ("está são coração ação também número último país família difícil história música português índio órgão "
            "ninguém através então pôr avó avô irmã mãe pães órfã céu réu herói ideia régua água pêssego àquele "
            "cônjuge bênção saúde juízo raízes baú Itaú Goiás Pará Amapá São Paulo Brasília João José Conceição "
            "ç Ç ã õ ü ñ à â ê ô º ª").split()


def test_gloria_transliteration_matches_unidecode_on_portuguese():
    unidecode = pytest.importorskip("unidecode").unidecode  # test-only reference (GPL): never imported by evalsuite
    for w in PT_WORDS:
        assert latin_fold(w.lower()) == unidecode(w.lower()), w


def test_first_word_rule_is_the_documented_one():
    assert first_word(" ، القاهرة", "Arab") == first_word("القاهرة", "Arab") == "القاهرة"
    doc = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert "the first whitespace-separated word that is not only punctuation" in doc


# 10. text baselines are real outputs ---------------------------------------------------------------------------------

def test_chrf_baseline_is_a_derangement_not_zero(shared_data, tmp_path):
    r = run(RunConfig(model="m", tasks="argen_ntg", backend="fake", data_dir=shared_data / "argen", limit=60,
                      output=tmp_path, use_cache=False), progress=False)
    t = r.record.tasks["argen_ntg"]
    for p in t.prompts.values():
        for name in ("chrf", "chrfpp"):
            if name in p.metrics:
                assert p.metrics[name].baseline is not None and p.metrics[name].baseline > 5, (name, p.metrics[name])
                assert p.metrics[name].baseline_kind.startswith("derangement")


# the one registry, the one reader, the generated docs ------------------------------------------------------------------

def test_docs_are_generated_from_the_registry_and_the_record():
    from evalsuite.record import schema_markdown

    assert registry.docs_markdown() in (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert (ROOT / "docs" / "results-schema.md").read_text(encoding="utf-8") == schema_markdown()


def test_schema_1_results_still_load(tmp_path):
    old = {"schema": "evalsuite.results/1", "created": "2026-01-01", "model": {"name": "m", "fingerprint": "fp"},
           "config": {}, "tasks": {"x": {"headline_metric": "acc", "prompts": {
               "a": {"n": 10, "metrics": {"acc": {"name": "acc", "value": 60.0, "higher_is_better": True}},
                     "random_baseline": {"acc": 50.0}}}}}}
    p = tmp_path / "results_old.json"
    p.write_text(json.dumps(old), encoding="utf-8")
    rec = read_record(p)
    assert rec.tasks["x"].prompts["a"].metrics["acc"].baseline == 50.0
    assert rec.tasks["x"].aggregate is not None and rec.tasks["x"].aggregate.normalized["a"] == pytest.approx(20.0)


def test_compare_paired_bootstrap_and_mcnemar(shared_data, tmp_path):
    a = run(RunConfig(model="a", tasks="xnli_ar", backend="fake", data_dir=shared_data / "alue", limit=200,
                      prompts=["lmeval"], output=tmp_path / "a", use_cache=False), progress=False)
    b = run(RunConfig(model="b", tasks="xnli_ar", backend="fake", data_dir=shared_data / "alue", limit=200,
                      prompts=["lmeval"], output=tmp_path / "b", use_cache=False), progress=False)
    res = CliRunner().invoke(app, ["compare", str(a.results_path), str(b.results_path), "--json", "--bootstrap", "500"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.output)[0]
    ha = a.record.tasks["xnli_ar"].aggregate.headlines["max"].value
    hb = b.record.tasks["xnli_ar"].aggregate.headlines["max"].value
    assert row["diff"] == pytest.approx(ha - hb)
    assert row["ci"][0] <= row["diff"] <= row["ci"][1] and 0 <= row["p"] <= 1
    assert row["mcnemar_p"] is None  # XNLI examples share premises (clusters): McNemar does not apply
    sa = run(RunConfig(model="a", tasks="demo_sentiment_ar", backend="fake", prompts=["native"], output=tmp_path / "sa",
                       use_cache=False), progress=False)
    sb = run(RunConfig(model="b", tasks="demo_sentiment_ar", backend="fake", prompts=["native"], output=tmp_path / "sb",
                       use_cache=False), progress=False)
    mc = json.loads(CliRunner().invoke(app, ["compare", str(sa.results_path), str(sb.results_path), "--json"]).output)[0]
    assert mc["mcnemar_p"] is not None and 0 < mc["mcnemar_p"] <= 1
    same = CliRunner().invoke(app, ["compare", str(a.results_path), str(a.results_path), "--json", "--bootstrap", "200"])
    assert json.loads(same.output)[0]["p"] == 1.0
    c = run(RunConfig(model="c", tasks="xnli_ar", backend="fake", data_dir=shared_data / "alue", limit=50,
                      prompts=["lmeval"], output=tmp_path / "c", use_cache=False), progress=False)
    other = CliRunner().invoke(app, ["compare", str(a.results_path), str(c.results_path), "--json"])
    assert "identical example ids" in json.loads(other.output)[0]["note"]


def test_leaderboard_marks_models_not_significantly_different_from_the_one_above(shared_data, tmp_path):
    r = run(RunConfig(model="twin-a", tasks="xnli_ar", backend="fake", data_dir=shared_data / "alue", limit=150,
                      output=tmp_path / "r", use_cache=False), progress=False)
    twin = json.loads(r.results_path.read_text(encoding="utf-8"))
    twin["model"]["name"], twin["model"]["fingerprint"] = "twin-b", "fake-twin-b"
    (tmp_path / "r" / "twin-b").mkdir()
    (tmp_path / "r" / "twin-b" / r.results_path.name).write_text(json.dumps(twin), encoding="utf-8")
    samples = r.results_path.parent / twin["tasks"]["xnli_ar"]["samples_file"]
    (tmp_path / "r" / "twin-b" / samples.name).write_bytes(samples.read_bytes())
    data = _leaderboard(tmp_path, tmp_path / "r", "leaderboard: t\ncolumns: [xnli_ar]\nbootstrap: 300\n")
    rows = sorted(data["models"], key=lambda m: m["rank"])
    assert rows[0]["p_vs_above"] is None and rows[1]["p_vs_above"] == 1.0  # identical predictions: no difference
    assert "≈" in (data["_out"] / "index.html").read_text(encoding="utf-8")
