"""The engine: parity with pytorch-grad-cam, one pass, clean hooks and model state."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from conftest import random_model
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

import xai
from xai.cams import first_component_projection

REFERENCE_CLASSES = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "xgradcam": XGradCAM,
                     "eigencam": EigenCAM}


def _reference_map(model, layer_name, method, x, target):
    cls = REFERENCE_CLASSES[method]
    with cls(model=model.module, target_layers=[model.module.get_submodule(layer_name)]) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18"])
def test_parity_with_pytorch_grad_cam(name, bundled, cat_path):
    model = bundled if name == "efficientnet_lite0" else random_model(name)
    r = xai.explain(model, cat_path, targets=[281, 285], keep_activations=True)
    size = model.input_size
    for depth in r.depths:
        layer = r.layers[depth].name
        for target in (281, 285):
            for method in ("gradcam", "gradcam++", "xgradcam"):
                ref = _reference_map(model, layer, method, r.input, target)
                ours = r.cam(method, depth, target, size=size)
                assert np.abs(ours - ref).max() <= 1e-4, (method, depth, target)
        if depth == "first" and name != "efficientnet_lite0":
            continue  # pytorch-grad-cam's full SVD of a 64x112x112 map takes many seconds
        ref = _reference_map(model, layer, "eigencam", r.input, 281)
        ours = r.cam("eigencam", depth, size=size)
        # the sign of the first component is arbitrary in pytorch-grad-cam; ours is fixed
        flipped = _eigen_map_with_sign(model, r.activations[depth], -1)
        assert min(np.abs(ours - ref).max(), np.abs(flipped - ref).max()) <= 1e-4, depth


def _eigen_map_with_sign(model, acts, sign):
    from xai.postprocess import normalise, resize_map

    proj = sign * first_component_projection(acts[None])[0]
    return resize_map(normalise(proj.clamp(min=0)[None])[0], model.input_size).numpy()


def test_eigen_projection_matches_full_svd_up_to_sign():
    torch.manual_seed(0)
    for shape in [(1, 64, 28, 28), (1, 512, 7, 7)]:  # C < HW (covariance) and C > HW (Gram)
        acts = torch.randn(shape) + torch.linspace(0, 3, shape[-1])
        ours = first_component_projection(acts)[0].numpy().ravel()
        ref = get_2d_projection(acts.numpy())[0].ravel()
        corr = np.corrcoef(ours, ref)[0, 1]
        assert abs(corr) >= 0.999
        assert np.abs(np.abs(ours) - np.abs(ref)).max() <= 1e-3 * np.abs(ref).max()
        assert abs(ours.min()) <= abs(ours.max())  # deterministic sign: larger extreme positive


def test_eigen_projection_large_maps_match_full_svd():
    """The Lanczos path (min(C, HW) > 128): structured maps, C > HW, and pure noise (which
    needs the dense fallback), batched."""
    torch.manual_seed(0)
    trend = torch.linspace(0, 3, 28)
    cases = [torch.relu(torch.randn(1, 512, 28, 28) + trend),  # covariance side
             torch.relu(torch.randn(1, 1024, 14, 14) + trend[:14]),  # Gram side
             torch.randn(2, 300, 20, 20)]  # tiny eigengaps
    for acts in cases:
        ours = first_component_projection(acts).numpy()
        ref = get_2d_projection(acts.numpy())
        for o, r in zip(ours, ref):
            o, r = o.ravel(), r.ravel()
            assert abs(np.corrcoef(o, r)[0, 1]) >= 0.9999
            assert np.abs(np.abs(o) - np.abs(r)).max() <= 1e-3 * np.abs(r).max()


class _Counter:
    def __init__(self, monkeypatch, model):
        self.grad_calls = 0
        self.backward_calls = 0
        self.forwards = 0
        real_grad = torch.autograd.grad
        real_backward = torch.Tensor.backward

        def grad(*a, **k):
            self.grad_calls += 1
            return real_grad(*a, **k)

        def backward(*a, **k):
            self.backward_calls += 1
            return real_backward(*a, **k)

        monkeypatch.setattr(torch.autograd, "grad", grad)
        monkeypatch.setattr(torch.Tensor, "backward", backward)
        self.handle = model.module.register_forward_hook(self._fwd)

    def _fwd(self, *args):
        self.forwards += 1


def test_one_forward_and_one_backward_per_target(monkeypatch, bundled, cat_path):
    module = bundled.module
    xai.stage_layers(bundled)  # the layer trace (one forward, cached per model) is not counted
    param_grads = []
    hooks = [p.register_hook(lambda g, n=n: param_grads.append(n))
             for n, p in module.named_parameters()]
    below = []  # the stem runs below the earliest requested layer (blocks.0)
    stem = module.get_submodule("conv_stem").register_full_backward_hook(
        lambda *a: below.append(1))
    counter = _Counter(monkeypatch, bundled)
    try:
        r = xai.explain(bundled, cat_path)  # 12 maps
        assert (counter.forwards, counter.grad_calls, counter.backward_calls) == (1, 1, 0)
        assert r.passes == {"forward": 1, "backward": 1}
        r = xai.explain(bundled, cat_path, top_k=3)  # 3 targets: 1 forward, 3 backward
        assert (counter.forwards, counter.grad_calls) == (2, 4)
        assert len(r.targets) == 3
        xai.explain(bundled, cat_path, methods=["eigencam"])  # no gradient needed
        assert (counter.forwards, counter.grad_calls) == (3, 4)
    finally:
        counter.handle.remove()
        stem.remove()
        for h in hooks:
            h.remove()
    assert param_grads == [] and below == []


def _hook_count(module):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in module.modules())


def test_hooks_removed_and_state_restored_even_on_errors(bundled, cat_path):
    module = bundled.module
    module.zero_grad(set_to_none=True)  # other tests (pytorch-grad-cam) may have filled .grad
    before = _hook_count(module)
    flags = [p.requires_grad for p in module.parameters()]
    module.train()
    try:
        xai.explain(bundled, cat_path, guided=True)
        assert module.training
        with pytest.raises(xai.TargetError):
            xai.explain(bundled, cat_path, targets=5000)
        with pytest.raises(xai.LayerError):
            xai.explain(bundled, cat_path, depths=["conv:0"])
    finally:
        module.eval()
    assert _hook_count(module) == before
    assert [p.requires_grad for p in module.parameters()] == flags
    assert all(p.grad is None for p in module.parameters())


def test_eval_during_the_pass_and_exact_modes_after(bundled, cat_path, monkeypatch):
    module = bundled.module
    seen = []
    handle = module.register_forward_pre_hook(
        lambda mod, args: seen.append(any(m.training for m in mod.modules())))
    frozen = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)][:3]
    module.train()
    for m in frozen:  # a fine-tuning set-up: some BatchNorms kept in eval mode
        m.eval()
    modes = [m.training for m in module.modules()]
    try:
        xai.explain(bundled, cat_path, guided=True)
        xai.predict(bundled, cat_path)
        assert seen and not any(seen)  # every forward ran with every module in eval mode
        assert [m.training for m in module.modules()] == modes  # mixed modes, exactly
    finally:
        module.eval()
        handle.remove()
    calls = []
    real_train = torch.nn.Module.train
    monkeypatch.setattr(torch.nn.Module, "train",
                        lambda self, mode=True: calls.append(mode) or real_train(self, mode))
    xai.explain(bundled, cat_path)
    xai.predict(bundled, cat_path)
    assert calls == []  # a model already in eval mode is not walked twice per request
    assert not any(m.training for m in module.modules())


def test_hooks_removed_when_a_layer_fails_mid_forward(bundled, cat_path, monkeypatch):
    before = _hook_count(bundled.module)
    import xai.recorder as recorder

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(recorder, "output_tensor", broken)  # inside a hook, mid-forward
    with pytest.raises(RuntimeError, match="boom"):
        xai.explain(bundled, cat_path)
    assert _hook_count(bundled.module) == before


def test_works_inside_no_grad_and_inference_mode(bundled, cat_path):
    ref = xai.explain(bundled, cat_path).cam("gradcam", "last")
    with torch.no_grad():
        a = xai.explain(bundled, cat_path).cam("gradcam", "last")
    with torch.inference_mode():
        b = xai.explain(bundled, cat_path).cam("gradcam", "last")
    assert np.allclose(ref, a, atol=1e-5) and np.allclose(ref, b, atol=1e-5)
    assert torch.is_grad_enabled()


def test_densenet_inplace_relu_does_not_alter_stored_activations(cat_path):
    model = random_model("torchvision/densenet121")
    xai.stage_layers(model)  # trace first: its forward must not be the one we capture
    seen = {}

    def keep(module, args, out) -> None:  # returns None: the module's output stays its own
        seen.setdefault("pre_relu", out.detach().clone())

    assert xai.resolve_layer(model, "last").name == "features.norm5"  # F.relu(inplace) follows
    h = model.module.features.register_forward_hook(keep)
    try:
        r = xai.explain(model, cat_path, methods=["eigencam"], depths=["last"],
                        keep_activations=True)
    finally:
        h.remove()
    kept = r.activations["last"]
    assert (seen["pre_relu"] < 0).any()  # the ReLU after `features` would clip these
    assert torch.allclose(kept, seen["pre_relu"][0])


def test_concurrent_calls_on_one_model_match_sequential(bundled, cat_path, coffee_path):
    paths = [cat_path, coffee_path] * 3
    expected = {p: xai.explain(bundled, p).cam("gradcam++", "middle") for p in (cat_path,
                                                                               coffee_path)}
    results, errors = {}, []

    def work(i, p):
        try:
            results[i] = (p, xai.explain(bundled, p).cam("gradcam++", "middle"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, p)) for i, p in enumerate(paths)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == len(paths)
    for p, cam in results.values():
        assert np.allclose(cam, expected[p], atol=1e-5)


def test_result_object(bundled, cat_path):
    r = xai.explain(bundled, cat_path, top_k=2, guided=True)
    h, w = r.image.shape[:2]
    assert r.image.dtype == np.uint8 and r.image.shape[2] == 3
    assert [p.index for p in r.targets] == [p.index for p in r.predictions[:2]]
    for method in ("gradcam", "gradcam++", "eigencam", "xgradcam", "guided-gradcam"):
        for depth in xai.DEFAULT_DEPTHS:
            m = r.cam(method, depth, r.targets[1].index)
            assert m.shape == (h, w) and m.dtype == np.float32
            assert m.min() >= 0 and m.max() <= 1 and m.max() > 0.99
    # per-target maps differ; the class-agnostic one does not depend on the target
    assert not np.allclose(r.cam("gradcam", "last", r.targets[0].index),
                           r.cam("gradcam", "last", r.targets[1].index))
    assert np.array_equal(r.cam("eigencam", "last", r.targets[0].index),
                          r.cam("eigencam", "last", r.targets[1].index))
    assert r.cam("gradcam", "last", r.targets[0].label).shape == (h, w)
    assert r.guided_image("last").shape == (h, w, 3)
    m = r.manifest()
    assert m["layers"]["last"]["name"] == "bn2" and m["passes"] == {"forward": 2, "backward": 4}
    with pytest.raises(xai.MethodError):
        xai.explain(bundled, cat_path, methods=[]).cam("gradcam", "last")


def test_maps_align_with_the_shown_image(bundled):
    """A bright square on a dark image: the Grad-CAM peak of 'last' lies on the square."""
    img = np.zeros((300, 450, 3), np.uint8)
    img[40:140, 300:400] = 255
    r = xai.explain(bundled, img, methods=["eigencam"], depths=["first"], fit="full")
    assert r.image.shape[:2] == (300, 450) and r.box == (0, 0, 450, 300)
    cam = r.cam("eigencam", "first")
    inside, outside = cam[40:140, 300:400].mean(), cam[200:, :200].mean()
    assert inside > outside


def test_crop_is_reported_not_hidden(bundled, cat_path):
    r = xai.explain(bundled, cat_path, methods=["gradcam"], depths=["last"])
    left, top, right, bottom = r.box
    assert (right - left, bottom - top) == (262, 262) and r.image.shape[:2] == (262, 262)
    full = xai.explain(bundled, cat_path, methods=["gradcam"], depths=["last"], fit="full")
    assert full.box == (0, 0, 451, 300) and full.image.shape[:2] == (300, 451)


def test_vit_maps_are_not_empty(cat_path):
    model = random_model("vit_base_patch16_224")
    r = xai.explain(model, cat_path)
    for method in r.methods:
        for depth in r.depths:
            assert r.cam(method, depth).max() > 0.99, (method, depth)


def test_batch_matches_single(bundled, cat_path, coffee_path):
    batch = xai.explain_batch(bundled, [cat_path, coffee_path])
    single = xai.explain(bundled, coffee_path)
    assert batch[1].predictions[0].label == "espresso"
    assert np.allclose(batch[1].cam("xgradcam", "middle"), single.cam("xgradcam", "middle"),
                       atol=1e-4)


@pytest.mark.parametrize("src, size", [((7, 7), (300, 451)), ((14, 9), (224, 224)),
                                       ((1, 32), (5, 700)), ((28, 28), (28, 28)),
                                       ((33, 40), (224, 300)), ((112, 112), (50, 60))])
def test_resize_map_is_bilinear_interpolation(src, size):
    from xai.engine import resize_map

    torch.manual_seed(0)
    cam = torch.rand(*src)
    ref = torch.nn.functional.interpolate(cam[None, None], size=size, mode="bilinear",
                                          align_corners=False)[0, 0]
    ref = (ref - ref.min()) / (ref.max() - ref.min() + 1e-7)
    for _ in range(2):  # the cached interpolation matrices are not changed by a call
        out = resize_map(cam, size)
        assert out.shape == size and out.dtype == torch.float32
        assert (out - ref).abs().max() <= 1e-5
        assert out.min() == 0 and abs(out.max() - 1) <= 1e-6
