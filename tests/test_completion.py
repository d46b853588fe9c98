"""Per-node clamping (issue 17, item 2): the spec's per-node masks and ``node_clamp``, FloatPCN and
FixedPCN holding pinned nodes, the ``--pin`` option's errors and runs on the hardware, and the
completion demo (``pcforge complete``). The core against FixedPCN with random pins on random
specs is in ``tests/test_hdl_core.py`` (Amaranth) and ``tests/test_verilator.py`` (the random
cases of ``pcforge verify`` hold pins in about a third of them)."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from pcforge.cli import main
from pcforge.model import FixedPCN, FloatPCN, PCSpec, SpecError, Weights
from pcforge.model.completion import (HIDE, baseline_rmse, complete, completion_digits_spec,
                                      hidden_pixels, hidden_rmse)
from pcforge.model.data import load_digits_split
from pcforge.model.presets import digits_spec
from pcforge.model.train import train_float


# ---- the spec ---------------------------------------------------------------------------------
def test_per_node_masks_round_trip_and_name_their_layers(tmp_path):
    spec = completion_digits_spec()
    assert spec.node_clamp == (2,)
    assert spec.mask("complete_top") == (False, False, False)          # free at layer level
    pins = spec.pins("complete_top")[2]
    assert pins.shape == (64,) and pins[32:].all() and not pins[:32].any()
    spec.save(tmp_path / "s.toml")
    back = PCSpec.load(tmp_path / "s.toml")
    assert back == spec and back.digest == spec.digest
    # a per-node entry in a named mask adds its layer to node_clamp
    s = digits_spec(clamp={"half": [[True] * 32 + [False] * 32, False, False]})
    assert s.node_clamp == (0,) and s.mask("half") == (False, False, False)
    # specs without per-node clamps keep their TOML (and digests) as before
    assert "node_clamp" not in digits_spec().to_dict()["network"]


@pytest.mark.parametrize("make, says", [
    (lambda: digits_spec(node_clamp=(5,)), "network.node_clamp = (5,)"),
    (lambda: digits_spec(clamp={"x": [[True] * 3, False, False]}), "one boolean per node"),
    (lambda: digits_spec().pins("generation", {0: np.ones(64, bool)}),
     "layer 0 cannot be clamped node by node"),
    (lambda: digits_spec(node_clamp=(0,)).pins("inference", {0: np.ones(64, bool)}),
     "layer 0 is clamped whole under this mask"),
    (lambda: digits_spec(node_clamp=(0,)).pins("generation", {0: np.ones(63, bool)}),
     "has shape (63,)"),
    (lambda: digits_spec(node_clamp=(0,)).pins("generation", {0: np.full(64, 2)}),
     "booleans or 0/1"),
])
def test_bad_per_node_clamps_are_refused_with_the_fix(make, says):
    with pytest.raises(SpecError, match=None) as exc:
        make()
    assert says in str(exc.value), str(exc.value)


# ---- the models -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pinned_nets():
    spec = digits_spec(hidden=(16,), node_clamp=(0, 1), init="zero")
    w = Weights.init(spec, np.random.default_rng(4))
    return spec, FloatPCN(spec, w), FixedPCN.from_float(spec, w)


def test_pinned_nodes_hold_their_values_and_the_rest_relax(pinned_nets):
    spec, fl, fx = pinned_nets
    rng = np.random.default_rng(0)
    x0, lab = rng.random((5, 64)), np.eye(10)[rng.integers(0, 10, 5)]
    h = rng.normal(size=(5, 16))
    pins = {0: rng.random((5, 64)) < 0.5, 1: rng.random((5, 16)) < 0.3}
    r = fl.relax({0: x0, 1: h, 2: lab}, "generation", pins=pins)
    assert np.array_equal(r.x[0][pins[0]], x0[pins[0]])
    assert np.array_equal(r.x[1][pins[1]], h[pins[1]])
    free = r.x[0][~pins[0]]
    assert np.abs(free).max() > 0                      # zero init, then they moved
    q = {0: fx.quantize(x0, 0), 1: fx.quantize(h, 1), 2: fx.quantize(lab, 2)}
    rq = fx.relax(q, "generation", pins=pins, trace=True)
    for t in range(len(rq.trace_x)):
        assert np.array_equal(rq.trace_x[t][0][pins[0]], q[0][pins[0]])
    # fixed follows float (the differences are the formats' rounding, reported by compare)
    assert np.abs(spec.formats.x.to_float(rq.x[0]) - r.x[0]).max() < 0.05


def test_a_fully_pinned_layer_equals_the_layer_clamped(pinned_nets):
    """Pinning every node of a layer is the layer clamped: same x and e, float and fixed (only
    the hardware's cycles differ: the layer is still swept as a free one)."""
    spec, fl, fx = pinned_nets
    rng = np.random.default_rng(1)
    x0, lab = rng.random((4, 64)), np.eye(10)[rng.integers(0, 10, 4)]
    a = fl.relax({0: x0, 2: lab}, "training")
    b = fl.relax({0: x0, 2: lab}, "generation", pins={0: np.ones(64, bool)})
    assert all(np.allclose(u, v) for u, v in zip(a.x, b.x))
    q = {0: fx.quantize(x0, 0), 2: fx.quantize(lab, 2)}
    a = fx.relax(q, "training", init="feedforward")
    b = fx.relax(q, "generation", pins={0: np.ones(64, bool)}, init="feedforward")
    assert all(np.array_equal(u, v) for u, v in zip(a.x, b.x))
    assert all(np.array_equal(u, v) for u, v in zip(a.e, b.e))
    # and no pins at all is the plain free layer
    c = fx.relax(q, "generation", pins={0: np.zeros(64, bool)})
    d = fx.relax({2: q[2]}, "generation")
    assert all(np.array_equal(u, v) for u, v in zip(c.x, d.x))


def test_a_pinned_layer_needs_its_values(pinned_nets):
    _, fl, fx = pinned_nets
    with pytest.raises(ValueError, match="layer 1 is clamped node by node but no values"):
        fl.relax({2: np.eye(10)[:2]}, "generation", pins={1: np.ones(16, bool)})
    with pytest.raises(ValueError, match="layer 1 is clamped node by node but no values"):
        fx.relax({2: fx.quantize(np.eye(10)[:2], 2)}, "generation", pins={1: np.ones(16, bool)})


# ---- completion -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def completion_net():
    data = load_digits_split()
    net, _ = train_float(completion_digits_spec(), data, epochs=30, seed=0, generative=True)
    return net, data


def test_completion_fills_hidden_pixels_better_than_the_mean_image(completion_net):
    """On the 360 test digits, each way of hiding: the relaxed hidden pixels are closer to the
    truth than the mean training image (float and fixed, which differ little), and a random
    half is filled about as well as by the class mean of the *true* label."""
    net, data = completion_net
    fx = FixedPCN.from_float(net.spec, net.weights)
    rng = np.random.default_rng(0)
    X = net.spec.formats.x
    for kind in HIDE:
        hid = hidden_pixels(kind, len(data.x_test), rng)
        assert hid.sum(axis=1).tolist() == [32] * len(hid)
        f = hidden_rmse(complete(net, data.x_test, hid).x[-1], data.x_test, hid)
        q = hidden_rmse(X.to_float(complete(fx, fx.quantize(data.x_test, 2), hid).x[-1]),
                        data.x_test, hid)
        base = baseline_rmse(data, data.x_test, data.y_test, hid)
        assert f < 0.95 * base["mean image"] and q < 0.95 * base["mean image"], (kind, f, base)
        assert abs(f - q) < 0.01, (kind, f, q)
        if kind == "random":
            assert f < 1.02 * base["class mean (true label)"], (f, base)


def test_a_network_trained_without_labels_completes_too():
    """Unsupervised PC (only the image clamped while learning; the label layer a free latent
    that never sees a label): its completions still beat the mean image, close to the
    supervised network's."""
    data = load_digits_split()
    net, hist = train_float(completion_digits_spec(), data, epochs=30, seed=0, generative=True,
                            unsupervised=True)
    assert np.isnan(hist.test_accuracy).all()
    rng = np.random.default_rng(0)
    for kind in HIDE:
        hid = hidden_pixels(kind, len(data.x_test), rng)
        f = hidden_rmse(complete(net, data.x_test, hid).x[-1], data.x_test, hid)
        assert f < 0.96 * baseline_rmse(data, data.x_test, data.y_test, hid)["mean image"], kind
    with pytest.raises(ValueError, match="generative=True"):
        train_float(completion_digits_spec(), data, epochs=1, unsupervised=True)


def test_hidden_pixels_never_reach_the_network(completion_net):
    """The completion does not depend on the hidden pixels' given values."""
    net, data = completion_net
    hid = hidden_pixels("top", 20, np.random.default_rng(1))
    a = complete(net, data.x_test[:20], hid).x[-1]
    b = complete(net, np.where(hid, 1.0, data.x_test[:20]), hid).x[-1]
    assert np.array_equal(a, b)


def test_pcforge_complete_trains_completes_and_checks_the_hardware(tmp_path):
    out = tmp_path / "c"
    r = CliRunner().invoke(main, ["complete", "--out", str(out), "--limit", "5"])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "complete.json").read_text())
    assert set(rep["hide"]) == set(HIDE)
    for kind, k in rep["hide"].items():
        # every hardware run equal to FixedPCN in every x and e of every iteration, cycles too
        assert k["hardware_bit_exact"] == k["hardware_samples"] == 5, (kind, k["mismatches"])
        assert k["rmse_hidden"]["FixedPCN"] < k["rmse_baselines"]["mean image"]
    assert rep["hide"]["top"]["hardware_mask"] == "complete_top"       # a named per-node mask
    assert rep["hide"]["random"]["hardware_mask"] == "completion"      # run-time pins
    for f in ("completed.png", "complete.md", "spec.toml", "weights.npz"):
        assert (out / f).is_file()
    assert PCSpec.load(out / "spec.toml").node_clamp == (2,)
    r = CliRunner().invoke(main, ["complete", "--out", str(out)])
    assert r.exit_code != 0 and "--force" in r.output


