"""The app's compute thread(s): every piece of the app's torch work runs in them, for two
reasons measured on the 2-core machine (EfficientNet-Lite0, one /explain):

* **One OpenMP team.** Each thread that runs a parallel torch op gets its own OpenMP team;
  with two teams (say, the model warmed up in the main thread, requests computed in a worker)
  libgomp counts more threads than cores and stops spinning between parallel regions, so every
  small op waits on a futex: the engine went from 45 to 93 ms and the service from 70 to
  118-140 ms, in every thread of the process from then on. One thread that loads, warms up and
  computes keeps one team.
* **A heap the size of the work.** glibc gives each thread that allocates its own malloc arena
  and keeps what is freed in each; if requests' maps and JPEGs were allocated in whichever of
  Gradio's worker threads ran them, a long-running server would grow by one arena's working set
  (~70 MiB) at a time. (Limiting the arenas to 2 kept memory flat too but cost ~40 ms of CPU a
  request in lock contention; trimming the heap after each request made the next one fault its
  pages in again. Both measured, neither kept.)

There are as many compute threads as XAI_CONCURRENCY (1 by default); each has its own team,
so more than one pays the two-team cost unless the machine has cores for all their threads
(torch threads × computations). Work done after the answer (a run's sheet and ZIP) runs at the
lowest CPU priority (:func:`background`) and waits between its steps while a computation runs
(:func:`wait_quiet`), so that it takes only what requests leave: back-to-back /explain requests
otherwise shared the two cores with the previous requests' file builds (~300-500 ms each).
"""

from __future__ import annotations

import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
THREAD_PREFIX = "xai-compute"
QUIET_WAIT_S = 30.0  # the longest a background step waits for the computations to end


def concurrency() -> int:
    """``XAI_CONCURRENCY``: computations at a time (the queue's limit and the compute
    threads), at least 1; 1 when unset or not a number."""
    try:
        return max(1, int(os.environ.get("XAI_CONCURRENCY", "1")))
    except ValueError:
        return 1


_POOL = ThreadPoolExecutor(max_workers=concurrency(), thread_name_prefix=THREAD_PREFIX)


def in_compute_thread() -> bool:
    """Whether the caller is one of the app's compute threads."""
    return threading.current_thread().name.startswith(THREAD_PREFIX)


_BUSY = threading.Condition()
_busy = 0  # computations submitted and not finished


def confined(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in one of the app's compute threads (with the caller's context
    variables: Gradio's progress and request), waited for; its exceptions are raised here.
    Called from a compute thread, it runs ``fn`` there (no second hop, no deadlock)."""
    global _busy
    if in_compute_thread():
        return fn(*args, **kwargs)
    ctx = contextvars.copy_context()
    with _BUSY:
        _busy += 1
    try:
        return _POOL.submit(ctx.run, functools.partial(fn, *args, **kwargs)).result()
    finally:
        with _BUSY:
            _busy -= 1
            _BUSY.notify_all()


def wait_quiet(timeout: float = QUIET_WAIT_S) -> bool:
    """Wait until no computation is running or waiting (at most ``timeout`` seconds): the
    background builds call it between steps, so that a request goes first. True if quiet.
    In a compute thread it returns at once (the caller is the computation)."""
    if in_compute_thread():
        return True
    with _BUSY:
        return _BUSY.wait_for(lambda: _busy == 0, timeout)


def computes(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` that always runs in a compute thread (:func:`confined`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        return confined(fn, *args, **kwargs)
    return wrapper


def background() -> None:
    """Give the calling thread the lowest CPU priority (nice 19 on Linux; nothing where
    threads cannot be reniced): for work that must not slow a request down."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):  # not Linux, or not allowed: normal priority
        pass
