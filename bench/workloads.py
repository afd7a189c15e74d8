"""What is timed for one model: (a) the xai gallery, (b) pytorch-grad-cam's own classes, (c) a
bare forward + full backward, (d) the one-pass floor, and the extra workloads (top-k, batch,
Eigen-CAM alone, pass counts)."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

import xai
from xai.layers import to_nchw, trace
from xai.models import class_logits
from xai.postprocess import layer_maps, normalise, resize_map

METHODS = xai.DEFAULT_METHODS
DEPTHS = xai.DEFAULT_DEPTHS
DEFAULT_MODELS = ("resnet152", "densenet121", "inception_v3", "efficientnet_lite0",
                  "vit_base_patch16_224")
ALIASES = {"vit_b16": "vit_base_patch16_224", "vit-b/16": "vit_base_patch16_224",
           "vit": "vit_base_patch16_224", "inception": "inception_v3",
           "effnet": "efficientnet_lite0", "efficientnet-lite0": "efficientnet_lite0"}
SVD_BYTES_PER_PIXEL2 = 16  # pytorch-grad-cam's full SVD: U is HW x HW float32, plus workspace


def model_name(name: str) -> str:
    """The timm (or registered) name for a benchmark alias."""
    return ALIASES.get(name.strip().lower(), name.strip())


def load(name: str, device: torch.device) -> xai.LoadedModel:
    """The model with random weights (timing only), except the bundled default's real ones."""
    torch.manual_seed(0)
    return xai.load_model(name, pretrained=name == xai.DEFAULT_MODEL, device=device)


