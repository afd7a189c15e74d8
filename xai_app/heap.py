"""The server's heap stays the size of its work: glibc gives each thread that allocates at
the same time as another its own arena (up to 8 per core), and keeps what is freed in each.
A request's maps and JPEGs are allocated in whichever worker thread Gradio picks, so a long-
running server would otherwise grow by one arena (~64 MiB) at a time, without a leak. (The
heap is not trimmed after each request: giving its pages back made the next request fault
them in again, +40 ms of CPU per /explain.)
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger("xai_app")
M_ARENA_MAX = -8  # mallopt parameter (malloc.h)
ARENAS = 2


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to do
        return None


def limit_arenas(n: int = ARENAS) -> bool:
    """At most ``n`` malloc arenas from now on (unless MALLOC_ARENA_MAX is set); whether
    it applied."""
    libc = _libc()
    if libc is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    ok = bool(libc.mallopt(M_ARENA_MAX, n))
    log.debug("malloc arenas limited to %d: %s", n, ok)
    return ok
