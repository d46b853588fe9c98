"""Random specs, weights and clamped values for verification: many networks, not one case.

Every generator takes a seeded ``numpy.random.Generator``; a failing case is replayed from its
seed (tests print it). The ranges cover what the hardware generator must support: 2–5 layers,
sizes 1–24, widths 6–20, all rounding and overflow modes, every activation, random rates and
clamp masks, weight guard bits, with and without the exact stop.
"""
from __future__ import annotations

import numpy as np

from .activations import ACTIVATIONS
from .qformat import OVERFLOW_MODES, ROUNDING_MODES, FixedConst, QFormat
from .spec import Formats, LEARNING_RULES, SCHEDULES, STOPS, PCSpec, SpecError

__all__ = ["random_spec", "random_int_weights", "random_clamped", "random_mask"]


def _fmt(rng, lo_w, hi_w, min_int_bits=1, overflow=None):
    width = int(rng.integers(lo_w, hi_w + 1))
    frac = int(rng.integers(0, width - min_int_bits + 1))
    return QFormat(width, frac, str(rng.choice(ROUNDING_MODES)),
                   overflow or str(rng.choice(OVERFLOW_MODES, p=[0.8, 0.2])))


def random_spec(rng: np.random.Generator, *, n_layers=(2, 5), size=(1, 24), width=(6, 20),
                iterations=(1, 6), activations=ACTIVATIONS, schedules=SCHEDULES) -> PCSpec:
    """A random valid spec (retries until the validation accepts one)."""
    for _ in range(1000):
        nl = int(rng.integers(n_layers[0], n_layers[1] + 1))
        sizes = [int(rng.integers(size[0], size[1] + 1)) for _ in range(nl)]
        acts = [str(rng.choice(activations)) for _ in range(nl - 1)]
        x = _fmt(rng, max(width[0], 6), width[1], min_int_bits=2)
        e = _fmt(rng, width[0], width[1])
        w = _fmt(rng, width[0], width[1])
        b = _fmt(rng, width[0], width[1])
        gamma = FixedConst.from_float(float(rng.choice([1 / 2, 1 / 4, 1 / 8, 0.1, 0.3, 1.0])),
                                      int(rng.integers(3, 9)))
        alpha = FixedConst.from_float(float(rng.choice([2 ** -3, 2 ** -5, 0.01, 0.05])),
                                      int(rng.integers(6, 12)))
        guard = int(rng.integers(1, 5)) if rng.random() < 0.3 else 0
        stop = str(rng.choice(STOPS))
        T = int(rng.integers(iterations[0], iterations[1] + 1))
        if stop == "exact":           # room to stop: a run can end after 2 (3) iterations
            T = int(rng.integers(max(iterations[0], 3), max(iterations[1], 3) + 3))
        try:
            return PCSpec(sizes=sizes, activations=acts, iterations=T,
                          formats=Formats(x, e, w, b, w_guard=guard), gamma=gamma, alpha=alpha,
                          init=str(rng.choice(["feedforward", "zero"])),
                          learning=str(rng.choice(LEARNING_RULES)),
                          schedule=str(rng.choice(schedules)),
                          table_bits=int(rng.integers(3, 9)), name="random", stop=stop)
        except SpecError:
            continue
    raise RuntimeError("could not draw a valid random spec")


def random_int_weights(spec: PCSpec, rng: np.random.Generator, scale: float = 0.5):
    """Integer weights and biases within the stored W/B formats (a fraction ``scale`` of full
    range, sometimes full range to exercise saturation)."""
    F = spec.formats
    W, b = [], []
    for l in range(1, spec.L + 1):
        s = 1.0 if rng.random() < 0.15 else scale
        lim_w = max(1, int(F.w_store.max_int * s))
        lim_b = max(1, int(F.b.max_int * s))
        W.append(rng.integers(-lim_w, lim_w + 1, size=spec.weight_shape(l)))
        b.append(rng.integers(-lim_b, lim_b + 1, size=spec.sizes[l]))
    return W, b


def random_mask(spec: PCSpec, rng: np.random.Generator) -> tuple:
    """A named mode or a random mask with at least one clamped layer."""
    if rng.random() < 0.5:
        return spec.clamp[str(rng.choice(sorted(spec.clamp)))]
    m = rng.random(spec.n_layers) < 0.4
    if not m.any():
        m[int(rng.integers(0, spec.n_layers))] = True
    return tuple(bool(v) for v in m)


def random_clamped(spec: PCSpec, mask, rng: np.random.Generator, batch: int = 1) -> dict:
    """Integer values (X format) for every clamped layer."""
    X = spec.formats.x
    out = {}
    for l, m in enumerate(mask):
        if m:
            lim = X.max_int if rng.random() < 0.2 else max(1, X.max_int // 4)
            out[l] = rng.integers(-lim - 1, lim + 1, size=(batch, spec.sizes[l]))
    return out


def random_node_clamp(spec: PCSpec, mask, rng: np.random.Generator) -> PCSpec:
    """``spec`` with per-node clamping on some of the layers free under ``mask`` (each with
    probability ½; ``spec`` itself when none is chosen)."""
    free = [l for l, m in enumerate(spec.mask(mask)) if not m]
    chosen = tuple(l for l in free if rng.random() < 0.5)
    return spec.replace(node_clamp=chosen) if chosen else spec


def random_pins(spec: PCSpec, rng: np.random.Generator, batch: int = 1) -> tuple[dict, dict]:
    """For every layer of ``spec.node_clamp``: random pins (each node held with probability
    drawn in 0..1, so runs with none, some and all pinned occur) and the values they hold
    (X format) — ({layer: bools (batch, n)}, {layer: ints (batch, n)})."""
    X = spec.formats.x
    pins, values = {}, {}
    for l in spec.node_clamp:
        p = float(rng.choice([0.0, 1.0, rng.random()], p=[0.1, 0.1, 0.8]))
        pins[l] = rng.random((batch, spec.sizes[l])) < p
        lim = X.max_int if rng.random() < 0.2 else max(1, X.max_int // 4)
        values[l] = rng.integers(-lim - 1, lim + 1, size=(batch, spec.sizes[l]))
    return pins, values
