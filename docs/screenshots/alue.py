"""Screenshots of an ALUE leaderboard built from the real ALUE dev files (not committed: its pages hold the data).

    python docs/screenshots/alue.py [--data-dir ../shared/data/alue] [--limit 200]

Three small models trained here for a few seconds (the tiny Llama of the demo at three training
lengths), every ALUE task with every prompt variant through the hf backend; one model is also run
on XNLI with --limit 60 only, and one lacks DIAG, so n and coverage show. Writes
``alue-index-desktop.png``, ``alue-index-phone.png``, ``alue-task-xnli-desktop.png`` and
``alue-model-desktop.png`` beside this file, and prints the site's leaderboard.json cells.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ALUE = ["alue_mq2q", "alue_mdd", "alue_svreg", "alue_sec", "alue_fid", "alue_oold", "xnli_ar", "alue_ohsd", "alue_diag"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "alue")
    ap.add_argument("--limit", type=int, default=200)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    from take import chromium_driver

    from evalsuite.cli import build_leaderboard
    from evalsuite.runner import RunConfig, run
    from evalsuite.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results = work / "results"
        for steps, tasks in ((300, ALUE), (120, ALUE), (30, ALUE[:-1])):
            model = build_tiny_model(work / f"tiny-{steps}", steps=steps)
            run(RunConfig(model=str(model), name=f"tiny-llama-{steps}-steps", tasks=",".join(tasks), data_dir=args.data_dir,
                          limit=args.limit, output=results, device="cpu"), progress=False)
        # a quick smoke run of the first model: shown on its model page, never instead of the full run
        run(RunConfig(model=str(work / "tiny-300"), name="tiny-llama-300-steps", tasks="xnli_ar", data_dir=args.data_dir,
                      limit=60, output=results, device="cpu"), progress=False)
        lb = work / "alue.yaml"
        lb.write_text((ROOT / "leaderboards" / "alue.yaml").read_text(encoding="utf-8").replace("results: [../results]\n", "")
                      + "bootstrap: 1000\nsamples_per_task: 20\n", encoding="utf-8")
        index, _view = build_leaderboard(lb, [results], work / "site")
        site = index.parent
        print(json.dumps(json.loads((site / "leaderboard.json").read_text(encoding="utf-8")), indent=1, ensure_ascii=False))
        shots = [("alue-index-desktop.png", index, 1300, 1000), ("alue-index-phone.png", index, 390, 844),
                 ("alue-task-xnli-desktop.png", site / "tasks" / "xnli_ar.html", 1300, 1000),
                 ("alue-model-desktop.png", next((site / "models").glob("tiny-llama-300*.html")), 1300, 1400)]
        for name, page, width, height in shots:
            driver = chromium_driver(width, height, work / f"profile-{name}")
            try:
                driver.get(page.as_uri())
                driver.save_screenshot(str(HERE / name))
            finally:
                driver.quit()
            print(HERE / name)


if __name__ == "__main__":
    main()
