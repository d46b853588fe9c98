"""``Crossbar``: one layer's [W | b] on differential conductance pairs, read both ways.

Mapping (aihwkit's single-pair converter): w_max = headroom · max |[W | b]| of the layer; a weight w is
programmed as g⁺ = g_max · max(w, 0) / w_max and g⁻ = g_max · max(−w, 0) / w_max (µS; a
device's ``g_target`` is what it was last written to, which sets its noise level) and read
as w = (γ⁺ g⁺ − γ⁻ g⁻) · w_max / g_max, where γ are the devices' static read gains (device-to-
device variation; 0 for a stuck-off device). The bias is one more column whose input is the
constant 1, so it sees the same devices and periphery as the weights.

Reads: :meth:`forward` computes W u + b (prediction), :meth:`backward` Wᵀ e (feedback) from the
same devices — an analog array is read by rows or by columns without a transposed copy, like
the digital core's local weight memories. Every read goes through the periphery of
:class:`AnalogConfig` (DAC with abs-max noise management, short-term weight noise, output
noise, ADC, drift compensation). Device state changes only by :meth:`set_time` (drift and the
frozen 1/f read-noise sample) and :meth:`update` (pulsed learning).
"""
from __future__ import annotations

import numpy as np

from .config import AnalogConfig
from .pcm import PCMStatistics

__all__ = ["Crossbar", "quantize_symmetric"]


def quantize_symmetric(v: np.ndarray, bits: int, bound: float = 1.0) -> np.ndarray:
    """Clip to ±bound and round to 2^(bits−1) − 1 uniform levels per sign (and 0)."""
    q = (1 << (bits - 1)) - 1
    return np.round(np.clip(v, -bound, bound) * (q / bound)) * (bound / q)


