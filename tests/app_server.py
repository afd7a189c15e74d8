"""One in-process instance of the real app (``app.demo``) on a free local port, shared by the
app and browser tests and closed at exit."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_LOCK = threading.Lock()
_URL: str | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def running_app() -> str:
    """The URL of the app, launched on first use (offline, examples cached lazily in tmp)."""
    global _URL
    with _LOCK:
        if _URL is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
            os.environ.setdefault("XAI_CACHE_EXAMPLES", "lazy")
            os.environ["GRADIO_EXAMPLES_CACHE"] = tempfile.mkdtemp(prefix="xai-examples-")
            out = tempfile.mkdtemp(prefix="xai-app-out-")
            os.environ["XAI_APP_OUTPUT"] = out
            atexit.register(shutil.rmtree, out, True)
            if str(ROOT) not in sys.path:
                sys.path.insert(0, str(ROOT))
            import app
            from xai_app.ui import launch

            _, url, _ = launch(app.demo, server_name="127.0.0.1", server_port=free_port(),
                               prevent_thread_lock=True, quiet=True)
            atexit.register(app.demo.close)
            _URL = url
        return _URL


def explain_with_files(client, *args, **kwargs) -> tuple:
    """/explain, then /files for the run it answered with: the seven outputs as one tuple
    (gallery, top-5, layer table, manifest, sheet, ZIP, feature-map .npy files)."""
    out = client.predict(*args, api_name="/explain", **kwargs)
    assert out[4] is None and out[5] is None and out[6] is None  # written in the background
    return (*out[:4], *client.predict(out[3], api_name="/files"))


def call_with_files(call, url: str, data: list) -> tuple[str, object]:
    """The raw-HTTP twin of :func:`explain_with_files` (``call`` is a test's raw caller)."""
    kind, out = call(url, data)
    if kind != "complete":
        return kind, out
    kind, files = call(url, [out[3]], "files")
    return kind, [*out[:4], *files] if kind == "complete" else files
