"""Fixed-point primitives against a Python big-int / Fraction reference (hypothesis)."""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pcforge.model.qformat import (OVERFLOW_MODES, ROUNDING_MODES, FixedConst, QFormat, fit,
                                   requantize, round_shift)

ints = st.integers(min_value=-(1 << 50), max_value=(1 << 50))


def ref_round(v: int, s: int, mode: str) -> int:
    """Rounding of v / 2**s by exact rational arithmetic."""
    q = Fraction(v, 1 << s) if s >= 0 else Fraction(v * (1 << -s))
    fl = q.numerator // q.denominator
    r = q - fl
    if mode == "floor" or r == 0:
        return fl
    if mode == "half_up":
        return fl + (r >= Fraction(1, 2))
    return fl + (r > Fraction(1, 2) or (r == Fraction(1, 2) and fl % 2 == 1))


def ref_fit(v: int, width: int, overflow: str) -> int:
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    if overflow == "saturate":
        return min(hi, max(lo, v))
    return ((v - lo) % (1 << width)) + lo


def _overflows(vals, shift):
    """The primitives' documented guard: operands must stay below 2**62 after a left shift."""
    limit = 1 << (62 - max(0, -shift))
    return max(vals) >= limit or min(vals) < -limit


formats = st.builds(lambda w, f, r, o: QFormat(w, min(f, w - 1), r, o),
                    st.integers(2, 32), st.integers(0, 31), st.sampled_from(ROUNDING_MODES),
                    st.sampled_from(OVERFLOW_MODES))


@settings(max_examples=400, deadline=None)
@given(st.lists(ints, min_size=1, max_size=20), st.integers(-8, 40),
       st.sampled_from(ROUNDING_MODES))
def test_round_shift_matches_rational_reference(vals, s, mode):
    if _overflows(vals, s):
        with pytest.raises(OverflowError):
            round_shift(np.array(vals, dtype=np.int64), s, mode)
        return
    got = round_shift(np.array(vals, dtype=np.int64), s, mode)
    assert got.tolist() == [ref_round(v, s, mode) for v in vals]
    assert [round_shift(v, s, mode) for v in vals] == [ref_round(v, s, mode) for v in vals]


@settings(max_examples=400, deadline=None)
@given(st.lists(ints, min_size=1, max_size=20), formats)
def test_fit_matches_reference_and_counts(vals, fmt):
    cnt = [0]
    got = fit(np.array(vals, dtype=np.int64), fmt, cnt)
    assert got.tolist() == [ref_fit(v, fmt.width, fmt.overflow) for v in vals]
    assert cnt[0] == sum(not fmt.min_int <= v <= fmt.max_int for v in vals)


@settings(max_examples=300, deadline=None)
@given(st.lists(ints, min_size=1, max_size=10), st.integers(0, 48), formats)
def test_requantize_is_round_then_fit(vals, from_frac, fmt):
    if _overflows(vals, from_frac - fmt.frac):
        with pytest.raises(OverflowError):
            requantize(np.array(vals, dtype=np.int64), from_frac, fmt)
        return
    got = requantize(np.array(vals, dtype=np.int64), from_frac, fmt)
    exp = [ref_fit(ref_round(v, from_frac - fmt.frac, fmt.rounding), fmt.width, fmt.overflow)
           for v in vals]
    assert got.tolist() == exp


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=10), formats)
def test_from_float_rounds_exactly(vals, fmt):
    got = fmt.from_float(np.array(vals))
    exp = []
    for v in vals:
        q = Fraction(v) * (1 << fmt.frac)
        exp.append(ref_fit(ref_round(q.numerator, 0, fmt.rounding) if q.denominator == 1 else
                           _round_fraction(q, fmt.rounding), fmt.width, fmt.overflow))
    assert got.tolist() == exp


def _round_fraction(q: Fraction, mode: str) -> int:
    fl = q.numerator // q.denominator
    r = q - fl
    if mode == "floor":
        return fl
    if mode == "half_up":
        return fl + (r >= Fraction(1, 2))
    return fl + (r > Fraction(1, 2) or (r == Fraction(1, 2) and fl % 2 == 1))


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 20), st.integers(2, 20), st.integers(1, 4096), st.data())
def test_wide_multiply_accumulate_is_exact_in_int64(wa, wb, n, data):
    """Sums of n products of wa- and wb-bit operands equal big-int sums whenever the worst case
    fits 63 bits (the bound PCSpec enforces for its accumulators)."""
    bound = n * (1 << (wa - 1)) * (1 << (wb - 1))
    if bound.bit_length() + 1 > 63:
        return
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32)))
    a = rng.integers(-(1 << (wa - 1)), 1 << (wa - 1), size=n)
    b = rng.integers(-(1 << (wb - 1)), 1 << (wb - 1), size=n)
    a[0], b[0] = -(1 << (wa - 1)), -(1 << (wb - 1))          # the extreme product
    assert int(a @ b) == sum(int(x) * int(y) for x, y in zip(a, b))


def test_round_shift_by_left_shift_is_exact():
    assert round_shift(np.array([-3, 5]), -4, "floor").tolist() == [-48, 80]


def test_fixed_const():
    c = FixedConst.from_float(0.125, 8)
    assert (c.mantissa, c.frac, c.is_power_of_two, c.value) == (1, 3, True, 0.125)
    c = FixedConst.from_float(0.1, 8)
    assert (c.mantissa, c.frac, c.is_power_of_two) == (13, 7, False)
    assert c.exact == Fraction(13, 128)
    with pytest.raises(ValueError, match="rounds to 0"):
        FixedConst.from_float(1e-6, 4)
    with pytest.raises(ValueError, match="positive"):
        FixedConst.from_float(-0.1, 4)


@pytest.mark.parametrize("kw, msg", [
    (dict(width=1, frac=0), "width"), (dict(width=8, frac=8), "frac"),
    (dict(width=8, frac=2, rounding="nearest"), "rounding"),
    (dict(width=8, frac=2, overflow="clip"), "overflow"),
])
def test_qformat_rejects_bad_fields(kw, msg):
    with pytest.raises(ValueError, match=msg):
        QFormat(**kw)


def test_from_float_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        QFormat(8, 4).from_float([np.nan])
