"""Forward hooks as an object with a lifecycle (torch-cam's ``methods/core.py`` style).

:class:`ActivationRecorder` keeps the output of each named module for one forward. With
``grad_from`` set, that module's output is replaced by a detached copy that requires grad and
grad mode is switched on from there, so a later ``torch.autograd.grad`` reaches the recorded
activations without computing parameter gradients or anything below that module.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .errors import LayerError
from .trace import output_tensor, replace_output


class ActivationRecorder:
    """``with ActivationRecorder(model, names, batch) as rec: model(x)``; then ``rec.outputs``.

    The hooks are removed on leaving the block, also after an error. Each kept output is the
    module's own tensor; the model continues with a clone, so a later in-place op (DenseNet's
    ReLU) cannot change the kept map.
    """

    def __init__(self, module: nn.Module, names: Sequence[str], batch: int, *,
                 grad_from: str | None = None) -> None:
        self.module = module
        self.names = list(names)
        self.batch = batch
        self.grad_from = grad_from
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list = []

    def __enter__(self) -> ActivationRecorder:
        self.outputs.clear()
        self._handles = [self.module.get_submodule(n).register_forward_hook(self._hook(n))
                         for n in self.names]
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook (idempotent)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def _hook(self, name: str):
        def hook(mod, args, out):
            if name in self.outputs:
                raise LayerError(f"module {name!r} runs more than once per forward")
            index, t = output_tensor(out, self.batch)
            if name == self.grad_from:
                t = t.detach().requires_grad_(True)
                torch.set_grad_enabled(True)  # record the graph from here on only
            self.outputs[name] = t
            return replace_output(out, index, t.clone())
        return hook
