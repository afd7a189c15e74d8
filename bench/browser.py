"""(f) Click to gallery visible: headless Chromium (Debian's, driven by Playwright) on the
served app; from the click on Explain until every panel of the new run is loaded on screen.

Both ends are timed inside the page (``performance.now()``): the click when the button gets
it, "visible" at the first animation frame where all panels of the new run are decoded, so
Playwright's own work (its checks before clicking, its polling) is not counted. Each click
starts from a quiet app: the previous run's background files are on the page first."""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path

TITLES = {"efficientnet_lite0": "EfficientNet-Lite0", "resnet152": "ResNet152"}
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
# in the page: the click's time, the answer's (the gallery changes) and the frame where every
# panel is loaded, none of them from the previous run
PROBE = """() => { const before = [...document.querySelectorAll('#xai-gallery img')]
    .map(i => i.src);
  const t = window.__xai = {click: null, answer: null, ready: null};
  const ready = () => { const imgs = [...document.querySelectorAll('#xai-gallery img')];
    return imgs.length >= 12 && imgs.every(i => i.complete && i.naturalWidth > 50
           && !before.includes(i.src)); };
  const frame = () => { if (ready()) { t.ready = performance.now(); } else {
    requestAnimationFrame(frame); } };
  window.__xaiSeen?.disconnect();
  const changed = window.__xaiSeen = new MutationObserver(() => { if (t.answer === null) {
    t.answer = performance.now(); } });
  changed.observe(document.querySelector('#xai-gallery'),
                  {subtree: true, childList: true, attributes: true});
  document.querySelector('#xai-run').addEventListener('click', () => {
    t.click = performance.now(); requestAnimationFrame(frame); },
    {capture: true, once: true}); }"""
# the folder of the run on screen, and whether its ZIP is on the page (the build is done)
RUN = "(document.querySelector('#xai-gallery img')?.src.match(/run-[A-Za-z0-9_]+/) || [''])[0]"
FILES_ON_PAGE = ("(run) => [...document.querySelectorAll('#xai-zip a')]"
                 ".some(a => a.href.includes(run))")


def click_once(page) -> dict[str, float]:
    """One timed click on Explain: seconds from the click to the answer and to the gallery."""
    page.evaluate(PROBE)
    page.locator("#xai-run").click()
    page.wait_for_function("window.__xai.ready !== null", polling=20)
    t = page.evaluate("window.__xai")
    run = page.evaluate(RUN)
    page.wait_for_function(FILES_ON_PAGE, arg=run, polling=50)  # quiet before the next one
    return {"click_to_gallery_s": (t["ready"] - t["click"]) / 1e3,
            "click_to_answer_s": ((t["answer"] or t["ready"]) - t["click"]) / 1e3}


def click_to_gallery(url: str, model: str, image: Path, repeats: int) -> dict[str, float]:
    """Medians (seconds) from the click on Explain to the whole new gallery on screen
    (``click_to_gallery_s``) and to the answer's first change of the gallery."""
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
        page.wait_for_function("document.querySelector('#xai-predictions')?"
                               ".innerText.includes('%')")
        runs = [click_once(page) for _ in range(repeats + 1)][1:]  # the first one warms up
        browser.close()
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}
