"""Analog co-design model: AnalogPCN on ideal crossbars equals FloatPCN, the continuous-time
ODE is what FloatPCN discretises, and every noise model's statistics match its definition."""
import numpy as np
import pytest

from pcforge.model import FloatPCN, PCSpec, Weights
from pcforge.model.analog.config import NONIDEALITIES, PRESETS, AnalogConfig, preset
from pcforge.model.analog.pcn import AnalogPCN
from pcforge.model.analog.continuous import ContinuousPCN, euler_error
from pcforge.model.analog.crossbar import Crossbar, quantize_symmetric
from pcforge.model.analog.pcm import PCMStatistics
from pcforge.model.randspec import random_mask, random_spec
from pcforge.model.train import SGD


def _float_net(rng, spec):
    w = Weights.init(spec, rng)
    w.b = [rng.uniform(-0.3, 0.3, v.shape) for v in w.b]
    return w


def _clamped(spec, mask, rng, batch=3):
    return {l: rng.normal(size=(batch, spec.sizes[l])) for l, m in enumerate(mask) if m}


def _rngs(seed=0):
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))


# ---- the ideal substrate is FloatPCN --------------------------------------------------------
def test_ideal_analog_equals_float_on_random_networks():
    """60 random networks (every activation, both schedules, random masks): relaxation,
    learning after relaxation and incremental learning on ideal crossbars equal FloatPCN to
    float64 rounding — every x, e, energy and weight (with headroom, so that no device
    saturates: asserted)."""
    rng = np.random.default_rng(5)
    worst = 0.0
    for case in range(60):
        spec = random_spec(rng, size=(1, 12))
        w = _float_net(rng, spec)
        mask = random_mask(spec, rng)
        clamped = _clamped(spec, mask, rng)
        fnet, anet = FloatPCN(spec, w), AnalogPCN(spec, w, AnalogConfig(seed=case, headroom=4.0))
        if case % 3 == 0:
            fr, ar = fnet.relax(clamped, mask), anet.relax(clamped, mask)
        elif case % 3 == 1:
            fr = fnet.relax(clamped, mask, learn=SGD(fnet, 0.05))
            ar = anet.relax(clamped, mask, learn=SGD(anet, 0.05))
        else:
            fr = fnet.relax(clamped, mask)
            ar = anet.relax(clamped, mask)
            fnet.apply(*fnet.hebbian(fr.x, fr.e), 0.05)
            anet.apply(*anet.hebbian(ar.x, ar.e), 0.05)
        assert sum(xb.saturated for xb in anet.crossbars) == 0
        pairs = list(zip(fr.x + fr.e + fnet.W + fnet.b, ar.x + ar.e + anet.W + anet.b))
        pairs.append((fr.energy, ar.energy))
        for a, b in pairs:
            scale = 1.0 + float(np.max(np.abs(a), initial=0.0))
            worst = max(worst, float(np.max(np.abs(a - b), initial=0.0)) / scale)
    assert worst < 1e-12, worst


# ---- continuous time ----------------------------------------------------------------------------
def _tanh_net(seed=0, sizes=(6, 8, 5), learning="after_relaxation"):
    rng = np.random.default_rng(seed)
    spec = PCSpec(sizes=sizes, activations=("tanh",) * (len(sizes) - 1), iterations=10,
                  learning=learning)
    return spec, _float_net(rng, spec), rng


@pytest.mark.parametrize("mask,init", [("training", "feedforward"), ("inference", "zero")])
def test_euler_converges_to_the_ode_at_first_order(mask, init):
    """FloatPCN with step γ is explicit Euler of τ_x dx/dt: halving γ (doubling T, the same
    time) halves the distance to scipy's solution."""
    spec, w, rng = _tanh_net()
    net = FloatPCN(spec, w)
    clamped = _clamped(spec, spec.mask(mask), rng)
    errs = [euler_error(net, clamped, mask, g, int(round(2.0 / g)), init=init)
            for g in (0.2, 0.1, 0.05, 0.025)]
    assert errs[0] > 1e-4, "the dynamics must move for this test to mean anything"
    ratios = [a / b for a, b in zip(errs, errs[1:])]
    assert all(1.8 < r < 2.2 for r in ratios), (errs, ratios)


