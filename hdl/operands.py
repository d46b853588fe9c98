"""The lanes' operands: from the memory words registered for the token in the ``raw`` stage to
what the multipliers and node units of the token in the ``sel`` stage need.

Per lane: its own x and e of the token's lane layer, its weight word, and f(x), f'(x) from its
:class:`~pcforge.hdl.activation.ActivationUnit` (latency 1, so f and f' arrive with the token in
``sel``). Broadcast to every lane: x_i and e_i of the row's node, selected in two steps (timing:
a (L+1)·P-way mux over words spread over every lane's memory is too deep for one ECP5 cycle):
the bank within each layer, registered, then the layer in front of the operand registers.
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth import Signal, signed

from .activation import ActivationUnit

__all__ = ["LaneOperands", "select_operands"]


@dataclass
class LaneOperands:
    """Operands of the token in the ``sel`` stage. Per lane: ``w`` (stored weight word, W-store
    format), ``x``/``e`` (the lane's node of the token's lane layer: X / E format), ``f``
    (f(x), X format), ``d`` (f'(x): X's fraction bits for tanh, one bit else). Broadcast:
    ``x_row``, ``e_row`` (node i of the token's layer)."""
    w: list
    x: list
    e: list
    f: list
    d: list
    x_row: Signal
    e_row: Signal


def select_operands(m, pl, spec, P, raw, stages) -> LaneOperands:
    """Build the operand selection of ``P`` lanes in module ``m`` (``pl``: the
    :class:`~pcforge.hdl.pipeline.TokenPipeline`; ``raw``: the registered memory words
    ``{"x": {(k, p): reg}, "e": ..., "w": ...}``; ``stages``: the core's stage numbers)."""
    L = spec.L
    X, E, Ws = spec.formats.x, spec.formats.e, spec.formats.w_store
    tanh = "tanh" in spec.activations
    raw_x, raw_e, raw_w = raw["x"], raw["e"], raw["w"]
    S = stages
    t2, t3 = pl.tokens[S["raw"]], pl.tokens[S["sel"]]
    xl2 = [Signal(signed(X.width), name=f"xl2_{p}", reset_less=True) for p in range(P)]
    el2 = [Signal(signed(E.width), name=f"el2_{p}", reset_less=True) for p in range(P)]
    w2 = [Signal(signed(Ws.width), name=f"w2_{p}", reset_less=True) for p in range(P)]
    xs_k2 = [Signal(signed(X.width), name=f"xs_k2_{k}") for k in range(L + 1)]
    eb_k2 = [Signal(signed(E.width), name=f"eb_k2_{k}") for k in range(L + 1)]
    for p in range(P):
        with m.Switch(t2.lane_layer):
            for k in range(L + 1):
                with m.Case(k):
                    m.d.comb += xl2[p].eq(raw_x[k, p])
                    if k >= 1:
                        m.d.comb += el2[p].eq(raw_e[k, p])
        with m.Switch(t2.layer):
            for k in range(1, L + 1):
                with m.Case(k):
                    m.d.comb += w2[p].eq(raw_w[k, p])
    with m.Switch(t2.i_bank):
        for p in range(P):
            with m.Case(p):
                for k in range(L + 1):
                    m.d.comb += xs_k2[k].eq(raw_x[k, p])
                    if k >= 1:
                        m.d.comb += eb_k2[k].eq(raw_e[k, p])
    # activation units (latency 1: f, f' belong to the token in S3)
    f3, d3 = [], []
    for p in range(P):
        au = ActivationUnit(spec)
        m.submodules[f"act_lane{p}"] = au
        m.d.comb += [au.x.eq(xl2[p]), au.layer.eq(t2.lane_layer),
                     au.layer_out.eq(t3.lane_layer)]
        f3.append(au.f)
        # f' for the node update (S11): all of it for tanh, else 0 or 1.0 (one bit)
        d3.append(au.d if tanh else au.d != 0)
    w3 = pl.carry(w2, "w", S["sel"])
    xl3, el3 = pl.carry(xl2, "xl", S["sel"]), pl.carry(el2, "el", S["sel"])
    xs_k3 = [pl.stage(v, f"xs_k{k}_", S["sel"]) for k, v in enumerate(xs_k2)]
    eb_k3 = [pl.stage(v, f"eb_k{k}_", S["sel"]) for k, v in enumerate(eb_k2) if k >= 1]
    xs3 = Signal(signed(X.width))
    eb3 = Signal(signed(E.width))
    with m.Switch(t3.layer):
        for k in range(L + 1):
            with m.Case(k):
                m.d.comb += xs3.eq(xs_k3[k])
                if k >= 1:
                    m.d.comb += eb3.eq(eb_k3[k - 1])
    return LaneOperands(w=w3, x=xl3, e=el3, f=f3, d=d3, x_row=xs3, e_row=eb3)
