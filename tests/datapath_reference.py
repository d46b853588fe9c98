"""A deliberately naive, scalar, Python-int reference of the datapath table in docs/datapath.md.

Independent of pcforge.model.fixed_pcn (no numpy arithmetic, no shared helpers except the spec
object): written from the table, loop by loop, with Python's unbounded ints. FixedPCN must equal
it exactly; if both were wrong the same way, the table would be wrong too.
"""
import math


def rshift(v: int, s: int, mode: str) -> int:
    if s <= 0:
        return v << -s
    q, r = divmod(v, 1 << s)          # floor division: r in [0, 2^s)
    half = 1 << (s - 1)
    if mode == "floor":
        return q
    if mode == "half_up":
        return q + (1 if r >= half else 0)
    if mode == "half_even":
        return q + (1 if r > half or (r == half and q % 2 == 1) else 0)
    raise ValueError(mode)


def fit(v: int, fmt) -> int:
    lo, hi = -(1 << (fmt.width - 1)), (1 << (fmt.width - 1)) - 1
    if lo <= v <= hi:
        return v
    if fmt.overflow == "saturate":
        return max(lo, min(hi, v))
    v &= (1 << fmt.width) - 1
    return v - (1 << fmt.width) if v > hi else v


def activation(name, x, X, table_bits):
    one = 1 << X.frac
    if name == "identity":
        return x, one
    if name == "relu":
        return (x if x > 0 else 0), (one if x > 0 else 0)
    if name == "hardtanh":
        return max(-one, min(one, x)), (one if -one < x < one else 0)
    # tanh table, rebuilt from its definition
    r = min(2, X.width - X.frac - 1)
    span = r + 1 + X.frac
    bits = min(table_bits, span)
    shift = span - bits
    lo = -(1 << (r + X.frac))
    hi = min(-lo - 1, (1 << (X.width - 1)) - 1)
    addr = (max(lo, min(hi, x)) - lo) >> shift
    c = (lo + (addr + 0.5) * (1 << shift)) / one
    t = math.tanh(c)
    q = lambda v: fit(round(v * one), X)          # Python round(): half to even, exact
    return q(t), q(1.0 - t * t)


def relax(spec, W, b, clamped, mask, learning=None, stop=False):
    """One sample. W[l-1][i][j], b[l-1][i] Python ints; clamped {l: list of ints}.
    Returns (trace_x, trace_e, final_e, W, b) with W, b updated when learning.

    ``stop``: the exact stop as the core makes it, written out from its description: at the end
    of iteration 0 the run stops when iteration 0 changed no x, at the end of iteration k ≥ 1
    when iteration k−1 changed no x (``delayed_feedback``: k ≥ 2 and iterations k−1 and k−2
    changed no x); the traces then end there (the run made len(trace_e) iterations)."""
    F = spec.formats
    X, E, Wf, Bf, A = F.x, F.e, F.w, F.b, F.acc
    G, Ws = F.w_guard, F.w_store          # stored weights: G guard bits; products use W >> G
    L = spec.L
    sizes = spec.sizes
    W = [[list(r) for r in w] for w in W]
    b = [list(v) for v in b]
    g, al = spec.gamma, spec.alpha

    def acts(x):
        return [[activation(spec.activations[l], v, X, spec.table_bits) for v in x[l]]
                for l in range(L)]

    def pred_acc(l, a_prev):
        return [sum((W[l - 1][i][j] >> G) * a_prev[j][0] for j in range(sizes[l - 1]))
                * (1 << (A.frac - X.frac - Wf.frac)) + b[l - 1][i] * (1 << (A.frac - Bf.frac))
                for i in range(sizes[l])]

    def errors(x, a):
        e = [[0] * sizes[0]]
        for l in range(1, L + 1):
            acc = pred_acc(l, a[l - 1])
            e.append([fit(rshift(x[l][i] * (1 << (A.frac - X.frac)) - acc[i], A.frac - E.frac,
                                 E.rounding), E) for i in range(sizes[l])])
        return e

    def learn(e, a):
        for l in range(1, L + 1):
            for i in range(sizes[l]):
                for j in range(sizes[l - 1]):
                    p = e[l][i] * a[l - 1][j][0] * al.mantissa
                    W[l - 1][i][j] = fit(W[l - 1][i][j] + rshift(
                        p, E.frac + X.frac + al.frac - Ws.frac, Ws.rounding), Ws)
                b[l - 1][i] = fit(b[l - 1][i] + rshift(e[l][i] * al.mantissa,
                                                       E.frac + al.frac - Bf.frac, Bf.rounding), Bf)

    x = []
    for l in range(L + 1):
        if mask[l]:
            x.append([int(v) for v in clamped[l]])
        elif spec.init == "feedforward" and l > 0:
            a_prev = [activation(spec.activations[l - 1], v, X, spec.table_bits) for v in x[l - 1]]
            x.append([fit(rshift(v, A.frac - X.frac, X.rounding), X) for v in pred_acc(l, a_prev)])
        else:
            x.append([0] * sizes[l])
    tx, te = [x], []
    e_prev = [[0] * n for n in sizes]
    quiet = []                     # per iteration: it wrote no x word with a new value
    delayed = spec.schedule == "delayed_feedback"
    for k in range(spec.iterations):
        a = acts(x)
        e = errors(x, a)
        e_fb = e_prev if spec.schedule == "delayed_feedback" else e
        e_prev = e
        new = []
        for l in range(L + 1):
            if mask[l]:
                new.append(x[l])
                continue
            row = []
            for i in range(sizes[l]):
                delta = -(e[l][i] << X.frac)
                if l < L:
                    fb = sum((W[l][k][i] >> G) * e_fb[l + 1][k] for k in range(sizes[l + 1])) \
                        * (1 << (A.frac - E.frac - Wf.frac))
                    eps = fit(rshift(fb, A.frac - E.frac, E.rounding), E)
                    delta += a[l][i][1] * eps
                inc = rshift(delta * g.mantissa, E.frac + g.frac, X.rounding)
                row.append(fit(x[l][i] + inc, X))
            new.append(row)
        if learning == "incremental":
            learn(e, a)
        quiet.append(new == x)
        x = new
        tx.append(x)
        te.append(e)
        if stop and learning != "incremental" and (
                (not delayed and k == 0 and quiet[0])
                or (k >= (2 if delayed else 1) and quiet[k - 1]
                    and (not delayed or quiet[k - 2]))):
            break
    a = acts(x)
    e = errors(x, a)
    if learning == "after_relaxation":
        learn(e, a)
    return tx, te, e, W, b
