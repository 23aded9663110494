"""Static leaderboard: golden HTML, skipped files, lm-eval import, escaping, and a real browser."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalsuite.cli import app
from evalsuite.runner import RunConfig, run

GOLDEN = Path(__file__).parent / "golden"
XSS = "<script>alert(1)</script>"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("lb")
    results = tmp / "results"
    for name in ("model-a", "نموذج-ب", XSS):
        r = run(RunConfig(model=name, suite="demo", backend="fake", output=results, use_cache=False), progress=False)
        rec = json.loads(r.results_path.read_text(encoding="utf-8"))
        rec["created"] = "2026-01-01T00:00:00+00:00"
        r.results_path.write_text(json.dumps(rec, ensure_ascii=False), encoding="utf-8")
    (results / "broken").mkdir()
    (results / "broken" / "results_half.json").write_text('{"schema": "evalsuite.results/1", "tasks": {', encoding="utf-8")
    (results / "broken" / "results_bad.json").write_text(json.dumps({"schema": "evalsuite.results/1", "model": {"name": "x"},
                                                                     "tasks": {"t": {"prompts": 3}}}), encoding="utf-8")
    lmeval = results / "lmeval" / "results_2026-01-01T00-00-00.json"
    lmeval.parent.mkdir()
    lmeval.write_text(json.dumps({"results": {"demo_sentiment_ar": {"alias": "demo", "acc,none": 0.75, "acc_stderr,none": 0.05}},
                                  "configs": {}, "config": {"model_args": "pretrained=some/lm-eval-model"},
                                  "n-samples": {"demo_sentiment_ar": {"effective": 24}}}), encoding="utf-8")
    out = tmp / "site"
    res = CliRunner().invoke(app, ["leaderboard", "build", str(ROOT / "leaderboards" / "demo.yaml"), "-r", str(results), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1] == str(out / "index.html")
    return out, results


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("EVALSUITE_UPDATE_GOLDEN") or not path.exists():
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file (set EVALSUITE_UPDATE_GOLDEN=1 to accept)"


def test_golden_html(site):
    out, _ = site
    _golden("leaderboard_index.html", (out / "index.html").read_text(encoding="utf-8"))
    _golden("leaderboard_task_sentiment.html", (out / "tasks" / "demo_sentiment_ar.html").read_text(encoding="utf-8"))


def test_everything_user_supplied_is_escaped(site):
    out, _ = site
    for page in out.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert XSS not in html, page
        assert html.count("<script>") <= 1  # only the page's own sorting script
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert 'dir="auto"' in index and "<bdi>نموذج-ب</bdi>" in index
    assert "http://" not in index and "https://" not in index


def test_skipped_files_are_listed_and_lm_eval_is_imported(site):
    out, _ = site
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "results_half.json" in index and "results_bad.json" in index
    assert "pretrained=some/lm-eval-model" in index and "(lm-eval)" in index
    # lm-eval's 0.75 accuracy, normalized against the demo task's 50% baseline: 50.0
    task = (out / "tasks" / "demo_sentiment_ar.html").read_text(encoding="utf-8")
    assert "75.0 / 50.0" in task


def test_pages_exist_for_tasks_models_and_samples(site):
    out, _ = site
    assert len(list((out / "tasks").glob("*.html"))) == 4
    assert len(list((out / "models").glob("*.html"))) == 4
    samples = list((out / "samples").rglob("*.html"))
    assert len(samples) == 3 * 4
    page = next(p for p in samples if "demo_sentiment" in p.name).read_text(encoding="utf-8")
    assert "كان الطعام" in page


def _chromium() -> str | None:
    for c in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(c)
        if p:
            return p
    return None


@pytest.mark.slow
def test_real_browser_sorts_escapes_and_stays_offline(site, tmp_path):
    browser = _chromium()
    driver_path = shutil.which("chromedriver")
    if not browser or not driver_path:
        pytest.skip("Chromium/chromedriver not installed (CI installs the Debian packages chromium and chromium-driver)")
    selenium = pytest.importorskip("selenium")
    del selenium
    from selenium import webdriver
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    out, _ = site
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run", "--window-size=1280,900", f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        driver.get((out / "index.html").as_uri())
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # the XSS model name did not run
        names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#board tbody td.name a")]
        assert XSS in names
        assert len(driver.find_elements(By.TAG_NAME, "script")) == 1

        def column(i: int) -> list[float]:
            vals = driver.execute_script(
                "return Array.from(document.querySelectorAll('#board tbody tr')).map(r => r.cells[arguments[0]].getAttribute('data-v'))", i)
            return [float(v) if v not in (None, "") else float("nan") for v in vals]

        score_th = driver.find_elements(By.CSS_SELECTOR, "#board thead th")[2]
        score_th.click()
        desc = column(2)
        assert desc == sorted(desc, reverse=True)
        score_th.click()
        asc = column(2)
        assert asc == sorted(asc) and asc != desc
        driver.find_element(By.ID, "toggle-raw").click()
        assert "raw" in driver.find_element(By.TAG_NAME, "body").get_attribute("class")
        driver.save_screenshot(str(tmp_path / "index.png"))
        driver.get((out / "tasks" / "demo_sentiment_ar.html").as_uri())
        driver.save_screenshot(str(tmp_path / "task.png"))
        urls = []
        for entry in driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                urls.append(msg["params"]["request"]["url"])
        assert any(u.startswith("file://") for u in urls)
        external = [u for u in urls if u.startswith(("http:", "https:", "ws:", "wss:", "ftp:"))]
        assert not external, external  # the page makes no request to the network
    finally:
        driver.quit()
    assert (tmp_path / "index.png").stat().st_size > 5000