class Crossbar:
    """One layer's weights and bias, (n_out, n_in + 1), on a PCM-like crossbar.

    ``rngs``: (fabrication, reads, updates) generators, so that a chip's static faults do not
    depend on how many reads were made before.
    """

    def __init__(self, W: np.ndarray, b: np.ndarray, cfg: AnalogConfig, rngs):
        self.cfg = cfg
        self.fab_rng, self.read_rng, self.update_rng = rngs
        self.pcm = PCMStatistics(g_max=cfg.g_max, prog_scale=cfg.prog_noise,
                                 drift_scale=cfg.drift, read_scale=cfg.read_noise)
        wa = np.concatenate([np.asarray(W, np.float64), np.asarray(b, np.float64)[:, None]], 1)
        self.n_out, self.n_in = W.shape
        self.w_max = cfg.headroom * (float(np.max(np.abs(wa))) or 1.0)
        g = cfg.g_max / self.w_max
        # the target conductances of both devices, stacked (2, n_out, n_in + 1): 0 = g⁺, 1 = g⁻
        self.g_target = np.stack([np.maximum(wa, 0) * g, np.maximum(-wa, 0) * g])
        shape = self.g_target.shape
        rng = self.fab_rng
        self.gain = np.maximum(1 + cfg.d2d_gain * rng.standard_normal(shape), 0.0)
        self.gain[rng.random(shape) < cfg.stuck_off] = 0.0
        self.g_prog = self.pcm.program(self.g_target, rng) if cfg.prog_noise else \
            self.g_target.copy()
        self.nu = self.pcm.drift_exponents(self.g_target, rng) if cfg.drift else \
            np.zeros(shape)
        self.t_prog = np.zeros(shape)          # s, when each device was last written
        self.saturated = 0                     # update pulses clipped at g_max or 0
        # drift-compensation reference: the all-ones read right after programming
        self._ref = self._ones_read(self._conductance(0.0, noise=False))
        self.set_time(cfg.t_inference)

    # ---- device state ---------------------------------------------------------------------
    def _conductance(self, t: float, noise: bool) -> np.ndarray:
        age = np.maximum(t - self.t_prog, 0.0)
        g = self.pcm.drift(self.g_prog, self.nu, age) if self.cfg.drift else self.g_prog
        if noise and self.cfg.read_noise:
            g = self.pcm.read(g, self.g_target, age, self.read_rng)
        return g

    def _ones_read(self, g: np.ndarray) -> float:
        w = self.gain[0] * g[0] - self.gain[1] * g[1]
        return float(np.sum(np.abs(w.sum(axis=1))))

    def set_time(self, t: float):
        """Read the array at ``t`` s after programming: drift, one frozen 1/f noise sample and
        (if enabled) the global drift-compensation factor."""
        self.t = float(t)
        self._read_array()
        self.comp = 1.0
        if self.cfg.drift_compensation:
            now = self._ones_read(self._conductance(self.t, noise=False))
            self.comp = self._ref / now if now > 0 else 1.0

    def _read_array(self):
        """The conductances as every read sees them now (drift and one 1/f noise sample)."""
        g = self._conductance(self.t, noise=True)
        w = (self.gain[0] * g[0] - self.gain[1] * g[1]) * (self.w_max / self.cfg.g_max)
        self.W_read = w                      # (n_out, n_in + 1), weight units

    @property
    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(W, b) as the array and periphery read them now (drift-compensated), without
        per-read noise."""
        w = self.W_read * self.comp
        return w[:, :-1].copy(), w[:, -1].copy()

    # ---- reads ------------------------------------------------------------------------------
    def _mvm(self, u: np.ndarray, M: np.ndarray) -> np.ndarray:
        """u (B, k) @ M (k, m) through the periphery."""
        cfg = self.cfg
        if cfg.exact_reads:
            return (u @ M) * self.comp
        s = np.max(np.abs(u), axis=1, keepdims=True)
        s[s == 0] = 1.0
        un = u / s
        if cfg.dac_bits is not None:
            un = quantize_symmetric(un, cfg.dac_bits)
        y = un @ (M / self.w_max)
        rng = self.read_rng
        if cfg.w_noise:
            # Σ_j (σ_w ξ_ij) u_j is N(0, σ_w² Σ_j u_j²) per output: exact, one draw per output
            y = y + cfg.w_noise * np.sqrt(np.sum(un * un, axis=1, keepdims=True)) * \
                rng.standard_normal(y.shape)
        if cfg.out_noise:
            y = y + cfg.out_noise * rng.standard_normal(y.shape)
        if cfg.adc_bits is not None:
            y = quantize_symmetric(y, cfg.adc_bits, cfg.adc_bound)
        return y * (self.w_max * self.comp) * s

    def forward(self, u: np.ndarray) -> np.ndarray:
        """W u + b for a batch u (B, n_in) → (B, n_out)."""
        ua = np.concatenate([u, np.ones((u.shape[0], 1))], axis=1)
        return self._mvm(ua, self.W_read.T)

    def backward(self, e: np.ndarray) -> np.ndarray:
        """Wᵀ e for a batch e (B, n_out) → (B, n_in) (the bias column is not read)."""
        return self._mvm(e, self.W_read[:, :-1])

    # ---- learning ---------------------------------------------------------------------------
    def pulses(self, r: np.ndarray) -> np.ndarray:
        """The change a pulsed update makes for requested changes ``r`` (relative to w_max,
        any sign): stochastically rounded pulse counts, asymmetric steps, cycle-to-cycle
        noise. Returns the applied changes (same units and signs)."""
        cfg, rng = self.cfg, self.update_rng
        mag = np.abs(r)
        step = np.where(r >= 0, 1 + cfg.up_down, 1 - cfg.up_down)
        if not cfg.dw_min:
            return np.sign(r) * mag * step
        n = np.floor(mag / cfg.dw_min + rng.random(r.shape))
        applied = n * cfg.dw_min * step
        if cfg.dw_min_std:
            applied = applied + cfg.dw_min * step * cfg.dw_min_std * np.sqrt(n) * \
                rng.standard_normal(r.shape)
        return np.sign(r) * np.maximum(applied, 0.0)

    def update(self, dW: np.ndarray, db: np.ndarray):
        """Request W += dW, b += db (weight units): up potentiates g⁺, down g⁻; stuck devices
        do not move; a device saturates at g_max; written devices restart their drift. The
        request is in the units the periphery reads (after drift compensation), so it is
        divided by the compensation factor before it becomes pulses."""
        r = np.concatenate([dW, db[:, None]], axis=1) / (self.w_max * self.comp)
        applied = self.pulses(r)
        dg = np.stack([np.maximum(applied, 0), np.maximum(-applied, 0)]) * self.cfg.g_max
        written = (dg > 0) & (self.gain > 0)
        if not written.any():
            return
        now = self._conductance(self.t, noise=False)
        new = now + dg
        self.saturated += int(np.sum(written & (new > self.cfg.g_max)))
        self.g_prog = np.where(written, np.clip(new, 0.0, self.cfg.g_max), self.g_prog)
        self.t_prog = np.where(written, self.t, self.t_prog)
        # the state a device was last written to sets its 1/f noise level (Q_s)
        self.g_target = np.where(written, self.g_prog, self.g_target)
        self._read_array()        # the drift calibration is not redone after every update
