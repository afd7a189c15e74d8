"""(f) Click to gallery visible: headless Chromium (Debian's, driven by Playwright) on the
served app; from the click on Explain until every panel of the new run is loaded on screen."""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

TITLES = {"efficientnet_lite0": "EfficientNet-Lite0", "resnet152": "ResNet152"}
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
# every panel loaded, and none of them from the previous run
READY = """(before) => { const imgs = [...document.querySelectorAll('#xai-gallery img')];
  return imgs.length >= 12 && imgs.every(i => i.complete && i.naturalWidth > 50
         && !before.includes(i.src)); }"""


def click_to_gallery(url: str, model: str, image: Path, repeats: int) -> float:
    """Median seconds from the click on Explain to the whole new gallery on screen."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.set_default_timeout(300_000)
        page.goto(url)
        page.locator("#xai-run").wait_for()
        if model != "efficientnet_lite0":
            page.locator("#xai-model input").click()
            page.locator("#xai-model [role=option]", has_text=TITLES.get(model, model)).click()
        page.locator("#xai-image input[type=file]").set_input_files(str(image))
        page.wait_for_function("document.querySelector('#xai-predictions')"
                               ".innerText.includes('%')")
        runs = []
        for _ in range(repeats + 1):  # the first one warms up
            before = page.evaluate("[...document.querySelectorAll('#xai-gallery img')]"
                                   ".map(i => i.src)")
            t = time.perf_counter()
            page.locator("#xai-run").click()
            page.wait_for_function(READY, arg=before, polling="raf")
            runs.append(time.perf_counter() - t)
        browser.close()
    return statistics.median(runs[1:])
