"""The pcforge CLI: help on every command, train/infer outputs, clear errors, nothing half-written."""
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from pcforge.cli import main
from pcforge.model import PCSpec, Weights


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "digits"
    r = CliRunner().invoke(main, ["train", "--out", str(out), "--epochs", "2", "--no-mlp"])
    assert r.exit_code == 0, r.output
    return out


@pytest.mark.parametrize("cmd", [[], ["train"], ["run"], ["infer"], ["spec"]])
def test_help_everywhere(cmd):
    r = CliRunner().invoke(main, cmd + ["--help"])
    assert r.exit_code == 0 and "Usage:" in r.output


def test_train_writes_spec_weights_metrics(trained):
    spec = PCSpec.load(trained / "spec.toml")
    Weights.load(trained / "weights.npz", spec)
    m = json.loads((trained / "metrics.json").read_text())
    for k in ("float_test_accuracy", "fixed_test_accuracy", "spec_digest", "fixed_saturation"):
        assert k in m
    assert m["spec_digest"] == spec.digest
    assert 0.5 < m["float_test_accuracy"] <= 1.0


def test_train_is_reproducible_by_seed(tmp_path):
    outs = []
    for name in ("a", "b"):
        r = CliRunner().invoke(main, ["train", "--out", str(tmp_path / name), "--epochs", "1",
                                      "--no-mlp", "--seed", "3"])
        assert r.exit_code == 0, r.output
        with np.load(tmp_path / name / "weights.npz") as z:
            outs.append(z["W1"].copy())
    assert np.array_equal(*outs)


def test_fixed_trainer(tmp_path):
    r = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "f"), "--trainer", "fixed",
                                  "--epochs", "1", "--no-mlp"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "f" / "metrics.json").read_text())
    assert m["trainer"] == "fixed" and m["fixed_trained_test_accuracy"] > 0.7


def test_infer_reports_both_models(trained):
    r = CliRunner().invoke(main, ["infer", "--spec", str(trained / "spec.toml"), "--weights",
                                  str(trained / "weights.npz"), "--limit", "50"])
    assert r.exit_code == 0, r.output
    assert "float" in r.output and "fixed" in r.output and "argmax agreement" in r.output


def test_infer_input_of_wrong_length(trained, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 63)))
    r = CliRunner().invoke(main, ["infer", "--spec", str(trained / "spec.toml"), "--weights",
                                  str(trained / "weights.npz"), "--input", str(tmp_path / "x.npy")])
    assert r.exit_code != 0 and "63 values per sample" in r.output and "64" in r.output


def test_mismatched_weights_are_refused(trained, tmp_path):
    r = CliRunner().invoke(main, ["spec", "--out", str(tmp_path / "s.toml"), "--hidden", "32"])
    assert r.exit_code == 0
    r = CliRunner().invoke(main, ["infer", "--spec", str(tmp_path / "s.toml"), "--weights",
                                  str(trained / "weights.npz")])
    assert r.exit_code != 0 and "sizes" in r.output
    assert "Traceback" not in r.output


def test_bad_spec_leaves_nothing_behind(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[network]\nsizes = [64, 10]\nactivations = ['softmax']\n")
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["train", "--out", str(out), "--spec", str(bad), "--no-mlp"])
    assert r.exit_code != 0 and "network.activations[0] = 'softmax'" in r.output
    assert not out.exists()


