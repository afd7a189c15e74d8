"""The dataset report: one self-contained HTML page of matplotlib plots and tables, and the same
numbers in ``report.json`` (see :mod:`xai.summary`)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from .summary import summarise

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def class_plot(dist: dict) -> str | None:
    """Bars of the annotated and the predicted (top-1) classes, 15 most frequent each."""
    parts = [(k, v) for k, v in (("annotated", dist["annotated"]),
                                 ("predicted top-1", dist["predicted"])) if v]
    if not parts:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(parts), figsize=(6 * len(parts), 4.2), squeeze=False)
    for ax, (name, counts) in zip(axes[0], parts):
        items = list(counts.items())[:15][::-1]
        ax.barh([k for k, _ in items], [v for _, v in items], color="#4c72b0")
        ax.set_title(f"{name} classes (images)")
        ax.set_xlabel("images")
    return _png(fig)


def panel_plot(panels: list[dict], stats: list[tuple[str, str]], ylabel: str) -> str | None:
    """Grouped bars per depth, one colour per method, with bootstrap 95 % CI error bars."""
    stats = [(k, t) for k, t in stats if any(p.get(k, {}).get("mean") is not None
                                              for p in panels)]
    if not stats:
        return None
    plt = _plt()
    methods = list(dict.fromkeys(p["method"] for p in panels))
    depths = list(dict.fromkeys(p["depth"] for p in panels))
    fig, axes = plt.subplots(1, len(stats), figsize=(5.5 * len(stats), 3.8), squeeze=False)
    width = 0.8 / len(methods)
    for ax, (key, title) in zip(axes[0], stats):
        for j, m in enumerate(methods):
            vals, lo, hi = [], [], []
            for d in depths:
                s = next(p for p in panels if p["method"] == m and p["depth"] == d).get(key, {})
                mean = s.get("mean")
                vals.append(np.nan if mean is None else mean)
                lo.append(0 if mean is None else mean - s["ci"][0])
                hi.append(0 if mean is None else s["ci"][1] - mean)
            xs = np.arange(len(depths)) + (j - (len(methods) - 1) / 2) * width
            ax.bar(xs, vals, width, yerr=[lo, hi], capsize=3, label=m,
                   color=COLOURS[j % len(COLOURS)])
        ax.set_xticks(range(len(depths)), depths)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    return _png(fig)


def maps_plot(class_maps: list[dict]) -> str | None:
    """The mean map of each frequent predicted class (whole-image coordinates)."""
    if not class_maps:
        return None
    plt = _plt()
    n = len(class_maps)
    cols = min(n, 6)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, cm in zip(axes.ravel(), class_maps):
        ax.imshow(np.asarray(cm["map"]), cmap="jet", vmin=0, vmax=1)
        ax.set_title(f"{cm['label'][:18]} (n={cm['n']})", fontsize=9)
    return _png(fig)


def disagreement_plot(items: list[dict]) -> str | None:
    """The images whose methods' peaks are furthest apart, each method's peak marked."""
    from PIL import Image

    shown = [e for e in items if Path(e["path"]).is_file()]
    if not shown:
        return None
    plt = _plt()
    cols = min(len(shown), 4)
    rows = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, e in zip(axes.ravel(), shown):
        with Image.open(e["path"]) as im:
            ax.imshow(np.asarray(im.convert("RGB")))
        for j, (m, (x, y)) in enumerate(e["peaks"].items()):
            ax.plot(x, y, marker="o", ms=9, mfc="none", mew=2.5, color=COLOURS[j % 6], label=m)
        ax.set_title(f"{Path(e['image_id']).name[:22]}\n{e['target_label'][:20]}, "
                     f"spread {e['score']:.2f}", fontsize=8)
    axes[0][0].legend(fontsize=7, loc="lower left")
    return _png(fig)


def _fmt(s: dict | None, pct: bool = True) -> str:
    if not s or s.get("mean") is None:
        return "—"
    k = 100 if pct else 1
    f = "{:.1f}" if pct else "{:.3f}"
    lo, hi = s["ci"]
    return f"{f.format(k * s['mean'])} [{f.format(k * lo)}, {f.format(k * hi)}] (n={s['n']})"


def _table(panels: list[dict]) -> str:
    keys = ("pointing", "energy", "deletion", "insertion")
    if not any((p.get(k) or {}).get("mean") is not None for p in panels for k in keys):
        return ("<p class='none'>No boxes or masks were given and no faithfulness was asked "
                "for: pointing, energy and deletion/insertion need annotations or "
                "<code>--faithfulness</code>.</p>")
    head = ("<tr><th>method</th><th>depth</th><th>pointing % (TorchRay, all)</th>"
            "<th>pointing % (difficult)</th><th>energy %</th><th>deletion ↓</th>"
            "<th>insertion ↑</th></tr>")
    body = "".join(
        f"<tr><td>{html.escape(p['method'])}</td><td>{html.escape(p['depth'])}</td>"
        f"<td>{_fmt(p['pointing'])}</td><td>{_fmt(p['pointing_difficult'])}</td>"
        f"<td>{_fmt(p.get('energy'))}</td><td>{_fmt(p.get('deletion'), False)}</td>"
        f"<td>{_fmt(p.get('insertion'), False)}</td></tr>" for p in panels)
    return f"<table>{head}{body}</table>"


def _img(b64: str | None, alt: str) -> str:
    if b64 is None:
        return f"<p class='none'>({html.escape(alt)}: nothing to show for this run)</p>"
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{b64}'>"


def render(summary: dict) -> str:
    """The HTML page for a :func:`xai.summary.summarise` dict."""
    p = summary["panels"]
    figs = [
        ("Classes", class_plot(summary["class_distribution"])),
        ("Pointing game (15 px) and energy, mean with bootstrap 95 % CI",
         panel_plot(p, [("pointing", "pointing accuracy (all)"),
                        ("pointing_difficult", "pointing accuracy (difficult)"),
                        ("energy", "energy inside the object")], "fraction")),
        ("Faithfulness (RISE deletion ↓ / insertion ↑ AUC)",
         panel_plot(p, [("deletion", "deletion AUC"), ("insertion", "insertion AUC")], "AUC")),
        ("Mean map per predicted class", maps_plot(summary["class_maps"])),
        ("Where the methods disagree most (peaks at the deepest layer)",
         disagreement_plot(summary["disagreement"])),
    ]
    layers = ", ".join(f"{d}: {n}" for d, n in summary["layers"].items())
    errs = "".join(f"<li>{html.escape(e['image_id'])}: {html.escape(e['error'] or '')}</li>"
                   for e in summary["error_examples"])
    sections = "".join(f"<h2>{html.escape(t)}</h2>{_img(b, t)}" for t, b in figs)
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>xai dataset report</title><style>
body{{font-family:sans-serif;margin:24px;max-width:1400px}} img{{max-width:100%}}
table{{border-collapse:collapse;font-size:13px}} td,th{{border:1px solid #ccc;padding:3px 7px}}
.none{{color:#888}}</style></head><body>
<h1>Dataset report: {html.escape(str(summary['model']))}</h1>
<p>{summary['images']} images, {summary['rows']} rows (image × target),
{summary['errors']} images logged as errors and skipped. Layers: {html.escape(layers)}.</p>
{_table(p)}
<p>Pointing: TorchRay's protocol (point = first maximum of the map at image size, hit within
{summary['settings'].get('tolerance', 15)} px of the class's boxes, mean of per-class accuracies).
Intervals: {summary['bootstrap']['resamples']} bootstrap resamples of the rows.</p>
{sections}
<h2>Errors</h2><ul>{errs or '<li>none</li>'}</ul></body></html>"""


def write_report(out: Path) -> Path:
    """Write ``report.html`` and ``report.json`` in ``out``; return the HTML's path."""
    summary = summarise(out)
    (Path(out) / "report.json").write_text(json.dumps(summary, indent=1))
    path = Path(out) / "report.html"
    path.write_text(render(summary), encoding="utf-8")
    return path
