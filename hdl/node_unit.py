"""The node units, one per lane: from the accumulated sums of the token in the ``row`` stage to
the error, cache and state words written back.

* node operands (``node``): acc = W f(x) + b for a prediction row (or the cached prediction for
  feedback and node passes), x, and Σ W e;
* x·2^s − acc (``diff``);
* requantize (``rq`` = ``E_WRITE_STAGE``): e = E(x·2^s − acc), ε = E(Σ W e), x_ff = X(acc);
  e and the prediction cache written;
* δ = f′·ε − e·2^fx (``delta``); γ·δ rounded (``inc``);
* x ← X(x + inc), or x_ff (feed-forward), or 0 (``x`` = ``X_WRITE_STAGE``): x written.

A feed-forward sweep that also writes the first errors (:func:`~pcforge.model.arch.schedule.
ff_writes_errors`) forms x_ff·2^s − acc from the sum alone — the rounding's residual of its
low bits, or with the rail on the sum's side where X(acc) saturates — and its top layer's
x_ff goes through the update (δ = −e·2^fx) like an error pass's.
"""
from __future__ import annotations

from amaranth import Cat, Const, Mux, Signal, signed

from ..model.arch.schedule import ff_writes_errors
from .controller import NodeOp, Op
from .fixed import fit, requantize, round_shift
from .host_port import Target

__all__ = ["NodeInputs", "node_units"]


class NodeInputs:
    """What the node units take from the rest of the datapath: ``acc_row`` (the row
    accumulator, ``row``), ``b_row`` (the row's bias, ``row``), ``fb_row`` (per lane Σ W e,
    ``row``), ``raw_c`` (per lane the cached prediction word, ``row``), and per lane the chains
    (``{stage: value}``) of x (``x_lane``), e (``e_lane``), f'(x) (``d_lane``) and of the
    broadcast x_i (``x_row``). ``acc_row``, ``b_row`` and ``x_row`` are lists by half (rows
    per token): with two rows, lane p's node unit takes half p mod 2 (rows 2q and 2q + 1 end
    in lanes of their own parity)."""

    def __init__(self, *, acc_row, b_row, fb_row, raw_c, x_lane, e_lane, d_lane, x_row):
        self.acc_row, self.b_row, self.fb_row, self.raw_c = acc_row, b_row, fb_row, raw_c
        self.x_lane, self.e_lane, self.d_lane, self.x_row = x_lane, e_lane, d_lane, x_row


