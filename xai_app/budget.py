"""The byte budget that bounds everything the app leaves on disk.

Every file the app writes lives in one folder per run under :data:`OUTPUT_ROOT`, which the UI
registers as a Gradio static path, so Gradio serves these files where they are instead of
copying them into its cache. The budget, ``XAI_DISK_BUDGET`` (default 1 GB), covers those
folders and the files users upload into Gradio's cache. Before a run is written, the oldest
runs (then the oldest uploads) are removed until the run's upper bound fits; what a request in
flight uses is never removed.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("xai_app")

OUTPUT_ROOT = Path(os.environ.get("XAI_APP_OUTPUT") or Path(tempfile.gettempdir()) / "xai-app")
DEFAULT_BUDGET = 1_000_000_000  # bytes (1 GB)
MAX_AGE_S = 3600  # runs older than this go even under the budget
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20,
          "gib": 2**30}


def parse_bytes(text: object) -> int:
    """``"1GB"``, ``"300 MB"``, ``"64MiB"`` or a plain number of bytes, as an int > 0."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*", str(text).lower())
    if not match or float(match.group(1)) * _UNITS[match.group(2) or ""] < 1:
        raise ValueError(f"not a byte size: {str(text)[:40]!r} (e.g. 1GB, 300MB, 64MiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2) or ""])


def budget_from_env() -> int:
    """``XAI_DISK_BUDGET`` in bytes; the default (1 GB) if unset or unreadable (logged)."""
    value = os.environ.get("XAI_DISK_BUDGET", "").strip()
    if not value:
        return DEFAULT_BUDGET
    try:
        return parse_bytes(value)
    except ValueError as exc:
        log.warning("XAI_DISK_BUDGET ignored: %s; using %d bytes", exc, DEFAULT_BUDGET)
        return DEFAULT_BUDGET


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (0 if it is gone)."""
    total = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


class RunStore:
    """Run folders under ``root``, plus the uploads in ``uploads``, within ``budget`` bytes;
    the oldest runs are removed first, then the oldest uploads. Thread-safe.

    ``uploads`` is the set of uploaded file paths Gradio keeps (the UI links
    ``Blocks.upload_file_set``); a file or folder a request in flight uses is never removed.
    """

    def __init__(self, root: Path | None = None, budget: int | None = None,
                 max_age_s: float = MAX_AGE_S) -> None:
        self.root = Path(root or OUTPUT_ROOT)
        self.budget = budget or budget_from_env()
        self.max_age_s = max_age_s
        self.uploads: set[str] = set()
        self._lock = threading.Lock()
        self._busy: dict[Path, int] = {}  # folders and files requests in flight use: count
        self._sizes: dict[Path, int] = {}  # finished folders' bytes

    def used(self) -> int:
        """Bytes under the root and in the uploads now."""
        runs = folder_bytes(self.root) if self.root.is_dir() else 0
        return runs + sum(size for _, size, _ in self._upload_files())

    def reserve(self, need: int, prefix: str = "run-") -> Path:
        """A new busy folder, after removing old ones until ``need`` more bytes fit."""
        with self._lock:
            self._evict(need)
            self.root.mkdir(parents=True, exist_ok=True)
            path = Path(tempfile.mkdtemp(prefix=prefix, dir=self.root))
            self._busy[path] = 1
            return path

    def hold(self, path: Path) -> Path:
        """Keep ``path`` (a file a request reads; its run folder if it is in one) until
        :meth:`release` of the path returned."""
        root = self.root.resolve()
        if path.resolve().is_relative_to(root) and path.resolve() != root:
            path = self.root / path.resolve().relative_to(root).parts[0]
        with self._lock:
            self._busy[path] = self._busy.get(path, 0) + 1
        return path

    def release(self, paths: Iterable[Path]) -> None:
        """Mark paths done (a folder's size is recorded), and apply the budget again."""
        with self._lock:
            for path in paths:
                left = self._busy.pop(path, 1) - 1
                if left > 0:
                    self._busy[path] = left
                elif path.is_dir():
                    self._sizes[path] = folder_bytes(path)
            self._evict(0)

    def watch(self, every_s: float = 10.0) -> None:
        """Apply the budget every ``every_s`` seconds in a daemon thread (uploads arrive
        without a run); once per store."""
        if getattr(self, "_watcher", None) is None:
            def loop() -> None:
                while True:
                    time.sleep(every_s)
                    self.release([])

            self._watcher = threading.Thread(target=loop, name="xai-disk-budget", daemon=True)
            self._watcher.start()

    def _upload_files(self) -> list[tuple[Path, int, float]]:
        found = []
        for name in list(self.uploads):
            try:
                stat = os.stat(name)
                found.append((Path(name).resolve(), stat.st_size, stat.st_ctime))
            except OSError:
                self.uploads.discard(name)  # swept by Gradio or by us
        return found

    def _evict(self, need: int) -> None:
        runs = []
        for path in self.root.iterdir() if self.root.is_dir() else ():
            try:
                if path.is_dir() and path not in self._busy:
                    runs.append((path.stat().st_mtime, path))
            except OSError:
                pass
        runs.sort()
        for _, p in runs:  # folders from before this process: walked once, then remembered
            if p not in self._sizes:
                self._sizes[p] = folder_bytes(p)
        sizes = {p: self._sizes[p] for _, p in runs}
        used = sum(sizes.values()) + sum(folder_bytes(p) for p in self._busy if p.is_dir())
        uploads = [(ctime, p, size) for p, size, ctime in self._upload_files()]
        used += sum(size for *_, size in uploads)
        cutoff = time.time() - self.max_age_s
        for mtime, path in runs:
            if mtime >= cutoff and used + need <= self.budget:
                break
            shutil.rmtree(path, ignore_errors=True)
            self._sizes.pop(path, None)
            used -= sizes[path]
        for _, path, size in sorted(uploads):
            if used + need <= self.budget:
                break
            if path not in self._busy:
                path.unlink(missing_ok=True)
                self.uploads.discard(str(path))
                used -= size
        if used + need > self.budget:
            log.warning("disk budget %d bytes: %d in use by requests in flight, %d needed",
                        self.budget, used, need)


STORE = RunStore()
