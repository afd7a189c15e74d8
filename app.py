"""The xai web demo: ``python app.py`` serves the CAM gallery on the bundled offline model.

Options: ``--port`` (or env GRADIO_SERVER_PORT, default 7860), ``--host`` (or env
GRADIO_SERVER_NAME, default 127.0.0.1). Environment: XAI_ALLOW_ANY_MODEL=1 accepts any timm
name, XAI_MODEL_CACHE (3) models stay loaded, XAI_CONCURRENCY (1) computations at a time,
XAI_CACHE_EXAMPLES=lazy|eager|off, XAI_DISK_BUDGET (1GB) bounds what requests leave on disk,
XAI_APP_OUTPUT is the folder of the run files. On a Hugging Face Space this file is the
``app_file``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from xai_app.service import warm_up
from xai_app.ui import build_demo, launch

demo = build_demo()


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options and serve the app until interrupted."""
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
    warm_up()  # the default model loaded and traced before the first visitor
    launch(demo, server_port=args.port, server_name=args.host or os.environ.get(
        "GRADIO_SERVER_NAME"))


if __name__ == "__main__":
    main()
