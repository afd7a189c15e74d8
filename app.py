"""The xai web demo: ``python app.py`` serves the CAM gallery on the bundled offline model.

Options: ``--port`` (or env GRADIO_SERVER_PORT, default 7860), ``--host`` (or env
GRADIO_SERVER_NAME, default 127.0.0.1). Environment: XAI_ALLOW_ANY_MODEL=1 accepts any timm
name, XAI_MODEL_CACHE (3) models stay loaded, XAI_CONCURRENCY (1) computations at a time,
XAI_CACHE_EXAMPLES=lazy|eager|off, XAI_DISK_BUDGET (1GB) bounds what requests leave on disk,
XAI_APP_OUTPUT is the folder of the run files. On a Hugging Face Space this file is the
``app_file``.
"""

from __future__ import annotations

from xai_app.__main__ import main
from xai_app.ui import build_demo

demo = build_demo()

__all__ = ["demo", "main"]

if __name__ == "__main__":
    main(demo=demo)