def node_units(m, pl, core, host, ports, inp: NodeInputs, stages, pins=None):
    """Build the ``core``'s P node units in ``m``; ``host``: the
    :class:`~pcforge.hdl.host_port.HostPort` that shares the e and x write ports; ``ports``:
    the write ports ``{"e": {(k, p): port}, "x": ..., "c": {p: port}}``; ``pins``: the read
    ports of the pin memories ``{(k, p): port}`` (layers in ``spec.node_clamp``; their words
    are out beside the token in ``inc``): a pinned node's x write is dropped and does not
    count as a change. Returns the exact stop's ``x_changed`` flags for the controller (None
    in cores without the stop)."""
    spec, P, A = core.spec, core.lanes, core.acc_width
    L = spec.L
    F = spec.formats
    X, E, Wf, Bf = F.x, F.e, F.w, F.b
    Facc = F.acc.frac
    delayed = spec.schedule == "delayed_feedback"
    tanh = "tanh" in spec.activations
    S = stages
    xl, el, dd, xs = inp.x_lane, inp.e_lane, inp.d_lane, inp.x_row
    R = len(xs)
    # layers whose feed-forward sweep also writes the first errors (and, the top layer, its
    # first update): ff_writes_errors
    early = [l for l in range(1, L + 1) if ff_writes_errors(core.geometry, l)]
    s_x = Facc - X.frac                      # fraction bits X(acc) drops

    # ---- node-unit operands -----------------------------------------------------
    tok_row = pl.tokens[S["row"]]
    preds = [Signal(signed(A + 1), name="pred" + ("_odd" if h else "")) for h in range(R)]
    m.d.comb += [preds[h].eq((inp.acc_row[h] << (Facc - X.frac - Wf.frac))
                             + (inp.b_row[h] << (Facc - Bf.frac))) for h in range(R)]
    acc_n = [Signal(signed(A + 1), name=f"acc_n_{p}", reset_less=True) for p in range(P)]
    x_n = [Signal(signed(X.width), name=f"x_n_{p}", reset_less=True) for p in range(P)]
    fbs_n = pl.carry(inp.fb_row, "fbs", S["node"])                           # Σ W e (fe + fw)
    for p in range(P):
        pred = preds[p % R]
        with m.Switch(tok_row.op):
            with m.Case(Op.PRED):
                m.d.sync += [acc_n[p].eq(pred), x_n[p].eq(xs[p % R][S["row"]])]
            with m.Case(Op.FB, Op.NODE):
                m.d.sync += [acc_n[p].eq(inp.raw_c[p]), x_n[p].eq(xl[p][S["row"]])]
            if delayed:
                with m.Case(Op.FUSED):
                    m.d.sync += [acc_n[p].eq(pred),
                                 x_n[p].eq(Mux(tok_row.row_end, xs[0][S["row"]],
                                               xl[p][S["row"]]))]

    # ---- x·2^s − acc ---------------------------------------------------------------
    tok_diff = pl.tokens[S["diff"]]
    x_sub = _rails_for_ff(pl, tok_row, S["node"], x_n, acc_n, X) if early else x_n
    diff = [pl.stage((x_sub[p] << (Facc - X.frac)) - acc_n[p], f"diff_{p}_s", S["diff"])
            for p in range(P)]
    acc_d, fbs_d = pl.carry(acc_n, "acc", S["diff"]), pl.carry(fbs_n, "fbs", S["diff"])
    x_d = pl.carry(x_n, "x", S["diff"])
    # feed-forward without saturation: X(acc)·2^s − acc = round(a/2^s)·2^s − a for the sum's
    # low s + 1 bits a (rounding commutes with adding an even integer), a few bits wide
    res_d = [pl.stage(_residual(acc_n[p], s_x, X.rounding), f"res_{p}_s", S["diff"])
             for p in range(P)] if early else None
    # ... and whether X(acc) saturates, a stage ahead of its use (timing: formed beside X(acc)
    # at ``rq``, the flag's route to the error's select set the ECP5's fmax, 94.35 MHz at 16
    # lanes, 98.55 at 8)
    sat_d = [pl.stage(requantize(acc_n[p], Facc, X)[1], f"xsat_{p}_s", S["diff"])
             for p in range(P)] if early else None

    # ---- requantize; write e and the cache --------------------------------------
    tok_rq = pl.tokens[S["rq"]]
    e_q = [Signal(signed(E.width), name=f"e_q_{p}", reset_less=True) for p in range(P)]
    eps_q = [Signal(signed(E.width), name=f"eps_q_{p}", reset_less=True) for p in range(P)]
    xq_q = [Signal(signed(X.width), name=f"xq_q_{p}", reset_less=True) for p in range(P)]
    cache_q = pl.carry(acc_d, "cache", S["rq"])
    for p in range(P):
        err, _ = requantize(diff[p], Facc, E)
        eps, _ = requantize(fbs_d[p], E.frac + Wf.frac, E)
        xq, _ = requantize(acc_d[p], Facc, X)
        from_diff = (tok_diff.nop == NodeOp.ERR) | tok_diff.fuse
        other = el[p][S["diff"]]
        if early:
            ff = tok_diff.nop == NodeOp.FF
            from_diff = from_diff | (ff & sat_d[p])
            other = Mux(ff, requantize(res_d[p], Facc, E)[0], other)
        m.d.sync += [e_q[p].eq(Mux(from_diff, err, other)),
                     eps_q[p].eq(eps), xq_q[p].eq(xq)]
    x_q = pl.carry(x_d, "x", S["rq"])
    c_wr = ports["c"]
    for p in range(P):
        for k in range(1, L + 1):
            en = tok_rq.valid & (tok_rq.node_layer == k) & tok_rq.node_mask[p] & tok_rq.we_e
            host.write_port(ports["e"][k, p], en, tok_rq.node_addr, e_q[p], Target.E, k, p)
        m.d.comb += [c_wr[p].en.eq(tok_rq.valid & (tok_rq.node_layer != 0) & tok_rq.node_mask[p]
                                   & tok_rq.we_c),
                     c_wr[p].addr.eq(tok_rq.cache_addr), c_wr[p].data.eq(cache_q[p])]

    # ---- δ = f′·ε − e·2^fx ------------------------------------------------------
    dwidth = X.width + E.width + 2
    delta = [Signal(signed(dwidth), name=f"delta_{p}", reset_less=True) for p in range(P)]
    for p in range(P):
        if tanh:
            fe_term = dd[p][S["rq"]] * eps_q[p]
        else:                                    # f' ∈ {0, 1.0}: a mux, no multiplier
            fe_term = Mux(dd[p][S["rq"]], eps_q[p] << X.frac, 0)
        m.d.sync += delta[p].eq(Mux(tok_rq.nop == NodeOp.UPD, fe_term, 0)
                                - (e_q[p] << X.frac))
    if early:             # feed-forward: X(acc) from here on (the update below starts from it)
        x_dl = pl.carry([Mux(tok_rq.nop == NodeOp.FF, xq_q[p], x_q[p]) for p in range(P)],
                        "x", S["delta"])
        xq_dl = x_dl
    else:
        x_dl, xq_dl = pl.carry(x_q, "x", S["delta"]), pl.carry(xq_q, "xq", S["delta"])

    # ---- γ·δ rounded ----------------------------------------------------------------
    gm = spec.gamma
    inc = [pl.stage(round_shift(delta[p] * gm.mantissa, E.frac + gm.frac, X.rounding),
                    f"inc_{p}_s", S["inc"]) for p in range(P)]
    x_i = pl.carry(x_dl, "x", S["inc"])
    xq_i = x_i if early else pl.carry(xq_dl, "xq", S["inc"])

    return _state_writes(m, pl, spec, host, ports, pins, S, x_i, xq_i, inc,
                         top_early=L in early)


