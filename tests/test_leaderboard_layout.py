"""Issue 17 item 8: the leaderboard reads on a phone and a laptop (sticky model column, scroll cue, task
titles, metric names, lower-is-better marks, legend; samples page verdicts, per-choice tables, paging)."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _take():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("take_screenshots", ROOT / "docs" / "screenshots" / "take.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _take().build_sample_site(tmp_path_factory.mktemp("layout")).parent


def test_index_and_samples_markup(site: Path):
    html = (site / "index.html").read_text(encoding="utf-8")
    heads = re.findall(r'<th class="task" data-col="([^"]+)"([^>]*)>(.*?)</th>', html, re.S)
    assert len(heads) == 9
    for task, attrs, inner in heads:
        label = re.search(r"<bdi>(.*?)</bdi>", inner).group(1)
        assert label != task and len(label) > len(task) - 4  # the task's title, not its id
        assert re.search(r'<span class="metric">\w+</span>', inner)  # metric name shown with raw values
        lower = 'data-lower="1"' in attrs
        assert lower == (task == "demo_bpb_ar") and (("lower is better" in inner) == lower)
    assert 'class="cue"' in html and "scroll the table sideways" in html
    assert "<b>Avg rank</b>:" in html and "<b>Borda</b>:" in html
    sample = (next((site / "samples").glob("*/demo_sentiment_ar.html"))).read_text(encoding="utf-8")
    assert re.search(r"✓ correct|✗ incorrect", sample)
    assert re.search(r'<table class="choices"><tbody><tr><td dir="auto"><bdi>[^<]+</bdi></td><td>-?\d+\.\d{3}</td>', sample)
    assert 'data-pages="20"' in sample and 'class="pager" hidden' in sample
    bpb = (next((site / "samples").glob("*/demo_bpb_ar.html"))).read_text(encoding="utf-8")
    assert "✓ correct" not in bpb and "✗ incorrect" not in bpb  # bits per byte has no right answer


@pytest.mark.slow
def test_layout_in_a_real_browser_at_390_and_1300_px(site: Path, tmp_path: Path):
    if not (shutil.which("chromium") or shutil.which("chromium-browser")) or not shutil.which("chromedriver"):
        pytest.skip("Chromium/chromedriver not installed (CI installs the Debian packages chromium and chromium-driver)")
    pytest.importorskip("selenium")
    from selenium.webdriver.common.by import By

    take = _take()
    for width in (390, 1300):
        driver = take.chromium_driver(width, 844, tmp_path / f"profile-{width}")
        try:
            driver.get((site / "index.html").as_uri())
            js = driver.execute_script
            assert js("return window.innerWidth") == width
            over = js("var w=document.querySelector('#board').parentNode; return w.scrollWidth > w.clientWidth")
            assert over  # nine task columns are wider than both screens ...
            assert driver.find_element(By.CSS_SELECTOR, ".cue").is_displayed()  # ... and the page says so
            name_left = js("return document.querySelector('#board tbody td.name').getBoundingClientRect().left")
            js("var w=document.querySelector('#board').parentNode; w.scrollLeft=w.scrollWidth;")
            assert js("return document.querySelector('#board tbody td.name').getBoundingClientRect().left") == name_left  # sticky
            last = js("var r=document.querySelector('#board thead th:last-child').getBoundingClientRect(); return [r.left, r.right]")
            assert 0 <= last[0] and last[1] <= width + 1  # the last task column is reachable
            # lower-is-better column: first click sorts low to high
            th = driver.find_element(By.CSS_SELECTOR, '#board th[data-col="demo_bpb_ar"]')
            js("arguments[0].click()", th)  # the header itself, not its link to the task page
            i = js("return Array.from(arguments[0].parentNode.children).indexOf(arguments[0])", th)
            vals = [float(v) for v in js("return Array.from(document.querySelectorAll('#board tbody tr')).map(r => r.cells[arguments[0]].getAttribute('data-v'))", i)]
            assert vals == sorted(vals)
            driver.find_element(By.ID, "toggle-raw").click()
            assert th.find_element(By.CSS_SELECTOR, ".metric").is_displayed() and th.find_element(By.CSS_SELECTOR, ".metric").text
            driver.get(next((site / "samples").glob("*/demo_sentiment_ar.html")).as_uri())
            visible = js("return Array.from(document.querySelectorAll('tr.sample')).filter(r => !r.hidden).length")
            total = js("return document.querySelectorAll('tr.sample').length")
            assert visible == 20 and total > 20
            assert re.match(r"Page 1 of \d+", driver.find_element(By.CSS_SELECTOR, ".pager .info").text)
            driver.find_element(By.CSS_SELECTOR, ".pager .next").click()
            assert driver.find_element(By.CSS_SELECTOR, ".pager .info").text.startswith("Page 2 of")
            height = js("return document.documentElement.scrollHeight")
            assert height < 9000, height
        finally:
            driver.quit()