def test_analog_sweep_end_to_end(tmp_path):
    """`pcforge analog sweep`: trains the default, sweeps stuck devices and drift over Monte
    Carlo chips on 2 processes, writes results and plots; PC learning on the substrate must
    recover most of what stuck devices cost (the deterministic seeds make this exact)."""
    import json
    out = tmp_path / "analog"
    r = subprocess.run([sys.executable, "-m", "pcforge", "analog", "sweep", "--out", str(out),
                        "--quick", "--only", "stuck_off", "--only", "drift", "--seeds", "3",
                        "--jobs", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout
    res = json.loads((out / "results.json").read_text())
    for f in ("nonidealities.png", "drift.png", "results.md", "spec.toml", "weights.npz"):
        assert (out / f).stat().st_size > 0, f
    assert set(res["series"]) == {"stuck_off", "drift", "drift_uncompensated"}
    stuck = {p["level"]: p for p in res["series"]["stuck_off"]}
    worst = stuck[0.2]
    assert len(worst["programmed"]["values"]) == 3
    assert worst["programmed"]["mean"] < stuck[0.0]["programmed"]["mean"] - 0.1
    assert worst["learned"]["mean"] > worst["programmed"]["mean"] + 0.08
    unc = res["series"]["drift_uncompensated"]
    assert unc[-1]["level"] == 3.1536e7
    assert unc[-1]["programmed"]["mean"] < unc[0]["programmed"]["mean"]
    lo, m, hi = (worst["programmed"][k] for k in ("ci95_low", "mean", "ci95_high"))
    assert lo < m < hi


@pytest.mark.parametrize("args,msg", [
    (["--spec", "x.toml"], "--spec and --weights together"),
    (["--only", "bogus"], "unknown"),
    (["--seeds", "1"], "at least 2 seeds"),
])
def test_analog_sweep_bad_input(tmp_path, args, msg):
    out = tmp_path / "a"
    r = subprocess.run([sys.executable, "-m", "pcforge", "analog", "sweep", "--out", str(out),
                        *args], capture_output=True, text=True)
    assert r.returncode != 0 and msg in (r.stderr + r.stdout), r.stderr
    assert not out.exists()


def test_spec_stop_option(tmp_path):
    """The digits default stops exactly; ``--stop none`` writes a spec that always makes T
    iterations (and an unknown rule is refused by the option)."""
    for args, want in (([], "exact"), (["--stop", "none"], "none")):
        path = tmp_path / f"s{want}.toml"
        r = CliRunner().invoke(main, ["spec", "--out", str(path)] + args)
        assert r.exit_code == 0, r.output
        assert PCSpec.load(path).stop == want
    r = CliRunner().invoke(main, ["spec", "--out", str(tmp_path / "x.toml"), "--stop", "soon"])
    assert r.exit_code != 0 and "soon" in r.output


# ---- numbers out of range are refused, never read as "the default" (issue 18, first rows) ----
@pytest.mark.parametrize("args, option", [
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--epochs", "-1"], "--epochs"),
    (["train", "-T", "0"], "--iterations"),
    (["train", "--lr", "-1"], "--lr"),
    (["train", "--lr", "0"], "--lr"),
    (["train", "--batch", "0"], "--batch"),
    (["train", "--on", "hardware", "--limit", "0"], "--limit"),
    (["train", "--on", "hardware", "--test-limit", "-3"], "--test-limit"),
    (["spec", "-T", "0"], "--iterations"),
    (["run", "--epochs", "0"], "--epochs"),
    (["build", "--board", "icebreaker", "--clock", "0"], "--clock"),
    (["build", "--board", "ulx3s", "--clock", "-5"], "--clock"),
])
def test_out_of_range_numbers_are_refused(tmp_path, args, option):
    out = tmp_path / "out"
    where = ["--out", str(out / "s.toml" if args[0] == "spec" else out)]
    r = CliRunner().invoke(main, args + where)
    assert r.exit_code == 2, r.output
    assert option in r.output and "range" in r.output, r.output
    assert not out.exists()


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_infer_limit_out_of_range(trained, limit):
    r = CliRunner().invoke(main, ["infer", "--spec", str(trained / "spec.toml"), "--weights",
                                  str(trained / "weights.npz"), "--limit", limit])
    assert r.exit_code == 2 and "--limit" in r.output, r.output


def test_infer_limit_one_infers_one(trained):
    r = CliRunner().invoke(main, ["infer", "--spec", str(trained / "spec.toml"), "--weights",
                                  str(trained / "weights.npz"), "--limit", "1"])
    assert r.exit_code == 0 and "inference (1 samples" in r.output, r.output


@pytest.mark.parametrize("board, clock, nearest", [("icebreaker", "1000", "528.000"),
                                                   ("ulx3s", "1000", "400.000"),
                                                   ("icebreaker", "5", "8.438")])
def test_a_clock_the_pll_cannot_make_is_refused_before_any_work(tmp_path, board, clock, nearest):
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["build", "--board", board, "--clock", clock, "--out", str(out)])
    assert r.exit_code != 0 and "PLL cannot make it" in r.output and nearest in r.output, r.output
    assert "Traceback" not in r.output and not out.exists()


# ---- malformed or out-of-range inputs (issue 18) ---------------------------------------------
def _infer(trained, path, *extra):
    return CliRunner().invoke(main, ["infer", "--spec", str(trained / "spec.toml"), "--weights",
                                     str(trained / "weights.npz"), "--input", str(path), *extra])


@pytest.mark.parametrize("name, make, message", [
    ("nan.npy", lambda p: np.save(p, np.full((2, 64), np.nan)), "NaN or infinite"),
    ("inf.csv", lambda p: p.write_text(",".join(["inf"] + ["0"] * 63) + "\n"), "NaN or infinite"),
    ("empty.npy", lambda p: np.save(p, np.zeros((0, 64))), "no samples"),
    ("strings.npy", lambda p: np.save(p, np.array([["a"] * 64])), "not numbers"),
    ("cube.npy", lambda p: np.save(p, np.zeros((2, 8, 8))), "3-D array"),
    ("zero.npy", lambda p: p.write_bytes(b""), "not a readable"),
])
def test_malformed_inputs_are_refused_with_the_reason(trained, tmp_path, name, make, message):
    path = tmp_path / name
    make(path)
    for model in ("float", "fixed"):
        r = _infer(trained, path, "--model", model)
        assert r.exit_code == 1 and message in r.output, r.output
        assert "Traceback" not in r.output


def test_inputs_outside_the_x_range_warn_with_the_count_and_strict_refuses(trained, tmp_path):
    x = np.zeros((3, 64))
    x[0, :5] = 40.0          # beyond Q6.10's ±32
    x[2, 0] = 1e9
    np.save(tmp_path / "raw.npy", x)
    r = _infer(trained, tmp_path / "raw.npy")
    assert r.exit_code == 0 and "6 of 192 input values" in r.output and "saturate" in r.output
    r = _infer(trained, tmp_path / "raw.npy", "--strict")
    assert r.exit_code == 1 and "6 of 192 input values" in r.output, r.output
    np.save(tmp_path / "ok.npy", np.full((2, 64), 0.5))
    r = _infer(trained, tmp_path / "ok.npy", "--strict")
    assert r.exit_code == 0 and "warning" not in r.output, r.output


@pytest.mark.parametrize("extra, named", [(["--hidden", "16"], "--hidden"),
                                          (["--activation", "tanh"], "--activation"),
                                          (["-T", "5"], "--iterations"),
                                          (["--w-guard", "2"], "--w-guard")])
def test_options_that_conflict_with_spec_are_refused(trained, tmp_path, extra, named):
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["train", "--spec", str(trained / "spec.toml"), "--out",
                                  str(out), "--no-mlp", "--epochs", "1", *extra])
    assert r.exit_code == 2 and named in r.output and "--spec" in r.output, r.output
    assert not out.exists()