def test_complete_refuses_a_spec_without_per_node_clamps(tmp_path):
    r = CliRunner().invoke(main, ["complete", "--out", str(tmp_path / "a"), "--spec", "x.toml"])
    assert r.exit_code == 2 and "--spec without --weights" in r.output
    r = CliRunner().invoke(main, ["complete", "--out", str(tmp_path / "a"), "--spec", "x.toml",
                                  "--weights", "w.npz", "--unsupervised"])
    assert r.exit_code == 2 and "--unsupervised trains the preset" in r.output
    from pcforge.model.presets import generative_digits_spec
    spec = generative_digits_spec()
    spec.save(tmp_path / "g.toml")
    Weights.init(spec, np.random.default_rng(0)).save(tmp_path / "g.npz", spec)
    r = CliRunner().invoke(main, ["complete", "--out", str(tmp_path / "b"), "--spec",
                                  str(tmp_path / "g.toml"), "--weights", str(tmp_path / "g.npz")])
    assert r.exit_code == 1 and "network.node_clamp" in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "b").exists()


# ---- --pin on the command line ----------------------------------------------------------------
PIN_ERRORS = [
    (["--mask", "generation", "--clamp", "2={lab}", "--pin", "0={two}"], "give 0 or 1 per node"),
    (["--pin", "0={half}"], "layer 0 is clamped whole under this mask"),
    (["--pin", "2={ten}"], "layer 2 cannot be clamped node by node"),
    (["--mask", "generation", "--clamp", "2={lab}", "--pin", "1={half}"],
     "layer 1 is pinned (--pin) but no values were given: pass --clamp 1=FILE"),
    (["--mask", "generation", "--clamp", "2={lab}", "--pin", "0={short}"],
     "63 values per sample"),
    (["--mask", "generation", "--clamp", "2={lab}", "--pin", "0={half}"],
     "different sample counts"),
]


