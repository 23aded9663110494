"""Checkpoint series: discovery, incremental tracking, the watcher, early-signal statistics."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from evalsuite.backends.fake import FakeBackend
from evalsuite.runner import RunConfig
from evalsuite.series import (
    CompletenessWatch,
    StepScores,
    discover,
    kendall_tau,
    parse_step,
    ranking_consistency,
    spearman,
    task_signal,
)
from evalsuite.track import collect, signal_table, track, watch

STEPS = (0, 20, 60, 150)


@pytest.fixture(scope="module")
def series_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four checkpoints of one tiny run (same init), trained 0, 20, 60 and 150 steps."""
    from evalsuite.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("runs") / "exp1"
    for s in STEPS:
        build_tiny_model(root / f"checkpoint-{s}", steps=s)
    return root


def test_parse_step_and_discovery(tmp_path: Path):
    for name in ("checkpoint-1000", "step2000", "global_step3000", "iter_0004000", "notes"):
        (tmp_path / name).mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "trainer_state.json").write_text(json.dumps({"global_step": 5000}))
    assert parse_step(tmp_path / "iter_0004000") == 4000
    assert parse_step(tmp_path / "other") == 5000
    assert parse_step(tmp_path / "notes") is None
    s = discover(str(tmp_path))
    assert [c.step for c in s.checkpoints] == [1000, 2000, 3000, 4000, 5000]
    assert [c.step for c in discover(str(tmp_path), every=2000).checkpoints] == [2000, 4000]
    assert [c.step for c in discover(str(tmp_path), steps=[1000, 3000]).checkpoints] == [1000, 3000]
    assert [c.step for c in discover(str(tmp_path / "step*")).checkpoints] == [2000]
    lst = f"{tmp_path / 'step2000'},{tmp_path / 'checkpoint-1000'}"
    assert [c.step for c in discover(lst).checkpoints] == [1000, 2000]


def test_track_is_incremental_and_scores_move_with_training(series_dir: Path, tmp_path: Path):
    out = tmp_path / "results"
    base = RunConfig(model="-", tasks="demo_lastword_ar,demo_sentiment_ar", output=out, device="cpu")
    s = discover(str(series_dir))
    t0 = time.perf_counter()
    first = track(s, base)
    t_first = time.perf_counter() - t0
    assert sorted(first.evaluated) == sorted(f"checkpoint-{x}" for x in STEPS) and not first.failed
    assert first.models_loaded == 4 and first.backend_calls > 0
    t0 = time.perf_counter()
    second = track(s, base)
    t_second = time.perf_counter() - t0
    assert second.evaluated == [] and len(second.reused) == 4
    assert second.models_loaded == 0 and second.backend_calls == 0
    assert t_second < 0.25 * t_first
    per_task = collect(s, out)
    lw = sorted(per_task["demo_lastword_ar"], key=lambda p: p.step)
    assert [p.step for p in lw] == list(STEPS)
    raw = [p.by_prompt["raw"] for p in lw]
    assert raw[-1] > raw[0]  # trained longer, predicts more last words
    assert len(set(raw)) > 1
    # adding a task computes only that task
    third = track(s, RunConfig(model="-", tasks="demo_lastword_ar,demo_sentiment_ar,demo_bpb_ar", output=out, device="cpu"))
    assert len(third.evaluated) == 4
    recs = [json.loads(p.read_text(encoding="utf-8")) for p in third.results]
    assert all(set(r["tasks"]) == {"demo_bpb_ar"} for r in recs)
    assert all(r["model"]["series"] == "exp1" and r["model"]["step"] in STEPS for r in recs)
    rows = signal_table(s, out)
    assert {r["task"] for r in rows} == {"demo_lastword_ar", "demo_sentiment_ar", "demo_bpb_ar"}
    bpb = next(r for r in rows if r["task"] == "demo_bpb_ar")
    assert bpb["snr"] is None and bpb["non_randomness"] is None  # no baseline for a raw metric: undefined, not invented


def test_signal_statistics_match_hand_computation():
    pts = [
        StepScores(0, {"a": 0.0, "b": 2.0, "c": 4.0}, 0.0),
        StepScores(10, {"a": 10.0, "b": 12.0, "c": 14.0}, 0.0),
        StepScores(20, {"a": 24.0, "b": 20.0, "c": 22.0}, 0.0),
        StepScores(30, {"a": 30.0, "b": 34.0, "c": 32.0}, 0.0),
    ]
    sig = task_signal("t", pts, window=2)
    assert sig.medians == [2.0, 12.0, 22.0, 32.0]
    assert sig.monotonicity == pytest.approx(1.0)
    noise = (1.632993161855452 + 1.632993161855452) / 2  # pstdev of {20,22,24} and {30,32,34}
    assert sig.snr == pytest.approx(((22 - 0) + (32 - 0)) / 2 / noise)
    assert sig.non_randomness == pytest.approx(32 / noise)
    # best prompt: c, c, a, b -> switches at 2 of 3 transitions
    assert sig.prompt_switch_rate == pytest.approx(2 / 3)
    assert sig.passes["monotonicity"] and sig.passes["snr"] and not sig.passes["prompt_switch_rate"]


