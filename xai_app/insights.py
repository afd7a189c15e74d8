"""The embeddings and faithfulness view: embedding maps, channel grids, and one verdict per
panel (faithful / class-sensitive / model-sensitive / stable, :mod:`xai.verdict`) from one
explain call, in real stages (no Gradio here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

import xai
from xai.embeddings import embedding_figure, feature_grid
from xai.engine import Explanation
from xai.errors import XaiError
from xai.render import overlay
from xai.sanity import SanityReport, sanity_check
from xai.verdict import VERDICT_HEADERS, VerdictReport, judge

from .service import (
    CACHE,
    DEPTHS,
    TOP1,
    check_request,
    on_gpu,
    parse_targets,
)

FAITH_HEADERS = VERDICT_HEADERS
DEFAULT_FAITH_STEPS = 16  # the meta-evaluated protocol: 16-px cells, mean fill, 16 steps
MAX_FAITH_STEPS = 196  # 224 / 16 = 14 cells a side
THUMB = 160  # px, the side of a panel picture with its badge


@dataclass
class InsightRun:
    """Embeddings, channel grids, the verdicts and the sanity report of one explanation."""

    result: Explanation
    figure: Any
    grids: list[tuple[Any, str]]
    verdicts: VerdictReport
    sanity: SanityReport | None


def _explain(name: str, image, methods: list[str], mode: str, targets, fit: str
             ) -> tuple[Explanation, Any, list[tuple[Any, str]]]:
    result = xai.explain(CACHE.get(name), image, methods, DEPTHS, mode=mode, targets=targets,
                         fit=fit, keep_activations=True)  # the embeddings reuse this forward
    grids = [(feature_grid(result, d, k=16, cols=4, tile=96),
              f"{d}: {result.layer(d).name} · top 16 channels") for d in result.depths]
    return result, embedding_figure(result), grids


def _sanity(name: str, result: Explanation) -> SanityReport:
    return sanity_check(CACHE.get(name), result)


def _judge(name: str, result: Explanation, sanity: SanityReport | None,
           n_steps: int) -> VerdictReport:
    return judge(CACHE.get(name), result, sanity=sanity, n_steps=n_steps)


# each stage is its own GPU call, so that the page can show real progress between them
compute_explain, compute_sanity, compute_judge = on_gpu(_explain), on_gpu(_sanity), on_gpu(_judge)


def insights(name: object, image, *, mode: object = "stages",
             methods=xai.DEFAULT_METHODS, target: object = TOP1, fit: object = "crop",
             n_steps: object = DEFAULT_FAITH_STEPS, sanity: bool = True,
             progress: Callable[[float, str], Any] | None = None) -> InsightRun:
    """Validate, then embeddings + channel grids, the sanity check and the verdicts, calling
    ``progress(fraction, text)`` before each stage."""
    name, mode, fit, method_names = check_request(name, image, mode, methods, fit)
    targets, _ = parse_targets(target, 1)
    try:
        steps = int(n_steps)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise XaiError(f"steps must be a whole number, not {str(n_steps)[:40]!r}") from None
    if not 4 <= steps <= MAX_FAITH_STEPS:
        raise XaiError(f"steps must be in 4..{MAX_FAITH_STEPS}")
    say = progress or (lambda f, s: None)
    say(0.05, "explaining: one forward, one backward; embeddings and channels")
    result, figure, grids = compute_explain(name, image, method_names, mode, targets, fit)
    report = None
    if sanity:
        say(0.25, "sanity check: re-initialising a copy of the model top-down")
        report = compute_sanity(name, result)
    say(0.5, f"verdicts: removing 16-px cells in {steps} steps for every panel and 3 baselines "
             "(batched), then the maps for another class and under noise")
    verdicts = compute_judge(name, result, report, steps)
    say(1.0, "done")
    return InsightRun(result, figure, grids, verdicts, report)


def panel_pictures(run: InsightRun) -> list[tuple[Image.Image, str]]:
    """Every panel's overlay with its badge as caption (★: the one to believe)."""
    r, tgt = run.result, run.verdicts.target["index"]
    out = []
    for p in run.verdicts.panels:
        cam = r.cam(p.method, p.depth, tgt)
        pic = Image.fromarray(overlay(r.image, cam)).resize((THUMB, THUMB))
        out.append((pic, f"{p.method} @ {p.depth}{' ★' if p.best else ''} · {p.badge}"))
    return out


def verdict_rows(report: VerdictReport) -> list[list[str]]:
    """The library's own table (:meth:`xai.verdict.VerdictReport.rows`)."""
    return report.rows()


def verdict_markdown(run: InsightRun) -> str:
    """The summary (which map to believe, and where the signals disagree), then the sanity
    check per method."""
    v = run.verdicts
    head = (f"**Which map to believe for {v.target['label']}** — {v.summary}\n\n"
            f"Class sensitivity compares with the maps for *{v.contrast['label']}*. "
            f"Scored {len(v.panels)} panels + {len(v.baselines)} baselines with {v.forwards} "
            f"images in {v.timings.get('faithfulness', 0):.1f} s.")
    return head + "\n\n" + sanity_markdown(run.sanity)


def sanity_markdown(report: SanityReport | None) -> str:
    """The verdict per method, in words."""
    if report is None:
        return "Sanity check off."
    lines = [f"**Sanity check** (cascading model-parameter randomisation, Adebayo et al. 2018), "
             f"per panel, never averaged over depths: a panel passes when its map's |Spearman ρ| "
             f"with the original, once its layer's stage and everything above are re-initialised, "
             f"is below {report.threshold}; a method passes when every depth does:"]
    return "\n".join(lines + report.verdict_lines())
