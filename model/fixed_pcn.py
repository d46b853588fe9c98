"""``FixedPCN``: the bit-exact integer model of the pcforge hardware datapath.

Every value is an int64 integer in a :class:`~pcforge.model.qformat.QFormat` of the spec; every
multiply, accumulate, shift, round and saturate happens here in the same order as in the
hardware. ``docs/datapath.md`` is the table of that order; the numbered steps below refer to it.

Formats: X = ``formats.x`` (x and f(x); f'(x) as an integer with X's fraction bits), E =
``formats.e`` (e and ε), Wf/Bf = ``formats.w``/``formats.b``, A = ``formats.acc`` (exact sums,
fraction bits ``F``). γ = g·2^-fg and α = m·2^-fa are exact constants. With
``formats.w_guard`` = G > 0 the weights are stored in Ws = ``formats.w_store`` (G more
fraction bits) and every product in (2) and (4) uses W >> G (floor), i.e. Wf; (7) rounds to
and saturates in Ws.

  (1) a_l, d_l = f(x_l), f'(x_l)                  activation unit (tables for tanh)
  (2) acc_l = Σ_j W_l[i,j]·a_{l-1}[j] · 2^(F−fx−fw) + b_l[i] · 2^(F−fb)    exact, width A
      (computed once per sample when layer l−1 is clamped: it cannot change)
  (3) e_l = E( x_l · 2^(F−fx) − acc_l )           round F→fe (E.rounding), fit E
  (4) ε_l = E( Σ_k W_{l+1}[k,i]·e_{l+1}[k] · 2^(F−fe−fw) )   for free l < L
  (5) δ_l = d_l·ε_l − e_l·2^fx                    exact, fraction fe+fx   (δ_L = −e_L·2^fx)
  (6) x_l ← X( x_l + round(g·δ_l, fe+fg → 0) )    round the increment, add, fit X
  (7) W_l ← Ws( W_l + round(m·e_l·a_{l−1}, fe+fx+fa → fw+G) ),  b_l ← Bf( b_l + round(m·e_l,
      fe+fa → fb) )                               learning, from the same e and a

Feed-forward initialisation: x_l = X(acc_l) (round F→fx) in layer order, for free layers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .activations import fixed_activation
from .float_pcn import FloatPCN
from .qformat import fit, requantize, round_shift
from .spec import PCSpec
from .weights import Weights

__all__ = ["FixedPCN", "FixedResult", "SaturationCounts", "stop_iterations", "stops",
           "fewest_iterations"]

#: Quantities whose saturation (or wrap) events are counted, per layer.
COUNTED = ("x", "e", "eps", "w", "b")


class SaturationCounts:
    """Overflow events per quantity and layer: ``counts['e'][l]`` is how many e_l values did not
    fit the E format (and were saturated or wrapped) so far."""

    def __init__(self, n_layers: int):
        self.counts = {k: [[0] for _ in range(n_layers)] for k in COUNTED}

    def __call__(self, kind: str, layer: int) -> list:
        return self.counts[kind][layer]

    def as_dict(self) -> dict:
        return {k: [c[0] for c in v] for k, v in self.counts.items()}

    def total(self) -> int:
        return sum(c[0] for v in self.counts.values() for c in v)

    def add(self, other: "SaturationCounts") -> "SaturationCounts":
        """Add ``other``'s counts to these (a run made of several parts); returns self."""
        for k, v in other.counts.items():
            for mine, theirs in zip(self.counts[k], v):
                mine[0] += theirs[0]
        return self


@dataclass
class FixedResult:
    """Outcome of one fixed-point relaxation of a batch.

    x, e        final state x(T) and its errors e(T), int64 lists over layers, (B, n_l)
    trace_x     x(t) for t = 0..T (t = 0: after initialisation)      — when traced
    trace_e     e(t) for t = 0..T−1, the errors computed in iteration t — when traced
    energy      (T+1, B) float energy from e(0..T)
    trace_w     (W, b) after every iteration's update (incremental learning, when traced)
    iterations  (B,) int: the iterations the hardware makes for each sample — T, or fewer
                with the exact stop (:func:`stop_iterations`); the traces and the energy
                still cover t = 0..T (after the stop every state repeats: that is why the stop
                is exact)
    """

    x: list
    e: list
    energy: np.ndarray
    trace_x: list = field(default_factory=list)
    trace_e: list = field(default_factory=list)
    trace_w: list = field(default_factory=list)
    iterations: np.ndarray = None

    @property
    def output(self) -> np.ndarray:
        return self.x[-1]


