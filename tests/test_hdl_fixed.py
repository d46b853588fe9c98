"""hdl.fixed (Amaranth rounding/overflow) equals model.qformat bit for bit (Amaranth simulator)."""
import numpy as np
import pytest
from amaranth.sim import Simulator

from pcforge.hdl.fixed import Requantizer
from pcforge.model.qformat import OVERFLOW_MODES, ROUNDING_MODES, QFormat, requantize


def _run(dut, values):
    got = []

    async def bench(ctx):
        for v in values:
            ctx.set(dut.i, int(v))
            got.append((ctx.get(dut.o), ctx.get(dut.overflow)))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
def test_requantizer_equals_model(rounding, overflow):
    rng = np.random.default_rng(hash((rounding, overflow)) % 2 ** 32)
    for case in range(60):
        in_width = int(rng.integers(4, 41))
        from_frac = int(rng.integers(0, 30))
        width = int(rng.integers(2, 21))
        fmt = QFormat(width, int(rng.integers(0, width)), rounding, overflow)
        if from_frac - fmt.frac < 0 and in_width + fmt.frac - from_frac > 60:
            continue
        lo, hi = -(1 << (in_width - 1)), (1 << (in_width - 1)) - 1
        vals = np.concatenate([rng.integers(lo, hi + 1, size=150), [lo, hi, 0, -1, 1]])
        # ties of every kind for the rounding modes
        s = from_frac - fmt.frac
        if s > 0:
            ties = (rng.integers(lo >> s, (hi >> s) + 1, size=30) << s) + (1 << (s - 1))
            vals = np.concatenate([vals, ties[(ties >= lo) & (ties <= hi)]])
        if s > 0:
            # the range edges: q = max, min, min − 1 and beyond, with every remainder kind
            edges = [fmt.max_int, fmt.max_int + 1, fmt.min_int, fmt.min_int - 1, fmt.min_int - 2]
            rems = [0, 1, (1 << (s - 1)) - 1, 1 << (s - 1), (1 << (s - 1)) + 1, (1 << s) - 1]
            near = np.array([(q << s) + r for q in edges for r in rems], dtype=np.int64)
            vals = np.concatenate([vals, near[(near >= lo) & (near <= hi)]])
        got = _run(Requantizer(in_width, from_frac, fmt), vals)
        for v, (o, ovf) in zip(vals, got):
            cnt = [0]
            exp = int(requantize(np.array([v], dtype=np.int64), from_frac, fmt, cnt)[0])
            assert (o, ovf) == (exp, cnt[0]), (in_width, from_frac, fmt, int(v), o, ovf, exp)