def _state_writes(m, pl, spec, host, ports, pins, S, x_i, xq_i, inc, top_early: bool):
    """x + inc fitted (or X(acc), or 0) and written at ``x`` (``X_WRITE_STAGE``); a pinned
    node's write dropped. ``top_early``: the top layer's feed-forward sweep makes its first
    update (:func:`~pcforge.model.arch.schedule.ff_writes_errors`). Returns the exact stop's
    ``x_changed`` flags (None in cores without the stop)."""
    P, L, X = len(x_i), spec.L, spec.formats.x
    tok_inc, tok_x = pl.tokens[S["inc"]], pl.tokens[S["x"]]
    pin_inc, pinned = _pinned(pl, tok_inc, pins, P, S["x"])
    x_new = [Signal(signed(X.width), name=f"x_new_{p}", reset_less=True) for p in range(P)]
    # x_chg: the lane's x write (next stage) changes its word — every gate of the write applied
    # here, a stage ahead, so that the stop flag below is one OR across the lanes (timing: at
    # 16 lanes the x stage's token fanned out to the lanes' gates and back through that OR
    # set the ECP5's fmax)
    x_chg = [Signal(name=f"x_chg_{p}", reset_less=True) for p in range(P)]
    for p in range(P):
        upd, _ = fit(x_i[p] + inc[p], X)
        writes = tok_inc.valid & tok_inc.we_x & tok_inc.node_mask[p]
        if pin_inc[p] is not None:
            writes = writes & ~pin_inc[p]
        with m.Switch(tok_inc.nop):
            with m.Case(NodeOp.FF):
                if top_early:           # the top layer's first update comes with it
                    top = tok_inc.node_layer == L
                    m.d.sync += [x_new[p].eq(Mux(top, upd, xq_i[p])),
                                 x_chg[p].eq(top & _changes(x_i[p], inc[p], X) & writes)]
                else:
                    m.d.sync += [x_new[p].eq(xq_i[p]), x_chg[p].eq(0)]
            with m.Case(NodeOp.ZERO):
                m.d.sync += [x_new[p].eq(0), x_chg[p].eq(0)]
            with m.Default():                   # an update: did the word change?
                m.d.sync += [x_new[p].eq(upd),
                             x_chg[p].eq(_changes(x_i[p], inc[p], X) & writes)]
        for k in range(L + 1):
            en = tok_x.valid & tok_x.we_x & (tok_x.node_layer == k) & tok_x.node_mask[p]
            if k in spec.node_clamp:
                en = en & ~pinned[p]
            host.write_port(ports["x"][k, p], en, tok_x.node_addr, x_new[p], Target.X, k, p)
    if "par" not in tok_x.shape().members:
        return None
    # the exact stop's flags: some lane's x write changed its word, by the iteration's parity
    # (registered: the controller sees it STOP_FLAG_LAG cycles after the token's issue)
    changed = Signal(2, name="x_changed")
    any_chg = Cat(*x_chg).any()
    m.d.sync += changed.eq(Mux(any_chg, Mux(tok_x.par, 0b10, 0b01), 0))
    return changed