def test_continuous_learning_converges_to_incremental_pc():
    """With τ_W, FloatPCN's incremental learning (SGD rate dt/τ_W) is Euler of the joint ODE of
    x and W: the weight error shrinks linearly with the step."""
    spec, w, rng = _tanh_net(1)
    clamped = _clamped(spec, spec.mask("training"), rng)
    tau_w, T = 10.0, 2.0
    ode = ContinuousPCN(FloatPCN(spec, w), 1.0, tau_w).relax(clamped, "training", T, learn=True,
                                                            rtol=1e-10, atol=1e-12)
    moved = max(np.max(np.abs(a - b)) for a, b in zip(ode.W, w.W))
    assert moved > 1e-3
    errs = []
    for h in (0.1, 0.05, 0.025):
        net = FloatPCN(spec, w)
        net.relax(clamped, "training", iterations=int(round(T / h)), gamma=h,
                  learn=SGD(net, h / tau_w))
        errs.append(max(np.max(np.abs(a - b)) for a, b in zip(net.W + net.b, ode.W + ode.b)))
    assert all(1.8 < a / b < 2.2 for a, b in zip(errs, errs[1:])), errs


def test_ideal_analog_ode_equals_float_at_equilibrium():
    """With every non-ideality off, the analog network in continuous time reaches FloatPCN's
    fixed point within the solver tolerance (and the two ODEs agree along the way)."""
    spec, w, rng = _tanh_net(2, sizes=(5, 7, 7, 4))
    clamped = _clamped(spec, spec.mask("training"), rng)
    fnet = FloatPCN(spec, w)
    ca = ContinuousPCN(AnalogPCN(spec, w)).relax(clamped, "training", 60.0)
    cf = ContinuousPCN(fnet).relax(clamped, "training", 60.0)
    assert max(np.max(np.abs(a - b)) for a, b in zip(ca.x, cf.x)) < 1e-6
    disc = fnet.relax(clamped, "training", iterations=1200, gamma=0.05)
    assert max(np.max(np.abs(a - b)) for a, b in zip(ca.x, disc.x)) < 1e-6
    assert np.all(np.diff(ca.energy, axis=0) <= 1e-9), "energy must not rise"


def test_continuous_refuses_what_it_cannot_integrate():
    spec, w, _ = _tanh_net()
    with pytest.raises(ValueError, match="per-read noise"):
        ContinuousPCN(AnalogPCN(spec, w, AnalogConfig(out_noise=0.1)))
    with pytest.raises(ValueError, match="tau_w"):
        ContinuousPCN(FloatPCN(spec, w)).relax({0: np.zeros((1, 6)), 2: np.zeros((1, 5))},
                                               "training", 1.0, learn=True)
    with pytest.raises(ValueError, match="FloatPCN"):
        ContinuousPCN(AnalogPCN(spec, w), tau_w=5.0).relax(
            {0: np.zeros((1, 6)), 2: np.zeros((1, 5))}, "training", 1.0, learn=True)


# ---- PCM statistics ---------------------------------------------------------------------------
N = 200_000


@pytest.mark.parametrize("gt", [0.3, 0.6, 1.0])
def test_programming_noise_mean_and_sigma(gt):
    pcm = PCMStatistics()
    g = np.full(N, gt * pcm.g_max)
    out = pcm.program(g, np.random.default_rng(1))
    sig = max(-1.1731 * gt * gt + 1.9650 * gt + 0.26348, 0.0)      # µS, g_max = 25 µS
    assert abs(out.mean() - g[0]) < 5 * sig / np.sqrt(N)
    assert abs(out.std() / sig - 1) < 0.01
    half = PCMStatistics(prog_scale=0.5).program(g, np.random.default_rng(1))
    assert abs(half.std() / (0.5 * sig) - 1) < 0.01


