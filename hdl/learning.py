"""On-chip learning, W_l += round(α e_l f(x_{l−1})ᵀ) and b_l += round(α e_l), saturating
(``docs/datapath.md`` step 7), as a read-modify-write of the weight word a token reads, and the
bias of a prediction row (read for the prediction, rewritten when learning).

The product e·f(x) comes from the lane's multiplier (after-relaxation learning: a row sweep with
the multiplier's operands switched) or from a second multiplier beside the feedback product
W·e (incremental learning: column sweeps learn in passing). α·product in ``sum1``, rounded to the
W-store format in ``sum2``, added and fitted in ``row`` = ``W_WRITE_STAGE``, where W and b are
written.
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth import Mux, Signal, signed

from .fixed import fit, round_shift
from .mac import multiply

__all__ = ["WeightUpdates", "weight_updates", "row_bias"]


@dataclass
class WeightUpdates:
    """Per lane the new weight word (``row`` stage), and the bias increment (``sum2`` stage)."""
    w_new: list
    db: Signal


def weight_updates(m, pl, spec, P, ops, prod, incremental: bool, stages,
                   alpha=None, hard=None, half: int = 0) -> WeightUpdates:
    """The learning datapath of ``P`` lanes (``ops``: the lanes' operands; ``prod``: their
    products); ``alpha``: the α mantissa — the run-time register (``rates.alpha_runtime``,
    an unsigned signal) or, by default, the spec's constant; ``hard``: the hard multipliers
    (:func:`~pcforge.hdl.mac.multiply`); ``half``: which row of a two-row token (its weight
    words, its broadcast error; register names get ``_odd`` for the odd row)."""
    sfx = "_odd" if half else ""
    S = stages
    F = spec.formats
    X, E, Bf, Ws = F.x, F.e, F.b, F.w_store
    tok_sel = pl.tokens[S["sel"]]
    al = spec.alpha
    am = al.mantissa if alpha is None else alpha
    w_chain = pl.chains(ops.ws[half], f"w{sfx}", S["sel"], S["sum2"])
    e_row_chain = pl.chain(ops.e_rows[half], f"eb{sfx}", S["sel"], S["mul"])
    learn_prod = prod
    if incremental:
        # a second multiplier per lane: e_l[i] · f(x_{l−1}[j]) beside the feedback product
        # W[i, j] · e_l[i] of the same token (column sweeps learn in passing)
        learn_prod = [multiply(m, pl, Mux(tok_sel.lane_mask[p], ops.e_row, 0).as_signed(), ops.f[p],
                               E.width + X.width, f"prodl_{p}_", stages, hard) for p in range(P)]
    if alpha is None:
        dwm = [pl.stage(learn_prod[p] * am, f"dwm{sfx}_{p}_s", S["sum1"]) for p in range(P)]
    else:
        # × the α register: the product in 17-bit slices, one hard multiplier each (an
        # 18×18 ECP5 MULT18X18D), registered in sum1 and added in sum2 beside the rounding
        # (a 32×8 product and its carry chain in one cycle was the ECP5's critical path)
        # each lane multiplies by a copy of the register beside it (one register driving every
        # lane's multipliers crossed the chip: 3.7 ns). A copy takes the register's value
        # whenever a token of its lane passes ``sel`` — so before any learning token of the
        # lane reaches ``sum1`` — and its enable differs from lane to lane, so synthesis keeps
        # the copies apart.
        dwm = []
        for p in range(P):
            a_lane = Signal(len(am), init=al.mantissa, name=f"alpha{sfx}_{p}", reset_less=True)
            with m.If(tok_sel.lane_mask[p]):
                m.d.sync += a_lane.eq(am)
            dwm.append(_sliced_product(pl, learn_prod[p], a_lane, f"dwm{sfx}_{p}_", S["sum1"]))
    dw = [pl.stage(round_shift(dwm[p], E.frac + X.frac + al.frac - Ws.frac, Ws.rounding),
                   f"dw{sfx}_{p}_s", S["sum2"]) for p in range(P)]
    wn = [pl.stage(fit(w_chain[p][S["sum2"]] + dw[p], Ws)[0], f"wn{sfx}_{p}_s", S["row"])
          for p in range(P)]
    dbm = pl.stage(e_row_chain[S["mul"]] * am, f"dbm{sfx}", S["sum1"])
    db = pl.stage(round_shift(dbm, E.frac + al.frac - Bf.frac, Bf.rounding), f"db{sfx}",
                  S["sum2"])
    return WeightUpdates(w_new=wn, db=db)


#: Bits of an unsigned slice of a product by the α register (an 18-bit signed multiplier input)
_SLICE = 17


def _sliced_product(pl, value, factor, name: str, k: int):
    """``value × factor`` (signed × unsigned) as slices of ``value`` multiplied and registered
    into stage ``k`` (``{name}{i}_s{k}``); returns their (unregistered) sum, exact."""
    v = value.as_signed()
    w = len(v)
    cuts = list(range(0, w, _SLICE))
    parts = []
    for i, lo in enumerate(cuts):
        hi = min(w, lo + _SLICE)
        piece = v[lo:hi].as_signed() if hi == w else v[lo:hi]
        parts.append(pl.stage(piece * factor, f"{name}{i}_s", k) << lo)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total.as_signed()


def row_bias(m, pl, spec, raw_b, updates: WeightUpdates | None, stages, half: int = 0) -> tuple:
    """The bias b_l[row] of the token in ``sum2`` (read by it at the bias read stage, registered
    into ``sum2``), carried to ``row``; with ``updates``, also its new value (``row``). Returns
    (bias at ``row``, new bias or None)."""
    Bf = spec.formats.b
    sfx = "_odd" if half else ""
    tok_sum2 = pl.tokens[stages["sum2"]]
    b_sum2 = Signal(signed(Bf.width), name=f"b_sum2{sfx}", reset_less=True)
    with m.Switch(tok_sum2.layer):
        for l in range(1, spec.L + 1):
            with m.Case(l):
                m.d.comb += b_sum2.eq(raw_b[l])
    b_row = pl.stage(b_sum2, f"b{sfx}", stages["row"])
    bn = None
    if updates is not None:
        bn = pl.stage(fit(b_sum2 + updates.db, Bf)[0], f"bn{sfx}", stages["row"])
    return b_row, bn
