"""The pcforge CLI: help on every command, train/infer outputs, clear errors, nothing half-written."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from clamp_cases import CLAMP_ERRORS
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
    (["build", "--board", "ulx3s", "--lanes", "0"], "--lanes"),
    (["hdl", "--lanes", "-2"], "--lanes"),
    (["run", "--lanes", "0"], "--lanes"),
    (["analog", "sweep", "--seeds", "0"], "--seeds"),
    (["analog", "sweep", "--jobs", "-1"], "--jobs"),
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
    assert r.exit_code == 0 and "relaxation (1 samples, mask inference" in r.output, r.output


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


# ---- --out checked before any work; earlier outputs kept unless --force (issue 18) ----------
#: every command that writes an output folder, with the arguments it needs and one of the
#: files it writes there
OUT_COMMANDS = [
    (["train", "--no-mlp", "--epochs", "1"], "weights.npz"),
    (["train", "--on", "hardware", "--epochs", "1"], "metrics.json"),
    (["hdl"], "pcforge_core.v"),
    (["compare", "--spec", "{spec}", "--weights", "{weights}"], "report.json"),
    (["verify", "--specs", "1"], "verify.json"),
    (["build", "--board", "icebreaker"], "report.md"),
    (["run"], "weights.npz"),
    (["run"], "board"),
    (["analog", "sweep", "--quick"], "results.json"),
]


def _args(cmd, trained):
    return [a.format(spec=trained / "spec.toml", weights=trained / "weights.npz") for a in cmd]


@pytest.mark.parametrize("cmd, product", OUT_COMMANDS, ids=lambda v: " ".join(v)
                         if isinstance(v, list) else v)
def test_earlier_outputs_are_kept_unless_force(trained, tmp_path, cmd, product):
    out = tmp_path / "out"
    (out / product).parent.mkdir(parents=True, exist_ok=True)
    if product == "board":
        (out / product).mkdir()
    else:
        (out / product).write_text("an earlier run's output")
    r = CliRunner().invoke(main, [*_args(cmd, trained), "--out", str(out)])
    assert r.exit_code == 1 and "already holds" in r.output and product in r.output, r.output
    assert "--force" in r.output and "Traceback" not in r.output
    assert sorted(p.name for p in out.iterdir()) == [product]          # nothing else written
    if product != "board":
        assert (out / product).read_text() == "an earlier run's output"


@pytest.mark.parametrize("cmd, product", OUT_COMMANDS[:7], ids=lambda v: " ".join(v)
                         if isinstance(v, list) else v)
def test_an_unwritable_out_is_refused_before_any_work(trained, tmp_path, cmd, product):
    in_the_way = tmp_path / "a_file"
    in_the_way.write_text("x")
    for out, says in ((in_the_way / "sub", "is a file"), (in_the_way, "is a file"),
                      ("/proc/pcforge-out", "not writable")):
        r = CliRunner().invoke(main, [*_args(cmd, trained), "--out", str(out)])
        assert r.exit_code in (1, 2) and says in r.output and "--out" in r.output, r.output
        assert "Traceback" not in r.output and "Errno" not in r.output.split("(")[0]
    assert in_the_way.read_text() == "x"


def test_force_overwrites_and_a_second_run_without_it_keeps(tmp_path):
    path = tmp_path / "s.toml"
    assert CliRunner().invoke(main, ["spec", "--out", str(path), "-T", "7"]).exit_code == 0
    r = CliRunner().invoke(main, ["spec", "--out", str(path), "-T", "9"])
    assert r.exit_code == 1 and "exists" in r.output and "--force" in r.output, r.output
    assert PCSpec.load(path).iterations == 7
    r = CliRunner().invoke(main, ["spec", "--out", str(path), "-T", "9", "--force"])
    assert r.exit_code == 0, r.output
    assert PCSpec.load(path).iterations == 9


def test_hdl_force_rewrites_the_folder(tmp_path):
    out = tmp_path / "hdl"
    assert CliRunner().invoke(main, ["hdl", "--lanes", "2", "--out", str(out)]).exit_code == 0
    v1 = (out / "pcforge_core.v").read_text()
    r = CliRunner().invoke(main, ["hdl", "--lanes", "1", "--out", str(out)])
    assert r.exit_code == 1 and (out / "pcforge_core.v").read_text() == v1
    r = CliRunner().invoke(main, ["hdl", "--lanes", "1", "--out", str(out), "--force"])
    assert r.exit_code == 0, r.output
    assert (out / "pcforge_core.v").read_text() != v1


def test_hdl_with_two_rows_per_token(tmp_path):
    """``pcforge hdl --rows 2``: the manifest says two rows and twice the multipliers, lists the
    odd halves, and its cycles are the cycle model's for two rows; an odd lane count is refused
    with the fix named and nothing is written."""
    from pcforge.model.arch.cycles import cycle_report
    from pcforge.model.presets import digits_spec
    out = tmp_path / "hdl"
    r = CliRunner().invoke(main, ["hdl", "--lanes", "4", "--rows", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    man = json.loads((out / "manifest.json").read_text())
    assert man["rows"] == 2 and man["multipliers"] == 8
    kinds = {m["kind"] for m in man["memories"]}
    assert {"w", "w_odd", "b", "b_odd"} <= kinds
    spec = digits_spec()
    assert man["estimated_cycles"]["training"]["total"] == \
        cycle_report(spec, 4, "training", rows=2).total < cycle_report(spec, 4, "training").total
    bad = tmp_path / "bad"
    r = CliRunner().invoke(main, ["hdl", "--lanes", "3", "--rows", "2", "--out", str(bad)])
    assert r.exit_code == 1 and "even lane count" in r.output and "--lanes" in r.output
    assert not (bad / "pcforge_core.v").exists()
    r = CliRunner().invoke(main, ["hdl", "--rows", "3", "--out", str(bad)])
    assert r.exit_code == 2 and "--rows" in r.output


def test_board_driver_refuses_a_board_of_other_rows():
    """The host driver checks the rows per token the board reports in STATUS (a board of two
    rows per token addresses its weights otherwise) and names the fix."""
    from pcforge.boards.frame import LinkError
    from pcforge.boards.host import BoardStatus, PCLink
    from pcforge.boards.system import design_id
    from pcforge.model.presets import digits_spec
    spec = digits_spec()
    link = PCLink(None, spec, 4, rows=2)
    st = BoardStatus(busy=False, paused=False, done=False, iteration=0, expected_seq=0,
                     lanes=4, rows=1, cycles=0, design_id=design_id(spec))
    link.status = lambda: st
    with pytest.raises(LinkError, match="4 lanes × 1 row.*4 × 2.*--rows"):
        link.check_design()
    st["rows"] = 2
    assert link.check_design() is st


# ---- long steps show progress in plain logs too (issue 18) --------------------------------
def test_status_prints_start_heartbeat_and_end_when_not_on_a_terminal(capsys, monkeypatch):
    import time

    from pcforge.cli import common
    monkeypatch.setattr(common, "HEARTBEAT_S", 0.2)
    assert not common.console.is_terminal
    with common.status("building the model"):
        time.sleep(0.75)
    out = capsys.readouterr().out
    assert out.startswith("building the model ...")
    assert out.count("building the model: still running") >= 2, out
    assert "building the model: done in 0." in out


def test_progress_prints_tenths_and_a_heartbeat_in_a_plain_log(capsys, monkeypatch):
    import time

    from pcforge.cli import common
    monkeypatch.setattr(common, "HEARTBEAT_S", 0.3)
    with common.progress("job") as cb:
        time.sleep(0.8)                            # a slow first step: heartbeat lines
        for k in range(1, 101):
            cb(k, 100, {"loss": 1.0 / k})
    out = capsys.readouterr().out
    assert "still running" in out, out
    lines = [ln for ln in out.splitlines() if "%" in ln and "still" not in ln]
    assert len(lines) == 11, out                   # the first report, then one per tenth
    assert lines[0].strip().startswith("job:   1.0%") and lines[-1].strip().startswith(
        "job: 100.0%"), out
    assert "loss 0.01" in lines[-1] and "job: done in" in out


def test_train_shows_the_mlp_bar_epochs(tmp_path):
    r = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "t"), "--epochs", "1"])
    assert r.exit_code == 0, r.output
    assert "MLPClassifier bar (epochs, at most 500) ..." in r.output
    assert "MLPClassifier bar (epochs, at most 500): done in" in r.output
    m = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert m["mlp_test_accuracy"] > 0.9


# ---- a killed job leaves nothing behind (issue 18) ----------------------------------------
def test_work_folders_of_dead_processes_are_swept(tmp_path):
    from pcforge.model.files import _host, private_folder
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    left = tmp_path / f"icebreaker-partial-{_host()}-{dead}-abc123"
    mine = tmp_path / f"icebreaker-partial-{_host()}-{os.getpid()}-def456"
    other_host = tmp_path / f"icebreaker-partial-elsewhere-{dead}-ghi789"
    keep = tmp_path / "icebreaker-0123456789abcdef"
    for p in (left, mine, other_host, keep):
        (p / "build").mkdir(parents=True)
    new = private_folder(tmp_path, prefix="icebreaker-")
    assert not left.exists()
    assert mine.exists() and other_host.exists() and keep.exists() and new.is_dir()
    assert new.name.startswith(f"icebreaker-partial-{_host()}-{os.getpid()}-")


def test_a_build_killed_with_sigterm_leaves_nothing_behind(tmp_path):
    """The issue's case: a build killed mid-way used to leave its temporary folder in the
    cache. The real ``pcforge`` script is started, terminated once its work folder exists,
    and must exit as terminated with the folder, and any output, gone."""
    import os
    import signal
    import time
    cache, out = tmp_path / "cache", tmp_path / "out"
    env = dict(os.environ, PCFORGE_CACHE=str(cache))
    env.setdefault("YOWASP_CACHE_DIR", str(Path.home() / ".cache" / "pcforge" / "yowasp"))
    exe = Path(sys.executable).with_name("pcforge")
    proc = subprocess.Popen([str(exe), "build", "--board", "icebreaker", "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not list(cache.glob("icebreaker-partial-*")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    assert list(cache.glob("icebreaker-partial-*")), "the build never made its work folder"
    time.sleep(1.0)                                      # well into elaboration or synthesis
    proc.send_signal(signal.SIGTERM)
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode == 128 + signal.SIGTERM, log
    assert "terminated (SIGTERM)" in log
    assert not list(cache.glob("*partial*")), list(cache.iterdir())
    assert not (cache / "bitstreams").exists() or not any((cache / "bitstreams").iterdir())
    assert not out.exists() or not any(out.iterdir())


# ---- the front page (issue 18) ------------------------------------------------------------
def _all_commands(group, path=()):
    import click
    for name, cmd in group.commands.items():
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, (*path, name))


def test_help_names_every_command_in_a_newcomers_order_and_cuts_nothing():
    r = CliRunner().invoke(main, ["--help"], terminal_width=80)
    assert r.exit_code == 0
    text = r.output
    intro = text.split("Options:")[0]
    for name in main.commands:                       # every command is placed in the order
        assert f" {name}" in intro, name
    listed = [ln.split()[0] for ln in text.split("Commands:")[1].splitlines() if ln.strip()]
    assert listed[:3] == ["run", "train", "import"] and set(listed) == set(main.commands)
    for path, cmd in _all_commands(main):
        r = CliRunner().invoke(main, [*path, "--help"], terminal_width=80)
        assert r.exit_code == 0, path
        body = r.output.split("\n", 1)[1]                    # (the usage line has [ARGS]...)
        assert "..." not in body, (path, r.output)            # click's mark of a cut text
        assert cmd.short_help and len(cmd.short_help) <= 66, path


def test_weights_from_another_spec_of_the_same_shape_are_requantised_with_a_note(trained,
                                                                                 tmp_path):
    """Other formats (here T and the stop): allowed, and said — both digests named."""
    spec = PCSpec.load(trained / "spec.toml")
    import dataclasses
    other = dataclasses.replace(spec, iterations=7)
    other.save(tmp_path / "other.toml")
    r = CliRunner().invoke(main, ["infer", "--spec", str(tmp_path / "other.toml"), "--weights",
                                  str(trained / "weights.npz"), "--limit", "3"])
    assert r.exit_code == 0, r.output
    assert spec.digest in r.output and other.digest in r.output and "re-quantised" in r.output
    r = CliRunner().invoke(main, ["infer", "--spec", str(trained / "spec.toml"), "--weights",
                                  str(trained / "weights.npz"), "--limit", "3"])
    assert r.exit_code == 0 and "re-quantised" not in r.output


# ---- clamping from the command line (issue 17, item 3: infer) -----------------------------
def _infer_clamp(trained, *args):
    return CliRunner().invoke(main, ["infer", "--spec", str(trained / "spec.toml"), "--weights",
                                     str(trained / "weights.npz"), *args])


def test_infer_generation_mask_relaxes_the_image_from_clamped_labels(trained, tmp_path):
    from pcforge.model import FixedPCN, FloatPCN
    np.save(tmp_path / "lab.npy", np.eye(10)[[0, 1, 2, 3]])
    r = _infer_clamp(trained, "--mask", "generation", "--clamp", f"2={tmp_path / 'lab.npy'}")
    assert r.exit_code == 0 and "read-out layer 0" in r.output, r.output
    spec = PCSpec.load(trained / "spec.toml")
    w = Weights.load(trained / "weights.npz", spec)
    img = FloatPCN(spec, w).relax({2: np.eye(10)[[0, 1, 2, 3]]}, "generation").x[0]
    assert " ".join(map(str, img.argmax(1))) in r.output
    fx = FixedPCN.from_float(spec, w)
    fimg = fx.relax({2: fx.quantize(np.eye(10)[[0, 1, 2, 3]], 2)}, "generation").x[0]
    assert " ".join(map(str, fimg.argmax(1))) in r.output


@pytest.mark.parametrize("args, says", CLAMP_ERRORS)
def test_infer_clamp_errors_are_clear(trained, tmp_path, args, says):
    np.save(tmp_path / "lab.npy", np.eye(10)[[0, 1]])
    np.save(tmp_path / "bad.npy", np.eye(9)[[0, 1]])
    args = [a.format(lab=tmp_path / "lab.npy", bad=tmp_path / "bad.npy") for a in args]
    r = _infer_clamp(trained, *args)
    assert r.exit_code in (1, 2) and says in r.output, r.output
    assert "Traceback" not in r.output
