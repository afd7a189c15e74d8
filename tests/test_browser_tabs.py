"""The app's other tabs in headless Chromium: Compare models offline (the bundled model plus
random-weight models), and the Embeddings & faithfulness tab while another tab's Explain waits
in the queue (the old gallery stays on screen). Screenshots as in test_browser.py."""

from __future__ import annotations

from test_browser import open_app, panels, upload


def test_compare_tab_runs_three_models_offline(browser, shots, random_weight_models):
    page = open_app(browser)
    upload(page, "cat.png", "tabby")
    page.get_by_role("tab", name="Compare models").click()
    picker = page.locator("#xai-compare-models input")
    for title in ("DenseNet121", "Inception v3"):
        picker.click()
        page.locator("#xai-compare-models [role=option]", has_text=title).click()
    page.keyboard.press("Escape")
    page.locator("#xai-compare-run").click()
    page.locator("#xai-compare-sheet img").wait_for()
    table = page.locator("#xai-compare-table")
    table.get_by_text("inception_v3").first.wait_for()
    text = table.inner_text()
    order = [text.index(m) for m in ("efficientnet_lite0", "densenet121", "inception_v3")]
    assert order == sorted(order)
    # each model at its own first/middle/last: Inception's last is Mixed_7c, DenseNet's norm5
    assert "Mixed_7c" in text and "features.norm5" in text and "bn2" in text
    page.screenshot(path=str(shots / "compare.png"), full_page=True)
    page.close()


def test_embeddings_tab_shows_everything_and_a_queued_explain_keeps_the_gallery(browser, shots):
    shown = open_app(browser)
    upload(shown, "cat.png", "tabby")
    shown.locator("#xai-run").click()
    panels(shown, 12)
    other = open_app(browser)
    upload(other, "coffee.png", "espresso")
    other.get_by_role("tab", name="Embeddings & faithfulness").click()
    other.get_by_label("Sanity check").uncheck()
    other.locator("#xai-embeddings-run").click()
    shown.get_by_label("Guided Grad-CAM").check()
    shown.locator("#xai-run").click()  # waits behind the embeddings, or runs at once
    # either way the previous gallery stays visible until the new one arrives
    assert shown.evaluate("[...document.querySelectorAll('#xai-gallery img')].filter(i => "
                          "i.getBoundingClientRect().height > 100).length") in (12, 15)
    panels(shown, 15)
    table = other.locator("#xai-faith")
    table.get_by_text("baseline: edges").first.wait_for()  # the verdict table's last row
    box = table.bounding_box()
    rows = [r.bounding_box() for r in table.locator("div[role=row]").all()]  # body rows
    assert len(rows) == 15  # 12 panels and 3 baselines, all inside the table's box
    assert all(box["y"] <= r["y"] and r["y"] + r["height"] <= box["y"] + box["height"] + 1
               for r in rows)
    # each channel grid is whole: its caption sits below the picture, not over it
    for item in other.locator("#xai-channels .thumbnail-item").all():
        picture = item.locator("img").bounding_box()
        caption = item.locator(".caption-label").bounding_box()
        assert caption["y"] >= picture["y"] + picture["height"] - 1
        assert picture["width"] > 250
    other.screenshot(path=str(shots / "embeddings_tab.png"), full_page=True)
    shown.close()
    other.close()
