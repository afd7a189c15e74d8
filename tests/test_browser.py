"""The app as a person uses it: headless Chromium (Debian's package, driven by Playwright for
Python) opens the local app and goes through each flow a user relies on: upload and Explain,
an example after Guided Grad-CAM, a new image's targets, a phone-width screen, a model that
cannot load, the target on screen and the raw maps in the ZIP (the other tabs:
test_browser_tabs.py). Screenshots go to $XAI_SCREENSHOT_DIR (else pytest's tmp) and are kept
as test artefacts."""

from __future__ import annotations

import io
import os
import re
import zipfile

import numpy as np
from app_server import ROOT, running_app

CAPTION = re.compile(r"^(Grad-CAM|Grad-CAM\+\+|Eigen-CAM|XGrad-CAM|Guided Grad-CAM) · "
                     r"(first|middle|last) · [\w.]+ · \d+×\d+×\d+ · [\w ,'-]+ \d+%$")
CAPTIONS = "#xai-gallery .caption-label"
EXAMPLE = {"cat": 0, "coffee": 1, "rocket": 2, "cat_and_coffee": 3}


def open_app(browser, width: int = 1440, height: int = 1000):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(int(os.environ.get("XAI_BROWSER_TIMEOUT_MS", "120000")))
    page.goto(running_app())
    page.locator("#xai-run").wait_for()
    return page


def upload(page, name: str, expect: str) -> None:
    page.locator("#xai-image input[type=file]").set_input_files(str(ROOT / "examples" / name))
    page.locator("#xai-predictions").get_by_text(expect).first.wait_for()


def panels(page, n: int) -> list[str]:
    """Wait until the gallery holds exactly ``n`` loaded panels; their captions."""
    page.wait_for_function(
        f"document.querySelectorAll('{CAPTIONS}').length === {n} && [...document."
        f"querySelectorAll('#xai-gallery img')].every(i => i.complete && i.naturalWidth > 50)")
    return [c.strip() for c in page.locator(CAPTIONS).all_inner_texts()]


COLUMNS_JS = ("getComputedStyle(document.querySelector('#xai-gallery .grid-container'))"
              ".gridTemplateColumns.split(' ').length")


def columns(page, expect: int | None = None) -> int:
    """The gallery's rendered column count (set by the event that follows the run's answer:
    with ``expect``, waited for up to 10 s, then read)."""
    if expect is not None:
        try:
            page.wait_for_function(f"{COLUMNS_JS} === {expect}", timeout=10_000)
        except Exception:  # the assertion below says what is on screen instead
            pass
    return page.evaluate(COLUMNS_JS)


def rows_are_layers(page, n_cols: int) -> None:
    """Each row of the gallery holds one depth, in method order, at one height."""
    captions = [c.strip() for c in page.locator(CAPTIONS).all_inner_texts()]
    boxes = [page.locator("#xai-gallery img").nth(i).bounding_box() for i in range(len(captions))]
    for start in range(0, len(captions), n_cols):
        row = captions[start:start + n_cols]
        assert len({c.split(" · ")[1] for c in row}) == 1, row
        assert len({round(b["y"]) for b in boxes[start:start + n_cols]}) == 1


def click_example(page, name: str) -> None:
    page.locator(".gallery-item").nth(EXAMPLE[name]).click()


def type_target(page, text: str) -> None:
    page.locator("#xai-target input").click()
    page.keyboard.press("Control+a")
    page.keyboard.type(text)


def target_options(page) -> list[str]:
    page.locator("#xai-target input").click()
    options = page.locator("#xai-target [role=option]")
    options.first.wait_for()
    texts = options.all_inner_texts()
    page.keyboard.press("Escape")
    return [t.strip().splitlines()[-1] for t in texts]  # without the ✓ of the chosen one


