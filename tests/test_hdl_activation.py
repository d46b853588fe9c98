"""``ActivationUnit`` on its own, in the Amaranth simulator, against the model's
:func:`~pcforge.model.activations.fixed_activation`: every activation kind, random X formats and
table sizes, every input code of small formats (a sample of large ones), latency 1, the layer
selected at run time."""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from pcforge.hdl.activation import ActivationUnit
from pcforge.model.activations import ACTIVATIONS, fixed_activation
from pcforge.model.randspec import random_spec


def _inputs(X, rng, n=600):
    lo, hi = -(1 << (X.width - 1)), (1 << (X.width - 1)) - 1
    if X.width <= 9:
        return np.arange(lo, hi + 1)
    edge = [lo, lo + 1, -1, 0, 1, hi - 1, hi, 1 << X.frac, -(1 << X.frac)]
    return np.clip(np.concatenate([edge, rng.integers(lo, hi + 1, n)]), lo, hi)


def run_unit(spec, layers, xs, seed=0):
    """Present (layer, x) pairs one per cycle — x also as the selected layer's word of
    ``x_by_layer``, every other layer's word random — and return (f, d) of each, read one
    cycle later."""
    dut = ActivationUnit(spec)
    X = spec.formats.x
    others = np.random.default_rng(seed).integers(-(1 << (X.width - 1)), 1 << (X.width - 1),
                                                  (len(xs), spec.L))
    out = []

    async def bench(ctx):
        for k, (l, x) in enumerate(zip(layers, xs)):
            ctx.set(dut.x, int(x))
            for j in range(spec.L):
                ctx.set(dut.x_by_layer[j], int(x) if j == l else int(others[k, j]))
            ctx.set(dut.layer, int(l))
            await ctx.tick()
            ctx.set(dut.layer_out, int(l))          # the pipeline carries the layer along
            out.append((ctx.get(dut.f), ctx.get(dut.d)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return np.array(out, dtype=np.int64).reshape(-1, 2)


@pytest.mark.parametrize("seed", range(12))
def test_activation_unit_equals_the_model(seed):
    rng = np.random.default_rng(8100 + seed)
    kinds = [ACTIVATIONS[seed % len(ACTIVATIONS)], str(rng.choice(ACTIVATIONS))]
    spec = random_spec(rng, n_layers=(3, 3), activations=tuple(kinds))
    X = spec.formats.x
    xs = _inputs(X, rng)
    layers = rng.integers(0, spec.L, len(xs))
    got = run_unit(spec, layers, xs)
    for l in range(spec.L):
        sel = layers == l
        f, d = fixed_activation(spec.activations[l], xs[sel], X, spec.table_bits)
        assert np.array_equal(got[sel, 0], f), (seed, spec.activations[l], X)
        assert np.array_equal(got[sel, 1], d), (seed, spec.activations[l], X)


def test_a_wrong_layer_select_is_caught():
    """The check can fail: reading relu's output for a tanh layer differs from the model."""
    rng = np.random.default_rng(1)
    spec = random_spec(rng, n_layers=(3, 3), activations=("relu", "tanh"))
    while set(spec.activations) != {"relu", "tanh"}:
        spec = random_spec(rng, n_layers=(3, 3), activations=("relu", "tanh"))
    xs = _inputs(spec.formats.x, rng)
    relu_layer = spec.activations.index("relu")
    tanh_layer = spec.activations.index("tanh")
    got = run_unit(spec, [relu_layer] * len(xs), xs)
    f, _ = fixed_activation("tanh", xs, spec.formats.x, spec.table_bits)
    assert not np.array_equal(got[:, 0], f)
    got = run_unit(spec, [tanh_layer] * len(xs), xs)
    assert np.array_equal(got[:, 0], f)
