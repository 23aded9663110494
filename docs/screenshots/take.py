"""Build a sample leaderboard and take the screenshots in this folder (headless Chromium).

    python docs/screenshots/take.py            # writes docs/screenshots/*.png

The site is built from deterministic fake-backend runs (no model, numbers mean nothing):
eight models, one of them a three-checkpoint series, nine tasks of the shipped suites, so the
index is wider than a phone and a laptop screen. Needs chromium + chromedriver (Debian packages
chromium, chromium-driver) and selenium.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASKS = ["demo_sentiment_ar", "demo_lastword_ar", "demo_phrases_ar", "demo_bpb_ar", "calame_ar", "dialect_region",
         "argen_qg", "argen_paraphrase", "calame_ar_gen"]
MODELS = ["my-gpt2 step 50", "Llama-3.2-1B", "نموذج-عربي-صغير", "Qwen2.5-0.5B", "jais-family-590m"]
SERIES = ("my-qwen2", [1000, 2000, 3000])


def build_sample_site(work: Path) -> Path:
    """Fake-backend results for MODELS and SERIES on TASKS, and the leaderboard site built from them; returns index.html."""
    sys.path.insert(0, str(HERE.parents[1]))
    from evalsuite.cli import build_leaderboard
    from evalsuite.runner import RunConfig, run

    results = work / "results"
    base = RunConfig(model="-", tasks=",".join(TASKS), backend="fake", output=results, limit=20, use_cache=False)
    for name in MODELS:
        run(RunConfig(**{**base.__dict__, "model": name, "name": name}), progress=False)
    for step in SERIES[1]:
        run(RunConfig(**{**base.__dict__, "model": f"{SERIES[0]}/checkpoint-{step}", "series": SERIES[0], "step": step}),
            progress=False)
    lb = work / "sample.yaml"
    lb.write_text("leaderboard: sample\ntitle: Sample leaderboard (layout only)\n"
                  "note: Built from the deterministic fake backend to show the layout; the numbers mean nothing.\n"
                  "bootstrap: 100\nsamples_per_task: 30\n", encoding="utf-8")
    index, _view = build_leaderboard(lb, [results], work / "site")
    return index


def chromium_driver(width: int, height: int, profile: Path):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    if not browser or not driver_path:
        raise SystemExit("needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
              f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    # the window size includes browser chrome in some versions: make the page viewport exactly `width`
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
    return driver


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        index = build_sample_site(work)
        site = index.parent
        sample = next((site / "samples").glob("*/demo_sentiment_ar.html"))
        for width, label, height in ((1300, "desktop", 900), (390, "phone", 844)):
            driver = chromium_driver(width, height, work / f"profile-{label}")
            try:
                driver.get(index.as_uri())
                driver.save_screenshot(str(HERE / f"index-{label}.png"))
                driver.execute_script("var w=document.querySelector('#board').parentNode; w.scrollLeft=w.scrollWidth;")
                driver.save_screenshot(str(HERE / f"index-{label}-scrolled.png"))
                driver.find_element("id", "toggle-raw").click()
                driver.execute_script("var w=document.querySelector('#board').parentNode; w.scrollLeft=w.scrollWidth;")
                driver.save_screenshot(str(HERE / f"index-{label}-raw.png"))
                driver.get(sample.as_uri())
                driver.save_screenshot(str(HERE / f"samples-{label}.png"))
            finally:
                driver.quit()
    print("\n".join(str(p) for p in sorted(HERE.glob("*.png"))))


if __name__ == "__main__":
    main()
