"""Fixed-point rounding and overflow in Amaranth, mirroring :mod:`pcforge.model.qformat`.

The same :class:`~pcforge.model.qformat.QFormat` objects that drive the model drive these
builders, so a format change moves model and hardware together. Everything here is
combinational (0 cycles); pipelines put registers around it.

``round_shift(value, shift, rounding)``  Value → Value, divides by 2**shift (shift ≥ 0) with the
                                          rounding mode, or shifts left exactly (shift < 0).
``fit(value, fmt)``                      Value → (Value of ``signed(fmt.width)``, overflow bit).
``requantize(value, from_frac, fmt)``    round then fit, as in the model.
:class:`Requantizer`                      the same as a ``wiring.Component`` (for unit tests and
                                          for use as a stage).
"""
from __future__ import annotations

from amaranth import Cat, Module, Mux, signed
from amaranth.hdl import Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..model.qformat import QFormat

__all__ = ["round_shift", "fit", "requantize", "Requantizer"]


def round_shift(value: Value, shift: int, rounding: str) -> Value:
    """``value / 2**shift`` rounded per mode (bit-exact with the model's ``round_shift``).

    ``value`` must be signed. The result is signed and wide enough for every input (the
    ``half_up``/``half_even`` increment can carry one bit).
    """
    v = Value.cast(value)
    if not v.shape().signed:
        raise TypeError("round_shift needs a signed value")
    if shift <= 0:
        return (v << -shift).as_signed()
    if v.shape().width <= shift:                    # sign-extend so the remainder is whole
        v = Cat(v, v[-1].replicate(shift + 1 - v.shape().width)).as_signed()
    q = (v >> shift).as_signed()                    # arithmetic shift: floor
    if rounding == "floor":
        return q
    half = 1 << (shift - 1)
    if rounding == "half_up":
        return ((v + half) >> shift).as_signed()
    if rounding == "half_even":
        r = v[:shift]
        if shift == 1:                  # the remainder is 0 or exactly one half
            up = r[0] & q[0]
        else:
            # r > half or (r == half and q odd), as an OR tree instead of two comparators:
            # the half bit is set, and some lower bit is set or q is odd
            up = r[shift - 1] & (r[:shift - 1].any() | q[0])
        return (q + up).as_signed()
    raise ValueError(f"unknown rounding mode {rounding!r}")


def fit(value: Value, fmt: QFormat):
    """Saturate or wrap a signed value into ``fmt.width`` bits; returns (result, overflowed)."""
    v = Value.cast(value)
    if v.shape().width <= fmt.width and v.shape().signed:
        return v.as_signed(), Value.cast(0)
    # in range iff the bits from the format's sign bit up are all equal (reduction trees, no
    # comparator carry chains on the pipeline's critical path)
    sign = v[-1]
    upper = v[fmt.width - 1:-1] if v.shape().signed else v[fmt.width - 1:]
    if v.shape().signed:
        over_hi = ~sign & upper.any()
        over_lo = sign & ~upper.all()
    else:
        over_hi = upper.any()
        over_lo = Value.cast(0)
    overflow = over_hi | over_lo
    if fmt.overflow == "saturate":
        out = Mux(over_hi, fmt.max_int, Mux(over_lo, fmt.min_int, v))
    else:
        out = v
    return out[:fmt.width].as_signed(), overflow


def requantize(value: Value, from_frac: int, fmt: QFormat):
    """Round from ``from_frac`` fraction bits to ``fmt.frac``, then fit ``fmt``.

    When bits are dropped (rounding up by at most one LSB), the range check runs on the
    truncated value q beside a ``fmt.width``-bit increment instead of after a full-width one:
    q + up > max ⇔ q > max or (q = max and up); q + up < min ⇔ q < min and not (q = min − 1 and
    up) — all reduction trees — which takes the long carry chains off the node units' critical
    path (the same result, bit for bit)."""
    shift = from_frac - fmt.frac
    v = Value.cast(value)
    if shift <= 0 or not v.shape().signed or fmt.rounding == "floor":
        return fit(round_shift(v, shift, fmt.rounding), fmt)
    w = fmt.width
    if v.shape().width <= shift:                    # sign-extend so the remainder is whole
        v = Cat(v, v[-1].replicate(shift + 1 - v.shape().width)).as_signed()
    q = (v >> shift).as_signed()
    r = v[:shift]
    if fmt.rounding == "half_up":
        up = r[shift - 1]
    elif shift == 1:
        up = r[0] & q[0]
    else:
        up = r[shift - 1] & (r[:shift - 1].any() | q[0])
    qw = q.shape().width
    if qw < w:                                      # cannot overflow even after the carry
        q = Cat(q, q[-1].replicate(w - qw)).as_signed()
        qw = w
    low = (q[:w] + up)[:w]
    if qw == w:                                     # only q = max with up overflows
        at_max = ~q[-1] & q[:w - 1].all()
        over_hi, over_lo = at_max & up, Value.cast(0)
    else:
        sign, upper = q[-1], q[w - 1:qw - 1]
        q_hi = ~sign & upper.any()
        q_lo = sign & ~upper.all()
        at_max = ~sign & ~upper.any() & q[:w - 1].all()
        # min − 1: ones above bit w − 1, a zero at bit w − 1, ones below
        below_min = sign & ~q[w - 1] & q[:w - 1].all() & (q[w:qw - 1].all() if qw - 1 > w
                                                           else Value.cast(1))
        over_hi = q_hi | (at_max & up)
        over_lo = q_lo & ~(below_min & up)
    overflow = over_hi | over_lo
    if fmt.overflow == "saturate":
        out = Mux(over_hi, fmt.max_int, Mux(over_lo, fmt.min_int, low.as_signed()))
    else:
        out = low
    return Value.cast(out)[:w].as_signed(), overflow


class Requantizer(wiring.Component):
    """Combinational requantiser: ``o = fit(round(i, from_frac → fmt.frac))``.

    Ports: ``i`` (signed, ``in_width`` bits, ``from_frac`` fraction bits); ``o`` (signed,
    ``fmt.width`` bits); ``overflow`` (1 when ``o`` was saturated or wrapped). Latency 0 cycles.
    """

    def __init__(self, in_width: int, from_frac: int, fmt: QFormat):
        if in_width < 1:
            raise ValueError(f"in_width must be ≥ 1, not {in_width}")
        self.in_width, self.from_frac, self.fmt = in_width, from_frac, fmt
        super().__init__({"i": In(signed(in_width)), "o": Out(signed(fmt.width)),
                          "overflow": Out(1)})

    def elaborate(self, platform):
        m = Module()
        out, ovf = requantize(self.i, self.from_frac, self.fmt)
        m.d.comb += [self.o.eq(out), self.overflow.eq(ovf)]
        return m
