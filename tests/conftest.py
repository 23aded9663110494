"""Shared fixtures: a tiny, really-trained Llama built locally (nothing downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["EVALSUITE_CACHE"] = str(tmp_path_factory.mktemp("evalsuite-cache"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama (GQA) + byte-level BPE trained for 300 steps on project-written text."""
    from evalsuite.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", steps=300)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real benchmark files not available ({SHARED_DATA} is absent)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def xnli_file(shared_data: Path) -> Path:
    p = shared_data / "alue" / "XNLI" / "arabic_dev.tsv"
    if not p.exists():
        pytest.skip(f"{p} is absent")
    return p


@pytest.fixture(scope="module")
def sweep_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three checkpoints of one tiny run (hidden 32, 2 layers) for the sweep tests."""
    from _sweep_helpers import build_series

    return build_series(tmp_path_factory.mktemp("sweep") / "exp1")


@pytest.fixture(scope="module")
def sweep_reference(sweep_series: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain local ``track`` of ``sweep_series``: what every executor must reproduce."""
    from _sweep_helpers import STEPS, base_config

    from evalsuite.series import discover
    from evalsuite.track import track

    out = tmp_path_factory.mktemp("reference")
    rep = track(discover(str(sweep_series)), base_config(out))
    assert len(rep.evaluated) == len(STEPS) and not rep.failed
    return out
