"""The CPU baselines of ``benchmarks/bench_workloads.py`` compute what FloatPCN computes.

The benchmark compares the hardware with a lean numpy loop and a scalar C loop
(``benchmarks/c/pc_relax.c``, compiled here with the system C compiler); a speed figure means
something only if the code measured does the same job. On random synchronous specs (every
activation, 2–5 layers, random clamp masks, both initialisations, learning after relaxation)
both must equal FloatPCN to float rounding, and the C loop's exact stop must change nothing but
the iterations it runs.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

from pcforge.model import Weights
from pcforge.model.presets import digits_spec
from pcforge.model.randspec import random_mask, random_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_workloads as bw  # noqa: E402


@pytest.fixture(scope="module")
def c_fn(tmp_path_factory):
    """Every build of the C loop the benchmark times."""
    tmp = tmp_path_factory.mktemp("c")
    return {label: bw.compile_c(tmp, flags)[0] for label, flags in bw.C_BUILDS.items()}


@pytest.mark.parametrize("seed", range(40))
def test_cpu_baselines_equal_floatpcn_on_random_specs(c_fn, seed):
    rng = np.random.default_rng(seed)
    spec = random_spec(rng, schedules=("synchronous",), iterations=(1, 12))
    spec = spec.replace(init=str(rng.choice(["feedforward", "zero"])),
                        gamma=spec.gamma, learning="after_relaxation")
    w = Weights.init(spec, rng)
    n = 5
    learn = bool(rng.random() < 0.4)
    mask = spec.mask("training") if learn else random_mask(spec, rng)
    clamped = {l: rng.normal(0, 1, (n, spec.sizes[l])) for l, m in enumerate(mask) if m}
    wl = bw.Workload("R", f"seed {seed}", spec, mask, clamped, learn)
    impl = bw.CpuImplementations(wl, w, c_fn)
    its = impl.check(n)
    assert all(1 <= k <= spec.iterations for k in its)


def test_c_loop_stops_at_rest_and_not_when_driven(c_fn):
    """At rest (input clamped, feed-forward init) the float state never moves: the C loop's
    exact stop ends after one iteration; with the label clamped too it runs on."""
    spec = digits_spec()
    rng = np.random.default_rng(1)
    w = Weights.init(spec, rng)
    x = rng.random((4, 64))
    t = np.eye(10)[rng.integers(0, 10, 4)]
    rest = bw.CpuImplementations(bw.Workload("W1", "", spec, "inference", {0: x}, False), w, c_fn)
    assert rest.check(4) == [1, 1, 1, 1]
    driven = bw.CpuImplementations(
        bw.Workload("W2", "", spec, "training", {0: x, spec.L: t}, True), w, c_fn)
    assert all(k > 1 for k in driven.check(4))


def test_loading_the_fast_math_build_leaves_subnormals_alone(c_fn):
    """A -ffast-math library linked with crtfastmath.o sets flush-to-zero for the whole process
    that loads it (hypothesis then fails elsewhere in the same worker); the builds are linked
    without it, so subnormal floats still exist here."""
    assert len(c_fn) == len(bw.C_BUILDS)
    tiny = np.float64(2.2250738585072014e-308)          # the smallest normal double
    assert tiny / 2 != 0.0 and np.nextafter(0.0, 1.0) > 0.0


def test_lane_counts_take_optional_rows_clock_and_seed():
    """``--ulx3s-lanes 8,16@85,16/2,16x2``: each lane count with one or two rows per token, at
    the board's clock or at the one given, with the build's placer seed or the one given; a
    malformed item names itself and the form."""
    assert bw.parse_lane_clocks("8, 16@85,16/2, 16@90/3,16x2, 16x2@95/2") == [
        (8, None, None, 1), (16, 85.0, None, 1), (16, None, 2, 1), (16, 90.0, 3, 1),
        (16, None, None, 2), (16, 95.0, 2, 2)]
    with pytest.raises(SystemExit, match=r"'16@fast'.*LANES\[xROWS\]\[@MHz\]\[/SEED\]"):
        bw.parse_lane_clocks("8,16@fast")
    with pytest.raises(SystemExit, match="'16/x'"):
        bw.parse_lane_clocks("16/x")
    with pytest.raises(SystemExit, match="'16xx'"):
        bw.parse_lane_clocks("16xx")