class FixedPCN:
    """Bit-exact fixed-point predictive coding network.

    ``W[l-1]`` (int64, Ws = Wf plus guard bits) and ``b[l-1]`` (int64, Bf) are the hardware's weight and bias memory
    contents for connection l; learning methods update them in place exactly as the hardware's
    read-modify-write does. ``weight_updates`` = [non-zero products α·e·f(x), those of them
    that rounded to a zero change] over all learning so far (sub-LSB updates lost).
    """

    def __init__(self, spec: PCSpec, W: list, b: list):
        self.spec = spec
        #: the learning rate of the next updates: the spec's α, or with ``alpha_runtime`` what
        #: :meth:`set_alpha` wrote (the core's α register)
        self.alpha = spec.alpha
        self.weight_updates = [0, 0]
        F = spec.formats
        if len(W) != spec.L or len(b) != spec.L:
            raise ValueError(f"need {spec.L} weight and bias arrays, got {len(W)} and {len(b)}")
        self.W, self.b = [], []
        for l in range(1, spec.L + 1):
            w = np.asarray(W[l - 1])
            v = np.asarray(b[l - 1])
            if w.shape != spec.weight_shape(l) or v.shape != (spec.sizes[l],):
                raise ValueError(f"W{l}/b{l} shapes {w.shape}/{v.shape} do not match the spec "
                                 f"{spec.weight_shape(l)}/({spec.sizes[l]},)")
            for arr, fmt, nm in ((w, F.w_store, f"W{l}"), (v, F.b, f"b{l}")):
                if arr.dtype.kind not in "iu" or arr.min(initial=0) < fmt.min_int \
                        or arr.max(initial=0) > fmt.max_int:
                    raise ValueError(f"{nm} must hold integers within {fmt}")
            self.W.append(w.astype(np.int64).copy())
            self.b.append(v.astype(np.int64).copy())
        self.sat = SaturationCounts(spec.n_layers)

    @classmethod
    def from_float(cls, spec: PCSpec, weights: Weights) -> "FixedPCN":
        """Quantise float weights into the W and B formats (counting saturated values)."""
        weights.check(spec)
        F = spec.formats
        sat = SaturationCounts(spec.n_layers)
        W = [F.w_store.from_float(w, sat("w", l + 1)) for l, w in enumerate(weights.W)]
        b = [F.b.from_float(v, sat("b", l + 1)) for l, v in enumerate(weights.b)]
        net = cls(spec, W, b)
        net.sat = sat
        return net

    def to_float_weights(self) -> Weights:
        F = self.spec.formats
        return Weights([F.w_store.to_float(w) for w in self.W],
                       [F.b.to_float(v) for v in self.b])

    def quantize(self, values, layer: int | None = None) -> np.ndarray:
        """Float values into the X format (for clamped inputs and targets)."""
        cnt = self.sat("x", layer) if layer is not None else None
        return self.spec.formats.x.from_float(values, cnt)

    # ---- datapath steps -----------------------------------------------------------------
    def activation(self, l: int, x: np.ndarray):
        """Step (1): (f(x_l), f'(x_l)) in X fraction bits."""
        s = self.spec
        return fixed_activation(s.activations[l], x, s.formats.x, s.table_bits)

    def prediction_acc(self, l: int, a_prev: np.ndarray) -> np.ndarray:
        """Step (2): exact acc_l = W_l a_{l-1} + b_l with F fraction bits, (B, n_l)."""
        F = self.spec.formats
        F_acc = F.acc.frac
        prod = a_prev @ self.mac_weights(l).T
        return (prod << (F_acc - F.x.frac - F.w.frac)) + (self.b[l - 1] << (F_acc - F.b.frac))

    def error(self, l: int, x_l: np.ndarray, acc: np.ndarray) -> np.ndarray:
        """Step (3): e_l = E(x_l·2^(F−fx) − acc_l)."""
        F = self.spec.formats
        return requantize((x_l << (F.acc.frac - F.x.frac)) - acc, F.acc.frac, F.e,
                          self.sat("e", l))

    def feedback(self, l: int, e_next: np.ndarray) -> np.ndarray:
        """Step (4): ε_l = E(W_{l+1}ᵀ e_{l+1}) for layer l < L."""
        F = self.spec.formats
        fb = (e_next @ self.mac_weights(l + 1)) << (F.acc.frac - F.e.frac - F.w.frac)
        return requantize(fb, F.acc.frac, F.e, self.sat("eps", l))

    def update(self, l: int, x_l, e_l, d_l, eps_l):
        """Steps (5)–(6): x_l + round(γ·(f'(x_l)·ε_l − e_l)), fitted to X."""
        F = self.spec.formats
        g = self.spec.gamma
        delta = -(e_l << F.x.frac)
        if eps_l is not None:
            delta = delta + d_l * eps_l
        inc = round_shift(delta * g.mantissa, F.e.frac + g.frac, F.x.rounding)
        return fit(x_l + inc, F.x, self.sat("x", l))

    def mac_weights(self, l: int) -> np.ndarray:
        """W_l as the multipliers see it: the stored weights without their guard bits
        (floor), in the ``w`` format."""
        g = self.spec.formats.w_guard
        return self.W[l - 1] >> g if g else self.W[l - 1]

    def set_alpha(self, mantissa: int):
        """Learn from now on with α = mantissa·2^−alpha.frac, as the core does after the host
        wrote its α register (``rates.alpha_runtime``; :meth:`PCSpec.alpha_at` checks it)."""
        self.alpha = self.spec.alpha_at(mantissa)

    def learn(self, e: list, a: list):
        """Step (7) for one sample: W_l += round(α e_l a_{l−1}ᵀ), b_l += round(α e_l)."""
        F = self.spec.formats
        al = self.alpha
        for l in range(1, self.spec.n_layers):
            el = e[l].reshape(-1)
            ap = a[l - 1].reshape(-1)
            p = (el[:, None] * ap[None, :]) * al.mantissa
            Ws = F.w_store
            dW = round_shift(p, F.e.frac + F.x.frac + al.frac - Ws.frac, Ws.rounding)
            moved = p != 0
            self.weight_updates[0] += int(np.count_nonzero(moved))
            self.weight_updates[1] += int(np.count_nonzero(moved & (dW == 0)))
            self.W[l - 1] = fit(self.W[l - 1] + dW, Ws, self.sat("w", l))
            db = round_shift(el * al.mantissa, F.e.frac + al.frac - F.b.frac, F.b.rounding)
            self.b[l - 1] = fit(self.b[l - 1] + db, F.b, self.sat("b", l))

    # ---- whole relaxations --------------------------------------------------------------
    def initial_state(self, clamped: dict, mask, init: str | None = None,
                      pins: dict | None = None) -> list:
        """x(0): clamped layers as given (ints in X), free layers feed-forward or zero; the
        pinned nodes of a free layer (``pins``, :meth:`PCSpec.pins`) as given, before the layers
        above are initialised from it (the core's initial sweeps write in layer order)."""
        spec = self.spec
        F = spec.formats
        init = init or spec.init
        pins = pins or {}
        B = {np.atleast_2d(v).shape[0] for v in clamped.values()}
        if len(B) != 1:
            raise ValueError(f"clamped layers have batch sizes {sorted(B)}; give one batch")
        B = B.pop()

        def given(l):
            if l not in clamped:
                what = "clamped by the mask" if mask[l] else "clamped node by node"
                raise ValueError(f"layer {l} is {what} but no values were given")
            v = np.atleast_2d(np.asarray(clamped[l]))
            if v.dtype.kind not in "iu":
                raise TypeError(f"clamped layer {l} must be integers in the X format "
                                "(use FixedPCN.quantize)")
            if v.shape != (B, spec.sizes[l]):
                raise ValueError(f"clamped layer {l} has shape {v.shape}; expected "
                                 f"({B}, {spec.sizes[l]})")
            return v.astype(np.int64)

        x = []
        for l in range(spec.n_layers):
            if mask[l]:
                x.append(given(l))
                continue
            if init == "feedforward" and l > 0:
                a, _ = self.activation(l - 1, x[l - 1])
                acc = self.prediction_acc(l, a)
                x.append(requantize(acc, F.acc.frac, F.x, self.sat("x", l)))
            else:
                x.append(np.zeros((B, spec.sizes[l]), dtype=np.int64))
            if l in pins:
                x[l] = np.where(pins[l], given(l), x[l])
        return x

    def errors(self, x: list, acts: list, cache: dict) -> list:
        """Steps (2)–(3) for every layer; ``cache`` holds acc_l of connections whose source
        layer is clamped (computed once per sample)."""
        e = [np.zeros_like(x[0])]
        for l in range(1, self.spec.n_layers):
            acc = cache.get(l)
            if acc is None:
                acc = self.prediction_acc(l, acts[l - 1][0])
            e.append(self.error(l, x[l], acc))
        return e

    def iterate(self, x: list, mask, cache: dict, e_prev: list | None = None,
                pins: dict | None = None):
        """One iteration: returns (e(t), a(t), x(t+1)). The feedback uses e(t) (schedule
        ``synchronous``) or ``e_prev`` = e(t−1) (``delayed_feedback``; None means zeros);
        pinned nodes (``pins``) keep their x."""
        L = self.spec.L
        acts = [self.activation(l, x[l]) for l in range(L)]
        e = self.errors(x, acts, cache)
        e_fb = e
        if self.spec.schedule == "delayed_feedback":
            e_fb = e_prev if e_prev is not None else [np.zeros_like(v) for v in e]
        new = []
        for l in range(L + 1):
            if mask[l]:
                new.append(x[l])
                continue
            eps = self.feedback(l, e_fb[l + 1]) if l < L else None
            d = acts[l][1] if l < L else None
            upd = self.update(l, x[l], e[l], d, eps)
            new.append(np.where(pins[l], x[l], upd) if pins and l in pins else upd)
        return e, [a for a, _ in acts], new

    def relax(self, clamped: dict, mask, *, iterations: int | None = None,
              init: str | None = None, learning: str | None = None,
              trace: bool = False, stop: bool | None = None,
              pins: dict | None = None) -> FixedResult:
        """Relax (and optionally learn) exactly as the hardware does.

        ``pins``: per-node clamps ({layer: bools (n,) or (B, n)}, :meth:`PCSpec.pins`; with
        the per-node entries of a named ``mask``): those nodes of a free layer keep the values
        given in ``clamped`` — their error is still computed and fed back, their x never moves.
        ``learning``: ``None`` (inference), ``'after_relaxation'`` (T iterations, a final error
        pass, one update) or ``'incremental'`` (an update after every iteration from that
        iteration's errors). Learning needs a batch of one sample: the hardware updates its
        weights between samples. ``stop``: apply the exact stop (default: the spec's ``stop``);
        the results are the same either way — only ``iterations`` (and the work done here)
        differ.
        """
        spec = self.spec
        pins = spec.pins(mask, pins)
        mask = spec.mask(mask)
        T = spec.iterations if iterations is None else iterations
        x = self.initial_state(clamped, mask, init, pins)
        B = x[0].shape[0]
        if learning is not None and B != 1:
            raise ValueError("fixed-point learning takes one sample at a time (batch of 1)")
        stopping = stops(spec, learning) if stop is None else (stop and stops(spec, learning))
        cache = self._clamped_predictions(x, mask)
        tx, te, tw, energies = ([x] if trace else []), [], [], []
        fe = spec.formats.e.frac
        e = None
        changed = []
        for t in range(T):
            e, a, new = self.iterate(x, mask, cache, e, pins)
            changed.append(np.any([np.any(new[l] != x[l], axis=1) for l in range(spec.n_layers)
                                   if not mask[l]] or [np.zeros(B, bool)], axis=0))
            x = new
            energies.append(_energy(e, fe))
            if learning == "incremental":
                self.learn(e, a)
                cache = self._clamped_predictions(x, mask)
                if trace:
                    tw.append(([w.copy() for w in self.W], [v.copy() for v in self.b]))
            if trace:
                tx.append(x)
                te.append(e)
            if stopping and t + 1 < T and \
                    np.all(stop_iterations(changed, T, spec.schedule) <= t + 1):
                # every sample's run has ended: the rest repeats the last state (padded)
                for _ in range(T - t - 1):
                    energies.append(energies[-1])
                    if trace:
                        tx.append(x)
                        te.append(e)
                break
        n = stop_iterations(changed, T, spec.schedule) if stopping and changed \
            else np.full(B, T, dtype=np.int64)
        acts = [self.activation(l, x[l]) for l in range(spec.L)]
        e = self.errors(x, acts, cache)
        energies.append(_energy(e, fe))
        if learning == "after_relaxation":
            self.learn(e, [a for a, _ in acts])
        return FixedResult(x=x, e=e, energy=np.array(energies), trace_x=tx, trace_e=te,
                           trace_w=tw, iterations=n)

    def _clamped_predictions(self, x: list, mask) -> dict:
        """acc_l of every connection whose source layer is clamped (constant over a sample)."""
        cache = {}
        for l in range(1, self.spec.n_layers):
            if mask[l - 1]:
                cache[l] = self.prediction_acc(l, self.activation(l - 1, x[l - 1])[0])
        return cache

    def infer(self, x0_int: np.ndarray, mode="inference", **kw) -> FixedResult:
        """Relax with the input layer clamped to integer values (X format)."""
        return self.relax({0: x0_int}, mode, **kw)

    def train_sample(self, x0_int: np.ndarray, target_int: np.ndarray, *,
                     learning: str | None = None, mode="training") -> FixedResult:
        """One supervised sample: clamp input and target, relax and learn (hardware order)."""
        learning = learning or self.spec.learning
        return self.relax({0: x0_int, self.spec.L: target_int}, mode, learning=learning)