@pytest.mark.parametrize("gt", [0.05, 0.3, 1.0])
def test_drift_exponent_distribution_and_power_law(gt):
    pcm = PCMStatistics()
    g = np.full(N, gt * pcm.g_max)
    nu = pcm.drift_exponents(g, np.random.default_rng(2))
    mu = np.clip(-0.0155 * np.log(gt) + 0.0244, 0.049, 0.1)
    sd = np.clip(-0.0125 * np.log(gt) - 0.0059, 0.008, 0.045)
    assert abs(nu.mean() - mu) < 5 * sd / np.sqrt(N)
    assert abs(nu.std() / sd - 1) < 0.02
    # the power law: log(g(t)/g_prog) is linear in log((t + t0)/t0) with slope −ν
    t = np.array([0.0, 60.0, 3600.0, 86400.0, 3.15e7])
    gd = pcm.drift(g[:5, None], nu[:5, None], t[None, :])
    slope = np.log(gd[:, 1:] / g[:5, None]) / np.log((t[1:] + pcm.t0) / pcm.t0)[None, :]
    assert np.allclose(gd[:, 0], g[:5])
    assert np.allclose(slope, -nu[:5, None], rtol=1e-12)


@pytest.mark.parametrize("t", [0.0, 3600.0, 3.15e7])
def test_read_noise_sigma_follows_the_1_over_f_law(t):
    pcm = PCMStatistics()
    gt = 0.5
    g = np.full(N, gt * pcm.g_max)
    out = pcm.read(g, g, t, np.random.default_rng(3))
    qs = min(0.0088 / gt ** 0.65, 0.2)
    sig = g[0] * qs * np.sqrt(np.log((t + 20.0 + 250e-9) / (2 * 250e-9)))
    assert abs(out.mean() - g[0]) < 5 * sig / np.sqrt(N)
    assert abs(out.std() / sig - 1) < 0.01


def test_device_variation_and_stuck_devices():
    W = np.random.default_rng(0).normal(size=(200, 300))
    cfg = AnalogConfig(d2d_gain=0.1, stuck_off=0.05)
    xb = Crossbar(W, np.zeros(200), cfg, _rngs())
    alive = xb.gain[xb.gain > 0]
    p = np.mean(xb.gain == 0)
    n = xb.gain.size
    assert abs(p - 0.05) < 5 * np.sqrt(0.05 * 0.95 / n)
    assert abs(alive.mean() - 1) < 5 * 0.1 / np.sqrt(alive.size)
    assert abs(alive.std() / 0.1 - 1) < 0.03


# ---- periphery ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [2, 4, 7])
def test_symmetric_quantiser(bits):
    v = np.linspace(-1.5, 1.5, 10001)
    q = quantize_symmetric(v, bits)
    levels = np.unique(q)
    assert len(levels) == 2 ** bits - 1
    step = 1 / (2 ** (bits - 1) - 1)
    inside = np.abs(v) <= 1
    assert np.max(np.abs(q - v)[inside]) <= step / 2 + 1e-12
    assert np.all(np.abs(q) <= 1)


def test_per_read_noise_statistics():
    """w_noise and out_noise: the output std equals σ · w_max · max|u| · (||u/max|u||| for
    weight noise, 1 for output noise) — the definitions in AnalogConfig."""
    rng = np.random.default_rng(4)
    W = rng.normal(size=(3, 8))
    u = rng.normal(size=(1, 8))
    s = np.max(np.abs(np.append(u, 1.0)))
    for kind, sigma in (("w_noise", 0.05), ("out_noise", 0.1)):
        xb = Crossbar(W, np.zeros(3), AnalogConfig(**{kind: sigma}), _rngs(1))
        ys = xb.forward(np.repeat(u, 100_000, axis=0))
        ideal = u @ W.T
        un = np.append(u, 1.0) / s
        expect = sigma * xb.w_max * s * (np.sqrt(np.sum(un ** 2)) if kind == "w_noise" else 1)
        assert np.allclose(ys.mean(axis=0), ideal[0], atol=5 * expect / np.sqrt(1e5))
        assert np.allclose(ys.std(axis=0) / expect, 1, atol=0.02)


def test_converters_quantise_input_and_output():
    rng = np.random.default_rng(6)
    W = rng.normal(size=(4, 5))
    b = rng.normal(size=4)
    u = rng.normal(size=(7, 5))
    xb = Crossbar(W, b, AnalogConfig(dac_bits=4, adc_bits=6, adc_bound=3.0), _rngs())
    ua = np.concatenate([u, np.ones((7, 1))], axis=1)
    s = np.max(np.abs(ua), axis=1, keepdims=True)
    Wa = np.concatenate([W, b[:, None]], axis=1)
    y = quantize_symmetric(quantize_symmetric(ua / s, 4) @ (Wa.T / xb.w_max), 6, 3.0)
    assert np.allclose(xb.forward(u), y * xb.w_max * s, rtol=0, atol=1e-12)
    assert not np.allclose(xb.forward(u), u @ W.T + b, atol=1e-3)


