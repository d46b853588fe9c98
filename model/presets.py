"""The built-in networks pcforge ships: the one place that states their sizes, activations,
fixed-point formats and rates.

* :func:`digits_spec` — the default of every command: 64-64-10 ReLU on scikit-learn's bundled
  8×8 digits (inputs 0–1), at most T = 20 relaxation steps (the exact stop ends a run once its
  state repeats: bit-identical to all 20), 16-bit formats, γ = 1/8, α = 2^-5.
"""
from __future__ import annotations

from .qformat import FixedConst, QFormat
from .spec import Formats, PCSpec

__all__ = ["digits_spec", "generative_digits_spec", "DIGITS_INPUTS", "DIGITS_CLASSES"]

#: Inputs (8×8 pixels) and classes of the digits data set.
DIGITS_INPUTS, DIGITS_CLASSES = 64, 10


def digits_spec(hidden=(64,), activation: str = "relu", w_guard: int = 0,
                **changes) -> PCSpec:
    """The built-in default: 64-64-10 ReLU, T = 20 with the exact stop, 16-bit formats,
    γ = 1/8, α = 2^-5 (``w_guard``: weight guard bits kept in the weight memories, default
    none)."""
    sizes = (DIGITS_INPUTS, *hidden, DIGITS_CLASSES)
    acts = ("identity",) + (activation,) * len(hidden)
    kw = dict(
        sizes=sizes, activations=acts, iterations=20, name="digits",
        formats=Formats(x=QFormat(16, 10), e=QFormat(16, 12), w=QFormat(16, 12),
                        b=QFormat(16, 12), w_guard=w_guard),
        gamma=FixedConst(1, 3), alpha=FixedConst(1, 5), stop="exact")
    kw.update(changes)
    return PCSpec(**kw)


def generative_digits_spec(hidden: int = 64, **changes) -> PCSpec:
    """The generative digits network: 10-64-64 (label → hidden → image), f = identity on the
    label and tanh on the hidden layer, feed-forward initialisation, T = 50 with the exact
    stop, the default's formats and rates. Trained with the label and the image clamped
    (:func:`pcforge.model.train.train_float` with ``generative=True``)."""
    kw = dict(sizes=(DIGITS_CLASSES, hidden, DIGITS_INPUTS), activations=("identity", "tanh"),
              name="digits-generative", iterations=50)
    kw.update(changes)
    return digits_spec(**kw)
