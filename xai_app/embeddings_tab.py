"""The embeddings / faithfulness tab: what each layer represents, and which map to believe."""

from __future__ import annotations

from typing import Any

import gradio as gr

from . import concepts_view, heap, insights, storage
from .events import Inputs, user_errors
from .service import DEPTHS

EMBEDDINGS_INTRO = """### What each layer represents, and which map to believe
**Embedding maps**: each position's feature vector on the layer's first three principal
components (R, G, B; one scale), aligned with the image. **Channels**: the 16 most active
channels per layer. **Verdicts**, one per panel: *faithful* (16-px cells removed most / least
relevant first, mean fill, LeRF − MoRF of the target logit with a 90 % interval, against a random
map, a smooth random map and an edge map), *class-sensitive* (the map changes for another class),
*model-sensitive* (the sanity check at the panel's own depth), *stable* (small input noise);
where they disagree the table says so. **Concepts** (Deep Feature Factorization, Collins et al.
2018): the chosen layer's activations split into k non-negative parts, each part's map, and at
the last layer the classes its vector scores highest."""


@user_errors("compute the embeddings")
@heap.computes
def embeddings(image: str | None, model: str, mode: str, methods: list[str], target: str,
               fit: str, steps: float, sanity: bool, progress: gr.Progress = gr.Progress()
               ) -> tuple[Any, list[tuple[Any, str]], list[list[str]], str, list]:
    """Embedding maps, top channels, the verdict table and text, the panels with badges."""
    run = insights.insights(model, image, mode=mode, methods=methods, target=target, fit=fit,
                            n_steps=steps, sanity=sanity,
                            progress=lambda f, text: progress(f, desc=text))
    badges = insights.panel_pictures(run)
    figure, *pics = storage.save_pictures([run.figure] + [g for g, _ in run.grids + badges])
    captions = [c for _, c in run.grids + badges]
    shown = [(str(path), c) for path, c in zip(pics, captions, strict=True)]
    return (str(figure), shown[:len(run.grids)], insights.verdict_rows(run.verdicts),
            insights.verdict_markdown(run), shown[len(run.grids):])


@user_errors("compute the concepts")
@heap.computes
def dff_concepts(image: str | None, model: str, mode: str, fit: str, depth: str,
                 concepts: float) -> tuple[str, list[list[str]]]:
    """The DFF concepts' picture (a PNG path) and their top classes."""
    run = concepts_view.concepts(model, image, mode=mode, fit=fit, depth=depth,
                                 n_concepts=concepts)
    path, = storage.save_pictures([run.picture], prefix="concepts-")
    return str(path), concepts_view.concept_rows(run)


def concepts_block(inputs: Inputs, limit: int) -> None:
    """Deep Feature Factorization of one layer: the concepts' maps and their classes."""
    with gr.Row():
        depth = gr.Dropdown(list(DEPTHS), value="last", label="Concepts at", min_width=120)
        n = gr.Slider(2, concepts_view.MAX_CONCEPTS, value=concepts_view.DEFAULT_CONCEPTS,
                      step=1, label="Concepts (k)", min_width=200)
        go = gr.Button("Concepts", variant="secondary", elem_id="xai-concepts-run")
    picture = gr.Image(label="DFF concepts: each concept's map and its top classes",
                       type="filepath", format="png", interactive=False, show_label=False,
                       elem_id="xai-concepts")
    rows = gr.Dataframe(headers=concepts_view.CONCEPT_HEADERS, interactive=False, wrap=True,
                        label="Concepts and their classes", elem_id="xai-concept-labels")
    go.click(dff_concepts, inputs=[inputs.image, inputs.model, inputs.mode, inputs.fit, depth, n],
             outputs=[picture, rows], api_name="concepts", show_progress_on=[picture],
             concurrency_id="compute", concurrency_limit=limit)


def embeddings_tab(inputs: Inputs, limit: int) -> None:
    """The embeddings / faithfulness view of the same first, middle and last layers."""
    with gr.Tab("Embeddings & faithfulness", id="embeddings"):
        gr.Markdown(EMBEDDINGS_INTRO)
        with gr.Row():
            steps = gr.Slider(4, insights.MAX_FAITH_STEPS, value=insights.DEFAULT_FAITH_STEPS,
                              step=1, label="Removal steps (16-px cells)", min_width=200)
            sanity = gr.Checkbox(value=True, label="Sanity check", min_width=120)
            go = gr.Button("Compute", variant="secondary", elem_id="xai-embeddings-run")
        figure = gr.Image(label="Embedding maps (PC1-3 as RGB)", type="filepath", format="png",
                          interactive=False, elem_id="xai-embedding-maps")
        channels = gr.Gallery(label="Most active channels per layer", show_label=False,
                              columns=3, format="png",
                              object_fit="contain", height="auto", interactive=False,
                              elem_id="xai-channels", buttons=["download", "fullscreen"])
        badges = gr.Gallery(label="Which map to believe: every panel with its verdict (★ best)",
                            columns=6, format="png", object_fit="contain", height="auto",
                            interactive=False, elem_id="xai-verdict-panels")
        table = gr.Dataframe(headers=insights.FAITH_HEADERS, interactive=False, wrap=True,
                             max_height=2000, label="Verdict per panel, then the baselines",
                             elem_id="xai-faith")
        verdicts = gr.Markdown(label="Sanity check", elem_id="xai-sanity")
        concepts_block(inputs, limit)
    go.click(embeddings, inputs=[inputs.image, inputs.model, inputs.mode, inputs.methods,
                                 inputs.target, inputs.fit, steps, sanity],
             outputs=[figure, channels, table, verdicts, badges], api_name="embeddings",
             show_progress_on=[figure],
             concurrency_id="compute", concurrency_limit=limit)
