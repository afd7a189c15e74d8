"""Files built after the answer: a run's labelled sheet, ZIP and raw maps are written in one
background thread while the gallery is already on screen (``/explain`` answers without them);
``/files`` hands them over, waiting for the build if it comes first.

A run is named by its folder (``run-`` + random letters, :class:`~xai_app.budget.RunStore`);
a request names a folder, never a path: anything else is refused.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from xai.errors import XaiError

from . import budget, heap
from .storage import ExplainRun

log = logging.getLogger("xai_app")

WAIT_S = 120.0  # the longest a request waits for its run's files
IDLE_S = 1.0  # a build not asked for starts this long after the answer (the answer's files
# and the next request come first; /files starts it at once)
RUN_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
KEEP = 64  # finished builds remembered (their paths); older runs are read from disk
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xai-files",
                               initializer=heap.background)
_BUILDS: OrderedDict[str, _Build] = OrderedDict()
_LOCK = threading.Lock()


class FilesError(XaiError):
    """The files of a run that is not (or no longer) on this server."""


class _Build:
    """One run's background build: started by :meth:`start` (once), from a timer or a
    request for the files, whichever comes first."""

    def __init__(self, run: ExplainRun) -> None:
        self.run: ExplainRun | None = run  # until written: then only its paths are kept
        self.future: Future | None = None
        self.lock = threading.Lock()
        self.timer = threading.Timer(IDLE_S, self.start)
        self.timer.daemon = True

    def start(self) -> Future:
        """The build's future: (sheet, ZIP, raw map paths)."""
        with self.lock:
            if self.future is None:
                self.timer.cancel()
                self.future = _EXECUTOR.submit(self._write)
                name = self.run.sheet.parent.name if self.run is not None else "?"
                self.future.add_done_callback(lambda f: f.exception() and log.warning(
                    "run %s: files not written: %s", name, f.exception()))
            return self.future

    def _write(self) -> tuple[Path, Path, list[Path]]:
        run = self.run
        assert run is not None
        try:
            run.finish()
            return run.sheet, run.zip, list(run.raw)
        finally:
            self.run = None  # its maps and image are not kept for the KEEP builds remembered


def build_later(run: ExplainRun) -> str:
    """Write ``run``'s sheet, ZIP and raw maps in the background (after :data:`IDLE_S`, or at
    once when asked for); the run's name."""
    name = run.sheet.parent.name
    run.manifest["run"] = name
    build = _Build(run)
    with _LOCK:
        _BUILDS[name] = build
        while len(_BUILDS) > KEEP:
            _BUILDS.popitem(last=False)[1].start()  # forgotten, never left unwritten
    build.timer.start()
    return name


def files(name: object, timeout: float = WAIT_S, *, start: bool = True
          ) -> tuple[Path, Path, list[Path]]:
    """(labelled sheet, ZIP, feature-map .npy files) of the run ``name``, once written.
    ``start=False`` (the page's own download slots) leaves the build to its timer, so that
    it does not compete with the panels the browser is loading."""
    if not isinstance(name, str) or not RUN_NAME.match(name):
        raise FilesError("not a run name: pass the manifest's 'run'")
    with _LOCK:
        build = _BUILDS.get(name)
    if build is not None:
        if start:
            build.start()
        build.timer.join(timeout)  # started by then (the timer ran, or start() cancelled it)
        sheet, archive, raw = build.start().result(timeout=timeout)
        return sheet, archive, list(raw)
    folder = budget.STORE.root / name
    sheets = sorted(folder.glob("*_gallery.jpg")) if folder.is_dir() else []
    zips = sorted(folder.glob("*_xai.zip")) if folder.is_dir() else []
    if not (sheets and zips):
        raise FilesError(f"run {name} is not on this server any more (the disk budget "
                         "removes the oldest runs): explain the image again")
    return sheets[0], zips[0], sorted((folder / "raw").glob("*.npy"))
