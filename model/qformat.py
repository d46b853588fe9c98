"""Fixed-point formats and the integer primitives every pcforge datapath is made of.

A value in a :class:`QFormat` is a signed two's-complement integer ``q`` of ``width`` bits that
stands for the real number ``q · 2**-frac``. Model and hardware share these definitions: the
hardware generator reads the same ``QFormat`` objects and builds the same shifts, rounders and
saturators, so this module *is* the arithmetic contract (see ``docs/datapath.md``).

All array primitives work on ``numpy.int64`` arrays. :class:`pcforge.model.spec.PCSpec`
validates every format so that no intermediate value of the datapath can exceed 63 bits, which is
what makes int64 exact here; the primitives check their own inputs against that bound as well.

Rounding modes (applied when a right shift drops fraction bits):

``floor``       round toward −∞ (plain arithmetic shift; truncation of two's complement).
``half_up``     round to nearest, ties toward +∞ (add half an LSB, then shift).
``half_even``   round to nearest, ties to the even neighbour (convergent rounding; unbiased).

Overflow modes (applied after rounding, when the value does not fit ``width`` bits):

``saturate``    clip to ``[min_int, max_int]`` and count the event.
``wrap``        keep the low ``width`` bits (two's-complement wrap-around) and count the event.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = [
    "ROUNDING_MODES", "OVERFLOW_MODES", "MAX_DATAPATH_BITS",
    "QFormat", "FixedConst", "round_shift", "fit", "requantize",
]

ROUNDING_MODES = ("floor", "half_up", "half_even")
OVERFLOW_MODES = ("saturate", "wrap")
#: No intermediate of the datapath may need more bits than this (signed); int64 stays exact.
MAX_DATAPATH_BITS = 63
#: The widest format of any kind (accumulators included).
MAX_FORMAT_WIDTH = MAX_DATAPATH_BITS


def _check_int_array(value):
    if type(value) is np.ndarray and value.dtype == np.int64:
        return value
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"fixed-point primitives take integer arrays, not {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def round_shift(value, shift: int, rounding: str):
    """Divide integers by ``2**shift`` with the given rounding mode.

    ``shift`` ≥ 0 drops fraction bits with rounding; ``shift`` < 0 is an exact left shift.
    Works on numpy integer arrays (returned as int64) and on Python ints (returned as int).
    """
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"unknown rounding mode {rounding!r}; use one of {ROUNDING_MODES}")
    scalar = isinstance(value, (int, np.integer))
    v = int(value) if scalar else _check_int_array(value)
    if not scalar and v.size:
        limit = 1 << (MAX_DATAPATH_BITS - 1 - max(0, -shift))
        if int(v.max()) >= limit or int(v.min()) < -limit:
            raise OverflowError(f"round_shift: operand needs more than {MAX_DATAPATH_BITS} bits "
                                f"after a shift of {shift}; the spec's widths are too large")
    if shift <= 0:
        return v << (-shift) if scalar else v << np.int64(-shift)
    if rounding == "floor":
        return v >> shift
    half = 1 << (shift - 1)
    if rounding == "half_up":
        return (v + half) >> shift
    # half_even
    q = v >> shift
    r = v & ((1 << shift) - 1)
    up = (r > half) | ((r == half) & ((q & 1) == 1))
    if scalar:
        return q + int(up)
    return q + up.astype(np.int64)


@dataclass(frozen=True)
class QFormat:
    """A signed fixed-point format: ``width`` bits in all, ``frac`` of them after the point.

    The real value of integer ``q`` is ``q · 2**-frac``; the range is
    ``[-2**(width-1), 2**(width-1) - 1]`` in integer units. ``rounding`` and ``overflow`` say what
    happens when a value is converted *into* this format (see the module docstring).
    """

    width: int
    frac: int
    rounding: str = "half_even"
    overflow: str = "saturate"

    def __post_init__(self):
        for name in ("width", "frac"):
            if not isinstance(getattr(self, name), (int, np.integer)) or isinstance(
                    getattr(self, name), bool):
                raise TypeError(f"QFormat.{name} must be an int, not {getattr(self, name)!r}")
        if not 2 <= self.width <= MAX_FORMAT_WIDTH:
            raise ValueError(f"QFormat.width = {self.width} is outside 2..{MAX_FORMAT_WIDTH}")
        if not 0 <= self.frac < self.width:
            raise ValueError(f"QFormat.frac = {self.frac} must be in 0..width-1 = {self.width - 1}")
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(f"QFormat.rounding = {self.rounding!r} is unknown; "
                             f"use one of {', '.join(ROUNDING_MODES)}")
        if self.overflow not in OVERFLOW_MODES:
            raise ValueError(f"QFormat.overflow = {self.overflow!r} is unknown; "
                             f"use one of {', '.join(OVERFLOW_MODES)}")

    # ---- ranges -------------------------------------------------------------------------
    @property
    def int_bits(self) -> int:
        """Bits before the point, sign included."""
        return self.width - self.frac

    @property
    def min_int(self) -> int:
        return -(1 << (self.width - 1))

    @property
    def max_int(self) -> int:
        return (1 << (self.width - 1)) - 1

    @property
    def lsb(self) -> float:
        """The real value of one unit in the last place."""
        return 2.0 ** -self.frac

    @property
    def min_value(self) -> float:
        return self.min_int * self.lsb

    @property
    def max_value(self) -> float:
        return self.max_int * self.lsb

    def one(self) -> int:
        """The integer that stands for 1.0, if the format can hold it."""
        if self.max_int < (1 << self.frac):
            raise ValueError(f"{self} cannot represent 1.0 (needs width - frac >= 2)")
        return 1 << self.frac

    def __str__(self) -> str:
        return f"Q{self.int_bits}.{self.frac}({self.rounding},{self.overflow})"

    # ---- conversions --------------------------------------------------------------------
    def fit(self, value, counter=None):
        """Bring integers already at this format's ``frac`` into ``width`` bits (overflow mode).

        ``counter``, if given, is a one-element list (or object with ``+=``) incremented by the
        number of values that did not fit.
        """
        return fit(value, self, counter)

    def requantize(self, value, from_frac: int, counter=None):
        """Convert integers with ``from_frac`` fraction bits into this format: round, then fit."""
        return requantize(value, from_frac, self, counter)

    def from_float(self, value, counter=None):
        """Quantise real numbers into this format (round to ``frac`` bits, then fit).

        The rounding mode is applied exactly: the float is scaled by ``2**frac`` (exact in binary
        floating point), split into its floor and fraction, and the fraction is rounded per mode.
        """
        x = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError("cannot quantise NaN or infinite values")
        scaled = np.ldexp(x, self.frac)
        lim = 2.0 ** 62
        scaled = np.clip(scaled, -lim, lim)       # beyond this everything saturates anyway
        fl = np.floor(scaled)
        r = scaled - fl
        q = fl.astype(np.int64)
        if self.rounding == "half_up":
            q = q + (r >= 0.5)
        elif self.rounding == "half_even":
            q = q + ((r > 0.5) | ((r == 0.5) & ((q & 1) == 1)))
        return self.fit(q.astype(np.int64), counter)

    def to_float(self, value):
        """Real values of integers in this format."""
        return np.ldexp(np.asarray(value, dtype=np.float64), -self.frac)

    def to_dict(self) -> dict:
        return {"width": int(self.width), "frac": int(self.frac),
                "rounding": self.rounding, "overflow": self.overflow}


def fit(value, fmt: QFormat, counter=None):
    """Saturate or wrap integers into ``fmt.width`` bits; count the values that did not fit."""
    scalar = isinstance(value, (int, np.integer))
    v = np.asarray(_check_int_array(value) if not scalar else np.int64(value))
    over = (v > fmt.max_int) | (v < fmt.min_int)
    if counter is not None:
        counter[0] += int(np.count_nonzero(over))
    if fmt.overflow == "saturate":
        out = np.minimum(np.maximum(v, fmt.min_int), fmt.max_int)
    else:
        mask = (1 << fmt.width) - 1
        u = v & mask
        out = np.where(u > fmt.max_int, u - (1 << fmt.width), u)
    return int(out) if scalar else out.astype(np.int64)


def requantize(value, from_frac: int, fmt: QFormat, counter=None):
    """Round integers with ``from_frac`` fraction bits to ``fmt.frac`` bits, then fit ``fmt``."""
    return fit(round_shift(value, from_frac - fmt.frac, fmt.rounding), fmt, counter)


@dataclass(frozen=True)
class FixedConst:
    """An exact fixed-point constant ``mantissa · 2**-frac`` (a rate such as γ or α).

    Powers of two (``mantissa == 1``) cost no multiplier in hardware: the generator turns the
    multiply into a shift. Model and hardware compute the same integer either way, because the
    product is rounded only once, after the multiply.
    """

    mantissa: int
    frac: int

    def __post_init__(self):
        if not isinstance(self.mantissa, (int, np.integer)) or self.mantissa <= 0:
            raise ValueError(f"rate mantissa must be a positive int, not {self.mantissa!r}")
        if not isinstance(self.frac, (int, np.integer)) or not 0 <= self.frac <= 40:
            raise ValueError(f"rate frac must be an int in 0..40, not {self.frac!r}")
        if self.mantissa.bit_length() > 24:
            raise ValueError(f"rate mantissa {self.mantissa} needs more than 24 bits; "
                             "use fewer fraction bits")

    @classmethod
    def from_float(cls, value: float, frac: int) -> "FixedConst":
        """The nearest constant with ``frac`` fraction bits, reduced to lowest terms."""
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"a rate must be a positive finite number, not {value!r}")
        m = int(round(value * (1 << frac)))
        if m <= 0:
            raise ValueError(f"rate {value} rounds to 0 with {frac} fraction bits; use more")
        while m % 2 == 0 and frac > 0:
            m //= 2
            frac -= 1
        return cls(m, frac)

    @property
    def value(self) -> float:
        return self.mantissa / (1 << self.frac)

    @property
    def exact(self) -> Fraction:
        return Fraction(self.mantissa, 1 << self.frac)

    @property
    def is_power_of_two(self) -> bool:
        return self.mantissa & (self.mantissa - 1) == 0

    @property
    def bits(self) -> int:
        """Unsigned bits of the mantissa (the width of the hardware multiplier operand)."""
        return self.mantissa.bit_length()

    def to_dict(self) -> dict:
        return {"mantissa": int(self.mantissa), "frac": int(self.frac)}

    def __str__(self) -> str:
        return f"{self.mantissa}/2^{self.frac} (= {self.value:g})"
