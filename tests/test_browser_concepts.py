"""In headless Chromium: the gallery's fused row (LayerCAM ticked) and the DFF concepts in the
Embeddings tab, at desktop and phone width. Screenshots as in test_browser.py."""

from __future__ import annotations

import pytest
from test_browser import open_app, panels, upload


def test_layercam_adds_the_fused_panels_to_the_gallery(browser, shots):
    page = open_app(browser)
    upload(page, "cat.png", "tabby")
    page.get_by_label("LayerCAM", exact=True).check()
    page.locator("#xai-run").click()
    captions = panels(page, 17)
    assert captions[-2].startswith("LayerCAM fusion · fused first + middle + last")
    assert captions[-1].startswith("RefineCAM · fused first + middle + last")
    page.screenshot(path=str(shots / "gallery_fused.png"), full_page=True)
    page.close()


@pytest.mark.parametrize("width", [1440, 390])
def test_concepts_picture_and_labels_fit_the_screen(browser, shots, width):
    page = open_app(browser, width, 1000 if width > 600 else 844)
    upload(page, "cat_and_coffee.png", "tabby")
    tab = page.get_by_role("tab", name="Embeddings & faithfulness")
    if not tab.is_visible():  # a narrow screen folds the last tabs into the overflow menu
        page.locator(".overflow-menu").first.click()
        tab = page.get_by_role("menuitem", name="Embeddings & faithfulness").or_(
            page.get_by_role("tab", name="Embeddings & faithfulness")).or_(
            page.get_by_role("button", name="Embeddings & faithfulness"))
        tab = tab.first
    tab.click()
    page.locator("#xai-concepts-run").click()
    page.locator("#xai-concepts img").wait_for()
    page.locator("#xai-concept-labels").get_by_text("concept 4").first.wait_for()
    text = page.locator("#xai-concept-labels").inner_text()
    assert "espresso" in text
    img = page.locator("#xai-concepts img")
    img.scroll_into_view_if_needed()
    box = img.bounding_box()
    assert box["width"] > 300 and box["x"] >= 0 and box["x"] + box["width"] <= width + 1
    page.screenshot(path=str(shots / f"concepts_{width}.png"), full_page=True)
    page.close()
