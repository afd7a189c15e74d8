"""Typed exceptions: every user-facing failure is one of these, with a one-line message."""

from __future__ import annotations

MAX_MESSAGE = 300  # characters; user text (a 1 MB "label") is never echoed whole


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines too) as one space, clipped."""
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 1] + "…"


class XaiError(Exception):
    """Base class of every error this package raises on bad input or missing resources."""

    def __str__(self) -> str:
        return one_line(super().__str__())


class UnknownModelError(XaiError, KeyError):
    """The model name is not registered, not in timm and not in torchvision."""

    def __str__(self) -> str:  # KeyError would quote the message
        return one_line(self.args[0]) if self.args else ""


class WeightsUnavailableError(XaiError):
    """Pretrained weights could not be loaded (offline, or the download failed)."""


class ImageError(XaiError, ValueError):
    """The input is not a usable image (unreadable, truncated, too large, too small)."""


class LayerError(XaiError, ValueError):
    """A depth string or module name does not resolve to a layer of the model."""


class MethodError(XaiError, ValueError):
    """An unknown CAM method, or an empty method list."""


class TargetError(XaiError, ValueError):
    """A target class index or label that the model does not have."""


class HeadlessModelError(UnknownModelError):
    """The model is a backbone without a classifier head: there is no class to explain."""


class ModelOutputError(XaiError, TypeError):
    """The model's forward returned something that holds no class logits."""


class OptionError(XaiError, ValueError):
    """An option out of its range (an overlay's alpha, a step count, a projection name)."""


class ExplanationError(XaiError, ValueError):
    """An explanation lacks what a follow-up needs (the model input, the kept activations)."""
