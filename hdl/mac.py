"""The MAC lanes: one multiplier per lane (two with ``delayed_feedback``), the adder tree across
lanes for prediction rows, the lane-local accumulators of feedback columns, and the row
accumulator.

Every multiplier's operands are registered twice, the second time beside the multiplier (an
ECP5 MULT18X18D takes ~4 ns of a 10 ns cycle): operands in the ``opd`` and ``dsp`` stages,
the product in ``mul``. The adder tree sums the P products in two registered halves (``sum1``,
``sum2``); the row accumulator adds one tree sum per token of a row (stage ``row``).
"""
from __future__ import annotations

from amaranth import Array, Cat, Mux, Signal, signed

from ..model.arch.schedule import ROW_ACC_MIN_ROWS
from .controller import Op
from .dsp import HARD_MULTIPLIERS, ecp5_registered_multiply, fits_mult18

__all__ = ["multiply", "lane_products", "odd_products", "balanced_sum", "adder_tree",
           "feedback_sums", "row_accumulator"]


def multiply(m, pl, a, b, width: int, name: str, stages, hard=None) -> Signal:
    """a × b: operands registered in the ``opd`` stage and again in ``dsp`` (the second
    register has only the multiplier to drive), the product (signed, ``width`` bits) in
    ``mul``. ``hard="ecp5"`` (operands of at most 18 bits): the ``dsp`` and ``mul`` registers
    are the MULT18X18D's own input and output registers (:mod:`pcforge.hdl.dsp`) — same
    cycles, nothing routed between them and the multiplier."""
    S = stages
    assert hard in HARD_MULTIPLIERS, hard
    assert S["mul"] == S["dsp"] + 1 == S["opd"] + 2
    oa, ob = pl.stage(a, f"{name}a", S["opd"]), pl.stage(b, f"{name}b", S["opd"])
    if hard == "ecp5" and fits_mult18(oa, ob, width):
        return ecp5_registered_multiply(m, oa, ob, width, name)
    ra = pl.stage(oa, f"{name}a", S["dsp"])
    rb = pl.stage(ob, f"{name}b", S["dsp"])
    pr = Signal(signed(width), name=f"{name}{S['mul']}", reset_less=True)
    m.d.sync += pr.eq(ra * rb)
    return pr


def lane_products(m, pl, spec, P, ops, stages, hard=None) -> tuple[list, list | None, list]:
    """Each lane's product of the token in ``sel``: (f(x) or e_i) × (W, or f(x) when learning);
    with ``delayed_feedback`` also W · e_l(t−1) from the same weight read. Returns (products,
    feedback products or None, the multipliers' W: the stored word without guard bits).
    ``hard``: see :func:`multiply`."""
    F = spec.formats
    X, E, Wf, G = F.x, F.e, F.w, F.w_guard
    tok_sel = pl.tokens[stages["sel"]]
    w_mul = [w >> G for w in ops.w] if G else ops.w
    WA = max(X.width, E.width)
    WB = max(Wf.width, X.width)
    prod = []
    # the operand selects as each lane's own registers (TokenPipeline.lane_field)
    mul_e = pl.lane_field("mul_e", stages["sel"], P)
    mul_f = pl.lane_field("mul_f", stages["sel"], P)
    for p in range(P):
        opa = Mux(tok_sel.lane_mask[p], Mux(mul_e[p], ops.e_row, ops.f[p]), 0)
        opb = Mux(mul_f[p], ops.f[p], w_mul[p])               # W, or f(x) when learning
        prod.append(multiply(m, pl, opa.as_signed(), opb.as_signed(), WA + WB, f"prod_{p}_",
                             stages, hard))
    prodfb = None
    if spec.schedule == "delayed_feedback":
        prodfb = [multiply(m, pl, Mux(tok_sel.lane_mask[p] & tok_sel.fb_on, ops.e_row, 0).as_signed(),
                           w_mul[p], E.width + Wf.width, f"prodfb_{p}_", stages, hard)
                  for p in range(P)]
    return prod, prodfb, w_mul


def odd_products(m, pl, spec, P, ops, stages, hard=None) -> list:
    """Two rows per token: each lane's second product, of the odd row — (f(x) or e_{2q+1}) ×
    (its odd-half weight, or f(x) when learning); the operand selects are the lane's own
    copies of :func:`lane_products`'s (the same token fields)."""
    X, E, Wf, G = spec.formats.x, spec.formats.e, spec.formats.w, spec.formats.w_guard
    tok_sel = pl.tokens[stages["sel"]]
    w_odd = [w >> G for w in ops.ws[1]] if G else ops.ws[1]
    mul_e = pl.lane_field("mul_e", stages["sel"], P)
    mul_f = pl.lane_field("mul_f", stages["sel"], P)
    out = []
    for p in range(P):
        opa = Mux(tok_sel.lane_mask[p], Mux(mul_e[p], ops.e_rows[1], ops.f[p]), 0)
        opb = Mux(mul_f[p], ops.f[p], w_odd[p])
        out.append(multiply(m, pl, opa.as_signed(), opb.as_signed(),
                            max(X.width, E.width) + max(Wf.width, X.width), f"prodo_{p}_",
                            stages, hard))
    return out


