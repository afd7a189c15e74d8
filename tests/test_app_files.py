"""The answer path without a server: a run's background files are whole when asked for right
after the answer, and what the app remembers of a run once they are written is only their
paths (memory stays flat over many requests); the target list the page gets first."""

from __future__ import annotations

import gc
import weakref
import zipfile

from PIL import Image

from xai_app import budget, downloads, events, service


def test_files_asked_for_at_once_are_whole_and_the_maps_are_let_go(tmp_path, cat_path):
    store = budget.RunStore(tmp_path, budget=10**9)
    run = service.explain("efficientnet_lite0", str(cat_path), store=store, finish=False)
    assert len(run.gallery) == 12 and all(Image.open(p).size[0] > 50 for p, _ in run.gallery)
    assert not run.sheet.exists() and not run.zip.exists()  # written after the answer
    maps = weakref.ref(run.result)
    name = downloads.build_later(run)
    del run
    sheet, archive, raw = downloads.files(name)  # at once: starts the build and waits
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None and "manifest.json" in zf.namelist()
    with Image.open(sheet) as img:
        img.load()
    assert len(raw) == 12 and all(p.stat().st_size > 0 for p in raw)
    assert not list(sheet.parent.glob("*.part"))
    assert downloads.files(name) == (sheet, archive, raw)  # remembered: the same files
    gc.collect()
    assert maps() is None  # the run's maps and image are not kept once its files exist


def test_the_target_list_holds_the_top5_until_it_is_opened(cat_path):
    scores, first = events.on_image(str(cat_path), "efficientnet_lite0", "crop", "top-1")
    values = [v for _, v in first.choices]
    assert values[0] == "top-1" and values[1:] == list(scores) and len(values) == 6
    opened = events.all_targets(scores, "efficientnet_lite0", "top-1")
    every = [v for _, v in opened.choices]
    assert every[:6] == values and len(every) == 1001 and "goldfish" in every
    # a class kept from before (another fit) stays on the short list too
    _, kept = events.on_settings(str(cat_path), "efficientnet_lite0", "full", "goldfish")
    assert kept.value == "goldfish" and "goldfish" in [v for _, v in kept.choices]
    assert len(kept.choices) == 7

