"""The embeddings / faithfulness tab: what each layer represents, and which map to believe."""

from __future__ import annotations

from typing import Any

import gradio as gr

from . import insights, storage
from .events import Inputs, user_errors

EMBEDDINGS_INTRO = """### What each layer represents, and which map to believe
**Embedding maps**: each position's feature vector on the layer's first three principal
components (R, G, B; one scale), aligned with the image. **Channels**: the 16 most active
channels per layer. **Faithfulness**: RISE deletion (↓) / insertion (↑) AUC of every panel,
ranked by insertion − deletion, beside a random map, a random CAM and a Sobel edge map.
**Sanity**: how much each method's maps change when the model is re-initialised top-down."""


@user_errors("compute the embeddings")
def embeddings(image: str | None, model: str, mode: str, methods: list[str], target: str,
               fit: str, steps: float, sanity: bool, progress: gr.Progress = gr.Progress()
               ) -> tuple[Any, list[tuple[Any, str]], list[list[str]], str]:
    """Embedding maps, top channels, faithfulness table and sanity verdicts for one target."""
    run = insights.insights(model, image, mode=mode, methods=methods, target=target, fit=fit,
                            n_steps=steps, sanity=sanity,
                            on_step=lambda f, text: progress(f, desc=text))
    figure, *grids = storage.save_pictures([run.figure] + [grid for grid, _ in run.grids])
    return (str(figure), [(str(path), caption) for path, (_, caption) in zip(
        grids, run.grids, strict=True)], insights.faithfulness_rows(run.faithfulness),
        insights.sanity_markdown(run.sanity))


def embeddings_tab(inputs: Inputs, limit: int) -> None:
    """The embeddings / faithfulness view of the same first, middle and last layers."""
    with gr.Tab("Embeddings & faithfulness", id="embeddings"):
        gr.Markdown(EMBEDDINGS_INTRO)
        with gr.Row():
            steps = gr.Slider(4, insights.MAX_FAITH_STEPS, value=insights.DEFAULT_FAITH_STEPS,
                              step=1, label="Deletion/insertion steps", min_width=200)
            sanity = gr.Checkbox(value=True, label="Sanity check", min_width=120)
            go = gr.Button("Compute", variant="secondary", elem_id="xai-embeddings-run")
        figure = gr.Image(label="Embedding maps (PC1-3 as RGB)", type="filepath", format="png",
                          interactive=False, elem_id="xai-embedding-maps")
        channels = gr.Gallery(label="Most active channels per layer", show_label=False,
                              columns=3, format="png",
                              object_fit="contain", height="auto", interactive=False,
                              elem_id="xai-channels", buttons=["download", "fullscreen"])
        table = gr.Dataframe(headers=insights.FAITH_HEADERS, interactive=False, wrap=True,
                             max_height=2000, label="Faithfulness per panel (best ★), then "
                             "the baselines", elem_id="xai-faith")
        verdicts = gr.Markdown(label="Sanity check", elem_id="xai-sanity")
    go.click(embeddings, inputs=[inputs.image, inputs.model, inputs.mode, inputs.methods,
                                 inputs.target, inputs.fit, steps, sanity],
             outputs=[figure, channels, table, verdicts], api_name="embeddings",
             show_progress_on=[figure],
             concurrency_id="compute", concurrency_limit=limit)
