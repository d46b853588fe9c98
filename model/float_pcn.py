"""``FloatPCN``: the float64 reference predictive coding network, vectorised over a batch.

Mathematics (layers 0..L, batch rows):

    mu_l = f_{l-1}(x_{l-1}) W_lᵀ + b_l           (l = 1..L)
    e_l  = x_l − mu_l,   e_0 = 0                 (no prior on layer 0)
    F    = ½ Σ_l ||e_l||²                        (energy, per sample)
    x_l ← x_l + γ (−e_l + f_l'(x_l) ⊙ e_{l+1} W_{l+1})   for free layers (no feedback at l = L)
    ΔW_l = α e_lᵀ f_{l-1}(x_{l-1}) / B,  Δb_l = α mean(e_l)      (Hebbian, local)

``spec.schedule``: ``synchronous`` — every iteration computes all errors from the current
state, then updates every free layer at once (and, for incremental learning, every weight from
the same errors); ``delayed_feedback`` — the same, but the feedback term uses the previous
iteration's errors. A clamp mask (``spec.mask(mode)``) says which layers are held fixed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .activations import f_float, fprime_float
from .spec import PCSpec
from .weights import Weights

__all__ = ["FloatPCN", "RelaxResult"]


@dataclass
class RelaxResult:
    """Outcome of one relaxation over a batch.

    x, e     final state and the errors computed from it (lists over layers, (B, n_l) each)
    energy   (T+1, B): energy of the state before each iteration and of the final state
    updates  for incremental learning: the number of weight updates applied
    """

    x: list
    e: list
    energy: np.ndarray
    updates: int = 0
    trace_x: list = field(default_factory=list)

    @property
    def output(self) -> np.ndarray:
        return self.x[-1]


class FloatPCN:
    """Float64 predictive coding network over a :class:`PCSpec` and :class:`Weights`.

    The weights are held (and updated by the learning methods) in ``self.W`` and ``self.b``.
    Subclasses that compute the two matrix-vector products elsewhere (an analog crossbar,
    :class:`pcforge.model.analog.pcn.AnalogPCN`) override :meth:`predict` and :meth:`feedback`.
    """

    #: reuse the prediction from a clamped layer for the whole relaxation (it cannot change
    #: without learning); a substrate whose every read is noisy sets this to False.
    cache_predictions = True

    def __init__(self, spec: PCSpec, weights: Weights):
        weights.check(spec)
        self.spec = spec
        self.W = [np.array(w, dtype=np.float64) for w in weights.W]
        self.b = [np.array(v, dtype=np.float64) for v in weights.b]

    @property
    def weights(self) -> Weights:
        return Weights([w.copy() for w in self.W], [v.copy() for v in self.b])

    # ---- building blocks ----------------------------------------------------------------
    def act(self, l: int, x: np.ndarray) -> np.ndarray:
        return f_float(self.spec.activations[l], x)

    def act_prime(self, l: int, x: np.ndarray) -> np.ndarray:
        return fprime_float(self.spec.activations[l], x)

    def predict(self, l: int, x_prev: np.ndarray) -> np.ndarray:
        """mu_l from x_{l-1}, (B, n_l)."""
        return self.act(l - 1, x_prev) @ self.W[l - 1].T + self.b[l - 1]

    def feedback(self, l: int, e_next: np.ndarray) -> np.ndarray:
        """W_{l+1}ᵀ e_{l+1} for layer l, (B, n_l)."""
        return e_next @ self.W[l]

    def errors(self, x: list, cache: dict | None = None) -> list:
        """e_0..e_L for a state (e_0 is zero). ``cache`` maps l → mu_l for connections whose
        source layer is clamped (constant during a relaxation without learning)."""
        e = [np.zeros_like(x[0])]
        for l in range(1, self.spec.n_layers):
            mu = cache.get(l) if cache else None
            e.append(x[l] - (self.predict(l, x[l - 1]) if mu is None else mu))
        return e

    @staticmethod
    def energy(e: list) -> np.ndarray:
        """F = ½ Σ ||e_l||², per sample (B,)."""
        return 0.5 * sum(np.sum(v * v, axis=1) for v in e)

    def feedforward(self, x0: np.ndarray) -> list:
        """The feed-forward pass x_l = mu_l, l = 1..L, from the input x0 (B, n_0)."""
        x = [np.atleast_2d(np.asarray(x0, dtype=np.float64))]
        for l in range(1, self.spec.n_layers):
            x.append(self.predict(l, x[-1]))
        return x

    def initial_state(self, clamped: dict, mask, init: str | None = None,
                      pins: dict | None = None) -> list:
        """The state before relaxation.

        ``clamped`` maps layer index → values (B, n_l) for every clamped layer (and every layer
        with pinned nodes). Free layers start at their feed-forward prediction
        (``init='feedforward'``, computed in layer order from whatever is below them) or at 0
        (``'zero'``); pinned nodes (``pins``: {layer: bools}) at their given values.
        """
        spec = self.spec
        pins = spec.pins(mask, pins) if pins is None else pins
        mask = spec.mask(mask)
        init = init or spec.init
        B = _batch_of(clamped)
        for l, m in enumerate(mask):
            if (m or l in pins) and l not in clamped:
                what = "clamped by the mask" if m else "clamped node by node"
                raise ValueError(f"layer {l} is {what} but no values were given")

        def given(l):
            v = np.asarray(clamped[l], dtype=np.float64).reshape(B, -1)
            if v.shape[1] != spec.sizes[l]:
                raise ValueError(f"clamped layer {l} has {v.shape[1]} values per sample; "
                                 f"the spec's layer {l} has {spec.sizes[l]}")
            return v.copy()

        x = []
        for l in range(spec.n_layers):
            if mask[l]:
                x.append(given(l))
                continue
            if init == "feedforward" and l > 0:
                x.append(self.predict(l, x[l - 1]))
            else:
                x.append(np.zeros((B, spec.sizes[l])))
            if l in pins:
                x[l] = np.where(pins[l], given(l), x[l])
        return x

    def step(self, x: list, e: list, mask, gamma: float, e_fb: list | None = None,
             pins: dict | None = None) -> list:
        """One state update from errors ``e`` of state ``x``; the feedback uses ``e_fb``
        (default ``e``: the synchronous schedule; the previous errors for
        ``delayed_feedback``); pinned nodes (``pins``) keep their x."""
        e_fb = e if e_fb is None else e_fb
        L = self.spec.L
        new = []
        for l in range(L + 1):
            if mask[l]:
                new.append(x[l])
                continue
            d = -e[l]
            if l < L:
                d = d + self.act_prime(l, x[l]) * self.feedback(l, e_fb[l + 1])
            if pins and l in pins:
                d = np.where(pins[l], 0.0, d)
            new.append(x[l] + gamma * d)
        return new

    def hebbian(self, x: list, e: list) -> tuple[list, list]:
        """The local updates' directions: (e_lᵀ f(x_{l-1}) / B, mean e_l) for l = 1..L."""
        B = x[0].shape[0]
        dW = [e[l].T @ self.act(l - 1, x[l - 1]) / B for l in range(1, self.spec.n_layers)]
        db = [e[l].mean(axis=0) for l in range(1, self.spec.n_layers)]
        return dW, db

    def apply(self, dW: list, db: list, lr: float):
        """W_l += lr · dW_l, b_l += lr · db_l."""
        for l in range(self.spec.L):
            self.W[l] += lr * dW[l]
            self.b[l] += lr * db[l]

    # ---- relaxation and learning --------------------------------------------------------
    def relax(self, clamped: dict, mask, *, iterations: int | None = None,
              gamma: float | None = None, init: str | None = None, learn=None,
              trace: bool = False, pins: dict | None = None) -> RelaxResult:
        """Relax a batch for T iterations under a clamp mask (``pins``: per-node clamps of free
        layers, as :meth:`FixedPCN.relax`).

        ``learn`` is ``None`` (inference) or a callable ``learn(dW, db)`` that applies one
        weight update (an optimizer step); with it, every iteration ends with a weight update
        from that iteration's errors (incremental PC). For learning after relaxation call
        :meth:`hebbian` on the result.
        """
        spec = self.spec
        pins = spec.pins(mask, pins)
        mask = spec.mask(mask)
        T = spec.iterations if iterations is None else iterations
        g = spec.gamma.value if gamma is None else gamma
        x = self.initial_state(clamped, mask, init, pins)
        energies, xs = [], []
        updates = 0
        cache = None if learn is not None or not self.cache_predictions else {
            l: self.predict(l, x[l - 1]) for l in range(1, spec.n_layers) if mask[l - 1]}
        delayed = spec.schedule == "delayed_feedback"
        e_prev = [np.zeros_like(v) for v in x]
        for _ in range(T):
            e = self.errors(x, cache)
            energies.append(self.energy(e))
            if trace:
                xs.append([v.copy() for v in x])
            x_next = self.step(x, e, mask, g, e_prev if delayed else e, pins)
            e_prev = e
            if learn is not None:
                learn(*self.hebbian(x, e))
                updates += 1
            x = x_next
        e = self.errors(x, cache)
        energies.append(self.energy(e))
        if trace:
            xs.append([v.copy() for v in x])
        return RelaxResult(x=x, e=e, energy=np.array(energies), updates=updates, trace_x=xs)

    def infer(self, x0: np.ndarray, mode: str = "inference", **kw) -> np.ndarray:
        """Output layer x_L after relaxation with the input clamped."""
        return self.relax({0: x0}, mode, **kw).output

    def train_batch(self, x0: np.ndarray, target: np.ndarray, *, step, learning=None,
                    mode: str = "training") -> RelaxResult:
        """One supervised batch: clamp input and target, relax, update the weights.

        ``step(dW, db)`` applies an update direction (an optimizer); ``learning`` overrides the
        spec's ``after_relaxation`` / ``incremental``.
        """
        learning = learning or self.spec.learning
        clamped = {0: x0, self.spec.L: target}
        if learning == "incremental":
            return self.relax(clamped, mode, learn=step)
        res = self.relax(clamped, mode)
        step(*self.hebbian(res.x, res.e))
        return res

    def zil_updates(self, x0: np.ndarray, target: np.ndarray) -> tuple[list, list]:
        """Zero-divergence inference learning (Song et al. 2020) for one batch.

        Feed-forward initialisation, γ = 1, input and target clamped; W_l's update is taken from
        the errors of step t = L − l (and f(x_{l-1}) at that step). Returns (dW, db) in the
        same convention as :meth:`hebbian`: they equal −∂(½||target − out||²)/∂W averaged over
        the batch, i.e. exactly the backprop gradient step direction.
        """
        L = self.spec.L
        mask = tuple(l in (0, L) for l in range(L + 1))
        x = self.initial_state({0: x0, L: target}, mask, "feedforward")
        dW, db = [None] * L, [None] * L
        for t in range(L):
            e = self.errors(x)
            l = L - t
            gW, gb = self.hebbian(x, e)
            dW[l - 1], db[l - 1] = gW[l - 1], gb[l - 1]
            x = self.step(x, e, mask, 1.0)
        return dW, db


def _batch_of(clamped: dict) -> int:
    if not clamped:
        raise ValueError("give the values of at least one clamped layer")
    sizes = {np.atleast_2d(np.asarray(v)).shape[0] for v in clamped.values()}
    if len(sizes) != 1:
        raise ValueError(f"clamped layers have different batch sizes {sorted(sizes)}")
    return sizes.pop()
