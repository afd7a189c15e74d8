"""(f) Click to gallery visible: headless Chromium (Debian's, driven by Playwright) on the
served app; from the click on Explain until every panel of the new run is loaded on screen.

Both ends are timed inside the page (``performance.now()``): the click when the button gets
it, "visible" at the first animation frame where all panels of the new run are decoded, so
Playwright's own work (its checks before clicking) is not counted. Nothing polls the page
while a click is timed: the page resolves a promise that Playwright awaits (polling it every
20 ms, as ``wait_for_function`` does, put ~85 ms on the shared cores into the measured
click). Each click starts from a quiet app: the previous run's background files are on the
page first."""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path

TITLES = {"efficientnet_lite0": "EfficientNet-Lite0", "resnet152": "ResNet152"}
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
# in the page: the click's time, the answer's (the gallery changes) and the frame where every
# panel is decoded, none of them from the previous run; checked on each change of the gallery
# and each image loaded in it, not in a loop
PROBE = """() => { const gallery = document.querySelector('#xai-gallery');
  const before = [...gallery.querySelectorAll('img')].map(i => i.src);
  const t = window.__xai = {click: null, answer: null, ready: null};
  const ready = () => { const imgs = [...gallery.querySelectorAll('img')];
    return imgs.length >= 12 && imgs.every(i => i.complete && i.naturalWidth > 50
           && !before.includes(i.src)); };
  let done;
  window.__xaiDone = new Promise((resolve, reject) => { done = resolve;
    setTimeout(() => reject(new Error('no new gallery within 5 minutes')), 300000); });
  const check = () => { if (t.click === null || t.ready !== null || !ready()) { return; }
    requestAnimationFrame(() => { if (t.ready === null) { t.ready = performance.now();
      done(t); } }); };
  window.__xaiSeen?.disconnect();
  const changed = window.__xaiSeen = new MutationObserver(() => {
    if (t.click !== null && t.answer === null) { t.answer = performance.now(); } check(); });
  changed.observe(gallery, {subtree: true, childList: true, attributes: true});
  gallery.addEventListener('load', check, {capture: true});
  document.querySelector('#xai-run').addEventListener('click', () => {
    t.click = performance.now(); }, {capture: true, once: true}); }"""
# the ZIP on the page now, and whether another one is there (the new run's build is done)
ZIP = "document.querySelector('#xai-zip a')?.href ?? ''"
NEW_ZIP = "(zip) => [...document.querySelectorAll('#xai-zip a')].some(a => a.href !== zip)"


def click_once(page) -> dict[str, float]:
    """One timed click on Explain: seconds from the click to the answer and to the gallery."""
    page.evaluate(PROBE)
    zip_before = page.evaluate(ZIP)
    page.locator("#xai-run").click()
    t = page.evaluate("window.__xaiDone")
    page.wait_for_function(NEW_ZIP, arg=zip_before, polling=100)  # quiet before the next one
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
