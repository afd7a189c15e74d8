"""A gallery whose panels can travel inside the event's answer.

``gr.Gallery`` sends its images as files: after the answer the page asks for each panel
(12 more requests through Gradio's file route, in two waves of the browser's six
connections to one host). Panels given as :class:`Inline` are sent in the answer itself as
``data:`` URLs (Gradio's ``ImageData`` takes a base64 url without a path), so the gallery is
on screen when the answer is. Anything else (paths, pictures) is handled as by ``gr.Gallery``,
so API clients still get files.

Inline panels cost a third more bytes on the wire (base64) and stay in Gradio's per-session
state until the session is evicted, so :func:`items` inlines a run only up to
:data:`MAX_INLINE_BYTES` (12 panels of a photo take ~0.55 MB) and the app bounds its sessions
(``state_session_capacity``, :mod:`xai_app.ui`).
"""

from __future__ import annotations

import base64
from abc import ABCMeta
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.components.gallery import GalleryData, GalleryImage
from gradio.data_classes import ImageData

MAX_INLINE_BYTES = 1_000_000  # encoded panels per answer; a bigger run's panels go as files


@dataclass(frozen=True)
class Inline:
    """One encoded panel: its bytes, the file name a download gets, the run it belongs to
    and its MIME type."""

    data: bytes
    name: str
    run: str = ""
    mime: str = "image/jpeg"

    def url(self) -> str:
        """The panel as a ``data:`` URL. Its run and file name ride along as MIME parameters
        (RFC 2397), as they did in a file URL: the page can tell which run is on screen, and
        two runs' panels never share a URL even where their pixels are equal."""
        return (f"data:{self.mime};run={_token(self.run)};name={_token(self.name)};base64,"
                f"{base64.b64encode(self.data).decode('ascii')}")


class _NoStubFile(type(gr.Gallery)):  # type: ignore[misc]
    """Gradio's component metaclass writes a ``.pyi`` stub beside every module that subclasses
    a component (for custom-component packages), and otherwise only wraps ``__init__`` and
    ``EVENTS`` where a class defines them. :class:`Gallery` defines neither and ships no
    stub, so the class is made as by ``ABCMeta``."""

    def __new__(mcs, name: str, bases: tuple, attrs: dict) -> type:
        if "__init__" in attrs or "EVENTS" in attrs:
            raise TypeError("_NoStubFile is for subclasses that keep the component's events")
        return ABCMeta.__new__(mcs, name, bases, attrs)


class Gallery(gr.Gallery, metaclass=_NoStubFile):
    """``gr.Gallery`` that also takes ``(Inline, caption)`` items (drawn by the same front end)."""

    def get_block_name(self) -> str:
        return "gallery"

    def postprocess(self, value: Any) -> GalleryData:
        if not isinstance(value, list) or not any(_inline(item) for item in value):
            return super().postprocess(value)
        root = []
        for item in value:
            panel = _inline(item)
            if panel is None:
                root.extend(super().postprocess([item]).root)
                continue
            caption = item[1] if isinstance(item, (tuple, list)) else None
            root.append(GalleryImage(image=ImageData(url=panel.url(), orig_name=panel.name,
                                                     mime_type=panel.mime,
                                                     size=len(panel.data)),
                                     caption=caption))
        return GalleryData(root=root)


def items(gallery: list[tuple[str, str]], encoded: list[bytes],
          limit: int = MAX_INLINE_BYTES) -> list[tuple[Any, str]]:
    """A run's gallery items ``(file path, caption)`` with their encoded bytes as
    ``(Inline, caption)``, the run named by the files' folder; unchanged (file paths) when
    the panels together exceed ``limit`` bytes or their bytes are not all there."""
    if len(encoded) != len(gallery) or sum(map(len, encoded)) > limit:
        return list(gallery)
    return [(Inline(data, Path(path).name, Path(path).parent.name), caption)
            for (path, caption), data in zip(gallery, encoded)]


def _token(text: str) -> str:
    return "".join(c for c in text if c.isascii() and (c.isalnum() or c in "._-"))


def _inline(item: Any) -> Inline | None:
    media = item[0] if isinstance(item, (tuple, list)) and item else item
    return media if isinstance(media, Inline) else None


__all__ = ["MAX_INLINE_BYTES", "Gallery", "Inline", "items"]
