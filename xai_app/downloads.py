"""Files built after the answer: a run's labelled sheet and ZIP are written in one background
thread while the gallery is already on screen, and one route serves them, waiting for the
build when a download comes first (``GET /xai/files/{run}/{name}``).

A run folder is named by :class:`~xai_app.storage.RunStore` (``run-`` + random letters); a
request names a folder and a file, never a path: anything else is a 404.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from . import storage
from .storage import ExplainRun

log = logging.getLogger("xai_app")

ROUTE = "/xai/files"
WAIT_S = 120.0  # the longest a download waits for its run's files
NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xai-files")
_PENDING: dict[str, Future] = {}
_LOCK = threading.Lock()


def build_later(run: ExplainRun) -> dict[str, str]:
    """Start writing ``run``'s sheet and ZIP in the background; their URLs (relative to the
    app's root), valid at once: a download that comes first waits for the build."""
    folder = run.sheet.parent.name
    future = _EXECUTOR.submit(run.finish)
    with _LOCK:
        _PENDING[folder] = future
    future.add_done_callback(lambda f: _forget(folder, f))
    return {"sheet": f"{ROUTE}/{folder}/{run.sheet.name}",
            "zip": f"{ROUTE}/{folder}/{run.zip.name}"}


def _forget(folder: str, future: Future) -> None:
    if future.exception() is not None:
        log.warning("run %s: files not written: %s", folder, future.exception())
    with _LOCK:
        if _PENDING.get(folder) is future:
            del _PENDING[folder]


def wait_for(folder: str, timeout: float = WAIT_S) -> None:
    """Block until the background build of ``folder`` (if any) is done."""
    with _LOCK:
        future = _PENDING.get(folder)
    if future is not None:
        future.result(timeout=timeout)


def add_route(app: Any) -> None:
    """Serve ``ROUTE/{run}/{name}`` from the run folders on a FastAPI ``app``."""
    from fastapi import HTTPException
    from fastapi.responses import FileResponse

    async def serve(run: str, name: str) -> FileResponse:
        if not (NAME.match(run) and NAME.match(name)) or run.startswith(".") or \
                name.startswith("."):
            raise HTTPException(status_code=404)
        try:
            await asyncio.to_thread(wait_for, run)
        except Exception:
            raise HTTPException(status_code=404) from None
        path = storage.STORE.root / run / name
        root = storage.STORE.root.resolve()
        if not path.is_file() or path.resolve().parent.parent != root:
            raise HTTPException(status_code=404)
        return FileResponse(path, filename=name)

    app.add_api_route(ROUTE + "/{run}/{name}", serve, methods=["GET"])
