"""Every broken task file gives exit code 2, names the file and line, and writes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalsuite.cli import app

BAD = Path(__file__).parent / "bad_tasks"
CASES = sorted(BAD.glob("*.yaml"))


def _expectations(path: Path) -> tuple[list[str], int | None]:
    lines = path.read_text(encoding="utf-8").splitlines()
    m = re.match(r"# expect: (.*)", lines[0])
    assert m, f"{path.name} needs an '# expect:' header"
    words = [w.strip() for w in m.group(1).split("|")]
    here = [i + 1 for i, line in enumerate(lines) if line.rstrip().endswith("# HERE")]
    return words, (here[0] if here else None)


def test_corpus_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_bad_task_is_refused_clearly(path: Path, tmp_path: Path):
    words, line = _expectations(path)
    out = tmp_path / "results"
    res = CliRunner().invoke(app, ["run", "--backend", "fake", "--model", "m", "--tasks", str(path), "--output", str(out), "-q"])
    text = res.output
    assert res.exit_code == 2, text
    assert "Traceback" not in text
    for w in words:
        assert w in text, f"expected {w!r} in:\n{text}"
    if line is not None:
        assert f"{path.name}:{line}" in text, f"expected {path.name}:{line} in:\n{text}"
    assert not out.exists() or not any(out.rglob("*")), "nothing may be written for bad input"


def test_validate_reports_every_problem_at_once(tmp_path: Path):
    f = tmp_path / "two_problems.yaml"
    f.write_text(
        "task: t\nlanguages: [arb_Arab]\noutput_type: generate\ndata: {local: {path: x.jsonl}}\n"
        "doc_to_target: '{{ a }}'\nprompts:\n  - id: p\n    doc_to_txt: '{{ a }}'\nmetrics: [bleu]\nfewshot: {k: many}\n",
        encoding="utf-8",
    )
    res = CliRunner().invoke(app, ["validate", str(f)])
    assert res.exit_code == 2
    assert "two_problems.yaml:8:" in res.output and "doc_to_txt" in res.output
    assert "two_problems.yaml:10:" in res.output and "fewshot.k" in res.output
    assert "2 problems" in res.output or "3 problems" in res.output
