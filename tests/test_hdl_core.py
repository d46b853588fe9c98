"""PCCore in Amaranth's simulator against FixedPCN: every x and e after every iteration, bit for
bit, on many random networks; the cycle counter against the cycle model; host read-back; every
memory port's address inside its memory on every cycle.

``PCFORGE_AMARANTH_SPECS`` random networks (default 48; the coverage test below checks that they
still reach every activation, init, schedule and hazard kind) and half as many per learning
rule: the Python simulator runs ~500 cycles/s, so the larger random sweeps run the emitted
Verilog (``tests/test_verilator.py``: 120 networks with idle cycles, back-pressure and random
masks; ``pcforge verify`` for thousands)."""
import os
from dataclasses import replace

import numpy as np
import pytest

from pcforge.hdl.core import PCCore
from pcforge.hdl.protocol import TARGET, HostWord, node_addresses, weight_addresses
from pcforge.model import FixedPCN, PCSpec, Weights
from pcforge.model.arch.cycles import cycle_report
from pcforge.model.randspec import (random_clamped, random_int_weights, random_mask,
                                   random_node_clamp, random_pins, random_spec)
from pcforge.model.arch.schedule import ff_writes_errors, pred_by_columns, schedule
from pcforge.model.presets import digits_spec
from pcforge.sim.amaranth_sim import run_core

N_RANDOM = int(os.environ.get("PCFORGE_AMARANTH_SPECS", "48"))


def assert_run_matches(run, ref, spec, where):
    """Scoreboard: the hardware's trace against FixedPCN's (x(t+1) and e(t) at every pause; as
    many pauses as the model's iterations — fewer than T after an exact stop)."""
    T = int(ref.iterations[0])
    assert len(run.trace_x) == T, f"{len(run.trace_x)} pauses for {T} iterations; {where}"
    for t in range(T):
        for k in range(spec.n_layers):
            hx, mx = run.trace_x[t][k], ref.trace_x[t + 1][k][0]
            assert np.array_equal(hx, mx), f"x_{k}(t={t + 1}) hw {hx} model {mx}; {where}"
            he, me = run.trace_e[t][k], ref.trace_e[t][k][0]
            assert np.array_equal(he, me), f"e_{k}(t={t}) hw {he} model {me}; {where}"
    for k in range(spec.n_layers):
        assert np.array_equal(run.e[k], ref.e[k][0]), f"final e_{k}; {where}"
        assert np.array_equal(run.x[k], ref.x[k][0]), f"final x_{k}; {where}"


def random_case(seed):
    rng = np.random.default_rng(seed)
    spec = random_spec(rng, iterations=(1, 4))
    lanes = int(rng.integers(1, 9))
    W, b = random_int_weights(spec, rng)
    mask = random_mask(spec, rng)
    clamped = random_clamped(spec, mask, rng)
    return spec, lanes, W, b, mask, clamped


@pytest.mark.parametrize("seed", range(N_RANDOM))
def test_core_equals_fixed_model_on_random_specs(seed):
    spec, lanes, W, b, mask, clamped = random_case(seed)
    where = (f"replay: tests/test_hdl_core.py::random_case({seed}) — sizes {spec.sizes}, "
             f"lanes {lanes}, mask {mask}, activations {spec.activations}, init {spec.init}")
    # two samples in a row: the second starts from whatever the first left in the banks
    rng = np.random.default_rng(seed + 10_000)
    samples = [clamped, random_clamped(spec, mask, rng)]
    # every memory port's address inside its memory's depth on every cycle (an assertion)
    runs = run_core(PCCore(spec, lanes), W, b,
                    [{k: v[0] for k, v in c.items()} for c in samples], mask,
                    check_addresses=True)
    for i, (c, run) in enumerate(zip(samples, runs)):
        ref = FixedPCN(spec, W, b).relax(c, mask, trace=True)
        assert_run_matches(run, ref, spec, f"sample {i}; {where}")
        assert run.cycles == cycle_report(spec, lanes, mask,
                                          iterations=ref.iterations[0]).total, where


