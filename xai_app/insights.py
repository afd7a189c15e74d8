"""The embeddings and faithfulness view: embedding maps, channel grids, deletion/insertion
scores per panel and the sanity check, all from one explain call (no Gradio here)."""

from __future__ import annotations

import contextlib
import contextvars
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import xai
from xai.embeddings import embedding_figure, feature_grid
from xai.engine import Explanation
from xai.errors import XaiError
from xai.faithfulness import FaithfulnessTable, score_explanation
from xai.sanity import SanityReport, fmt_rho, sanity_check

from .service import (
    CACHE,
    DEPTHS,
    TOP1,
    _gpu,
    check_request,
    parse_targets,
)

FAITH_HEADERS = ["rank", "method", "depth", "deletion AUC ↓", "insertion AUC ↑", "ins − del ↑",
                 "beats baselines"]
DEFAULT_FAITH_STEPS = 16  # about 20 s on a 2-core CPU for 12 panels; RISE uses 224
MAX_FAITH_STEPS = 224


@dataclass
class InsightRun:
    """Embeddings, channel grids, faithfulness and sanity of one explanation (one forward)."""

    result: Explanation
    figure: Any
    grids: list[tuple[Any, str]]
    faithfulness: FaithfulnessTable
    sanity: SanityReport | None


def _insights(name: str, image, methods: list[str], mode: str, targets, fit: str,
              n_steps: int, sanity: bool, on_step=None) -> InsightRun:
    step = on_step or (lambda fraction, text: None)
    model = CACHE.get(name)
    step(0.05, "explaining the image (one forward, one backward)")
    result = xai.explain(model, image, methods, DEPTHS, mode=mode, targets=targets, fit=fit,
                         keep_activations=True)  # the embeddings reuse this forward
    grids = [(feature_grid(result, d, k=16, cols=4, tile=96),
              f"{d}: {result.layer(d).name} · top 16 channels") for d in result.depths]
    panels = len(result.depths) * len(result.panel_methods)
    forwards = 2 * (panels + 3) * (n_steps - 1) + 3
    end = 0.75 if sanity else 0.95
    with ticking(step, 0.15, end, f"scoring {panels} panels and 3 baselines: deletion and "
                 f"insertion, {n_steps} steps each", forwards * result.timings["forward"] / 4):
        table = score_explanation(model, result, n_steps=n_steps)
    report = None
    if sanity:
        with ticking(step, end, 0.98, "sanity check: re-initialising the model top-down",
                     40 * result.timings["total"]):
            report = sanity_check(model, result)
    step(1.0, "drawing")
    return InsightRun(result, embedding_figure(result), grids, table, report)


@contextlib.contextmanager
def ticking(step: Callable[[float, str], None], start: float, end: float, text: str,
            expected_s: float) -> Iterator[None]:
    """Report progress from ``start`` towards ``end`` every 0.4 s while the block runs:
    ``start + (end - start)·(1 − e^(−t/expected_s))``, so the bar keeps moving and never
    passes ``end`` however wrong the estimate (the step inside reports nothing itself)."""
    step(start, text)
    stop = threading.Event()

    def loop() -> None:
        t0 = time.perf_counter()
        while not stop.wait(0.4):
            done = 1 - math.exp(-(time.perf_counter() - t0) / max(expected_s, 0.1))
            step(start + (end - start) * done, text)

    # the copied context carries Gradio's request, so the thread's reports reach the page
    ticker = threading.Thread(target=contextvars.copy_context().run, args=(loop,),
                              name="xai-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()


compute_insights = _gpu(_insights)


def insights(name: object, image, *, mode: object = "stages",
             methods=xai.DEFAULT_METHODS, target: object = TOP1, fit: object = "crop",
             n_steps: object = DEFAULT_FAITH_STEPS, sanity: bool = True,
             on_step=None) -> InsightRun:
    """Validate, then embeddings + channel grids + faithfulness (+ sanity) for one target."""
    name, mode, fit, method_names = check_request(name, image, mode, methods, fit)
    targets, _ = parse_targets(target, 1)
    try:
        steps = int(n_steps)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise XaiError(f"steps must be a whole number, not {str(n_steps)[:40]!r}") from None
    if not 4 <= steps <= MAX_FAITH_STEPS:
        raise XaiError(f"steps must be in 4..{MAX_FAITH_STEPS}")
    return compute_insights(name, image, method_names, mode, targets, fit, steps, bool(sanity),
                            on_step)


def faithfulness_rows(table: FaithfulnessTable) -> list[list[str]]:
    """The ranked table, best marked ★, then the baselines every method must beat."""
    rows = [[f"{r['rank']}{' ★' if r['best'] else ''}", r["method"], r["depth"],
             f"{r['deletion_auc']:.3f}", f"{r['insertion_auc']:.3f}", f"{r['score']:+.3f}",
             "yes" if r["beats_baselines"] else "no"]
            for r in sorted(table.rows, key=lambda r: r["rank"])]
    rows += [["baseline", b["method"], "—", f"{b['deletion_auc']:.3f}",
              f"{b['insertion_auc']:.3f}", f"{b['score']:+.3f}", "—"] for b in table.baselines]
    return rows


def sanity_markdown(report: SanityReport | None) -> str:
    """The verdict per method, in words."""
    if report is None:
        return "Sanity check off."
    lines = [f"**Sanity check** (cascading model-parameter randomisation, Adebayo et al. 2018; a "
             f"method passes when its maps' mean |Spearman ρ| once the layer's own stage and "
             f"everything above it are re-initialised is below {report.threshold}):"]
    for m, v in report.verdicts.items():
        lines.append(f"- **{m}: {v['verdict']}** — mean |ρ| own stage {fmt_rho(v['rho_layer'])}, "
                     f"mean ρ head only {fmt_rho(v['rho_head'])}. {v['note']}")
    return "\n".join(lines)
