"""The Explain button's panels travel inside its answer: the same JPEG bytes as the run's files,
named by run and file; a run too big to inline, and the API, still get files; Gradio's session
memory for them is bounded."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from xai_app import budget, events, inline_gallery, service, ui
from xai_app.inline_gallery import Gallery, Inline


@pytest.fixture(scope="module")
def cat_run(tmp_path_factory, cat_path):
    store = budget.RunStore(tmp_path_factory.mktemp("runs"), budget=10**9)
    run = service.explain("efficientnet_lite0", str(cat_path), store=store, finish=False)
    yield run
    run.close()


def decoded(url: str) -> tuple[dict[str, str], bytes]:
    head, data = url.split(",", 1)
    kind, *params = head.removeprefix("data:").split(";")
    assert kind == "image/jpeg" and params[-1] == "base64"
    return dict(p.split("=", 1) for p in params[:-1]), base64.b64decode(data)


def test_inline_panels_are_the_run_files_bytes_named_by_run_and_file(cat_run):
    items = inline_gallery.items(cat_run.gallery, cat_run.previews)
    data = Gallery().postprocess(items).model_dump()
    assert len(data) == 12
    for item, (path, caption) in zip(data, cat_run.gallery, strict=True):
        image = item["image"]
        assert image["path"] is None and item["caption"] == caption  # nothing to serve
        params, raw = decoded(image["url"])
        assert raw == Path(path).read_bytes()
        assert params == {"run": Path(path).parent.name, "name": Path(path).name}
        assert image["orig_name"] == Path(path).name and image["size"] == len(raw)


def test_a_run_over_the_limit_or_the_api_gets_file_paths(cat_run):
    total = sum(map(len, cat_run.previews))
    assert inline_gallery.items(cat_run.gallery, cat_run.previews, limit=total - 1) == \
        cat_run.gallery
    assert inline_gallery.items(cat_run.gallery, cat_run.previews[:-1]) == cat_run.gallery
    assert total <= inline_gallery.MAX_INLINE_BYTES  # 12 panels of a photo are inlined
    mixed = [(Inline(b"\xff\xd8x", "a.jpg", "run-1"), "a"), cat_run.gallery[0]]
    first, second = Gallery().postprocess(mixed).model_dump()
    assert first["image"]["url"].startswith("data:image/jpeg;run=run-1;name=a.jpg;base64,")
    assert second["image"]["path"] == cat_run.gallery[0][0]  # Gradio's own file handling


def test_names_cannot_break_out_of_the_data_url():
    url = Inline(b"x", 'a;b,c"<d>é.jpg', "run-1;base64,").url()
    params, raw = decoded(url)
    assert params == {"run": "run-1base64", "name": "abcd.jpg"} and raw == b"x"


def test_the_button_inlines_and_the_api_does_not(cat_path):
    args = (str(cat_path), "efficientnet_lite0", "stages", ["gradcam", "eigencam"], "top-1",
            1, False, "crop", 0.5, "jet", "none", "")
    api = events.explain(*args)
    assert all(isinstance(path, str) for path, _ in api[0])
    gallery, _, _, manifest, *_, header, cols = events.explain_on_screen(*args, None)
    assert cols == 2 and "tabby" in header
    assert gallery["columns"] == 2 and all(isinstance(m, Inline) for m, _ in gallery["value"])
    shown = Gallery().postprocess(gallery["value"]).model_dump()
    assert [item["image"]["url"][:16] for item in shown] == ["data:image/jpeg;"] * 6
    for answer in (api[3], manifest):  # the files are still built for both
        sheet, archive, raw = events.files(answer)
        assert Path(archive).stat().st_size > 0 and len(raw) == 6


def test_the_subclass_writes_no_stub_and_session_memory_is_bounded():
    assert not Path(inline_gallery.__file__).with_suffix(".pyi").exists()
    assert Gallery().get_block_name() == "gallery"  # drawn by Gradio's own gallery
    with pytest.raises(TypeError):
        class Wider(Gallery):
            def __init__(self) -> None:
                super().__init__()
    # every kept session may hold one inline answer (base64: 4/3 of the bytes)
    assert ui.SESSIONS * inline_gallery.MAX_INLINE_BYTES * 4 / 3 <= 300 * 2**20