def test_signal_uses_the_median_not_the_max():
    # one lucky prompt climbs while the median stays at chance: that is not learning
    pts = [StepScores(s, {"a": 0.0, "b": 0.0, "c": float(v)}, 0.0) for s, v in [(0, 0), (1, 5), (2, 10), (3, 15)]]
    sig = task_signal("t", pts)
    assert sig.medians == [0.0, 0.0, 0.0, 0.0]
    assert sig.monotonicity is None and not sig.passes["monotonicity"]
    assert not sig.passes["snr"]


def test_rank_statistics():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    rc = ranking_consistency({"s1": {1: 1.0, 2: 2.0, 3: 3.0}, "s2": {1: 2.0, 2: 3.0, 3: 4.0}, "s3": {1: 3.0, 2: 1.0, 3: 5.0}})
    assert rc == pytest.approx((kendall_tau([1, 2, 3], [2, 3, 1]) + kendall_tau([2, 3, 1], [3, 4, 5])) / 2)


def test_watcher_waits_for_complete_checkpoints_and_survives_corrupt_ones(series_dir: Path, tmp_path: Path):
    runs = tmp_path / "exp2"
    runs.mkdir()
    src = series_dir / "checkpoint-20"
    part = runs / "checkpoint-20"
    part.mkdir()
    shutil.copy(src / "config.json", part / "config.json")
    w = CompletenessWatch()
    assert not w.is_complete(part)  # weights missing
    for f in src.iterdir():
        shutil.copy(f, part / f.name)
    assert not w.is_complete(part)  # files present, but not yet seen stable across two polls
    assert w.is_complete(part)
    bad = runs / "checkpoint-40"
    bad.mkdir()
    (bad / "config.json").write_text("{not json", encoding="utf-8")
    (bad / "model.safetensors").write_bytes(b"\0" * 64)
    (bad / "complete").write_text("")
    out = tmp_path / "results"
    events: list[str] = []
    rep = watch(str(runs), RunConfig(model="-", tasks="demo_lastword_ar", output=out, device="cpu", limit=4),
                interval=0.05, max_polls=3, on_event=events.append)
    assert rep.evaluated == ["checkpoint-20"]
    assert "checkpoint-40" in rep.failed
    failed = json.loads((out / "failed_exp2.json").read_text(encoding="utf-8"))
    assert any("checkpoint-40" in k for k in failed)


def test_track_with_fake_backend_counts_calls(series_dir: Path, tmp_path: Path):
    backend = FakeBackend()
    s = discover(str(series_dir), steps=[0])
    rep = track(s, RunConfig(model="-", tasks="demo_sentiment_ar", output=tmp_path, backend="fake", cache_dir=tmp_path / "cache"),
                make_backend=lambda cfg: backend)
    assert rep.evaluated == ["checkpoint-0"] and backend.calls == 1
    rep2 = track(s, RunConfig(model="-", tasks="demo_sentiment_ar", output=tmp_path, backend="fake", cache_dir=tmp_path / "cache"),
                 make_backend=lambda cfg: backend)
    assert rep2.reused == ["checkpoint-0"] and backend.calls == 1


def test_leaderboard_has_a_series_page_with_curves(series_dir: Path, tmp_path: Path):
    from typer.testing import CliRunner

    from evalsuite.cli import app

    out = tmp_path / "results"
    # every normalized column of the demo leaderboard, so the suite curve has points (it needs every suite task)
    track(discover(str(series_dir)), RunConfig(model="-", tasks="demo_lastword_ar,demo_sentiment_ar,demo_phrases_ar", output=out,
                                               device="cpu"))
    root = Path(__file__).resolve().parents[1]
    res = CliRunner().invoke(app, ["leaderboard", "build", str(root / "leaderboards" / "demo.yaml"), "-r", str(out),
                                   "-o", str(tmp_path / "site")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "site" / "series.html").read_text(encoding="utf-8")
    assert page.count("<polyline") == 4  # three tasks + the suite score, one series
    assert "stroke-dasharray" in page and "Early-signal statistics" in page and "demo_lastword_ar" in page
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "step 150" in index
