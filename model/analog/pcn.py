"""``AnalogPCN``: the predictive coding network on analog crossbars.

The dynamics are FloatPCN's (the same relaxation, clamp masks, schedules and Hebbian rule) —
only the two matrix-vector products and the weight updates move onto the substrate:

* prediction mu_l = W_l f(x_{l−1}) + b_l is a forward read of crossbar l (every iteration: an
  analog read is never cached, so each one carries its own noise);
* feedback W_{l+1}ᵀ e_{l+1} is a transposed read of crossbar l + 1 (the same devices);
* learning W_l += α e_l f(x_{l−1})ᵀ (and b) is requested from the crossbar as pulses
  (:meth:`Crossbar.update`); the products e f(x)ᵀ are formed in the digital periphery from
  the two nodes each synapse connects, so learning stays local.

Relaxation is the explicit Euler scheme of the continuous-time dynamics
τ_x dx/dt = −e + f'(x) ⊙ Wᵀ e_next with dt/τ_x = γ (:mod:`pcforge.model.analog.continuous` shows that
FloatPCN converges to the ODE as γ shrinks, and with :class:`ContinuousPCN` an ideal crossbar
network can be integrated by an adaptive solver instead). With ``AnalogConfig()`` (every
non-ideality off) AnalogPCN equals FloatPCN up to float64 rounding (tests).
"""
from __future__ import annotations

import numpy as np

from ..float_pcn import FloatPCN
from ..spec import PCSpec
from ..weights import Weights
from .config import AnalogConfig
from .crossbar import Crossbar

__all__ = ["AnalogPCN"]


class AnalogPCN(FloatPCN):
    """A :class:`FloatPCN` whose products and updates run on one :class:`Crossbar` per layer.

    ``weights`` are the targets programmed at t = 0; ``cfg.seed`` fixes the chip (its faults
    and programming noise) and the noise of every later read and update.
    """

    cache_predictions = False

    def __init__(self, spec: PCSpec, weights: Weights, cfg: AnalogConfig | None = None):
        super().__init__(spec, weights)
        self.cfg = cfg or AnalogConfig()
        seq = np.random.SeedSequence(self.cfg.seed)
        fab, reads, updates = (np.random.default_rng(s) for s in seq.spawn(3))
        self.crossbars = [Crossbar(W, b, self.cfg, (fab, reads, updates))
                          for W, b in zip(self.W, self.b)]
        self._sync()

    def _sync(self):
        """Mirror the arrays' current (noise-free per-read) weights in ``self.W``/``self.b``."""
        for l, xb in enumerate(self.crossbars):
            self.W[l], self.b[l] = xb.weights

    def set_time(self, t: float):
        """Move every array to ``t`` s after programming (drift, read noise, compensation)."""
        for xb in self.crossbars:
            xb.set_time(t)
        self._sync()

    def predict(self, l: int, x_prev: np.ndarray) -> np.ndarray:
        return self.crossbars[l - 1].forward(self.act(l - 1, x_prev))

    def feedback(self, l: int, e_next: np.ndarray) -> np.ndarray:
        return self.crossbars[l].backward(e_next)

    def apply(self, dW: list, db: list, lr: float):
        """Request W_l += lr · dW_l, b_l += lr · db_l as pulses on every crossbar."""
        for l, xb in enumerate(self.crossbars):
            xb.update(lr * dW[l], lr * db[l])
        self._sync()
