"""The lanes' operands: from the memory words registered for the token in the ``raw`` stage to
what the multipliers and node units of the token in the ``sel`` stage need.

Per lane: its own x and e of the token's lane layer, its weight word, and f(x), f'(x) from its
:class:`~pcforge.hdl.activation.ActivationUnit` (latency 1, so f and f' arrive with the token in
``sel``). Broadcast to every lane: x_i and e_i of the row's node, selected in two steps (timing:
a (L+1)·P-way mux over words spread over every lane's memory is too deep for one ECP5 cycle):
the bank within each layer (each lane gates its words with a registered one-hot of the row's
bank; the row is their OR), registered, then the layer in front of the operand registers.
With two rows per token the odd row's x_i, e_i (node 2q + 1, in the odd lane after the even
row's) are broadcast beside them, 0 when the odd row does not exist, and each lane's odd-half
weight word beside its own.
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth import Mux, Signal, Value, signed

from .activation import ActivationUnit

__all__ = ["LaneOperands", "select_operands"]


@dataclass
class LaneOperands:
    """Operands of the token in the ``sel`` stage. Per lane: ``w`` (stored weight word, W-store
    format), ``x``/``e`` (the lane's node of the token's lane layer: X / E format), ``f``
    (f(x), X format), ``d`` (f'(x): X's fraction bits for tanh, one bit else). Broadcast:
    ``x_row``, ``e_row`` (node i of the token's layer). Per half (rows per token): ``x_rows``,
    ``e_rows`` (the even row's, then the odd row's), ``ws`` (per lane the weight words)."""
    w: list
    x: list
    e: list
    f: list
    d: list
    x_row: Signal
    e_row: Signal
    x_rows: list
    e_rows: list
    ws: list


def select_operands(m, pl, spec, P, raw, stages, rows: int = 1) -> LaneOperands:
    """Build the operand selection of ``P`` lanes in module ``m`` (``pl``: the
    :class:`~pcforge.hdl.pipeline.TokenPipeline`; ``raw``: the registered memory words
    ``{"x": {(k, p): reg}, "e": ..., "w": ..., "w_odd": ...}``; ``stages``: the core's stage
    numbers; ``rows``: rows per token)."""
    L = spec.L
    X, E, Ws = spec.formats.x, spec.formats.e, spec.formats.w_store
    tanh = "tanh" in spec.activations
    raw_x, raw_e, raw_w = raw["x"], raw["e"], raw["w"]
    S = stages
    tok_sel = pl.tokens[S["sel"]]
    x_lane = [Signal(signed(X.width), name=f"x_lane_{p}", reset_less=True) for p in range(P)]
    e_lane = [Signal(signed(E.width), name=f"e_lane_{p}", reset_less=True) for p in range(P)]
    w_lane = [Signal(signed(Ws.width), name=f"w_lane_{p}", reset_less=True) for p in range(P)]
    wo_lane = [Signal(signed(Ws.width), name=f"wo_lane_{p}", reset_less=True)
               for p in range(P)] if rows == 2 else None
    x_row_by_layer = [Signal(signed(X.width), name=f"x_row_l{k}") for k in range(L + 1)]
    e_row_by_layer = [Signal(signed(E.width), name=f"e_row_l{k}") for k in range(L + 1)]
    # each lane's own copies of the token's layer numbers (see TokenPipeline.lane_field: a
    # lane outside the token's lane mask selects layer 0 — its operands are masked anyway)
    lane_layer = pl.lane_field("lane_layer", S["raw"], P)
    w_layer = pl.lane_field("layer", S["raw"], P)
    for p in range(P):
        with m.Switch(lane_layer[p]):
            for k in range(L + 1):
                with m.Case(k):
                    m.d.comb += x_lane[p].eq(raw_x[k, p])
                    if k >= 1:
                        m.d.comb += e_lane[p].eq(raw_e[k, p])
        with m.Switch(w_layer[p]):
            for k in range(1, L + 1):
                with m.Case(k):
                    m.d.comb += w_lane[p].eq(raw_w[k, p])
                    if rows == 2:
                        m.d.comb += wo_lane[p].eq(raw["w_odd"][k, p])
    # the row's bank as a one-hot registered a stage ahead (one flip-flop per lane, beside its
    # memory's words): each lane gates its own words and the row is an OR across the lanes —
    # one crossing of the chip and an OR tree, not the token's bank number broadcast to a
    # P-way mux first (timing: at 16 lanes that was the ECP5's critical path)
    tok_before = pl.tokens[S["raw"] - 1]
    hit = [pl.stage(tok_before.i_bank == p, f"bank_hit{p}_s", S["raw"]) for p in range(P)]
    for k in range(L + 1):
        m.d.comb += x_row_by_layer[k].eq(_or_lanes([Mux(hit[p], raw_x[k, p], 0)
                                                    for p in range(P)]))
        if k >= 1:
            m.d.comb += e_row_by_layer[k].eq(_or_lanes([Mux(hit[p], raw_e[k, p], 0)
                                                        for p in range(P)]))
    # activation units (latency 1: f, f' belong to the token in ``sel``; their comparisons on
    # every layer's word, ahead of the layer select)
    f_sel, d_sel = [], []
    for p in range(P):
        au = ActivationUnit(spec)
        m.submodules[f"act_lane{p}"] = au
        m.d.comb += [au.x.eq(x_lane[p]), au.layer.eq(lane_layer[p]),
                     *(au.x_by_layer[k].eq(raw_x[k, p]) for k in range(L)),
                     au.layer_out.eq(pl.stage(lane_layer[p], f"lane_layer_{p}_s", S["sel"]))]
        f_sel.append(au.f)
        # f' for the node update (``delta``): all of it for tanh, else 0 or 1.0 (one bit)
        d_sel.append(au.d if tanh else au.d != 0)
    w_sel = pl.carry(w_lane, "w", S["sel"])
    x_sel, e_sel = pl.carry(x_lane, "xl", S["sel"]), pl.carry(e_lane, "el", S["sel"])
    x_row, e_row = _row_select(m, pl, tok_sel, x_row_by_layer, e_row_by_layer, X, E, S, "")
    x_rows, e_rows, ws = [x_row], [e_row], [w_sel]
    if rows == 2:
        # the odd row: node 2q + 1 sits in the lane after the even row's (P even), whose hit
        # bit is the one before its own
        xo = [_or_lanes([Mux(hit[p - 1], raw_x[k, p], 0) for p in range(1, P, 2)])
              for k in range(L + 1)]
        eo = [_or_lanes([Mux(hit[p - 1], raw_e[k, p], 0) for p in range(1, P, 2)])
              if k >= 1 else None for k in range(L + 1)]
        x_odd, e_odd = _row_select(m, pl, tok_sel, xo, eo, X, E, S, "_odd")
        # 0 where the odd row does not exist (the last of an odd row count): its products,
        # learning increments and node writes are then nothing
        x_rows.append(Mux(tok_sel.odd_ok, x_odd, 0))
        e_rows.append(Mux(tok_sel.odd_ok, e_odd, 0))
        ws.append(pl.carry(wo_lane, "wo", S["sel"]))
    return LaneOperands(w=w_sel, x=x_sel, e=e_sel, f=f_sel, d=d_sel, x_row=x_row, e_row=e_row,
                        x_rows=x_rows, e_rows=e_rows, ws=ws)


def _row_select(m, pl, tok_sel, x_by_layer, e_by_layer, X, E, S, suffix: str):
    """The row's x_i and e_i of the token's layer: each layer's OR of the lanes registered into
    ``sel``, then the layer selected."""
    L = len(x_by_layer) - 1
    x_sel = [pl.stage(v, f"x_row{suffix}_l{k}_s", S["sel"]) for k, v in enumerate(x_by_layer)]
    e_sel = [pl.stage(v, f"e_row{suffix}_l{k}_s", S["sel"])
             for k, v in enumerate(e_by_layer) if k >= 1]
    x_row = Signal(signed(X.width), name=f"x_row{suffix}")
    e_row = Signal(signed(E.width), name=f"e_row{suffix}")
    with m.Switch(tok_sel.layer):
        for k in range(L + 1):
            with m.Case(k):
                m.d.comb += x_row.eq(x_sel[k])
                if k >= 1:
                    m.d.comb += e_row.eq(e_sel[k - 1])
    return x_row, e_row


def _or_lanes(values: list) -> Value:
    """The OR of the lanes' gated words as a balanced tree (at most one is non-zero)."""
    while len(values) > 1:
        values = [values[k] | values[k + 1] if k + 1 < len(values) else values[k]
                  for k in range(0, len(values), 2)]
    return values[0]