def stops(spec: PCSpec, learning: str | None = None) -> bool:
    """The exact stop applies to this run: the spec asks for it and the weights stay put
    while relaxing (not incremental learning)."""
    return spec.stop == "exact" and learning != "incremental"


def stop_iterations(changed, T: int, schedule: str) -> np.ndarray:
    """How many of the T iterations each sample runs under the exact stop, from ``changed``
    ((t, B) bools: iteration t wrote some x word with a new value; t may stop short of T).

    An iteration maps the state to the next one by a fixed function (the weights, clamped
    values and cached predictions do not move while relaxing), so once the state repeats, every
    later iteration repeats it and the final pass sees the same x: stopping there is exact.
    The state is x under ``synchronous``; under ``delayed_feedback`` it is x together with the
    errors fed back, e(t−1) = e(x(t−1)) — it repeats after *two* iterations that change no x.

    The core decides at the end of iteration k (its ``next`` marker). ``synchronous``: after
    iteration 0 from iteration 0 itself (the marker waits for its writes: a state at rest from
    the start, as with feed-forward initialisation and only the input clamped, costs one
    iteration), after iteration k ≥ 1 from iteration k−1 (whose x writes have all landed: one
    iteration of lag instead of a pipeline drain per iteration) — k + 1 iterations.
    ``delayed_feedback``: after iteration k ≥ 2 when iterations k−1 and k−2 changed nothing.
    The decision is only taken while iterations remain (k + 1 < T): a run with fewer than T
    iterations is a stopped one, and skips the final error pass (the quiet iteration's errors
    are those of the final x)."""
    if len(changed) == 0:
        return np.full(1, T, dtype=np.int64)
    changed = np.asarray(changed, dtype=bool).reshape(len(changed), -1)
    n = np.full(changed.shape[1], T, dtype=np.int64)
    if schedule != "delayed_feedback":                 # the first marker reads its own flag
        n = np.where(~changed[0], 1, n)
    first = 2 if schedule == "delayed_feedback" else 1
    for k in range(first, min(T - 1, len(changed) + 1)):
        clean = ~changed[k - 1]
        if schedule == "delayed_feedback":
            clean = clean & ~changed[k - 2]
        n = np.where((n == T) & clean, k + 1, n)
    return n


def fewest_iterations(spec: PCSpec) -> int:
    """The fewest iterations a run can make: T, or with the exact stop 1 (``synchronous``) or
    3 (``delayed_feedback``) when T allows — a state at rest from the start."""
    if spec.stop != "exact":
        return spec.iterations
    return min(spec.iterations, 3 if spec.schedule == "delayed_feedback" else 1)


def _energy(e: list, frac: int) -> np.ndarray:
    """The float energy ½ Σ ||e_l||² of integer errors with ``frac`` fraction bits."""
    return FloatPCN.energy([np.ldexp(v.astype(np.float64), -frac) for v in e])