def _pin_files(tmp_path):
    spec = digits_spec(node_clamp=(0, 1))
    spec.save(tmp_path / "spec.toml")
    Weights.init(spec, np.random.default_rng(2)).save(tmp_path / "w.npz", spec)
    data = load_digits_split()
    np.save(tmp_path / "lab.npy", np.eye(10)[[4, 8]])
    np.save(tmp_path / "img.npy", data.x_test[:2])
    np.save(tmp_path / "half.npy", (np.arange(64) < 32).astype(np.int8))
    np.save(tmp_path / "two.npy", np.full(64, 2))
    np.save(tmp_path / "ten.npy", np.ones(10))
    np.save(tmp_path / "short.npy", np.ones(63))
    return spec, {k: tmp_path / f"{k}.npy" for k in ("lab", "img", "half", "two", "ten",
                                                      "short")}


@pytest.mark.parametrize("cmd", ["infer", "sim", "compare"])
@pytest.mark.parametrize("args, says", PIN_ERRORS)
def test_pin_errors_are_clear_before_anything_runs(tmp_path, cmd, args, says):
    _, f = _pin_files(tmp_path)
    args = [a.format(**f) for a in args]
    extra = ["--out", str(tmp_path / "o")] if cmd == "compare" else []
    r = CliRunner().invoke(main, [cmd, "--spec", str(tmp_path / "spec.toml"), "--weights",
                                  str(tmp_path / "w.npz"), *extra, *args])
    assert r.exit_code in (1, 2) and says in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "o").exists()


def test_sim_and_compare_hold_pinned_pixels_on_the_hardware(tmp_path):
    """Labels clamped, half of each image pinned, the other half and the hidden layer relaxed
    on the emitted Verilog: every x and e of every iteration equal to FixedPCN."""
    spec, f = _pin_files(tmp_path)
    pin = ["--mask", "generation", "--clamp", f"2={f['lab']}", "--pin", f"0={f['half']}",
           "--input", str(f["img"])]
    common = ["--spec", str(tmp_path / "spec.toml"), "--weights", str(tmp_path / "w.npz")]
    r = CliRunner().invoke(main, ["sim", *common, *pin])
    assert r.exit_code == 0 and "DIFFERS" not in r.output, r.output
    r = CliRunner().invoke(main, ["compare", *common, "--out", str(tmp_path / "c"), *pin])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "c" / "report.json").read_text())
    assert rep["samples"] == rep["bit_exact_samples"] == 2 and rep["cycles_match_model"]
    assert rep["pinned_nodes"] == {"0": 64}
    r = CliRunner().invoke(main, ["infer", *common, *pin])
    assert r.exit_code == 0 and "read-out layer 0" in r.output, r.output
