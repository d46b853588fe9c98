"""``ContinuousPCN``: continuous-time predictive coding dynamics, integrated by scipy.

The discrete relaxation of FloatPCN is the explicit Euler scheme of the ODE this module solves:

    τ_x dx_l/dt = −e_l + f'(x_l) ⊙ W_{l+1}ᵀ e_{l+1}        for free layers l
    τ_W dW_l/dt = e_l f(x_{l−1})ᵀ / B,   τ_W db_l/dt = mean_B e_l      (with learning, τ_W ≫ τ_x)

with e_l = x_l − (W_l f(x_{l−1}) + b_l). One FloatPCN iteration with step γ is an Euler step of
dt = γ τ_x (and, for incremental learning with SGD rate α, of dt = α τ_W), so T iterations
approximate the ODE at t = T γ τ_x with a global error O(γ) — :func:`euler_error` measures it,
and ``tests/test_continuous.py`` shows it shrinking linearly with γ. Both discrete schedules
(synchronous and delayed feedback, a delay of one step) converge to the same ODE.

The network supplies the products (``predict``, ``feedback``): a FloatPCN, or an AnalogPCN
whose crossbars hold static non-idealities only (per-read noise and converters are not smooth
in time, which an adaptive solver cannot integrate — use AnalogPCN's own Euler relaxation for
those). Learning in continuous time needs the weights as state, so it takes a FloatPCN.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from ..float_pcn import FloatPCN

__all__ = ["ContinuousPCN", "ContinuousResult", "euler_error"]


@dataclass
class ContinuousResult:
    """x, e at the end (lists over layers, (B, n_l)); ``t`` the times of ``energy`` (B per
    time); ``W``, ``b`` the final weights when learning; ``nfev`` right-hand-side calls."""

    x: list
    e: list
    t: np.ndarray
    energy: np.ndarray
    nfev: int
    W: list | None = None
    b: list | None = None


class ContinuousPCN:
    """Integrate the PC ODE of a network ``net`` (FloatPCN or a subclass).

    ``tau_x`` (s): value-node time constant; ``tau_w`` (s): weight time constant, needed for
    ``learn=True``.
    """

    def __init__(self, net: FloatPCN, tau_x: float = 1.0, tau_w: float | None = None):
        if tau_x <= 0 or (tau_w is not None and tau_w <= 0):
            raise ValueError("time constants tau_x and tau_w must be > 0 seconds")
        cfg = getattr(net, "cfg", None)
        if cfg is not None and not cfg.exact_reads:
            raise ValueError("ContinuousPCN integrates smooth dynamics: this AnalogConfig has "
                             "per-read noise or converters (w_noise, out_noise, dac_bits, "
                             "adc_bits); use AnalogPCN.relax (Euler–Maruyama) for those")
        self.net, self.tau_x, self.tau_w = net, float(tau_x), tau_w

    def relax(self, clamped: dict, mask, duration: float, *, learn: bool = False,
              init: str | None = None, rtol: float = 1e-8, atol: float = 1e-10,
              method: str = "RK45", n_eval: int = 21,
              max_nfev: int = 200_000) -> ContinuousResult:
        """Relax from the same initial state as FloatPCN for ``duration`` seconds.

        ``max_nfev`` bounds the right-hand-side evaluations: relu and hardtanh have a
        discontinuous derivative, and a node that the dynamics push onto the kink from both
        sides chatters (a Filippov system) so an adaptive solver's step collapses — the error
        then says so instead of running for hours."""
        net, spec = self.net, self.net.spec
        if learn and self.tau_w is None:
            raise ValueError("learning in continuous time needs tau_w (the weights' time "
                             "constant, ≫ tau_x)")
        if learn and type(net).predict is not FloatPCN.predict:
            raise ValueError("continuous-time learning integrates the weights as state; give "
                             "a FloatPCN")
        mask = spec.mask(mask)
        x0 = net.initial_state(clamped, mask, init)
        B = x0[0].shape[0]
        free = [l for l in range(spec.n_layers) if not mask[l]]
        shapes = [x0[l].shape for l in free]
        if learn:
            W0 = [w.copy() for w in net.W]
            b0 = [v.copy() for v in net.b]
            shapes += [w.shape for w in W0] + [v.shape for v in b0]
        sizes = [int(np.prod(s)) for s in shapes]
        cuts = np.cumsum(sizes)[:-1]

        def unpack(y):
            parts = [p.reshape(s) for p, s in zip(np.split(y, cuts), shapes)]
            x = list(x0)
            for k, l in enumerate(free):
                x[l] = parts[k]
            if learn:
                nW = len(W0)
                net.W = parts[len(free):len(free) + nW]
                net.b = parts[len(free) + nW:]
            return x

        calls = [0]

        def rhs(_t, y):
            calls[0] += 1
            if calls[0] > max_nfev:
                raise RuntimeError(
                    f"the ODE solver needed more than {max_nfev} evaluations: with "
                    f"activations {list(spec.activations)} the vector field is discontinuous "
                    f"where f' jumps (relu, hardtanh); integrate a tanh network, loosen "
                    f"rtol/atol, or use the discrete relaxation")
            x = unpack(y)
            e = net.errors(x)
            out = []
            for l in free:
                d = -e[l]
                if l < spec.L:
                    d = d + net.act_prime(l, x[l]) * net.feedback(l, e[l + 1])
                out.append((d / self.tau_x).ravel())
            if learn:
                dW, db = net.hebbian(x, e)
                out += [(g / self.tau_w).ravel() for g in dW + db]
            return np.concatenate(out) if out else np.zeros(0)

        y0 = np.concatenate([x0[l].ravel() for l in free] +
                            ([w.ravel() for w in W0 + b0] if learn else []))
        t_eval = np.linspace(0.0, duration, n_eval)
        try:
            sol = solve_ivp(rhs, (0.0, duration), y0, method=method, t_eval=t_eval,
                            rtol=rtol, atol=atol)
            if not sol.success:
                raise RuntimeError(f"the ODE solver failed: {sol.message}")
            energy = np.stack([net.energy(net.errors(unpack(sol.y[:, k])))
                               for k in range(sol.y.shape[1])])
            x = unpack(sol.y[:, -1])
            e = net.errors(x)
            Wf = [w.copy() for w in net.W] if learn else None
            bf = [v.copy() for v in net.b] if learn else None
        finally:
            if learn:
                net.W, net.b = W0, b0
        return ContinuousResult(x=[v.reshape(B, -1) for v in x], e=e, t=sol.t, energy=energy,
                                nfev=int(sol.nfev), W=Wf, b=bf)


def euler_error(net: FloatPCN, clamped: dict, mask, gamma: float, iterations: int,
                tau_x: float = 1.0, init: str | None = None, rtol: float = 1e-10,
                atol: float = 1e-12) -> float:
    """max |x − x_ODE| over every free node after ``iterations`` Euler steps of size γ (the
    discrete relaxation) against the ODE at t = iterations · γ · τ_x."""
    disc = net.relax(clamped, mask, iterations=iterations, gamma=gamma, init=init)
    cont = ContinuousPCN(net, tau_x).relax(clamped, mask, iterations * gamma * tau_x,
                                           init=init, rtol=rtol, atol=atol)
    return float(max(np.max(np.abs(a - b)) for a, b in zip(disc.x, cont.x)))