def example_images(paths: list[str], n: int) -> list[np.ndarray]:
    """``n`` distinct RGB arrays from the example pictures (mirrored copies after the first)."""
    base = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    out = []
    for i in range(n):
        img = base[i % len(base)]
        out.append(np.ascontiguousarray(img[:, ::-1]) if (i // len(base)) % 2 else img)
    return out


class PassCounter:
    """Counts top-level model forwards and autograd backward calls (grad or backward)."""

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self.forward = 0
        self.backward = 0

    def __enter__(self) -> PassCounter:
        self._real_grad, self._real_backward = torch.autograd.grad, torch.autograd.backward

        def grad(*args, **kwargs):
            self.backward += 1
            return self._real_grad(*args, **kwargs)

        def backward(*args, **kwargs):
            self.backward += 1
            return self._real_backward(*args, **kwargs)

        def pre_hook(module, args):
            self.forward += 1

        torch.autograd.grad, torch.autograd.backward = grad, backward
        self._handle = self.module.register_forward_pre_hook(pre_hook)
        return self

    def __exit__(self, *exc) -> None:
        torch.autograd.grad, torch.autograd.backward = self._real_grad, self._real_backward
        self._handle.remove()

    def counts(self) -> dict[str, int]:
        return {"forward": self.forward, "backward": self.backward}


def reshape_transform(info: xai.LayerInfo):
    """pytorch-grad-cam's reshape_transform for a layer: the engine's own token/NHWC -> NCHW."""
    return None if info.fmt == "NCHW" else functools.partial(to_nchw, layer=info)


def _all_maps(r: xai.Explanation) -> xai.Explanation:
    """Every map of ``r`` at image size (what a gallery shows), ``r`` returned."""
    for t in r.targets:
        for method in r.methods:
            for depth in r.depths:
                r.cam(method, depth, t.index)
    return r


@dataclass
class Workload:
    """One model, one image and the layers and target every measurement shares."""

    model: xai.LoadedModel
    image: np.ndarray
    layers: dict[str, xai.LayerInfo] = field(init=False)
    target: int = field(init=False)
    x: torch.Tensor = field(init=False, repr=False)
    earliest: str = field(init=False)
    floor_clones: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        r = xai.explain(self.model, self.image)
        self.layers = r.layers
        self.target = r.targets[0].index
        self.x = self.model.place(r.input)  # the layout the engine feeds
        order = trace(self.model).order
        self.earliest = min((i.name for i in self.layers.values()), key=lambda n: order[n])
        self.floor()  # untimed: finds out whether the floor must copy the leaf (floor_clones)

    @property
    def module(self) -> torch.nn.Module:
        return self.model.module

    # (a) ------------------------------------------------------------------------------------
    def gallery(self) -> xai.Explanation:
        """xai's full gallery: 4 methods x 3 depths for the top-1 class, maps at image size."""
        return _all_maps(xai.explain(self.model, self.image))

    def top_k(self, k: int) -> xai.Explanation:
        """The gallery for the k most probable classes (one forward, k backward passes)."""
        return _all_maps(xai.explain(self.model, self.image, top_k=k))

    def batch(self, images: list[np.ndarray]) -> list[xai.Explanation]:
        """Galleries for several images from one batched forward and backward."""
        return [_all_maps(r) for r in xai.explain_batch(self.model, images)]

    def eigen_request(self) -> np.ndarray:
        """Eigen-CAM alone at the first stage: one forward, no backward."""
        r = xai.explain(self.model, self.image, methods=["eigencam"], depths=["first"])
        return r.cam("eigencam", "first")

    def first_activations(self) -> torch.Tensor:
        """The first-stage feature map (1, C, H, W) as the engine sees it."""
        r = xai.explain(self.model, self.image, methods=["eigencam"], depths=["first"],
                        keep_activations=True)
        return r.activations["first"][None].to(self.model.device)

    @staticmethod
    def eigen_map(acts: torch.Tensor) -> torch.Tensor:
        """Only the map: xai's Eigen-CAM on a feature map, ReLU and min-max scaled, as the
        engine computes it."""
        return layer_maps([xai.METHODS["eigencam"]], acts, None)["eigencam"]

    # (c) ------------------------------------------------------------------------------------
    def full_backward(self) -> None:
        """A bare forward and a full backward (parameter gradients) for the same class."""
        with torch.enable_grad():
            logits = class_logits(self.module(self.x))
            logits[0, self.target].backward()

    def clear_grads(self) -> None:
        self.module.zero_grad(set_to_none=True)

    # (d) ------------------------------------------------------------------------------------
    def floor(self) -> dict[str, float]:
        """The floor: a forward that records the graph only from the earliest target layer,
        and one backward to that layer's activations (no parameter gradients). Returns the
        forward and backward seconds."""
        store: dict[str, torch.Tensor] = {}

        def hook(mod, args, out):
            leaf = out.detach().requires_grad_(True)
            torch.set_grad_enabled(True)
            store["leaf"] = leaf
            return leaf.clone() if self.floor_clones else leaf

        handle = self.module.get_submodule(self.earliest).register_forward_hook(hook)
        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                logits = class_logits(self.module(self.x))
        except RuntimeError as exc:
            if self.floor_clones or "leaf Variable" not in str(exc):
                raise
            self.floor_clones = True  # a later in-place op: the floor must copy too
            handle.remove()
            return self.floor()
        finally:
            handle.remove()
        t1 = time.perf_counter()
        torch.autograd.grad(logits[0, self.target], store["leaf"])
        return {"forward": t1 - t0, "backward": time.perf_counter() - t1}

    # (b) ------------------------------------------------------------------------------------
    def reference_plan(self, max_svd_hw: int | None, mem_available: float | None,
                       depths: tuple[str, ...] = DEPTHS) -> dict[tuple[str, str], str | None]:
        """For each method x depth: None to run it, or why pytorch-grad-cam's one is skipped."""
        return {(m, d): self._skip_reason(m, d, max_svd_hw, mem_available, depths)
                for m in METHODS for d in DEPTHS}

    def _skip_reason(self, method: str, depth: str, max_svd_hw: int | None,
                     mem_available: float | None, depths: tuple[str, ...]) -> str | None:
        if depth not in depths:
            return "skipped: depth not in --b-depths"
        if method != "eigencam":
            return None
        _, h, w = self.layers[depth].shape
        need = SVD_BYTES_PER_PIXEL2 * (h * w) ** 2
        if max_svd_hw is not None and h * w > max_svd_hw:
            return f"skipped: full SVD of a {h * w}-position map (--b-max-svd-hw {max_svd_hw})"
        if mem_available is not None and need > 0.8 * mem_available:
            return (f"skipped: full SVD needs ~{need / 2**30:.1f} GiB, "
                    f"{mem_available / 2**30:.1f} GiB available")
        return None

    def reference_one(self, method: str, depth: str) -> np.ndarray:
        """One pytorch-grad-cam object for one method and layer, used once and released."""
        from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, XGradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        cls = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "eigencam": EigenCAM,
               "xgradcam": XGradCAM}[method]
        info = self.layers[depth]
        layer = self.module.get_submodule(info.name)
        with cls(model=self.module, target_layers=[layer],
                 reshape_transform=reshape_transform(info)) as cam:
            out = cam(input_tensor=self.x, targets=[ClassifierOutputTarget(self.target)])
        return out[0]  # the caller frees the parameter gradients, outside the timing

    def agreement(self, reference: dict[tuple[str, str], np.ndarray]) -> dict[str, float]:
        """Max |xai - pytorch-grad-cam| per map at input size. Eigen-CAM's sign is arbitrary
        (pytorch-grad-cam keeps whatever its SVD returns, xai fixes it), so there the
        opposite-sign map is compared too and the closer one counts."""
        r = xai.explain(self.model, self.image, keep_activations=True)
        size = tuple(self.model.input_size)
        out = {}
        for (method, depth), ref in reference.items():
            diff = float(np.abs(r.cam(method, depth, size=size) - ref).max())
            if method == "eigencam":
                flipped = -xai.METHODS["eigencam"].cam(r.activations[depth][None], None)
                other = resize_map(normalise(flipped.clamp(min=0))[0], size).numpy()
                diff = min(diff, float(np.abs(other - ref).max()))
            out[f"{method}@{depth}"] = float(f"{diff:.3g}")
        return out
