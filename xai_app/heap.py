"""The server's heap stays the size of its work: glibc gives each thread that allocates its own
malloc arena (up to 8 per core) and keeps what is freed in each, so if each request's maps and
JPEGs were allocated in whichever of Gradio's worker threads ran it, a long-running server
would grow by one arena's working set (~70 MiB) at a time, without a leak. Requests' heavy work
runs in the app's own compute threads instead (as many as XAI_CONCURRENCY), whose arenas are
reused. (Limiting the arenas to 2 kept memory flat too but cost ~40 ms of CPU and ~100 ms of
wall time per /explain under load in lock contention; trimming the heap after each request made
the next one fault its pages in again. Both measured, neither kept.)
"""

from __future__ import annotations

import contextvars
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def concurrency() -> int:
    """``XAI_CONCURRENCY``: computations at a time (the queue's limit and the compute
    threads), at least 1; 1 when unset or not a number."""
    try:
        return max(1, int(os.environ.get("XAI_CONCURRENCY", "1")))
    except ValueError:
        return 1


_POOL = ThreadPoolExecutor(max_workers=concurrency(), thread_name_prefix="xai-compute")


def confined(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in one of the app's compute threads (with the caller's context
    variables: Gradio's progress and request), waited for; its exceptions are raised here."""
    ctx = contextvars.copy_context()
    return _POOL.submit(ctx.run, functools.partial(fn, *args, **kwargs)).result()