def test_upload_explain_and_see_the_gallery(browser, shots):
    page = open_app(browser)
    upload(page, "cat.png", "tabby")  # the upload alone predicts
    calls: list[str] = []
    page.on("request", lambda r: calls.append(r.url) if "/gradio_api/" in r.url else None)
    page.locator("#xai-run").click()
    captions = panels(page, 12)
    # one queued answer lays the page out and carries the panels: no second round trip, no
    # request per panel
    assert not [u for u in calls if "/run/predict" in u], calls
    assert not [u for u in calls if "/file=" in u and u.endswith(".jpg")], calls
    sources = page.evaluate("[...document.querySelectorAll('#xai-gallery img')].map(i => i.src)")
    assert all(s.startswith("data:image/jpeg;run=run-") for s in sources), sources[0][:80]
    assert "tabby" in page.locator("#xai-head").inner_text()
    page.locator("#xai-zip").get_by_text(".zip").first.wait_for()
    assert all(CAPTION.match(c) for c in captions), captions
    assert columns(page, 4) == 4
    rows_are_layers(page, 4)
    assert [c.split(" · ")[0] for c in captions[:4]] == ["Grad-CAM", "Grad-CAM++", "Eigen-CAM",
                                                        "XGrad-CAM"]
    # captions are shown whole: not clipped by their box
    clipped = page.evaluate(f"[...document.querySelectorAll('{CAPTIONS}')]"
                            ".filter(e => e.scrollWidth > e.clientWidth + 1).length")
    assert clipped == 0
    text = page.locator("#xai-predictions").inner_text()
    assert "tabby" in text and "%" in text
    page.screenshot(path=str(shots / "app.png"), full_page=True)
    assert (shots / "app.png").stat().st_size > 50_000
    page.get_by_role("tab", name="Labelled sheet").click()  # the sheet the slot offers
    page.wait_for_function("[...document.querySelectorAll('img')].some(i => i.src.endsWith("
                           "'_gallery.jpg') && i.complete && i.naturalWidth > 300)")
    page.close()


def test_example_after_guided_and_fewer_methods_keeps_rows_as_layers(browser, shots):
    page = open_app(browser)
    upload(page, "cat.png", "tabby")
    page.get_by_label("Guided Grad-CAM").check()
    page.locator("#xai-run").click()
    panels(page, 15)
    assert columns(page, 5) == 5
    click_example(page, "cat")  # the example's settings: four methods, no Guided
    panels(page, 12)
    assert columns(page, 4) == 4
    rows_are_layers(page, 4)
    page.get_by_label("XGrad-CAM").uncheck()
    page.locator("#xai-run").click()
    panels(page, 9)
    assert columns(page, 3) == 3
    click_example(page, "coffee")
    captions = panels(page, 12)
    assert columns(page, 4) == 4 and "espresso" in captions[0]
    rows_are_layers(page, 4)
    page.screenshot(path=str(shots / "example_after_guided.png"), full_page=True)
    page.close()


def test_a_new_image_refreshes_the_targets(browser, shots):
    page = open_app(browser)
    upload(page, "cat.png", "tabby")
    options = target_options(page)
    assert any(o.startswith("tabby · ") for o in options[1:6]), options[:6]
    type_target(page, "goldf")  # every class, searchable
    page.locator("#xai-target [role=option]", has_text="goldfish").first.wait_for()
    page.keyboard.press("Escape")
    type_target(page, "tabby")
    page.locator("#xai-target [role=option]", has_text="tabby ·").first.click()
    upload(page, "coffee.png", "espresso")
    page.wait_for_function("document.querySelector('#xai-target input').value.startsWith("
                           "'top-1')")  # tabby is not among the coffee's top-5
    top5 = target_options(page)[1:6]
    assert any(o.startswith("espresso · ") for o in top5) and not any(
        o.startswith("tabby") for o in top5), top5
    click_example(page, "cat_and_coffee")  # its target (espresso) is kept
    captions = panels(page, 12)
    assert page.locator("#xai-target input").input_value().startswith("espresso")
    assert all(c.endswith("%") and "espresso" in c for c in captions), captions
    page.close()


