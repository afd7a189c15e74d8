"""The raw arguments of an API call, checked before Gradio processes them.

Every named endpoint gets exactly its parameters; each is checked for type and range (whole
numbers and booleans are checked, never coerced) and a bad one is refused with a message that
names it. The image may come four ways, and one size limit (:data:`MAX_IMAGE_BYTES`, the upload
cap) and the pixel limit read from the header (:func:`xai.images.header_size`) hold for all:

* a file uploaded to this app (Gradio's upload folder; ``gradio_client.handle_file``);
* a file this app wrote (its run folders);
* a ``data:`` URL: its length is checked before it is decoded, and its bytes are written to a
  budgeted folder, so Gradio never decodes the picture;
* an ``http(s)`` URL on a public address (as Gradio's own SSRF guard): streamed, and cut at the
  limit.

Any other path on the server is refused. No Gradio import here.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import anyio
import httpx

from xai.images import FITS, header_size
from xai.layers import MODES

from . import service
from .choices import COLORMAPS, LAYER_ROWS, MAX_LAYER_CHARS
from .concepts_view import MAX_CONCEPTS
from .insights import MAX_FAITH_STEPS
from .storage import RunStore

MAX_IMAGE_BYTES = 10 * 2**20  # the upload cap (Gradio's max_file_size), for every source
FETCH_TIMEOUT_S = 20.0
MAX_REDIRECTS = 3
FILE_KEYS = {"path", "url", "size", "orig_name", "mime_type", "is_stream", "meta"}
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?((?:;[\w=.+-]+)*);base64,", re.ASCII)


class BadRequest(ValueError):
    """A call's arguments are wrong; the message names the parameter."""


def _text(name: str, what: str, limit: int = 200) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{name} must be {what}, not {service.shown(value)}")
        if value is not None and len(value) > limit:
            raise BadRequest(f"{name} is {len(value):,} characters long; {what} has at most "
                             f"{limit}")
    return check


def _choice(name: str, allowed: tuple[str, ...]) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if not isinstance(value, str) or value not in allowed:
            raise BadRequest(f"{name} must be one of {', '.join(allowed)}, not "
                             f"{service.shown(value)}")
    return check


def _methods(value: Any) -> None:
    names = [m for _, m in service.METHOD_CHOICES + service.MORE_METHOD_CHOICES]
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise BadRequest(f"methods must be a list of method names such as ['gradcam', "
                         f"'eigencam'], not {service.shown(value)}")
    unknown = [m for m in value if m not in names]
    if unknown:
        raise BadRequest(f"methods: unknown method {service.shown(unknown[0])}; choose from "
                         f"{', '.join(names)}")


