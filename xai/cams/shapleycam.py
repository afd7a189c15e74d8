"""ShapleyCAM (Cai et al., ICLR 2025, arXiv:2501.06261): Grad-CAM from a Shapley-value view,
with a second-order term.

    w_c = mean_hw ( dY/dA - 1/2 H A )_c,   H A = d/dA < dY/dA, A >  (Hessian-vector product)
    M   = ReLU( sum_c w_c A_c )

The gradient is taken with ``create_graph=True`` and one more backward per layer gives H A, so
it costs more than the one-pass methods and is opt-in. On a network that is piecewise linear
after the layer (ReLU, no attention or gating), H A = 0 and it equals Grad-CAM.

    r = xai.explain("efficientnet_lite0", "cat.png", methods=["shapleycam"])
    heat = r.cam("shapleycam", "last")
"""


from .gradcam import GradCAM


class ShapleyCAM(GradCAM):
    """Grad-CAM's weights (the gradients' spatial mean) on its own gradient."""

    name = "shapleycam"
    title = "ShapleyCAM"
    aliases = ("shapley-cam", "shapley")
    gradient = "shapley"
    in_all = False

