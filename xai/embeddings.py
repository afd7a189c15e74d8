"""What a layer represents: its most active channels, its per-position embeddings as colours,
and pooled embeddings of many images projected to 2-D.

Everything reads the feature maps the engine kept from the gallery's own forward
(``explain(..., keep_activations=True)`` or ``explain_batch``): no extra forward. Given a model,
:func:`layer_activations` recomputes them with one hooked forward when they were not kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from .engine import DEFAULT_DEPTHS, Explanation, explain_batch
from .errors import LayerError, OptionError, XaiError
from .images import ImageInput
from .models import LoadedModel
from .passes import run_pass
from .render import BG, INK, MUTED, colorize, font

TSNE_MIN_IMAGES = 30  # below this a 2-D t-SNE is not meaningful; PCA is used instead


# --- activations ------------------------------------------------------------------------------

def layer_activations(result: Explanation, model: LoadedModel | None = None
                      ) -> dict[str, torch.Tensor]:
    """``{depth: (C, h, w) tensor}`` for every depth of ``result``.

    Uses ``result.activations`` (kept by the engine's forward) when present; otherwise runs one
    hooked forward of ``result.input`` through ``model``. Raises :class:`XaiError` if neither.
    """
    if result.activations and all(d in result.activations for d in result.depths):
        return {d: result.activations[d] for d in result.depths}
    if model is None or result.input is None:
        raise XaiError("no feature maps were kept: call explain(..., keep_activations=True) "
                       "or pass the model")
    layers = {d: result.layer(d) for d in result.depths}
    # the engine's own hooked forward (clones against in-place ops, restores the model), no maps
    with model.lock:
        run = run_pass(model, result.input.to(model.device), list(layers.values()), [],
                       keep_activations=True)
    return {d: run.activations[info.name][0] for d, info in layers.items()}


# --- (1) most active channels as a labelled grid ---------------------------------------------

def top_channels(activation: torch.Tensor, k: int = 16) -> list[tuple[int, float]]:
    """The ``k`` channels of a (C, h, w) map with the highest spatial mean: (channel, mean)."""
    if activation.dim() != 3:
        raise LayerError(f"expected a (C, h, w) feature map, got shape {tuple(activation.shape)}")
    means = activation.float().mean(dim=(1, 2))
    top = means.topk(min(k, means.numel()))
    return [(int(i), float(v)) for v, i in zip(top.values, top.indices)]


def feature_grid(result: Explanation, depth: str | None = None, k: int = 16, cols: int = 4,
                 tile: int = 112, model: LoadedModel | None = None,
                 colormap: str = "viridis") -> Image.Image:
    """The ``k`` most active channels of a layer as a labelled grid (PIL image).

    Each tile is one channel, min-max scaled on its own, titled with its index and mean.
    """
    depth = result.depths[-1] if depth is None else str(depth)
    act = layer_activations(result, model)[depth]
    info = result.layer(depth)
    chans = top_channels(act, k)
    cols = max(1, min(cols, len(chans)))
    rows = -(-len(chans) // cols)
    pad, label_h, head_h = 6, 16, 40
    width = cols * (tile + pad) + pad
    canvas = Image.new("RGB", (width, head_h + rows * (tile + label_h + pad)), BG)
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 4), f"{depth}: {info.name}", fill=INK, font=font(14, True))
    draw.text((pad, 22), f"{info.size} · top {len(chans)} channels by mean activation",
              fill=MUTED, font=font(11))
    for n, (c, mean) in enumerate(chans):
        ch = act[c].float()
        lo, hi = float(ch.min()), float(ch.max())
        norm = ((ch - lo) / (hi - lo)).numpy() if hi > lo else np.zeros(ch.shape, np.float32)
        pic = Image.fromarray(colorize(norm, colormap)).resize((tile, tile), Image.NEAREST)
        x = pad + (n % cols) * (tile + pad)
        y = head_h + (n // cols) * (tile + label_h + pad)
        draw.text((x, y), f"#{c}  mean {mean:.2f}", fill=INK, font=font(10))
        canvas.paste(pic, (x, y + label_h))
    return canvas


# --- (2) per-position embeddings as RGB -------------------------------------------------------

def principal_components(activation: torch.Tensor, n: int = 3
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Project each position's C-vector of a (C, h, w) map on the first ``n`` principal axes.

    Returns ((n, h, w) projections, (n,) explained-variance ratios), on the map's device.
    Signs are fixed so that each component's largest-magnitude projection is positive.
    """
    c, h, w = activation.shape
    x = activation.reshape(c, h * w).T.float()  # (positions, channels)
    x = x - x.mean(dim=0, keepdim=True)
    u, s, _ = torch.linalg.svd(x, full_matrices=False)
    k = min(n, s.numel())
    proj = u[:, :k] * s[:k]
    idx = proj.abs().argmax(dim=0)
    proj = proj * torch.sign(proj[idx, torch.arange(k, device=proj.device)] + 1e-12)
    var = s**2
    ratio = var[:k] / var.sum().clamp_min(1e-12)
    if k < n:  # fewer channels or positions than components
        proj = torch.cat([proj, proj.new_zeros(h * w, n - k)], dim=1)
        ratio = torch.cat([ratio, ratio.new_zeros(n - k)])
    return proj.T.reshape(n, h, w), ratio


def embedding_rgb(activation: torch.Tensor, size: tuple[int, int] | None = None
                  ) -> tuple[np.ndarray, list[float]]:
    """A (C, h, w) map as an RGB uint8 image: PC1-3 -> R, G, B around mid-grey.

    One scale for all three components (the 99th percentile of their magnitudes), so colour
    distance follows embedding distance and a weak component stays faint instead of being
    stretched to full contrast. ``size`` = (H, W) resizes bilinearly (as the CAMs are).
    Returns (image, explained-variance ratios).
    """
    proj, ratio = principal_components(activation, 3)
    scale = torch.quantile(proj.abs().flatten().float(), 0.99).clamp_min(1e-8)
    rgb = (0.5 + 0.5 * proj / scale).clamp(0, 1)
    if size is not None and tuple(rgb.shape[-2:]) != tuple(size):
        rgb = F.interpolate(rgb[None], size=tuple(size), mode="bilinear",
                            align_corners=False)[0].clamp(0, 1)
    pic = (rgb * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return pic, [float(r) for r in ratio]


def embedding_map(result: Explanation, depth: str | None = None,
                  model: LoadedModel | None = None) -> np.ndarray:
    """The layer's embedding map as RGB uint8, aligned with (and the size of) ``result.image``."""
    depth = result.depths[-1] if depth is None else str(depth)
    act = layer_activations(result, model)[depth]
    return embedding_rgb(act, result.image.shape[:2])[0]


def embedding_figure(result: Explanation, model: LoadedModel | None = None,
                     tile: int = 224) -> Image.Image:
    """The input and each depth's embedding map side by side, labelled (PIL image)."""
    acts = layer_activations(result, model)
    pad, head_h = 8, 52
    cols = 1 + len(result.depths)
    canvas = Image.new("RGB", (pad + cols * (tile + pad), head_h + tile + pad), BG)
    draw = ImageDraw.Draw(canvas)
    canvas.paste(Image.fromarray(result.image).resize((tile, tile), Image.BILINEAR),
                 (pad, head_h))
    draw.text((pad, 6), "input", fill=INK, font=font(13, True))
    for j, depth in enumerate(result.depths, 1):
        info = result.layer(depth)
        pic, ratio = embedding_rgb(acts[depth], result.image.shape[:2])
        x = pad + j * (tile + pad)
        canvas.paste(Image.fromarray(pic).resize((tile, tile), Image.BILINEAR), (x, head_h))
        draw.text((x, 6), f"{depth}: {info.name}", fill=INK, font=font(13, True))
        draw.text((x, 24), f"{info.size} · PC1-3 = RGB, one scale", fill=MUTED, font=font(10))
        draw.text((x, 37), "variance " + " / ".join(f"{r:.0%}" for r in ratio), fill=MUTED,
                  font=font(10))
    return canvas


# --- (3) pooled embeddings of many images -----------------------------------------------------

def embed_images(model: LoadedModel, images: Sequence[ImageInput],
                 depths: Sequence[str | float] = DEFAULT_DEPTHS, *,
                 mode: str = "stages", batch_size: int = 16, fit: str = "crop"
                 ) -> list[Explanation]:
    """Forward ``images`` in batches (Eigen-CAM only: no backward) keeping the feature maps."""
    out: list[Explanation] = []
    for i in range(0, len(images), batch_size):
        out += explain_batch(model, list(images[i:i + batch_size]), ("eigencam",), depths,
                             mode=mode, fit=fit, display_size=256, keep_activations=True)
    return out


def pooled_embeddings(results: Sequence[Explanation], depth: str,
                      model: LoadedModel | None = None) -> torch.Tensor:
    """(N, C) global-average-pooled feature vectors of one depth for every result."""
    if not results:
        raise XaiError("no images to embed")
    return _pooled([layer_activations(r, model) for r in results], depth)


def _pooled(acts: Sequence[dict[str, torch.Tensor]], depth: str) -> torch.Tensor:
    return torch.stack([a[depth].float().mean(dim=(1, 2)) for a in acts])


def project_2d(x: torch.Tensor, method: str = "auto", seed: int = 0, tsne_iter: int = 1000
               ) -> tuple[np.ndarray, str]:
    """(N, C) -> (N, 2). ``auto``: t-SNE for >= 30 points, otherwise PCA. Returns (xy, method)."""
    n = x.shape[0]
    if method == "auto":
        method = "tsne" if n >= TSNE_MIN_IMAGES else "pca"
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(max(2.0, min(30.0, (n - 1) / 3)))
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                  max_iter=max(250, tsne_iter)).fit_transform(x.double().cpu().numpy())
        return np.asarray(xy, dtype=np.float32), "t-SNE"
    if method != "pca":
        raise OptionError(f"unknown projection {method!r}; use auto, pca or tsne")
    if n == 1:
        return np.zeros((1, 2), np.float32), "PCA"
    proj, _ = principal_components(x.T.reshape(x.shape[1], n, 1), 2)
    return proj.reshape(2, n).T.cpu().numpy().astype(np.float32), "PCA"


def nn_agreement(x: torch.Tensor, labels: Sequence[str]) -> float | None:
    """Leave-one-out 1-nearest-neighbour (cosine) label agreement; None if no label repeats."""
    if len(labels) < 3 or len(set(labels)) == len(labels):
        return None
    z = F.normalize(x.float(), dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(-2.0)
    nearest = sim.argmax(dim=1).tolist()
    return float(np.mean([labels[i] == labels[j] for i, j in enumerate(nearest)]))


def embedding_scatter(results: Sequence[Explanation], depths: Sequence[str] | None = None, *,
                      model: LoadedModel | None = None, method: str = "auto",
                      names: Sequence[str] | None = None, seed: int = 0):
    """Pooled embeddings of every result projected to 2-D, one subplot per depth.

    Points are coloured and labelled by the predicted (top-1) label; ``names`` (e.g. file
    names; empty strings are skipped) are added to the annotations. Returns a matplotlib
    Figure (Agg canvas, no pyplot).
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not results:
        raise XaiError("no images to embed")
    depths = list(depths or results[0].depths)
    acts = [layer_activations(r, model) for r in results]  # one fallback forward each, at most
    labels = [r.predictions[0].label for r in results]
    classes = list(dict.fromkeys(labels))
    cmap = colormaps["tab20" if len(classes) > 10 else "tab10"]
    colour = {c: cmap(i % cmap.N) for i, c in enumerate(classes)}
    fig = Figure(figsize=(4.6 * len(depths), 4.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    annotate = len(results) <= 40
    for j, depth in enumerate(depths):
        ax = fig.add_subplot(1, len(depths), j + 1)
        x = _pooled(acts, depth)
        xy, used = project_2d(x, method, seed)
        ax.scatter(xy[:, 0], xy[:, 1], c=[colour[lb] for lb in labels], s=36,
                   edgecolors="black", linewidths=0.4)
        if annotate:
            for i, (px, py) in enumerate(xy):
                text = f"{names[i]}: {labels[i]}" if names and names[i] else labels[i]
                ax.annotate(text, (px, py), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        info = results[0].layer(depth)
        agree = nn_agreement(x, labels)
        extra = "" if agree is None else f", 1-NN label agreement {agree:.0%}"
        ax.set_title(f"{depth}: {info.name} ({x.shape[1]}-d)\n{used} of {len(results)} "
                     f"images{extra}", fontsize=9)
        ax.margins(0.18)
        ax.set_xticks([])
        ax.set_yticks([])
    if not annotate:
        handles = [ax.scatter([], [], color=colour[c], label=c) for c in classes[:20]]
        fig.legend(handles=handles, loc="outside right upper", fontsize=7)
    return fig


def figure_image(fig) -> Image.Image:
    """Render a matplotlib Figure (Agg) to an RGB PIL image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())


# --- (4) Deep Feature Factorization: concepts of a layer (issue 15) ---------------------------

def concepts_image(result: Explanation, depth: str | None = None, n_components: int = 4,
                   model: LoadedModel | None = None) -> tuple[np.ndarray, list]:
    """The image with each pixel tinted by its strongest DFF concept (:mod:`xai.concepts`),
    and per concept its colour and top classes."""
    from .concepts import concept_maps

    c = concept_maps(result, depth, n_components, model)
    palette = np.array([[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48],
                        [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60]])
    colours = palette[np.arange(n_components) % len(palette)]
    best, strength = c.maps.argmax(axis=0), c.maps.max(axis=0)[..., None]
    tint = colours[best] * strength + result.image * (1 - strength)
    pic = (0.5 * result.image + 0.5 * tint).round().clip(0, 255).astype(np.uint8)
    return pic, [{"colour": col.tolist(), "classes": lab} for col, lab in zip(colours, c.labels)]
