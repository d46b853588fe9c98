"""The Python API (issue 18): ``pcforge.convert`` → predict / trace / simulate / build, its
docstring examples, the examples/ script, and clear errors."""
import doctest
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pcforge
import pcforge.api
from pcforge.model.data import load_digits_split
from pcforge.model.onnx_io import export_onnx
from pcforge.model.presets import digits_spec

ROOT = Path(__file__).resolve().parents[1]


def test_every_docstring_example_runs():
    """Each public function and method of pcforge.api carries an example; all of them run and
    print what they say (one of them simulates the emitted Verilog)."""
    res = doctest.testmod(pcforge.api, optionflags=doctest.ELLIPSIS, verbose=False)
    assert res.failed == 0 and res.attempted >= 40, res
    for name in ("convert",):
        assert ">>>" in getattr(pcforge.api, name).__doc__
    for name in ("predict", "predict_float", "trace", "cycles", "write_verilog", "estimate"):
        assert ">>>" in getattr(pcforge.api.HardwareModel, name).__doc__, name


def test_the_examples_script_runs(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), "--epochs", "3"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "20/20 samples bit-exact" in out, out
    assert "test accuracy: fixed point" in out and "ONNX round trip" in out
    acc = float(out.split("test accuracy: fixed point ")[1].split("%")[0])
    assert acc > 80.0, out


@pytest.fixture(scope="module")
def hw():
    spec = digits_spec(hidden=(16,))
    return pcforge.convert(spec, weights=pcforge.Weights.init(spec, np.random.default_rng(2)),
                           lanes=3)


def test_predict_equals_fixedpcn_and_the_simulated_verilog(hw):
    x = load_digits_split().x_test[:12]
    y = hw.predict(x)
    res = hw.fixed.infer(hw.fixed.quantize(x, 0))
    assert np.array_equal(y, hw.spec.formats.x.to_float(res.output))
    sim = hw.simulate(x)
    assert sim.bit_exact == [True] * 12 and np.array_equal(sim.output, y)
    assert sim.cycles == hw.cycles(x=x)["per_sample"]


def test_trace_covers_every_layer_and_iteration(hw):
    x = load_digits_split().x_test[:3]
    t = hw.trace(x, mode="training", clamp={2: np.eye(10)[[0, 1, 2]]})
    T = hw.spec.iterations
    assert len(t.x) == T + 1 and len(t.e) == T and t.energy.shape == (T + 1, 3)
    assert [v.shape for v in t.x[0]] == [(3, 64), (3, 16), (3, 10)]
    assert np.array_equal(t.x[0][2], np.eye(10)[[0, 1, 2]])          # clamped, exactly
    assert np.all(t.energy[-1] <= t.energy[0])


def test_convert_from_files_and_from_onnx(hw, tmp_path):
    d = hw.save(tmp_path / "net")
    again = pcforge.convert(d / "spec.toml", weights=d / "weights.npz", lanes=3)
    x = np.random.default_rng(0).uniform(0, 1, (10, 64))
    assert np.array_equal(again.predict(x), hw.predict(x))
    export_onnx(hw.spec, hw.weights, tmp_path / "m.onnx", dtype=np.float64)
    imp = pcforge.convert(tmp_path / "m.onnx", iterations=7, name="from_onnx")
    assert imp.spec.iterations == 7 and imp.spec.name == "from_onnx"
    assert np.abs(imp.predict_float(x) - hw.predict_float(x)).max() < 1e-12


@pytest.mark.parametrize("call, message", [
    (lambda: pcforge.convert(digits_spec()), "needs weights="),
    (lambda: pcforge.convert(digits_spec(), weights=object()), "give a Weights"),
    (lambda: pcforge.convert(digits_spec(), weights=pcforge.Weights.init(
        digits_spec(hidden=(8,)), np.random.default_rng(0))), "W1 has shape"),
    (lambda: pcforge.convert(digits_spec(), weights=None, width=12), "for ONNX imports"),
    (lambda: pcforge.convert(digits_spec(), lanes=0), "at least one MAC lane"),
])
def test_convert_refuses_what_it_cannot_use(call, message):
    with pytest.raises((ValueError, TypeError)) as exc:
        call()
    assert message in str(exc.value), str(exc.value)


@pytest.mark.parametrize("bad, message", [(np.zeros((2, 63)), "give (samples, 64)"),
                                          (np.full((1, 64), np.nan), "NaN")])
def test_bad_inputs_are_refused(hw, bad, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        hw.predict(bad)


@pytest.mark.slow
@pytest.mark.xdist_group("bitstreams")
def test_build_returns_the_placed_report(tmp_path):
    """The digits default at the iCEBreaker's lanes, weights loaded over the link: the same
    build as the board tests' (one place-and-route, cached), through the API."""
    spec = digits_spec()
    hw = pcforge.convert(spec, weights=pcforge.Weights.init(spec, np.random.default_rng(0)),
                         lanes=1)
    est = hw.estimate("icebreaker")
    rep = hw.build("icebreaker", tmp_path / "ice", weights_in_bitstream=False, log=lambda *a: None)
    assert rep["timing_met"] and rep["fmax_mhz"] >= rep["clock_mhz"]
    assert rep["utilization"]["DSP"]["used"] == est["estimate"]["DSP"]
    assert json.loads((tmp_path / "ice" / "report.json").read_text())["fmax_mhz"] == rep["fmax_mhz"]
    assert (tmp_path / "ice" / rep["bitstream"]).stat().st_size > 10_000