def test_the_target_is_visible(browser, shots):
    page = open_app(browser)
    click_example(page, "cat_and_coffee")
    captions = panels(page, 12)
    header = page.locator("#xai-head").inner_text()
    assert re.search(r"Target: espresso \(class 967\) \d+%", header), header
    heads = page.locator("#xai-head .xai-cols div").all_inner_texts()
    assert heads == ["Grad-CAM", "Grad-CAM++", "Eigen-CAM", "XGrad-CAM"]
    assert page.locator("#xai-head .xai-bar").bounding_box()["width"] > 100  # the colour bar
    probability = re.search(r"espresso \(class 967\) (\d+%)", header).group(1)
    assert all(c.endswith(f"espresso {probability}") for c in captions), captions
    # a typo gets a suggestion
    type_target(page, "espreso")
    page.keyboard.press("Enter")
    page.locator("#xai-run").click()
    page.get_by_text("Did you mean: espresso").first.wait_for()
    page.screenshot(path=str(shots / "target.png"), full_page=True)
    page.close()


def test_phone_width_has_no_clipped_column_and_scrolls_to_the_results(browser, shots):
    page = open_app(browser, 390, 844)
    upload(page, "cat.png", "tabby")
    page.get_by_label("Guided Grad-CAM").check()
    page.locator("#xai-run").click()
    panels(page, 15)
    page.wait_for_function("window.scrollY > 300")  # brought to the results
    assert columns(page, 2) == 2
    width = page.evaluate("document.documentElement.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for i in range(15):
        box = page.locator("#xai-gallery img").nth(i).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, (i, box)
    # the first row is not under a label: nothing sits over the first panel's centre
    hit = page.evaluate("""() => { const i = document.querySelector('#xai-gallery img');
        i.scrollIntoView();
        const c = i.getBoundingClientRect();
        return document.elementFromPoint(c.x + c.width / 2, c.y + 8) === i; }""")
    assert hit
    page.evaluate("window.scrollTo(0, document.querySelector('#xai-results').offsetTop)")
    page.screenshot(path=str(shots / "phone.png"), full_page=True)
    page.close()


def test_an_unavailable_model_goes_back_to_the_last_working_one(browser, shots):
    page = open_app(browser)
    click_example(page, "cat")
    panels(page, 12)
    page.locator("#xai-model input").click()
    page.locator("#xai-model [role=option]", has_text="ResNet152").click()
    toast = page.get_by_text("ResNet152 needs to download its weights")
    toast.first.wait_for()
    page.wait_for_function("document.querySelector('#xai-model input').value"
                           ".startsWith('EfficientNet-Lite0')")
    assert toast.count() == 1  # one sentence, once
    assert "pretrained=False" not in page.content()
    page.wait_for_function(f"document.querySelectorAll('{CAPTIONS}').length === 0")
    page.locator("#xai-model input").click()  # the list says which models are ready
    options = page.locator("#xai-model [role=option]").all_inner_texts()
    page.keyboard.press("Escape")
    assert any("ready" in o for o in options) and any("not available offline" in o
                                                       for o in options), options
    page.screenshot(path=str(shots / "unavailable_model.png"), full_page=True)
    page.locator("#xai-run").click()  # the next Explain works
    panels(page, 12)
    page.close()


def test_the_zip_holds_raw_float32_maps(browser, shots):
    page = open_app(browser)
    upload(page, "coffee.png", "espresso")
    page.locator("#xai-run").click()
    panels(page, 12)
    link = page.locator("#xai-zip a[href]").first
    link.wait_for()
    data = page.request.get(link.get_attribute("href")).body()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        raw = [n for n in names if n.startswith("raw/") and n.endswith(".npy")]
        assert len(raw) == 24  # 12 at image size, 12 at feature-map size
        fmap = np.load(io.BytesIO(zf.read(next(n for n in raw if "last" in n and "fmap" in n))))
        full = np.load(io.BytesIO(zf.read(next(n for n in raw if "last" in n
                                               and "fmap" not in n))))
    assert fmap.dtype == np.float32 and fmap.shape == (7, 7)
    assert full.dtype == np.float32 and full.shape[0] > 100 and 0 <= full.min() < full.max() <= 1
    page.close()