@pytest.mark.parametrize("seed", range(max(6, N_RANDOM // 6)))
def test_core_with_two_rows_per_token_equals_fixed_model(seed):
    """Two rows per token (``PCCore(rows=2)``: two multipliers per lane, odd-row weight and bias
    halves): random networks — odd row counts, pins, learning after relaxation, a run-time α —
    every x and e after every iteration (inference, traced) or every weight and bias after
    every sample (learning) and the cycles equal FixedPCN and the cycle model; every memory
    port's address inside its memory on every cycle."""
    from pcforge.sim.verify import random_case as verify_case
    c = verify_case(9100 + seed, rows=2, samples=2)
    if seed % 2:                    # every other case relaxes only, traced every iteration
        c = replace(c, learn=False)
    spec, lanes = c.spec, c.lanes
    where = (f"replay: verify.random_case({9100 + seed}, rows=2) — sizes {spec.sizes}, lanes "
             f"{lanes}, mask {c.mask}, learn {c.learn}")
    runs = run_core(PCCore(spec, lanes, rows=2), c.W, c.b, c.samples, c.mask, learn=c.learn,
                    trace=not c.learn, check_addresses=True, pins=c.pins, alpha=c.alpha)
    net = FixedPCN(spec, c.W, c.b)
    for i, (s, run) in enumerate(zip(c.samples, runs)):
        if c.alpha is not None:
            net.set_alpha(c.alpha[i])
        pins = ({k: np.asarray(v, bool)[None] for k, v in c.pins[i].items()}
                if c.pins else None)
        ref = net.relax({k: np.asarray(v)[None] for k, v in s.items()}, c.mask, trace=True,
                        pins=pins, learning=spec.learning if c.learn else None)
        if c.learn:
            for l in range(spec.L):
                assert np.array_equal(run.W[l], net.W[l]), f"W_{l + 1}, sample {i}; {where}"
                assert np.array_equal(run.b[l], net.b[l]), f"b_{l + 1}, sample {i}; {where}"
            for k in range(spec.n_layers):
                assert np.array_equal(run.x[k], ref.x[k][0]), f"x_{k}, sample {i}; {where}"
        else:
            assert_run_matches(run, ref, spec, f"sample {i}; {where}")
        assert run.cycles == cycle_report(spec, lanes, c.mask, learn=c.learn, rows=2,
                                          iterations=ref.iterations[0]).total, where


def pinned_case(seed):
    """A random case with per-node clamps: some free layers in ``node_clamp`` and per sample
    random pins (none, some or all of a layer's nodes) holding random values."""
    spec, lanes, W, b, mask, _ = random_case(seed)
    if all(mask):
        mask = spec.clamp["inference"]
    prng = np.random.default_rng([seed, 2])
    pinned = spec
    while not pinned.node_clamp:
        pinned = random_node_clamp(spec, mask, prng)
    samples, pins = [], []
    for _ in range(3):
        c = random_clamped(pinned, mask, prng)
        p, v = random_pins(pinned, prng)
        c.update(v)
        samples.append(c)
        pins.append(p)
    return pinned, lanes, W, b, mask, samples, pins


@pytest.mark.parametrize("seed", range(max(4, N_RANDOM // 4)))
def test_core_holds_pinned_nodes_like_fixed_model(seed):
    """Per-node clamps: three samples in a row, each with its own random pins (held values
    written, the pin bits rewritten, none left over from the sample before), every x and e
    of every iteration against FixedPCN and the cycles against the cycle model (pins do not
    change the schedule)."""
    spec, lanes, W, b, mask, samples, pins = pinned_case(seed)
    where = (f"replay: tests/test_hdl_core.py::pinned_case({seed}) — sizes {spec.sizes}, "
             f"lanes {lanes}, mask {mask}, node_clamp {spec.node_clamp}, stop {spec.stop}")
    runs = run_core(PCCore(spec, lanes), W, b,
                    [{k: v[0] for k, v in c.items()} for c in samples], mask,
                    pins=[{k: v[0] for k, v in p.items()} for p in pins], check_addresses=True)
    for i, (c, p, run) in enumerate(zip(samples, pins, runs)):
        ref = FixedPCN(spec, W, b).relax(c, mask, trace=True, pins=p)
        assert_run_matches(run, ref, spec, f"sample {i}; {where}")
        for k, held in p.items():
            assert np.array_equal(run.x[k][held[0]], c[k][0][held[0]]), where
        assert run.cycles == cycle_report(spec, lanes, mask,
                                          iterations=ref.iterations[0]).total, where


def test_random_cases_cover_the_space():
    """The random cases above exercise every activation, both inits, both schedules, lanes that do
    not divide the layer sizes, more lanes than nodes, free input layers and clamped top layers,
    jobs that wait for the previous job's results (a hazard wait) and jobs that start while the
    previous job's writes are still in the pipeline, in both schedules."""
    acts, inits, flags, schedules = set(), set(), set(), set()
    for seed in range(N_RANDOM):
        spec, lanes, W, b, mask, clamped = random_case(seed)
        acts.update(spec.activations)
        inits.add(spec.init)
        schedules.add(spec.schedule)
        if any(n % lanes for n in spec.sizes):
            flags.add("non-dividing")
        if lanes > min(spec.sizes):
            flags.add("lanes>nodes")
        if not mask[0]:
            flags.add("free input")
        if mask[-1]:
            flags.add("clamped top")
        if spec.formats.x.overflow == "wrap" or spec.formats.e.overflow == "wrap":
            flags.add("wrap")
        sch = schedule(spec, lanes)
        if any(v.job is not None and sch.waits[v.slot][v.alt] for v in sch.visits(mask)):
            flags.add(f"wait {spec.schedule}")
        if sch.overlaps(mask):
            flags.add(f"overlap {spec.schedule}")
        by_col = [pred_by_columns(sch.geometry, l) for l in range(1, spec.L + 1)]
        if any(by_col):
            flags.add("prediction by columns")
        if not all(by_col):
            flags.add("prediction by rows")
        early = [l for l in range(1, spec.L + 1)
                 if not mask[l] and ff_writes_errors(sch.geometry, l)]
        if early:
            flags.add("initialisation writes errors")
            if spec.L in early:
                flags.add("initialisation makes the top update")
            # both of the node unit's ways to x(0)·2^s − acc: the residual, and the rail
            x0 = FixedPCN(spec, W, b).relax(clamped, mask, trace=True).trace_x[0]
            X = spec.formats.x
            for l in early:
                rail = (x0[l] == X.max_int) | (x0[l] == X.min_int)
                flags.update({"initialisation saturates"} if rail.any() else set())
                flags.update({"initialisation inside X"} if (~rail).any() else set())
    assert acts == {"identity", "relu", "hardtanh", "tanh"}
    assert inits == {"feedforward", "zero"}
    assert schedules == {"synchronous", "delayed_feedback"}
    assert flags == {"non-dividing", "lanes>nodes", "free input", "clamped top", "wrap",
                     "wait synchronous", "wait delayed_feedback", "overlap synchronous",
                     "overlap delayed_feedback", "prediction by columns",
                     "prediction by rows", "initialisation writes errors",
                     "initialisation makes the top update", "initialisation saturates",
                     "initialisation inside X"}


def test_host_read_back_returns_weights_and_nodes():
    spec, lanes, W, b, mask, clamped = random_case(1234)
    core = PCCore(spec, lanes)
    g = core.geometry
    reads = weight_addresses(g, spec.L)
    reads += node_addresses(g, "x", spec.L) + node_addresses(g, "e", spec.L)
    run = run_core(core, W, b, {k: v[0] for k, v in clamped.items()}, mask, trace=False,
                   read=reads)
    n = len(weight_addresses(g, spec.L))
    expect = np.concatenate([W[-1].reshape(-1), b[-1], run.x[-1], run.e[-1]])
    assert run.readback == expect.tolist()
    assert n == W[-1].size + b[-1].size


def test_host_read_of_no_memory_returns_zero_not_the_last_word():
    """A read of a write-only target (the pins), of a layer without that memory (e_0) or of a
    lane that does not exist (bank 3 of 3 lanes) returns 0 — also right after a read of a
    non-zero word (each response group's word register is cleared unless the request hits
    it)."""
    spec, _, W, b, mask, clamped = random_case(1234)
    core = PCCore(spec, 3)
    g = core.geometry
    words = weight_addresses(g, spec.L)
    values = np.concatenate([W[-1].reshape(-1), b[-1]])
    real = [w for w, v in zip(words, values) if v != 0][:3]
    nowhere = [HostWord(TARGET["pin"], 0, 0, 0), HostWord(TARGET["e"], 0, 0, 0),
               HostWord(TARGET["x"], spec.L, 3, 0)]
    reads = [w for pair in zip(real, nowhere) for w in pair]
    run = run_core(core, W, b, {k: v[0] for k, v in clamped.items()}, mask, trace=False,
                   read=reads)
    assert all(v != 0 for v in run.readback[0::2]), run.readback
    assert run.readback[1::2] == [0, 0, 0], run.readback


@pytest.mark.parametrize("schedule", ["synchronous", "delayed_feedback"])
def test_digits_default_with_trained_weights(schedule):
    """The shipped digits network (64-64-10, T = 20), float-trained weights quantised, on real
    test digits: every x and e of every iteration equals FixedPCN."""
    from pcforge.model.data import load_digits_split
    from pcforge.model.presets import digits_spec
    from pcforge.model.train import train_float
    spec = digits_spec(schedule=schedule)
    data = load_digits_split()
    net, _ = train_float(spec, data, epochs=2)
    fixed = FixedPCN.from_float(spec, Weights(net.W, net.b))
    x0 = fixed.quantize(data.x_test[:3])
    runs = run_core(PCCore(spec, 8), fixed.W, fixed.b, [{0: v} for v in x0], "inference")
    for idx, run in enumerate(runs):
        ref = fixed.relax({0: x0[idx:idx + 1]}, "inference", trace=True)
        assert_run_matches(run, ref, spec, f"digits test sample {idx}")
        assert run.cycles == cycle_report(spec, 8, "inference",
                                          iterations=ref.iterations[0]).total


N_LEARNING = N_RANDOM // 2


def learning_case(seed, rule="after_relaxation"):
    """A random spec with the learning ``rule``, lanes, weights, mask and 3 samples
    (incremental: the synchronous schedule, the one the hardware learns incrementally in)."""
    rng = np.random.default_rng(20_000 + seed + (0 if rule == "after_relaxation" else 50_000))
    spec = random_spec(rng, iterations=(1, 3),
                       **({} if rule == "after_relaxation" else {"schedules": ("synchronous",)}))
    d = spec.to_dict()
    d["network"]["learning"] = rule
    spec = PCSpec.from_dict(d)
    lanes = int(rng.integers(1, 7))
    W, b = random_int_weights(spec, rng)
    mask = random_mask(spec, rng)
    samples = [random_clamped(spec, mask, rng) for _ in range(3)]
    return spec, lanes, W, b, mask, samples


def assert_learns_like_model(spec, lanes, W, b, mask, samples, where, alphas=None):
    """Learning on chip, sample after sample: weights and biases after every update (every
    iteration when incremental, with every x and e), the final x and the cycles equal the
    model; ``alphas``: the α register written before each sample."""
    inc = spec.learning == "incremental"
    runs = run_core(PCCore(spec, lanes), W, b,
                    [{k: v[0] for k, v in c.items()} for c in samples], mask, learn=True,
                    trace=inc, check_addresses=True, alpha=alphas)
    net = FixedPCN(spec, W, b)
    for i, (c, run) in enumerate(zip(samples, runs)):
        if alphas is not None:
            net.set_alpha(alphas[i])
        ref = net.relax(c, mask, learning=spec.learning, trace=inc)
        if inc:
            assert_run_matches(run, ref, spec, f"sample {i}; {where}")
            assert len(run.trace_w) == len(ref.trace_w) == spec.iterations
            for t, ((hw_W, hw_b), (m_W, m_b)) in enumerate(zip(run.trace_w, ref.trace_w)):
                for l in range(spec.L):
                    assert np.array_equal(hw_W[l], m_W[l]), \
                        f"W_{l + 1} after iteration {t} of sample {i}; {where}"
                    assert np.array_equal(hw_b[l], m_b[l]), \
                        f"b_{l + 1} after iteration {t} of sample {i}; {where}"
        for l in range(spec.L):
            assert np.array_equal(run.W[l], net.W[l]), f"W_{l + 1} after sample {i}; {where}"
            assert np.array_equal(run.b[l], net.b[l]), f"b_{l + 1} after sample {i}; {where}"
        for k in range(spec.n_layers):
            assert np.array_equal(run.x[k], ref.x[k][0]), f"x_{k} of sample {i}; {where}"
        assert run.cycles == cycle_report(spec, lanes, mask, learn=True,
                                          iterations=ref.iterations[0]).total, where
    return net


@pytest.mark.parametrize("seed", range(N_LEARNING))
def test_core_learns_like_fixed_model_on_random_specs(seed):
    """On-chip learning (after relaxation): every weight and bias after every sample equals
    FixedPCN (three samples in a row, each relaxing with the weights the previous one left)."""
    case = learning_case(seed)
    assert_learns_like_model(*case, f"replay: learning_case({seed}), schedule {case[0].schedule}")


@pytest.mark.parametrize("seed", range(N_LEARNING))
def test_core_learns_incrementally_like_fixed_model_on_random_specs(seed):
    """Incremental learning on chip (an update every iteration, inference never paused): every
    weight and bias after every iteration, and every x and e of every iteration, equal FixedPCN
    (three samples in a row)."""
    case = learning_case(seed, "incremental")
    assert_learns_like_model(*case, f"replay: learning_case({seed}, 'incremental')")


@pytest.mark.parametrize("seed", range(max(2, N_LEARNING // 2)))
def test_core_learns_with_a_runtime_alpha_like_fixed_model(seed):
    """α as a run-time register (``rates.alpha_runtime``): a different α before each of three
    samples — 1, the register's largest value, a random one — every weight and bias after every
    update equal to FixedPCN's with the same α (both learning rules)."""
    rule = ("after_relaxation", "incremental")[seed % 2]
    spec, lanes, W, b, mask, samples = learning_case(seed + 500, rule)
    spec = spec.replace(alpha_runtime=True)
    top = (1 << spec.alpha_bits) - 1
    rng = np.random.default_rng(seed)
    alphas = [int(v) for v in rng.permutation([1, top, int(rng.integers(1, top + 1))])]
    net = assert_learns_like_model(spec, lanes, W, b, mask, samples,
                                   f"replay: learning_case({seed + 500}, {rule!r}), α {alphas}",
                                   alphas=alphas)
    assert net.alpha.mantissa == alphas[-1]


def test_incremental_learning_needs_the_synchronous_schedule():
    spec = random_spec(np.random.default_rng(3), schedules=("delayed_feedback",))
    d = spec.to_dict()
    d["network"]["learning"] = "incremental"
    spec = PCSpec.from_dict(d)
    W, b = random_int_weights(spec, np.random.default_rng(4))
    core = PCCore(spec, 2)
    for obj in [core, core.b_mem[1:]] + [m for banks in (core.x_mem, core.e_mem[1:],
                core.w_mem[1:]) for m in banks] + core.c_mem:
        for o in (obj if isinstance(obj, list) else [obj]):
            o._MustUse__silence = True       # never simulated: no "created but never used"
    with pytest.raises(ValueError, match="synchronous schedule only"):
        run_core(core, W, b, {}, spec.clamp["training"], learn=True)
    with pytest.raises(ValueError, match="synchronous schedule"):
        cycle_report(spec, 2, "training", learn=True)


def test_weight_saturation_in_hardware_equals_model():
    """A large learning rate and full-range weights drive W and b into saturation; the hardware
    saturates exactly where the model does (and the model counts it)."""
    rng = np.random.default_rng(32)
    spec = random_spec(rng, n_layers=(3, 3), size=(4, 9), iterations=(2, 2),
                       schedules=("synchronous",))
    d = spec.to_dict()
    d["network"]["learning"] = "after_relaxation"
    d["rates"]["alpha"] = {"mantissa": 1, "frac": 0}      # the largest α a spec allows
    d["formats"]["w"] = {"width": 8, "frac": 4, "rounding": "half_even", "overflow": "saturate"}
    d["formats"]["b"] = {"width": 8, "frac": 4, "rounding": "floor", "overflow": "saturate"}
    spec = PCSpec.from_dict(d)
    W = [rng.integers(100, 128, size=spec.weight_shape(l)) * rng.choice([-1, 1])
         for l in range(1, 3)]
    b = [rng.integers(-128, 128, size=spec.sizes[l]) for l in range(1, 3)]
    mask = spec.clamp["training"]
    samples = [random_clamped(spec, mask, rng) for _ in range(3)]
    net = assert_learns_like_model(spec, 3, W, b, mask, samples, "saturation case")
    assert net.sat.counts["w"][1][0] + net.sat.counts["w"][2][0] > 0
    assert any((np.abs(w) == 127).any() or (w == -128).any() for w in net.W)


def _issue_case():
    """The core of sizes 8-2-10-10 at 2 lanes that once read word 10 of its 10-word W_2
    memory (a token meant for W_3 presented to every W memory's address register)."""
    d = digits_spec(hidden=(2, 10), iterations=2).to_dict()
    d["network"]["sizes"] = [8, 2, 10, 10]
    spec = PCSpec.from_dict(d)
    rng = np.random.default_rng(0)
    W, b = random_int_weights(spec, rng)
    samples = {m: {k: v[0] for k, v in random_clamped(spec, spec.clamp[m], rng).items()}
               for m in ("inference", "training")}
    return spec, W, b, samples


def test_no_memory_is_addressed_outside_its_depth():
    spec, W, b, samples = _issue_case()
    for mask, cl in samples.items():
        run = run_core(PCCore(spec, 2), W, b, cl, mask, check_addresses=True)
        ref = FixedPCN(spec, W, b).relax({k: v[None] for k, v in cl.items()}, mask)
        assert all(np.array_equal(run.x[k], ref.x[k][0]) for k in range(spec.n_layers))


def test_address_watch_catches_an_unguarded_address_register(monkeypatch):
    """The watch can fail: with the read-address register of before (every address taken,
    whichever memory it was meant for) it reports the out-of-range read by name."""
    from amaranth import Mux, Signal

    from pcforge.hdl.host_port import HostPort

    def unguarded(self, port, k_read, pipe_addr, host_addr):
        reg = Signal.like(port.addr, name=f"{port.addr.name}_r", reset_less=True)
        tk = self.tokens[k_read - 1]
        self.m.d.sync += reg.eq(Mux(tk.valid, pipe_addr(tk), host_addr))
        self.m.d.comb += port.addr.eq(reg)
        self._check(port.addr < port.memory.depth, port, "read")
    monkeypatch.setattr(HostPort, "read_address", unguarded)
    spec, W, b, samples = _issue_case()
    with pytest.raises(AssertionError, match=r"w2_lane0 \(depth 10\) read at address 10"):
        run_core(PCCore(spec, 2), W, b, samples["inference"], "inference",
                 check_addresses=True)


@pytest.mark.parametrize("seed", range(6))
def test_single_ported_weight_memories_run_like_fixed_model(seed):
    """Weight memories in SPRAM (``spram_weights``: one address for reads and writes): the
    host loads them and reads them back, every x and e of every iteration equals FixedPCN's
    (two samples in a row), the cycles the model's; such a core cannot learn."""
    spec, lanes, W, b, mask, clamped = random_case(700 + seed)
    spram = tuple(range(1, spec.L + 1)) if seed % 2 else (spec.L,)
    core = PCCore(spec, lanes, spram_weights=spram)
    assert not core.learns
    g = core.geometry
    reads = [a for l in range(1, spec.L + 1) for a in weight_addresses(g, l)]
    rng = np.random.default_rng(seed)
    samples = [clamped, random_clamped(spec, mask, rng)]
    runs = run_core(core, W, b, [{k: v[0] for k, v in c.items()} for c in samples], mask,
                    read=reads, check_addresses=True)
    want = np.concatenate([np.concatenate([W[l].reshape(-1), b[l]]) for l in range(spec.L)])
    for i, (c, run) in enumerate(zip(samples, runs)):
        ref = FixedPCN(spec, W, b).relax(c, mask, trace=True)
        assert_run_matches(run, ref, spec, f"sample {i}; spram {spram}; seed {seed}")
        assert run.cycles == cycle_report(spec, lanes, mask,
                                          iterations=ref.iterations[0]).total
        assert run.readback == want.tolist()