def _target(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        return
    _text("target", "'top-1', a class index or a label", service.MAX_TARGET_CHARS)(value)


def _whole(name: str, lo: int, hi: int, optional: bool = False) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value is None and optional:
            return
        try:
            service.whole_number(value, name, lo, hi)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    return check


def _flag(name: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        try:
            service.check_flag(value, name)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    return check


def _opacity(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            0.0 <= value <= 1.0):
        raise BadRequest(f"opacity must be a number from 0 to 1, not {service.shown(value)}")


def _models(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value) or not (
            2 <= len(value) <= 3):
        raise BadRequest(f"models must be a list of 2 or 3 model names, not "
                         f"{service.shown(value)}")


def _manifest(value: Any) -> None:
    run = value.get("run") if isinstance(value, dict) else None
    if not isinstance(run, str) or not 0 < len(run) <= 80:
        raise BadRequest("manifest: pass the manifest an /explain answer returned (or "
                         "{\"run\": its run})")


CHECKS: dict[str, Callable[[Any], None]] = {
    "model": _text("model", "a model name"), "mode": _choice("mode", MODES), "methods": _methods,
    "target": _target, "top_k": _whole("top_k", 1, service.MAX_TOP_K, optional=True),
    "guided": _flag("guided"), "fit": _choice("fit", FITS),
    "steps": _whole("steps", 4, MAX_FAITH_STEPS), "sanity": _flag("sanity"),
    "opacity": _opacity, "colormap": _choice("colormap", COLORMAPS),
    "layer_row": _choice("layer_row", tuple(v for _, v in LAYER_ROWS)),
    "layer": _text("layer", "a module name or conv:N", MAX_LAYER_CHARS), "models": _models,
    "method": _choice("method", tuple(m for _, m in service.METHOD_CHOICES)),
    "manifest": _manifest, "depth": _choice("depth", service.DEPTHS),
    "concepts": _whole("concepts", 2, MAX_CONCEPTS),
}
ENDPOINTS: dict[str, tuple[str, ...]] = {
    "explain": ("image", "model", "mode", "methods", "target", "top_k", "guided", "fit",
                "opacity", "colormap", "layer_row", "layer"),
    "predict": ("image", "model", "fit"),
    "layers": ("model", "mode"),
    "embeddings": ("image", "model", "mode", "methods", "target", "fit", "steps", "sanity"),
    "compare": ("image", "models", "mode", "method", "target", "fit"),
    "concepts": ("image", "model", "mode", "fit", "depth", "concepts"),
    "models": (),
    "files": ("manifest",),
}
# trailing parameters a call may leave out (calls made before they existed keep working)
DEFAULTS: dict[str, dict[str, Any]] = {
    "explain": {"opacity": 0.5, "colormap": "jet", "layer_row": "none", "layer": ""},
    "predict": {"fit": "crop"},
}


async def check_call(api_name: str | None, inputs: Any, uploads: Path, store: RunStore,
                     images: tuple[int, ...] = ()) -> tuple[list[Any], list[Path]]:
    """The call's arguments, checked, with the image as a local file; and the paths it uses
    (busy in ``store`` until released). :class:`BadRequest` or ``xai.ImageError``.

    A named endpoint's arguments are all checked; any other event's only at the positions
    ``images`` (its image inputs), so no event lets Gradio decode or fetch an image itself.
    """
    params = ENDPOINTS.get(api_name or "")
    if params is None:
        if not images or not isinstance(inputs, list):
            return inputs, []
        params = tuple("image" if i in images else "" for i in range(len(inputs)))
    else:
        inputs = _with_defaults(api_name or "", params, inputs)
    made: list[Path] = []
    try:
        out = []
        for name, value in zip(params, inputs, strict=True):
            if name == "image":
                value = await image_input(value, uploads, store, made)
            elif name:
                CHECKS[name](value)
            out.append(value)
        return out, made
    except BaseException:
        store.release(made)
        raise


def _with_defaults(api_name: str, params: tuple[str, ...], inputs: Any) -> list[Any]:
    """``inputs`` with the left-out trailing optional parameters filled in; BadRequest for
    another number of arguments."""
    optional = DEFAULTS.get(api_name, {})
    least = len(params) - len(optional)
    if isinstance(inputs, list) and least <= len(inputs) <= len(params):
        return inputs + [optional[name] for name in params[len(inputs):]]
    got = len(inputs) if isinstance(inputs, list) else service.shown(inputs)
    count = f"{least} to {len(params)}" if optional else str(len(params))
    names = ", ".join(params[:least]) + (f"; optional: {', '.join(optional)}" if optional
                                          else "")
    raise BadRequest(f"/{api_name} takes {count} arguments ({names}), not {got}")


async def image_input(value: Any, uploads: Path, store: RunStore, made: list[Path]) -> Any:
    """A Gradio file payload for a local file within the limits (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"path": value}
    if not isinstance(value, dict) or not set(value) <= FILE_KEYS:
        raise BadRequest(f"image must be a file (gradio_client: handle_file(path)), not "
                         f"{service.shown(value)}")
    url, path = value.get("url"), value.get("path")
    if isinstance(url, str) and url.startswith("data:"):
        data = decode_data_url(url)
    elif isinstance(path, str) and path.startswith("data:"):
        data = decode_data_url(path)
    elif isinstance(path, str) and re.match(r"https?://", path, re.I):
        data = await fetch(path)
    elif isinstance(path, str):
        local = Path(path).resolve()
        if not any(local.is_relative_to(root.resolve()) for root in (uploads, store.root)):
            raise BadRequest("image must be a file uploaded to this app (gradio_client: "
                             "handle_file(path)); a path on the server is not accepted")
        made.append(store.hold(local))  # the budget leaves it alone until the request is done
        await anyio.to_thread.run_sync(header_size, local, MAX_IMAGE_BYTES, "image")
        return dict(value, path=str(local), meta={"_type": "gradio.FileData"})
    else:
        raise BadRequest(f"image needs a 'path' or a data: URL, not {service.shown(value)}")
    file = await anyio.to_thread.run_sync(save_bytes, data, store, made)
    return {"path": str(file), "orig_name": file.name, "meta": {"_type": "gradio.FileData"}}


def decode_data_url(url: str) -> bytes:
    """The bytes of a base64 ``data:`` URL, refused by its length before it is decoded."""
    match = _DATA_URL.match(url)
    if not match:
        raise BadRequest("image: a data: URL must be base64 (data:image/png;base64,...)")
    size = (len(url) - match.end()) * 3 // 4
    if size > MAX_IMAGE_BYTES:
        raise BadRequest(f"image: the data: URL holds {size / 2**20:.1f} MiB, over the "
                         f"{MAX_IMAGE_BYTES // 2**20} MiB size limit")
    try:
        return base64.b64decode(url[match.end():], validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("image: the data: URL is not valid base64") from None


def save_bytes(data: bytes, store: RunStore, made: list[Path]) -> Path:
    """``data`` checked from its header, then written to a new busy folder of ``store``."""
    header_size(data, MAX_IMAGE_BYTES, "image")
    folder = store.reserve(len(data), prefix="in-")
    made.append(folder)
    file = folder / "image"
    file.write_bytes(data)
    return file


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                or ip.is_reserved or ip.is_unspecified)


async def public_address(host: str) -> str:
    """An address of ``host`` that is public; :class:`BadRequest` if it has none."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        raise BadRequest(f"image: cannot resolve the URL's host {service.shown(host)}") from None
    for family, *_rest, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and is_public(sockaddr[0]):
            return sockaddr[0]
    raise BadRequest("image: URLs must point to a public address")


async def fetch(url: str) -> bytes:
    """The body at ``url`` (public addresses only, redirects checked again), streamed and
    refused as soon as it passes :data:`MAX_IMAGE_BYTES`."""
    from safehttpx import AsyncSecureTransport  # Gradio's SSRF guard: connect to that address

    for _ in range(MAX_REDIRECTS + 1):
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise BadRequest("image: only http(s) URLs are fetched")
        transport = AsyncSecureTransport(await public_address(parsed.host))
        try:
            async with httpx.AsyncClient(transport=transport, timeout=FETCH_TIMEOUT_S) as client:
                async with client.stream("GET", url) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
                        continue
                    if response.status_code != 200:
                        raise BadRequest(f"image: the URL answered HTTP {response.status_code}")
                    return await _read_capped(response)
        except httpx.HTTPError as exc:
            raise BadRequest(f"image: the URL could not be fetched ({type(exc).__name__})"
                             ) from None
    raise BadRequest(f"image: more than {MAX_REDIRECTS} redirects")


async def _read_capped(response: httpx.Response) -> bytes:
    declared = response.headers.get("content-length", "")
    too_big = BadRequest(f"image: the URL's file is over the {MAX_IMAGE_BYTES // 2**20} MiB "
                         f"size limit")
    if declared.isdigit() and int(declared) > MAX_IMAGE_BYTES:
        raise too_big
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_IMAGE_BYTES:
            raise too_big
    return bytes(body)


__all__ = ["BadRequest", "ENDPOINTS", "MAX_IMAGE_BYTES", "check_call", "decode_data_url",
           "fetch", "image_input"]
