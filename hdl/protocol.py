"""The core's host protocol as data: which (target, layer, bank, addr, data) words load a
network and its clamped values, and how read-back words map to node and weight indices.

Every driver (the Amaranth testbench, the cocotb testbench, the UART host link) sends these same
words; the addressing comes from :class:`pcforge.model.arch.cycles.CoreGeometry`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..model.arch.geometry import CoreGeometry

__all__ = ["HostWord", "TARGET", "weight_words", "node_words", "node_addresses",
           "weight_addresses", "pin_words", "run_words", "alpha_word"]

#: Target codes of :class:`pcforge.hdl.core.Target` (kept here as plain ints for drivers).
TARGET = {"x": 0, "e": 1, "w": 2, "b": 3, "cache": 4, "pin": 5, "alpha": 6}


class HostWord(NamedTuple):
    target: int
    layer: int
    bank: int
    addr: int
    data: int = 0


def node_addresses(geom: CoreGeometry, target: str, layer: int) -> list:
    """Read requests for every node of ``layer`` (x, e or cache), in node order."""
    tg = TARGET[target]
    return [HostWord(tg, layer, *geom.node_location(layer, j))
            for j in range(geom.spec.sizes[layer])]


def weight_addresses(geom: CoreGeometry, l: int) -> list:
    """Read requests for W_l row-major, then b_l."""
    n, m = geom.spec.sizes[l], geom.spec.sizes[l - 1]
    words = [HostWord(TARGET["w"], l, *geom.weight_location(l, i, j))
             for i in range(n) for j in range(m)]
    return words + [HostWord(TARGET["b"], l, 0, i) for i in range(n)]


def weight_words(geom: CoreGeometry, W: list, b: list) -> list:
    """Writes that load every W_l and b_l (integers in the W and B formats)."""
    out = []
    for l in range(1, geom.spec.L + 1):
        vals = np.concatenate([np.asarray(W[l - 1]).reshape(-1), np.asarray(b[l - 1])])
        out += [w._replace(data=int(v)) for w, v in zip(weight_addresses(geom, l), vals)]
    return out


def node_words(geom: CoreGeometry, layer: int, values) -> list:
    """Writes that load x of ``layer`` (integers in the X format), e.g. a clamped input."""
    v = np.asarray(values).reshape(-1)
    if v.shape != (geom.spec.sizes[layer],):
        raise ValueError(f"layer {layer} has {geom.spec.sizes[layer]} nodes; got {v.shape}")
    return [w._replace(data=int(x)) for w, x in zip(node_addresses(geom, "x", layer), v)]


def pin_words(geom: CoreGeometry, layer: int, pins) -> list:
    """Writes that load the pin bits of ``layer`` (one per node, 1 = held at its x: a per-node
    clamp); the layer must be in ``spec.node_clamp``."""
    v = np.asarray(pins).reshape(-1)
    if layer not in geom.spec.node_clamp:
        raise ValueError(f"layer {layer} has no pin memory (network.node_clamp = "
                         f"{list(geom.spec.node_clamp)})")
    if v.shape != (geom.spec.sizes[layer],):
        raise ValueError(f"layer {layer} has {geom.spec.sizes[layer]} nodes; got {v.shape} pins")
    return [HostWord(TARGET["pin"], layer, *geom.node_location(layer, j), int(bool(b)))
            for j, b in enumerate(v)]


def run_words(geom: CoreGeometry, mask, values: dict, pins: dict | None = None) -> list:
    """The writes before a run of one sample: x of every layer clamped by the layer ``mask``
    and of every layer with pinned nodes (``values``: {layer: X-format ints}), then the pin
    bits of every ``node_clamp`` layer — the run's ``pins`` ({layer: n_l bools}), zeros for
    the others, so that no pin of an earlier run stays set."""
    pins = pins or {}
    out = []
    for layer in sorted(values):
        if mask[layer] or layer in pins:
            out += node_words(geom, layer, values[layer])
    for layer in geom.spec.node_clamp:
        out += pin_words(geom, layer, pins.get(layer, np.zeros(geom.spec.sizes[layer], bool)))
    return out


def alpha_word(geom: CoreGeometry, mantissa: int) -> HostWord:
    """The write that sets the α register to ``mantissa`` (α = mantissa·2^−alpha.frac; the
    spec must have ``rates.alpha_runtime``; :meth:`PCSpec.alpha_at` checks the range)."""
    geom.spec.alpha_at(mantissa)
    return HostWord(TARGET["alpha"], 0, 0, 0, int(mantissa))
