"""Completion (inpainting) in the generative digits network: part of an image is known, the rest
is relaxed — per-node clamping (``PCSpec.node_clamp``, :meth:`PCSpec.pins`).

The network is :func:`completion_digits_spec`: the generative (Rao–Ballard) order label → hidden
→ image of :func:`pcforge.model.presets.generative_digits_spec`, trained the same way (label and
image clamped), with the image layer clampable node by node. To complete an image, every layer
is free at layer level (mask ``completion``) and the known pixels are pinned: the label and the
hidden layer relax to explain the known pixels, and each hidden pixel settles at its prediction
from them. The named masks ``complete_top`` and ``complete_bottom`` pin the bottom and the top
half (per-node entries in the spec itself); a random half is given as run-time pins.

The hidden pixels' given values are never read (they are free nodes, initialised from the
feed-forward pass); :func:`masked_images` zeroes them anyway, so nothing can leak.
"""
from __future__ import annotations

import numpy as np

from .data import Dataset
from .presets import generative_digits_spec
from .spec import PCSpec

__all__ = ["HIDE", "COMPLETION_MASK", "completion_digits_spec", "hidden_pixels", "masked_images",
           "complete", "hidden_rmse", "baseline_rmse"]

#: the ways of hiding pixels: the top half, the bottom half, a random half of each image
HIDE = ("top", "bottom", "random")
#: the mask with every layer free (the known pixels are pinned)
COMPLETION_MASK = "completion"
_SIDE = 8                       # the digits are 8 × 8, row-major


def _half(top: bool) -> list:
    """Per-pixel pins that hold the half the other way round (top hidden → bottom pinned)."""
    rows = np.arange(_SIDE * _SIDE) // _SIDE
    return [bool(v) for v in (rows >= _SIDE // 2 if top else rows < _SIDE // 2)]


def completion_digits_spec(hidden: int = 16, **changes) -> PCSpec:
    """The completion network: :func:`~pcforge.model.presets.generative_digits_spec` with 16
    hidden nodes (fewer hidden causes than known pixels: with 64 the hidden layer explains the
    known half alone and predicts noise for the rest — measured in ``docs/modes.md``), the
    image layer clampable node by node and the masks ``completion`` (all free),
    ``complete_top`` and ``complete_bottom`` (the other half pinned)."""
    kw = dict(name="digits-completion", node_clamp=(2,),
              clamp={COMPLETION_MASK: [False, False, False],
                     "complete_top": [False, False, _half(True)],
                     "complete_bottom": [False, False, _half(False)]})
    kw.update(changes)
    return generative_digits_spec(hidden=hidden, **kw)


def hidden_pixels(kind: str, n: int, rng: np.random.Generator, pixels: int = 64) -> np.ndarray:
    """(n, pixels) bools, True where a pixel is hidden: ``top`` / ``bottom`` half, or a
    ``random`` half of each image (exactly half, drawn per image)."""
    if kind not in HIDE:
        raise ValueError(f"hide {kind!r}: use one of {', '.join(HIDE)}")
    if kind == "random":
        out = np.zeros((n, pixels), bool)
        for i in range(n):
            out[i, rng.permutation(pixels)[:pixels // 2]] = True
        return out
    return np.broadcast_to(~np.array(_half(kind == "top")), (n, pixels)).copy()


def masked_images(images: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """The images with their hidden pixels set to 0."""
    return np.where(hidden, 0, images)


def complete(net, images: np.ndarray, hidden: np.ndarray, *, iterations: int | None = None):
    """Relax ``net`` (FloatPCN: float pixels; FixedPCN: X words) with the known pixels of
    ``images`` pinned and the rest free; returns the result (``.x[-1]``: the completed
    images; ``.x[0]``: the label layer)."""
    L = net.spec.L
    return net.relax({L: masked_images(images, hidden)}, COMPLETION_MASK,
                     pins={L: ~hidden}, iterations=iterations)


def hidden_rmse(completed: np.ndarray, truth: np.ndarray, hidden: np.ndarray) -> float:
    """Root-mean-square error over the hidden pixels only (pixel units, 0–1)."""
    return float(np.sqrt(np.mean((completed[hidden] - truth[hidden]) ** 2)))


def baseline_rmse(data: Dataset, truth: np.ndarray, labels: np.ndarray,
                  hidden: np.ndarray) -> dict:
    """The same error for two fillers that need no network: the mean training image, and the
    mean training image of each sample's *true* class (a filler that knows the label)."""
    mean = np.broadcast_to(data.x_train.mean(axis=0), truth.shape)
    cls = np.array([data.x_train[data.y_train == c].mean(axis=0)
                    for c in range(data.n_classes)])[labels]
    return {"mean image": hidden_rmse(mean, truth, hidden),
            "class mean (true label)": hidden_rmse(cls, truth, hidden)}
