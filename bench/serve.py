"""Serve the real app for the request benchmarks: ``python -m bench.serve --port P``.

The bundled model has its real weights; every other model is built with random weights
(nothing can be downloaded here), which costs the same time per request. Prints ``READY url``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("XAI_CACHE_EXAMPLES", "off")
    os.environ.setdefault("XAI_APP_OUTPUT", tempfile.mkdtemp(prefix="xai-bench-app-"))
    os.environ["XAI_RANDOM_WEIGHTS"] = "1"
    sys.path.insert(0, str(ROOT))
    import torch

    from xai_app import service

    torch.set_num_threads(args.threads)
    import app
    from xai_app.ui import launch

    service.warm_up()
    launch(app.demo, server_name="127.0.0.1", server_port=args.port, prevent_thread_lock=True,
           quiet=True)
    print(f"READY http://127.0.0.1:{args.port}/", flush=True)
    try:
        app.demo.block_thread()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
