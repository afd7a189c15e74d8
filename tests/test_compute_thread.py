"""The served app's torch work all runs in its compute thread(s) (one OpenMP team: two made
every op of the process ~2x slower on 2 cores), nested calls do not deadlock, and the
background file builds step aside while a request computes."""

from __future__ import annotations

import os
import threading
import zipfile

import numpy as np
import pytest
import torch

from xai import postprocess
from xai_app import embeddings_tab, events, heap, service


def test_every_torch_step_of_the_app_runs_in_a_compute_thread(monkeypatch, cat_path):
    seen: list[str] = []

    def note() -> None:
        seen.append(threading.current_thread().name)

    hook = torch.nn.modules.module.register_module_forward_pre_hook(lambda *_: note())
    resize = postprocess.interpolate_map  # every map enlarged for a panel, the sheet or a file

    def noted_resize(*args, **kwargs):
        note()
        return resize(*args, **kwargs)

    monkeypatch.setattr(postprocess, "interpolate_map", noted_resize)
    try:
        service.warm_up()
        events.predict(str(cat_path), "efficientnet_lite0")
        events.layers("efficientnet_lite0", "convs")
        events.switch_model("efficientnet_lite0", "efficientnet_lite0")
        *_, manifest, _, _, _ = events.explain(
            str(cat_path), "efficientnet_lite0", "stages", ["gradcam", "layercam"], "top-1", 1,
            False, "crop")
        sheet, archive, raw = events.files(manifest)  # built now, in the files thread
        embeddings_tab.dff_concepts(str(cat_path), "efficientnet_lite0", "stages", "crop",
                                    "last", 3)
    finally:
        hook.remove()
    assert len(seen) > 20
    assert {name.split("_")[0] for name in seen} == {heap.THREAD_PREFIX}, set(seen)
    with zipfile.ZipFile(archive) as zf:  # the files are those of the run all the same
        maps = [n for n in zf.namelist() if n.startswith("maps/")]
        assert len(maps) == 7 and zf.testzip() is None  # 2 methods x 3 depths + LayerCAM fusion
    assert len(raw) == 6 and all(np.load(p).ndim == 2 for p in raw)


def test_nested_computations_run_in_place():
    inner = heap.confined(lambda: heap.confined(lambda: threading.current_thread().name))
    assert inner.startswith(heap.THREAD_PREFIX)
    assert heap.computes(heap.in_compute_thread)() and not heap.in_compute_thread()


def test_background_steps_wait_while_a_request_computes():
    started, release = threading.Event(), threading.Event()

    def request() -> None:
        started.set()
        release.wait(10)

    worker = threading.Thread(target=heap.confined, args=(request,))
    worker.start()
    assert started.wait(10)
    try:
        assert not heap.wait_quiet(0.05)  # a computation is running: not quiet
    finally:
        release.set()
        worker.join(10)
    assert heap.wait_quiet(5)


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="threads are reniced on Linux only")
def test_background_work_gets_the_lowest_priority_in_its_own_thread_only():
    nice: list[int] = []

    def build() -> None:
        heap.background()
        nice.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=build)
    thread.start()
    thread.join(10)
    assert nice == [19]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < 19  # not the caller
