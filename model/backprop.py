"""Backprop reference and PC-vs-backprop measurements (Z-IL exactness, small-nudge cosine).

``backprop_directions`` is a plain numpy backprop of ½||y − out||² (batch mean) through the
same network function as a PC network's feed-forward pass; it returns −∂loss/∂W_l and
−∂loss/∂b_l, the convention of :meth:`FloatPCN.hebbian`.
"""
from __future__ import annotations

import numpy as np

from .activations import f_float, fprime_float
from .float_pcn import FloatPCN

__all__ = ["backprop_directions", "cosine", "nudge_similarity"]


def backprop_directions(W: list, b: list, acts, x0: np.ndarray, y: np.ndarray):
    h = [np.atleast_2d(x0)]
    for l in range(len(W)):
        h.append(f_float(acts[l], h[l]) @ W[l].T + b[l])
    B = h[0].shape[0]
    delta = y - h[-1]
    gW, gb = [None] * len(W), [None] * len(W)
    for l in reversed(range(len(W))):
        gW[l] = delta.T @ f_float(acts[l], h[l]) / B
        gb[l] = delta.mean(axis=0)
        if l > 0:
            delta = (delta @ W[l]) * fprime_float(acts[l], h[l])
    return gW, gb


def cosine(a: list, b: list) -> float:
    a = np.concatenate([v.ravel() for v in a])
    b = np.concatenate([v.ravel() for v in b])
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def nudge_similarity(net: FloatPCN, x0, y, beta: float, iterations: int = 1500) -> float:
    """Cosine similarity between the equilibrium PC update / β (output clamped at
    mu_L + β(y − mu_L)) and the backprop direction."""
    gW, gb = backprop_directions(net.W, net.b, net.spec.activations, x0, y)
    out = net.feedforward(x0)[-1]
    L = net.spec.L
    mask = tuple(l in (0, L) for l in range(L + 1))
    res = net.relax({0: x0, L: out + beta * (y - out)}, mask, iterations=iterations)
    dW, db = net.hebbian(res.x, res.e)
    return cosine([v / beta for v in dW + db], gW + gb)
