"""The app's ``gr.Blocks``: every event's raw arguments pass :mod:`xai_app.gate` before Gradio
processes them, and Gradio's own processing errors reach the caller as one message."""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

import gradio as gr

from xai.errors import XaiError
from xai.images import clean_text

from . import budget, gate

log = logging.getLogger("xai_app")


class GatedBlocks(gr.Blocks):
    """Blocks that check each event's raw arguments first (:mod:`xai_app.gate`: all of a named
    endpoint's, the image inputs of any other event), and whose own processing errors reach
    the caller as one message, never as ``null``."""

    async def process_api(self, block_fn: Any, inputs: list[Any], *args: Any,
                          **kwargs: Any) -> dict[str, Any]:
        fn = self.fns[block_fn] if isinstance(block_fn, int) else block_fn
        name = getattr(fn, "api_name", None)
        images = tuple(i for i, block in enumerate(getattr(fn, "inputs", ()))
                       if isinstance(block, gr.Image))
        made: list[Path] = []
        try:
            if kwargs.get("iterator") is None:  # a generator's next step: checked already
                inputs, made = await gate.check_call(
                    name, inputs, Path(gr.utils.get_upload_folder()), budget.STORE, images)
            return await super().process_api(block_fn, inputs, *args, **kwargs)
        except gr.Error:
            raise
        except (gate.BadRequest, XaiError) as exc:
            log.info("/%s refused: %s", name, exc)
            raise gr.Error(html.escape(str(exc), quote=False), title="Invalid request",
                           print_exception=False) from None
        except Exception as exc:  # Gradio's own processing: its first line, as text
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            text = clean_text(first or type(exc).__name__, 200)
            log.info("/%s: processing error: %s", name, text)
            raise gr.Error(html.escape(f"the request could not be processed: {text}", quote=False),
                           title="Invalid request", print_exception=False) from None
        finally:
            budget.STORE.release(made)
