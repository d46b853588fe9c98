"""The generative (Rao–Ballard) digits network: generation, classification by inference and
the numbers that say whether a generated image looks like a digit.

The network is :func:`pcforge.model.presets.generative_digits_spec`: layer 0 the label (10
values, one-hot when clamped), layer L the image (64 pixels, 0–1). Under the same core and the
same relaxation:

* **generation** — clamp the label (mask ``inference``: layer 0), relax the rest: the image
  layer x_L (:func:`generate`);
* **classification by inference** — clamp the image (mask ``generation``: layer L), relax the
  rest from the feed-forward start (the label layer starts at 0): argmax of x_0
  (:func:`classify`).

Works for :class:`~pcforge.model.float_pcn.FloatPCN` and, bit-exact,
:class:`~pcforge.model.fixed_pcn.FixedPCN` (integer words in, integer words out).
"""
from __future__ import annotations

import numpy as np

from .data import Dataset
from .spec import SpecError

__all__ = ["check_generative", "GENERATE_MASK", "CLASSIFY_MASK", "class_means", "label_inputs", "generate",
           "classify", "correlations"]

#: Mask that generates an image from a label (layer 0 clamped).
GENERATE_MASK = "inference"
#: Mask that classifies an image by inference (the image layer clamped, the label relaxed).
CLASSIFY_MASK = "generation"


def check_generative(spec, data: Dataset):
    """Refuse (``SpecError``) a spec that is not a generative network of ``data``: the label
    on layer 0, the image on layer L."""
    if spec.sizes[0] != data.n_classes or spec.sizes[-1] != data.n_features:
        raise SpecError(f"a generative digits network has {data.n_classes} label nodes (layer "
                        f"0) and {data.n_features} pixels (layer L); this spec has sizes "
                        f"{list(spec.sizes)} (start from pcforge.model.presets."
                        "generative_digits_spec, or let `pcforge generate` train it)")


def class_means(data: Dataset) -> np.ndarray:
    """(classes, pixels): the mean training image of each class."""
    return np.array([data.x_train[data.y_train == c].mean(axis=0)
                     for c in range(data.n_classes)])


def label_inputs(classes: int) -> np.ndarray:
    """(classes, classes) one-hot labels, one row per class, float."""
    return np.eye(classes)


def generate(net, labels: np.ndarray):
    """The image layer after relaxing with ``labels`` (rows: float label values for FloatPCN,
    integer words for FixedPCN) clamped; returns the relaxation result (``.x[-1]`` is the
    image; FixedPCN: ``.iterations`` too)."""
    return net.relax({0: labels}, GENERATE_MASK)


def classify(net, images: np.ndarray, batch: int = 512) -> np.ndarray:
    """Predicted classes of ``images`` (float pixels for FloatPCN, integer words for FixedPCN)
    by inference: the image clamped, argmax of the relaxed label layer."""
    L = net.spec.L
    out = []
    for i in range(0, len(images), batch):
        r = net.relax({L: images[i:i + batch]}, CLASSIFY_MASK)
        out.append(np.argmax(r.x[0], axis=1))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def correlations(images: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Pearson correlation of each generated image (row c: class c) with its class mean."""
    return np.array([np.corrcoef(images[c], means[c])[0, 1] for c in range(len(means))])