def test_drift_compensation_restores_the_all_ones_read():
    rng = np.random.default_rng(7)
    W = rng.normal(size=(10, 12))
    cfg = AnalogConfig(drift=1.0, t_inference=3.15e7, drift_compensation=True)
    xb = Crossbar(W, np.zeros(10), cfg, _rngs())
    assert xb.comp > 1.2, "a year of drift must shrink the read"
    ones = np.ones((1, 12))
    drifted = Crossbar(W, np.zeros(10), cfg.replace(drift_compensation=False), _rngs())
    fresh = Crossbar(W, np.zeros(10), cfg.replace(t_inference=0.0), _rngs())
    a, d, f = (np.sum(np.abs(x.forward(ones))) for x in (xb, drifted, fresh))
    assert abs(a - f) < 1e-9 * f and d < 0.85 * f


def test_pulsed_updates_are_unbiased_asymmetric_and_noisy():
    W = np.zeros((50, 40))
    W[0, 0] = 1.0                                       # w_max = 1
    cfg = AnalogConfig(dw_min=0.01, up_down=0.2)
    xb = Crossbar(W, np.zeros(50), cfg, _rngs())
    r = np.full((200_000,), 0.0137)
    for sign, factor in ((1, 1.2), (-1, 0.8)):
        got = xb.pulses(sign * r)
        assert abs(got.mean() / (sign * 0.0137 * factor) - 1) < 0.005
        assert set(np.round(np.abs(got) / (0.01 * factor)).astype(int)) == {1, 2}
    noisy = Crossbar(W, np.zeros(50), cfg.replace(up_down=0.0, dw_min_std=0.3), _rngs())
    got = noisy.pulses(np.full(200_000, 0.05))          # exactly 5 pulses each
    assert abs(got.mean() - 0.05) < 1e-4
    assert abs(got.std() / (0.01 * 0.3 * np.sqrt(5)) - 1) < 0.02


def test_updates_potentiate_one_device_and_saturate():
    W = np.array([[0.5, -0.5]])
    xb = Crossbar(W, np.zeros(1), AnalogConfig(headroom=2.0), _rngs())    # w_max = 1
    xb.update(np.array([[0.2, 0.2]]), np.zeros(1))
    Wr, _ = xb.weights
    assert np.allclose(Wr, [[0.7, -0.3]])
    assert xb.g_prog[1, 0, 1] == pytest.approx(12.5)    # g⁻ of w = −0.5 did not move
    assert xb.g_prog[0, 0, 1] == pytest.approx(5.0)     # its g⁺ took the +0.2
    assert xb.saturated == 0
    xb.update(np.array([[5.0, 0.0]]), np.zeros(1))      # beyond g_max
    assert xb.g_prog[0, 0, 0] == 25.0 and xb.saturated == 1
    assert np.allclose(xb.weights[0], [[1.0, -0.3]])


def test_same_seed_same_chip_other_seed_other_chip():
    spec, w, rng = _tanh_net(3)
    cfg = preset("pcm", t_inference=3600.0, w_noise=0.02)
    x = rng.normal(size=(4, 6))
    a1, a2 = AnalogPCN(spec, w, cfg).infer(x), AnalogPCN(spec, w, cfg).infer(x)
    b = AnalogPCN(spec, w, cfg.replace(seed=1)).infer(x)
    assert np.array_equal(a1, a2)
    assert not np.allclose(a1, b)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="prog_noise"):
        AnalogConfig(prog_noise=-1)
    with pytest.raises(ValueError, match="adc_bits"):
        AnalogConfig(adc_bits=1)
    with pytest.raises(ValueError, match="up_down"):
        AnalogConfig(up_down=1.0)
    with pytest.raises(ValueError, match="no field"):
        AnalogConfig().replace(drfit=1.0)
    with pytest.raises(ValueError, match="unknown analog preset"):
        preset("rram")
    assert AnalogConfig().ideal and not PRESETS["pcm"].ideal
    for name, levels in NONIDEALITIES.items():
        assert AnalogConfig(**{name: levels[0]}).ideal, name
