"""The Ray Data path gives the same manifest as the local one, and resumes the same way."""

from __future__ import annotations

import numpy as np
import pytest
from annotated import make_set

from xai.batch import RunOptions
from xai.dataset_run import run_local
from xai.datasets import read_samples
from xai.manifest import read_manifest

ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_manifest_equals_local(local_ray, bundled, tmp_path, one_torch_thread):
    from xai.ray_pipeline import run_ray

    make_set(tmp_path / "set", 4)
    samples = read_samples([str(tmp_path / "set" / "list.jsonl")])
    opts = {"overlays": False, "methods": ("gradcam", "eigencam")}
    local = run_local(samples, RunOptions(out=str(tmp_path / "local"), **opts), model=bundled,
                      batch_size=2, workers=0)
    ray_opts = RunOptions(out=str(tmp_path / "ray"), **opts)
    first = run_ray(samples[:2], ray_opts, batch_size=2)  # a run stopped half-way ...
    second = run_ray(samples, ray_opts, batch_size=2)  # ... and resumed
    assert (first.explained, second.already_done, second.explained) == (2, 2, 2)
    assert local.rows == first.rows + second.rows == 6
    a = read_manifest(tmp_path / "local").drop_columns(["seconds"])
    b = read_manifest(tmp_path / "ray").drop_columns(["seconds"])
    assert a.schema == b.schema
    for col in a.column_names:  # floats: threads may sum in another order
        x, y = a.column(col).to_pylist(), b.column(col).to_pylist()
        if pa.types.is_floating(a.schema.field(col).type):
            assert x == pytest.approx(y, abs=1e-5), col
        elif col == "top5_probs":
            assert np.allclose(x, y, atol=1e-5), col
        else:
            assert x == y, col