def balanced_sum(values):
    """Σ values as a balanced binary tree of adds: ceil(log2 n) adders deep (Python's ``sum``
    would chain n − 1 of them, and Yosys keeps the chain)."""
    values = list(values)
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def adder_tree(m, pl, prod, acc_width: int, stages, suffix: str = "") -> Signal:
    """Σ over lanes of the products, in two registered halves of balanced adder trees: groups
    of 2^ceil(levels/2) products in ``sum1``, their sum in ``sum2`` (levels = ceil(log2 P):
    at most 3 adders deep per stage up to 64 lanes, 4 up to 256)."""
    P = len(prod)
    levels = max(0, (P - 1).bit_length())
    group = 1 << ((levels + 1) // 2)              # products summed in the first half
    part = [pl.stage(balanced_sum(prod[i:i + group]), f"part{suffix}{i // group}_",
                     stages["sum1"])
            for i in range(0, P, group)]
    tree = Signal(signed(acc_width), name=f"tree{suffix}", reset_less=True)
    m.d.sync += tree.eq(balanced_sum(part))
    return tree


def feedback_sums(m, pl, spec, prod, prodfb, acc_width: int, n_cols: int, stages,
                  prod_odd=None) -> list:
    """Per lane Σ_k W[k, j] e[k] of its feedback column (lane-local accumulator over a column
    sweep, or, with ``delayed_feedback``, one accumulator per column the lane owns); returns
    the sums carried to the ``row`` stage. ``prod_odd`` (two rows per token): the odd rows'
    products — the pair's sum registered in ``sum1``, accumulated by the token there (the
    column's sum reaches ``row`` in the same cycle as with one row)."""
    S = stages
    P, A = len(prod), acc_width
    tok_mul, tok_sum1 = pl.tokens[S["mul"]], pl.tokens[S["sum1"]]
    lacc = [Signal(signed(A), name=f"lacc_{p}", reset_less=True) for p in range(P)]
    if prod_odd is not None:
        assert spec.schedule != "delayed_feedback"
        pair = [pl.stage(prod[p] + prod_odd[p], f"pairfb_{p}_s", S["sum1"]) for p in range(P)]
        with m.If(tok_sum1.valid & (tok_sum1.op == Op.FB)):
            for p in range(P):
                m.d.sync += lacc[p].eq(Mux(tok_sum1.first, 0, lacc[p]) + pair[p])
        return pl.carry(lacc, "fb", S["row"])
    with m.If(tok_mul.valid & (tok_mul.op == Op.FB)):
        for p in range(P):
            m.d.sync += lacc[p].eq(Mux(tok_mul.first, 0, lacc[p]) + prod[p])
    if spec.schedule == "delayed_feedback":
        colacc = [Array(Signal(signed(A), name=f"colacc_{p}_{c}", reset_less=True)
                        for c in range(n_cols))
                  for p in range(P)]
        with m.If(tok_mul.valid & (tok_mul.op == Op.FUSED) & ~tok_mul.bubble):
            for p in range(P):
                cell = colacc[p][tok_mul.c]
                m.d.sync += cell.eq(Mux(tok_mul.row == 0, 0, cell) + prodfb[p])
        fb_sum2 = pl.carry([Mux(tok_sum1.op == Op.FUSED, colacc[p][tok_sum1.c], lacc[p])
                          for p in range(P)], "fb", S["sum2"])
    else:
        fb_sum2 = pl.carry(lacc, "fb", S["sum2"])
    return pl.carry(fb_sum2, "fb", S["row"])


def row_accumulator(m, pl, tree, acc_width: int, stages, read=None, write=None,
                    by_col=(), suffix: str = "") -> Signal:
    """Σ over a prediction row's tokens of the tree sums (cleared by the row's first token),
    in ``row``. A sweep taken row by row adds to the previous token's sum; one taken column
    chunk by column chunk (connections ``by_col``) to the row's partial sum in the row
    accumulator memory (``read``, ``write``: its ports) — read for the token in ``mul`` by its
    row, the word registered (like every memory output) into ``sum2`` beside the token, the
    new sum written back from ``row``. The sweep visits the row again n_l ≥
    :data:`~pcforge.model.arch.schedule.ROW_ACC_MIN_ROWS` tokens later, after the write has
    landed."""
    S = stages
    tok_mul, tok_sum1, tok_sum2, tok_row = (pl.tokens[S[k]]
                                            for k in ("mul", "sum1", "sum2", "row"))
    acc_row = Signal(signed(acc_width), name=f"acc_row{suffix}", reset_less=True)
    prev = acc_row
    if by_col:
        # the read of a row's word (mul) comes after the write of its previous token (row)
        assert S["row"] - S["mul"] < ROW_ACC_MIN_ROWS

        def col_pred(tk):
            return (tk.op == Op.PRED) & Cat(*(tk.layer == l for l in by_col)).any()

        m.d.comb += [read.addr.eq(tok_mul.row), read.en.eq(col_pred(tok_mul))]
        part = pl.stage(read.data, f"acc_part{suffix}", S["sum2"])
        from_mem = pl.stage(col_pred(tok_sum1), f"acc_from_mem{suffix}", S["sum2"])
        prev = Mux(from_mem, part, acc_row)
        m.d.comb += [write.addr.eq(tok_row.row), write.data.eq(acc_row),
                     write.en.eq(tok_row.valid & col_pred(tok_row))]
    with m.If(tok_sum2.valid & ((tok_sum2.op == Op.PRED) | (tok_sum2.op == Op.FUSED))):
        m.d.sync += acc_row.eq(Mux(tok_sum2.first, 0, prev) + tree)
    return acc_row
