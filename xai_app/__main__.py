"""``python -m xai_app`` (or the ``xai-app`` command): serve the web app until interrupted."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any


def main(argv: Sequence[str] | None = None, demo: Any = None) -> None:
    """Parse the options and serve ``demo`` (default: a new one) until interrupted."""
    parser = argparse.ArgumentParser(description="Serve the xai CAM gallery web app.")
    parser.add_argument("--port", type=int, default=None,
                        help="port (default: env GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--host", default=None,
                        help="address to listen on (default: env GRADIO_SERVER_NAME or "
                             "127.0.0.1; 0.0.0.0 for every interface)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s",
                        stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from xai_app.service import warm_up
    from xai_app.ui import build_demo, launch

    demo = demo or build_demo()
    warm_up()  # the default model loaded and traced before the first visitor
    launch(demo, server_port=args.port, server_name=args.host or os.environ.get(
        "GRADIO_SERVER_NAME"))


if __name__ == "__main__":
    main()
