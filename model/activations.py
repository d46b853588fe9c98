"""Activation functions f and their derivatives f', in float64 and in the fixed-point datapath.

Piecewise-linear activations (``identity``, ``relu``, ``hardtanh``) are exact in fixed point:
f(x) is a clip of x and f'(x) is 0 or 1. ``tanh`` is a lookup table that the hardware holds in a
ROM with the very same integers (:func:`tanh_table`), so model and hardware agree bit for bit;
the float model uses the true tanh, and the difference is a reported quantisation effect.

Fixed-point convention: f(x) is returned in the x format, and f'(x) as an integer with the x
format's fraction bits (1.0 = ``2**x.frac``), so a derivative multiply is ``f'(x) · ε`` followed
by one rounding (see ``docs/datapath.md``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .qformat import QFormat

__all__ = ["ACTIVATIONS", "MAX_TABLE_BITS", "f_float", "fprime_float", "TanhTable",
           "tanh_table", "fixed_activation", "activation_bound"]

ACTIVATIONS = ("identity", "relu", "hardtanh", "tanh")
#: The largest activation table (log2 entries) the generator builds; a 2**14-entry ROM of two
#: 16-bit words is already 64 KiB, more than an iCE40UP5K's block RAM.
MAX_TABLE_BITS = 12
#: tanh tables cover x in [-2**TANH_RANGE_LOG2, 2**TANH_RANGE_LOG2); outside, tanh is ±1 to 3e-4.
TANH_RANGE_LOG2 = 2


def f_float(name: str, x: np.ndarray) -> np.ndarray:
    """f(x) in float64."""
    if name == "identity":
        return x
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "hardtanh":
        return np.clip(x, -1.0, 1.0)
    if name == "tanh":
        return np.tanh(x)
    raise ValueError(f"unknown activation {name!r}; use one of {ACTIVATIONS}")


def fprime_float(name: str, x: np.ndarray) -> np.ndarray:
    """f'(x) in float64 (the right-continuous choice at kinks: relu'(0) = 0, hardtanh'(±1) = 0)."""
    if name == "identity":
        return np.ones_like(x)
    if name == "relu":
        return (x > 0).astype(np.float64)
    if name == "hardtanh":
        return ((x > -1.0) & (x < 1.0)).astype(np.float64)
    if name == "tanh":
        t = np.tanh(x)
        return 1.0 - t * t
    raise ValueError(f"unknown activation {name!r}; use one of {ACTIVATIONS}")


@dataclass(frozen=True)
class TanhTable:
    """A tanh ROM for one x format.

    The input is clipped to ``[lo, hi]`` (integers, x format), offset by ``-lo`` and shifted right
    by ``shift`` to give the address; ``f[addr]`` and ``d[addr]`` hold tanh and 1 − tanh² of the
    bin centre, rounded to the nearest x-format value (ties to even, whatever x's own rounding
    mode: the table is a constant, not a datapath conversion).
    """

    lo: int
    hi: int
    shift: int
    f: np.ndarray
    d: np.ndarray

    @property
    def entries(self) -> int:
        return len(self.f)

    def address(self, x: np.ndarray) -> np.ndarray:
        return (np.clip(x, self.lo, self.hi) - self.lo) >> self.shift


@lru_cache(maxsize=64)
def tanh_table(xfmt: QFormat, table_bits: int) -> TanhTable:
    """The tanh table for ``xfmt`` with at most ``2**table_bits`` entries."""
    if not 1 <= table_bits <= MAX_TABLE_BITS:
        raise ValueError(f"table_bits = {table_bits} is outside 1..{MAX_TABLE_BITS}")
    range_log2 = min(TANH_RANGE_LOG2, xfmt.int_bits - 1)
    span_bits = range_log2 + 1 + xfmt.frac          # input codes covered: 2**span_bits
    bits = min(table_bits, span_bits)
    shift = span_bits - bits
    lo = -(1 << (range_log2 + xfmt.frac))
    hi = min(-lo - 1, xfmt.max_int)
    n = 1 << bits
    centres = (lo + (np.arange(n) + 0.5) * (1 << shift)) * xfmt.lsb
    t = np.tanh(centres)
    nearest = QFormat(xfmt.width, xfmt.frac, "half_even", "saturate")   # table constants
    f = nearest.from_float(t)
    d = nearest.from_float(1.0 - t * t)
    f.setflags(write=False)
    d.setflags(write=False)
    return TanhTable(lo=lo, hi=hi, shift=shift, f=f, d=d)


def fixed_activation(name: str, x: np.ndarray, xfmt: QFormat, table_bits: int):
    """(f(x), f'(x)) for int64 x in ``xfmt``; both results in ``xfmt``'s fraction bits."""
    one = np.int64(1 << xfmt.frac)
    if name == "identity":
        return x, np.full_like(x, one)
    if name == "relu":
        return np.maximum(x, 0), np.where(x > 0, one, 0).astype(np.int64)
    if name == "hardtanh":
        inside = (x > -one) & (x < one)
        return np.clip(x, -one, one), np.where(inside, one, 0).astype(np.int64)
    if name == "tanh":
        tab = tanh_table(xfmt, table_bits)
        a = tab.address(x)
        return tab.f[a], tab.d[a]
    raise ValueError(f"unknown activation {name!r}; use one of {ACTIVATIONS}")


def activation_bound(name: str, xfmt: QFormat) -> int:
    """The largest |f(x)| over the x format, in integer units (for accumulator sizing)."""
    if name in ("identity", "relu"):
        return -xfmt.min_int
    return 1 << xfmt.frac            # hardtanh and tanh are bounded by 1.0
