"""`pcforge sim`, `compare` and `verify` on the fast path (Verilator + native harness), and `sim`
under cocotb on the same inputs: the same outputs, cycles and verdicts."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from pcforge.cli import main
from pcforge.model import Weights
from pcforge.model.presets import digits_spec

pytestmark = pytest.mark.xdist_group("native")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    spec = digits_spec(hidden=(12,), iterations=4)
    spec.save(d / "spec.toml")
    Weights.init(spec, np.random.default_rng(1)).save(d / "w.npz", spec)
    return d, spec


def _table(output: str) -> str:
    """`pcforge sim`'s sample table: its rows only (the title names the simulator, the
    progress lines and the closing wall-time line hold times)."""
    return "\n".join(line for line in output.splitlines() if line.startswith("│"))


def test_sim_native_and_cocotb_print_the_same_rows(small):
    d, spec = small
    from pcforge.model.data import load_digits_split
    np.save(d / "x.npy", load_digits_split().x_test[:2])
    out = {}
    for sim in ("native", "cocotb"):
        r = CliRunner().invoke(main, ["sim", "--spec", str(d / "spec.toml"), "--weights",
                                      str(d / "w.npz"), "--lanes", "3", "--input",
                                      str(d / "x.npy"), "--simulator", sim])
        assert r.exit_code == 0, r.output
        # not on a terminal: the (first-run: long) model build says when it starts and ends
        assert f"building the {sim} model (cached after the first time) ..." in r.output
        assert f"building the {sim} model (cached after the first time): done in" in r.output
        out[sim] = _table(r.output)
    assert out["native"] == out["cocotb"]
    assert out["native"].count("bit-exact") == 2 and "DIFFERS" not in out["native"]


def test_compare_native_checks_every_sample_every_iteration(small, tmp_path):
    d, spec = small
    r = CliRunner().invoke(main, ["compare", "--spec", str(d / "spec.toml"), "--weights",
                                  str(d / "w.npz"), "--lanes", "3", "--limit", "40", "--out",
                                  str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "c" / "report.json").read_text())
    assert rep["samples"] == rep["bit_exact_samples"] == rep["traced_samples"] == 40
    assert "native" in rep["simulator"] and rep["simulated_cycles_per_s"] > 0
    assert rep["cycles_per_inference"] == rep["cycle_model"]


def test_verify_reports_every_network(tmp_path):
    r = CliRunner().invoke(main, ["verify", "--specs", "3", "--first-seed", "40", "--group",
                                  "3", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "verify.json").read_text())
    assert rep["specs"] == rep["passed"] == 3 and rep["failed"] == 0
    assert rep["samples"] == 6 and rep["compared_words"] > 0
    assert sum(rep["coverage"]["schedules"].values()) == 3