def _rails_for_ff(pl, tok_row, node_stage, x_n, acc_n, X) -> list:
    """Per lane the x of x·2^s − acc for the token in ``node``: for a feed-forward sweep that
    writes the first errors, the rail on the side of the lane's sum (used where X(acc)
    saturates; else the residual), chosen from the lane's own registered sum (timing: chosen
    from the shared sum before its registers, the sign bit's route to every lane set the
    16-lane ECP5's fmax, 91.79 MHz); the node's x otherwise. Whether the token is such a sweep
    is a flag of the lane's own, registered beside the sum from the token in ``row`` and gated
    by the lane's node-mask bit so that the copies stay apart (timing: one decode of the
    ``node`` stage's token routed to every lane's select, 97.30 MHz)."""
    ff = (tok_row.op == Op.PRED) & (tok_row.nop == NodeOp.FF)
    flags = [pl.stage(ff & tok_row.node_mask[p], f"ff_n_{p}_s", node_stage)
             for p in range(len(x_n))]
    return [Mux(f, Mux(a[-1], X.min_int, X.max_int), x) for f, x, a in zip(flags, x_n, acc_n)]


def _pinned(pl, tok_inc, pins, P, x_stage):
    """Per lane, whether the node of the token in ``inc`` is held (per-node clamp; None for a
    lane without pin memories), and the same registered beside the token in ``x_stage``."""
    pin_inc, pinned = [None] * P, [None] * P
    for p in range(P):
        bits = [(tok_inc.node_layer == k) & port.data for (k, q), port in (pins or {}).items()
                if q == p]
        if bits:
            pin_inc[p] = Cat(*bits).any()
            pinned[p] = pl.stage(pin_inc[p], f"pinned_{p}_s", x_stage)
    return pin_inc, pinned


def _residual(acc, shift: int, rounding: str):
    """X(acc)·2^shift − acc for an ``acc`` whose rounding to X does not saturate: from the low
    ``shift`` + 1 bits a of ``acc``, round(a / 2^shift)·2^shift − a (signed, shift + 3 bits;
    0 when nothing is dropped)."""
    if shift <= 0:
        return Const(0, signed(2))
    a = Cat(acc[:shift + 1], Const(0, 2)).as_signed()         # 0 ≤ a < 2^(shift+1)
    return ((round_shift(a, shift, rounding) << shift) - a).as_signed()


def _changes(x, inc, X):
    """Whether X(x + inc) differs from x (x inside X): from ``inc`` and x alone, beside the
    adder rather than after it (timing) — saturating, only inc = 0 or a push past the rail it
    already sits on keeps x; wrapping, only an inc ≡ 0 mod 2^width."""
    if X.overflow == "saturate":
        neg = inc[-1]
        nonzero = inc.any()
        at_max = x == X.max_int
        at_min = x == X.min_int
        return nonzero & ~(~neg & at_max) & ~(neg & at_min)
    return inc[:X.width].any()
