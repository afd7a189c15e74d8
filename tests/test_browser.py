"""The app as a person uses it: headless Chromium (Debian's package, driven by Playwright for
Python) opens the local app, uploads an example, presses Explain and sees 12 captioned panels
and the top-5 predictions. The screenshot goes to $XAI_SCREENSHOT_DIR (else pytest's tmp)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from app_server import ROOT, running_app

CHROMIUM = os.environ.get("XAI_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
CAPTION = re.compile(r"^(Grad-CAM|Grad-CAM\+\+|Eigen-CAM|XGrad-CAM) · (first|middle|last) · "
                     r"[\w.]+ · \d+×\d+×\d+$")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="Playwright for Python is not installed")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium); the browser "
                    "test needs Debian's package because a browser download is not possible")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def test_upload_explain_and_see_the_gallery(browser, tmp_path):
    url = running_app()
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.set_default_timeout(120_000)
    page.goto(url)
    page.locator("#xai-run").wait_for()
    page.locator("#xai-image input[type=file]").set_input_files(str(ROOT / "examples" / "cat.png"))
    predictions = page.locator("#xai-predictions")
    predictions.get_by_text("tabby").first.wait_for()  # the upload alone predicts
    page.locator("#xai-run").click()
    page.wait_for_function(
        "document.querySelectorAll('#xai-gallery .caption-label').length >= 12")
    page.locator("#xai-zip").get_by_text(".zip").first.wait_for()

    captions = page.locator("#xai-gallery .caption-label").all_inner_texts()
    assert len(captions) == 12 and all(CAPTION.match(c.strip()) for c in captions), captions
    images = page.locator("#xai-gallery img")
    assert images.count() == 12
    page.wait_for_function("[...document.querySelectorAll('#xai-gallery img')]"
                           ".every(i => i.complete && i.naturalWidth > 100)")
    # rows are layers: the 4 captions of each row name the same depth, columns the methods
    boxes = [images.nth(i).bounding_box() for i in range(12)]
    assert len({round(b["y"]) for b in boxes[:4]}) == 1 and boxes[4]["y"] > boxes[0]["y"]
    assert [c.split(" · ")[0] for c in captions[:4]] == ["Grad-CAM", "Grad-CAM++", "Eigen-CAM",
                                                        "XGrad-CAM"]
    # captions are shown whole: not clipped by their box
    clipped = page.evaluate("[...document.querySelectorAll('#xai-gallery .caption-label')]"
                            ".filter(e => e.scrollWidth > e.clientWidth + 1).length")
    assert clipped == 0
    text = predictions.inner_text()
    assert "tabby" in text and "%" in text

    out = Path(os.environ.get("XAI_SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / "app.png"), full_page=True)
    assert (out / "app.png").stat().st_size > 50_000
    page.close()
