"""Phase-change memory (PCM) device statistics: programming noise, drift and 1/f read noise.

The equations and constants follow the statistical PCM model that IBM's aihwkit implements as
``PCMLikeNoiseModel`` (documented in its "Inference and PCM statistical model" page), calibrated
on one million PCM devices in

* Nandakumar et al., "Phase-change memory models for deep learning training and inference",
  ICECS 2019;
* Joshi et al., "Accurate deep neural network inference using computational phase-change
  memory", Nature Communications 11, 2473 (2020);
* Le Gallo et al., "Collective structural relaxation in phase-change memory devices",
  Adv. Electron. Mater. 4, 1700627 (2018) (the drift law).

Units: conductances in µS; ``g_max`` (25 µS in the calibration) is the largest conductance that
can be programmed reliably; ``gt = g_target / g_max`` ∈ [0, 1] is the normalised target. Times
in seconds, counted from the end of programming.

* programming (closed-loop write-verify residual):
  g_prog = g_T + N(0, σ_prog),  σ_prog = max(c0 + c1·gt + c2·gt², 0) · g_max / 25 µS with
  (c0, c1, c2) = (0.26348, 1.9650, −1.1731) µS, clipped at 0;
* drift: g_drift(t) = g_prog · ((t + t0) / t0)^(−ν), t0 = 20 s; ν ~ |N(μ_ν, σ_ν)| per device with
  μ_ν = clip(−0.0155 ln gt + 0.0244, 0.049, 0.1), σ_ν = clip(−0.0125 ln gt − 0.0059, 0.008,
  0.045);
* accumulated 1/f read noise (S_G/G² = Q/f integrated over the bandwidth):
  σ_read(t) = |g_drift(t)| · Q_s · sqrt(ln((t + t0 + t_read) / (2 t_read))), Q_s = min(0.0088 /
  gt^0.65, 0.2), t_read = 250 ns; one sample per evaluation time (frozen while a data set is
  evaluated, as in aihwkit), clipped at 0.

Each term has a scale (``prog_scale``, ``drift_scale``, ``read_scale``; 1 = the measured device,
0 = off), as in aihwkit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PCMStatistics"]

#: normalised conductances below this are treated as this (the logs and powers above)
_GT_FLOOR = 1e-7


@dataclass(frozen=True)
class PCMStatistics:
    """The PCM noise model. All methods are pure functions of their arguments and the RNG."""

    g_max: float = 25.0                     # µS
    prog_coeff: tuple = (0.26348, 1.9650, -1.1731)   # µS, for g_max = 25 µS
    t0: float = 20.0                        # s, first read after programming
    t_read: float = 250e-9                  # s, read pulse width
    prog_scale: float = 1.0
    drift_scale: float = 1.0
    read_scale: float = 1.0

    def _gt(self, g_target: np.ndarray) -> np.ndarray:
        return np.clip(np.abs(g_target) / self.g_max, _GT_FLOOR, None)

    # ---- programming ----------------------------------------------------------------------
    def programming_sigma(self, g_target: np.ndarray) -> np.ndarray:
        """σ_prog in µS for target conductances ``g_target`` (µS), before ``prog_scale``."""
        gt = np.abs(g_target) / self.g_max
        c0, c1, c2 = self.prog_coeff
        return np.maximum(c0 + c1 * gt + c2 * gt * gt, 0.0) * self.g_max / 25.0

    def program(self, g_target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Programmed conductances (µS), ≥ 0."""
        noise = self.prog_scale * self.programming_sigma(g_target)
        return np.maximum(g_target + noise * rng.standard_normal(np.shape(g_target)), 0.0)

    # ---- drift ------------------------------------------------------------------------------
    def drift_moments(self, g_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(μ_ν, σ_ν) of the drift exponent for target conductances (µS)."""
        lg = np.log(self._gt(g_target))
        mu = np.clip(-0.0155 * lg + 0.0244, 0.049, 0.1)
        sig = np.clip(-0.0125 * lg - 0.0059, 0.008, 0.045)
        return mu, sig

    def drift_exponents(self, g_target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """ν per device: |N(μ_ν, σ_ν)| · ``drift_scale``."""
        mu, sig = self.drift_moments(g_target)
        return np.abs(mu + sig * rng.standard_normal(np.shape(g_target))) * self.drift_scale

    def drift(self, g_prog: np.ndarray, nu: np.ndarray, t: np.ndarray | float) -> np.ndarray:
        """g_prog · ((t + t0) / t0)^(−ν): conductance t seconds after programming."""
        return g_prog * ((np.asarray(t, dtype=np.float64) + self.t0) / self.t0) ** (-nu)

    # ---- read noise ---------------------------------------------------------------------------
    def read_sigma(self, g_drift: np.ndarray, g_target: np.ndarray,
                   t: np.ndarray | float) -> np.ndarray:
        """σ of the accumulated 1/f read noise (µS) t seconds after programming."""
        qs = np.minimum(0.0088 / self._gt(g_target) ** 0.65, 0.2)
        tt = np.asarray(t, dtype=np.float64) + self.t0
        return np.abs(g_drift) * qs * np.sqrt(np.log((tt + self.t_read) / (2 * self.t_read)))

    def read(self, g_drift: np.ndarray, g_target: np.ndarray, t, rng) -> np.ndarray:
        """One read-noise sample on drifted conductances (µS), ≥ 0."""
        sig = self.read_scale * self.read_sigma(g_drift, g_target, t)
        return np.maximum(g_drift + sig * rng.standard_normal(np.shape(g_drift)), 0.0)
