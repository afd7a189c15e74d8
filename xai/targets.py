"""Which class each backward pass explains: small callables on the logits, as
pytorch-grad-cam's ``model_targets``, plus the parsing of a user's class names and indices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .errors import TargetError


@dataclass(frozen=True)
class ClassTarget:
    """The same class for every image of the batch."""

    index: int

    def __call__(self, logits: torch.Tensor) -> list[int]:
        return [int(self.index)] * logits.shape[0]


@dataclass(frozen=True)
class RankTarget:
    """Each image's ``rank``-th most probable class (0: the top-1)."""

    rank: int = 0

    def __call__(self, logits: torch.Tensor) -> list[int]:
        return logits.topk(self.rank + 1, dim=1).indices[:, self.rank].cpu().tolist()


@dataclass(frozen=True)
class ImageTargets:
    """One given class per image of the batch."""

    indices: tuple[int, ...]

    def __call__(self, logits: torch.Tensor) -> list[int]:
        if len(self.indices) != logits.shape[0]:
            raise TargetError(f"{len(self.indices)} classes for {logits.shape[0]} images")
        return [int(i) for i in self.indices]


def class_index(target: int | str, labels: Sequence[str]) -> int:
    """The class index of ``target``: an index, a decimal string or a label (any case)."""
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        idx = int(target)
    elif isinstance(target, str) and target.strip().lstrip("-").isdigit():
        text = target.strip()
        if not text.lstrip("-").isdecimal() or len(text) > 12:  # '²', '①', 5000 digits
            raise TargetError(f"{text[:20]!r} is not a class index in 0..{len(labels) - 1}")
        idx = int(text)
    elif isinstance(target, str):
        wanted = target.strip().lower()
        for i, label in enumerate(labels):
            if label.lower() == wanted:
                return i
        raise TargetError(f"no class named {target!r}")
    else:
        raise TargetError(f"a target is a class index or a label, not {type(target).__name__}")
    if not 0 <= idx < len(labels):
        raise TargetError(f"class index {idx} is out of range 0..{len(labels) - 1}")
    return idx


def resolve_targets(targets, top_k: int | None, labels: Sequence[str]) -> list:
    """The per-rank target callables for ``targets`` (None, a class or a list of them) or
    ``top_k`` (the k most probable classes); None and None explain the top-1."""
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
            raise TargetError(f"top_k must be an integer, not {top_k!r}")
        if not 1 <= int(top_k) <= len(labels):
            raise TargetError(f"top_k={top_k} is out of range 1..{len(labels)}")
        if targets is not None:
            raise TargetError("give either targets or top_k, not both")
        return [RankTarget(r) for r in range(int(top_k))]
    if targets is None:
        return [RankTarget(0)]
    if isinstance(targets, (str, int, np.integer)):
        targets = [targets]
    found = list(dict.fromkeys(class_index(t, labels) for t in targets))
    if not found:
        raise TargetError("empty target list")
    return [ClassTarget(c) for c in found]
