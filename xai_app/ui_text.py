"""The app's words and style: the intro, the API snippet, the CSS and the scroll script."""

INTRO = """\
# Where does the classifier look?
Grad-CAM, Grad-CAM++, Eigen-CAM and XGrad-CAM at the **first, middle and last** layers of an
ImageNet classifier, from one forward and one backward pass. Upload an image (or pick an
example), choose a model and press **Explain**. Rows are layers, columns are methods; every
caption names the method, the depth, the module, its feature-map size and the target class.
"""

CLIENT_SNIPPET = """\
```python
from gradio_client import Client, handle_file
client = Client("http://127.0.0.1:7860")          # or a Space id, "owner/space"
gallery, top5, table, manifest, sheet, zip_path, raw = client.predict(
    handle_file("examples/cat.png"), "efficientnet_lite0", api_name="/explain")
print(top5["label"], [item["caption"] for item in gallery])
fmaps = [numpy.load(p) for p in raw]   # float32 maps at feature-map size (ZIP: raw/, both sizes)
```
Endpoints: `explain(image, model, mode, methods, target, top_k, guided, fit, opacity,
colormap, layer_row, layer)`, `predict(image, model, fit)`, `layers(model, mode)`,
`embeddings(image, model, mode, methods, target, fit, steps, sanity)`,
`compare(image, models, mode, method, target, fit)`, `models()`. Run
`python examples/client.py --help` for a script that saves the overlays and raw maps.
"""

# Gallery panels keep their captions below them (not over the picture); under 600 px the
# gallery has two columns (every caption names its method) and the column headers go.
CSS = """
#xai-gallery .grid-wrap, #xai-channels .grid-wrap { max-height: none !important;
  overflow-y: visible !important; }
#xai-gallery .thumbnail-item, #xai-channels .thumbnail-item { aspect-ratio: auto !important;
  height: auto !important; display: flex; flex-direction: column; }
#xai-gallery .thumbnail-lg > img, #xai-channels .thumbnail-lg > img { aspect-ratio: 1 / 1;
  height: auto !important; }
#xai-gallery .caption-label, #xai-channels .caption-label { position: static !important;
  max-width: 100% !important; white-space: normal !important; overflow: visible !important;
  text-overflow: clip !important; opacity: 1 !important; border: 0 !important;
  border-radius: 0 !important; font-size: 12px !important; line-height: 1.3;
  text-align: center; overflow-wrap: anywhere; }
#xai-head .xai-target { font-size: 1.15em; }
#xai-head .xai-meta { font-size: 12px; opacity: 0.8; }
#xai-head .xai-scale { display: flex; align-items: center; gap: 6px; font-size: 12px;
  margin: 4px 0; flex-wrap: wrap; }
#xai-head .xai-bar { display: inline-block; width: 160px; height: 12px; border-radius: 2px; }
#xai-head .xai-cols { display: grid; gap: var(--spacing-lg); font-weight: 600;
  text-align: center; font-size: 13px; }
@media (max-width: 600px) {
  #xai-gallery .grid-container { grid-template-columns: repeat(2, minmax(0, 1fr)) !important; }
  #xai-head .xai-cols { display: none; }
}
"""

# After Explain or an example: bring the results into view when they start below the middle
# of the screen (on a phone they are far below the button).
SCROLL_TO_RESULTS = """() => { const r = document.getElementById('xai-results');
  if (r && r.getBoundingClientRect().top > window.innerHeight / 2) {
    r.scrollIntoView({behavior: 'smooth', block: 'start'}); } }"""
