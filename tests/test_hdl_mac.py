"""The MAC lanes' blocks on their own, in the Amaranth simulator: ``multiply`` (operands
registered twice, product registered: the product of the operands of cycle k appears at cycle
k + mul − sel) and ``adder_tree`` (two registered halves: Σ over lanes two cycles after the
products), for 1..9 lanes and random signed operands of random widths, against numpy."""
from __future__ import annotations

import numpy as np
import pytest
from amaranth import Elaboratable, Module, Signal, signed
from amaranth.lib import data
from amaranth.sim import Simulator

from pcforge.hdl.mac import adder_tree, multiply
from pcforge.hdl.pipeline import TokenPipeline
from pcforge.model.arch.schedule import PIPELINE_DEPTH, STAGES


class Lanes(Elaboratable):
    def __init__(self, P, wa, wb):
        self.a = [Signal(signed(wa), name=f"a{p}") for p in range(P)]
        self.b = [Signal(signed(wb), name=f"b{p}") for p in range(P)]
        self.width = wa + wb
        self.acc_width = self.width + P.bit_length() + 1

    def elaborate(self, platform):
        m = Module()
        layout = data.StructLayout({"valid": 1})
        pl = TokenPipeline(m, Signal(layout), layout)
        self.prod = [multiply(m, pl, a, b, self.width, f"prod_{p}_", STAGES)
                     for p, (a, b) in enumerate(zip(self.a, self.b))]
        self.tree = adder_tree(m, pl, self.prod, self.acc_width, STAGES)
        assert len(pl.tokens) == PIPELINE_DEPTH + 1
        return m


@pytest.mark.parametrize("P", range(1, 10))
def test_products_and_tree_sum_with_their_latencies(P):
    rng = np.random.default_rng(8400 + P)
    wa, wb = int(rng.integers(4, 18)), int(rng.integers(4, 18))
    dut = Lanes(P, wa, wb)
    n = 40
    A = rng.integers(-(1 << (wa - 1)), 1 << (wa - 1), (n, P))
    B = rng.integers(-(1 << (wb - 1)), 1 << (wb - 1), (n, P))
    lat_mul = STAGES["mul"] - STAGES["sel"]
    lat_tree = STAGES["sum2"] - STAGES["sel"]
    prods, sums = [], []

    async def bench(ctx):
        for k in range(n + lat_tree):
            if k < n:
                for p in range(P):
                    ctx.set(dut.a[p], int(A[k, p]))
                    ctx.set(dut.b[p], int(B[k, p]))
            await ctx.tick()
            prods.append([ctx.get(v) for v in dut.prod])
            sums.append(ctx.get(dut.tree))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    prods, sums = np.array(prods), np.array(sums)
    # after the k-th tick the registers hold what entered lat cycles before
    assert np.array_equal(prods[lat_mul - 1:lat_mul - 1 + n], A * B)
    assert np.array_equal(sums[lat_tree - 1:lat_tree - 1 + n], (A * B).sum(axis=1))
