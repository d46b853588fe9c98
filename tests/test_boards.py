"""Boards: framing, PLL arithmetic, UART, resource estimates and refusal, the simulated board
top driven over its UART by the host driver (digits = FixedPCN; every bad frame answered with
its error status), and real bitstreams for both boards (fit and timing)."""
import json

import numpy as np
import pytest
from amaranth.sim import Simulator

from pcforge.boards.clocking import ecp5_pll, ice40_pll
from pcforge.boards.estimate import DoesNotFit, check_fits, estimate
from pcforge.boards.frame import REQUEST_SYNC, Command, Status, crc8, encode_request
from pcforge.boards.host import _runs
from pcforge.boards.profiles import BOARDS
from pcforge.boards.uart import UARTReceiver, UARTTransmitter
from pcforge.model import FixedPCN, Weights
from pcforge.model.data import load_digits_split
from pcforge.model.presets import digits_spec
from pcforge.model.train import train_float


def test_crc8_is_crc8_smbus_and_frames_carry_it():
    assert crc8(b"123456789") == 0xF4                    # the catalogued check value
    f = encode_request(7, Command.READ, b"\x02\x01\x00\x05\x00\x03")
    assert f[0] == REQUEST_SYNC and f[1] == 6 and f[2] == 7 and f[3] == Command.READ
    assert crc8(f[1:-1]) == f[-1]
    with pytest.raises(ValueError, match="at most 255"):
        encode_request(0, Command.WRITE, bytes(256))


def test_pll_settings_reach_the_clock_within_the_parts_limits():
    for f in (24.0, 30.0, 48.0):
        s = ice40_pll(12.0, f)
        p = s.params
        pfd = 12.0 / (p["p_DIVR"] + 1)
        vco = pfd * (p["p_DIVF"] + 1)
        assert 10 <= pfd <= 133 and 533 <= vco <= 1066
        assert s.f_out_mhz == pytest.approx(vco / 2 ** p["p_DIVQ"])
        assert abs(s.f_out_mhz - f) / f < 0.01
    for f in (50.0, 100.0, 125.0):
        s = ecp5_pll(25.0, f)
        p = s.params
        assert s.f_out_mhz == pytest.approx(25.0 / p["p_CLKI_DIV"] * p["p_CLKFB_DIV"])
        assert 400 <= s.f_out_mhz * p["p_CLKOP_DIV"] <= 800
        assert abs(s.f_out_mhz - f) / f < 0.01


def test_uart_loopback_in_the_amaranth_simulator():
    from amaranth import Module
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(5)
    m.submodules.rx = rx = UARTReceiver(5)
    m.d.comb += rx.rx.eq(tx.tx)
    data = list(np.random.default_rng(1).integers(0, 256, 24))
    got = []

    async def send(ctx):
        for b in data:
            ctx.set(tx.data.payload, int(b))
            ctx.set(tx.data.valid, 1)
            await ctx.tick().until(tx.data.ready)
            ctx.set(tx.data.valid, 0)

    async def receive(ctx):
        ctx.set(rx.data.ready, 1)
        while len(got) < len(data):
            await ctx.tick()
            if ctx.get(rx.data.valid):
                got.append(ctx.get(rx.data.payload))
                await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(send)
    sim.add_testbench(receive)
    sim.run_until(2e-3)
    assert got == [int(b) for b in data]


def test_runs_group_consecutive_addresses_of_one_memory():
    words = [(2, 1, 0, a, a) for a in (3, 4, 5, 9, 10)] + [(3, 1, 0, 0, 7), (2, 1, 1, 3, 1)]
    runs = _runs(words)
    assert [(r[0], r[2], r[3], len(r[4])) for r in runs] == [
        (2, 0, 3, 3), (2, 0, 9, 2), (2, 1, 3, 1), (3, 0, 0, 1)]
    big = [(2, 1, 0, a, 0) for a in range(130)]
    assert [len(r[4]) for r in _runs(big)] == [62, 62, 6]


def test_estimates_and_refusal_before_synthesis():
    spec = digits_spec()
    est = estimate(spec, 1, BOARDS["icebreaker"])
    assert est["DSP"] == 1 and est["BRAM"] <= 30
    assert estimate(spec, 8, BOARDS["ulx3s"])["DSP"] == 8
    assert check_fits(spec, 1, BOARDS["icebreaker"])["LUT"] <= 5280
    with pytest.raises(DoesNotFit) as e:
        check_fits(spec, 8, BOARDS["icebreaker"])
    msg = str(e.value)
    assert "iCE40UP5K" in msg and "--lanes 4" in msg and "--board ulx3s" in msg
    assert "LUT" in msg
    wide = digits_spec(hidden=(1024,))         # W_1 in the 4 SPRAMs, W_2 still 40 EBRs
    with pytest.raises(DoesNotFit, match="BRAM"):
        check_fits(wide, 1, BOARDS["icebreaker"])
    # MNIST-shaped (issue 16, item 5): 784-128-10 fits the ULX3S on 8 lanes — its 12 544-word
    # weight banks padded to 16 384 words (16 DP16KD each, sliced by bits: no multiplexer
    # after the blocks); on the iCEBreaker 784-64-10's first weight memory (50 176 words) goes
    # to its four SPRAMs, 784-128-10 fits nowhere; the digits default needs no SPRAM
    mnist = digits_spec(hidden=(128,), sizes=(784, 128, 10))
    est = check_fits(mnist, 8, BOARDS["ulx3s"])
    banks = [r for r in est["memories"] if r[0].startswith("w1 lane")]
    assert len(banks) == 8 and all(r[2] == 16384 and r[3] == 16 for r in banks)
    assert est["BRAM"] <= 208 and est["spram_weights"] == ()
    ice = check_fits(digits_spec(hidden=(64,), sizes=(784, 64, 10)), 1, BOARDS["icebreaker"])
    assert ice["spram_weights"] == (1,) and ice["SPRAM"] == 4 and ice["BRAM"] <= 30
    assert not any(r[0].startswith("w1") for r in ice["memories"])
    with pytest.raises(DoesNotFit, match="BRAM ~"):
        check_fits(mnist, 1, BOARDS["icebreaker"])
    assert estimate(spec, 1, BOARDS["icebreaker"])["spram_weights"] == ()


def test_board_top_uses_hard_multipliers_where_the_profile_says():
    """The ULX3S's cores get MULT18X18Ds with their own registers up to 16 lanes (built and
    timed there; at 32 Yosys 0.70 fails on them), the iCEBreaker's never."""
    from pcforge.boards.top import BoardTop
    spec = digits_spec()
    got = {(b, p): BoardTop(BOARDS[b], spec, p).system.core.hard_multipliers
           for b, p in (("ulx3s", 8), ("ulx3s", 16), ("ulx3s", 32), ("icebreaker", 1))}
    assert got == {("ulx3s", 8): "ecp5", ("ulx3s", 16): "ecp5", ("ulx3s", 32): None,
                   ("icebreaker", 1): None}


def test_a_build_beyond_the_routed_lane_counts_says_so():
    """A ULX3S build of more lanes than any build here has routed gets a note first (hours,
    timing not met); the measured lane counts and a board without a measurement get none."""
    from pcforge.boards.profiles import lane_count_note
    ulx3s = BOARDS["ulx3s"]
    assert lane_count_note(ulx3s, 8) is None and lane_count_note(ulx3s, 16) is None
    note = lane_count_note(ulx3s, 32)
    assert note and "more than 16 lanes" in note and "hours" in note and "ulx3s" in note
    assert lane_count_note(BOARDS["icebreaker"], 4) is None


def test_build_refuses_weights_in_the_bitstream_for_spram(tmp_path):
    """SPRAM has no initial contents: a build that needs it refuses --weights, before any
    tool runs and without writing anything."""
    from pcforge.boards.build import build_board
    from pcforge.model.spec import SpecError
    spec = digits_spec(hidden=(64,), sizes=(784, 64, 10))
    W = [np.zeros(spec.weight_shape(l), np.int64) for l in (1, 2)]
    b = [np.zeros(spec.sizes[l], np.int64) for l in (1, 2)]
    with pytest.raises(SpecError, match="SPRAM, which a bitstream cannot initialise"):
        build_board("icebreaker", spec, tmp_path / "out", weights=(W, b))
    assert not (tmp_path / "out").exists()


def test_build_refuses_a_design_that_cannot_fit_and_writes_nothing(tmp_path):
    from click.testing import CliRunner

    from pcforge.cli import main
    out = tmp_path / "ice"
    r = CliRunner().invoke(main, ["build", "--board", "icebreaker", "--lanes", "8",
                                  "--out", str(out)])
    assert r.exit_code != 0 and "does not fit" in r.output and "--board ulx3s" in r.output
    assert not out.exists()


@pytest.fixture(scope="module")
def digits_fixed():
    # 64-16-10: a quarter of the default's weights to load bit by bit through the simulated
    # UART (the UART, link and driver do not depend on the sizes; the default is built below)
    spec = digits_spec(hidden=(16,))
    data = load_digits_split()
    net, _ = train_float(spec, data, epochs=3)
    fx = FixedPCN.from_float(spec, Weights(net.W, net.b))
    return spec, fx, fx.quantize(data.x_test[:3])


@pytest.mark.xdist_group("board_sim")
def test_digits_through_the_simulated_uart_board_equal_fixed_pcn(digits_fixed):
    """The host driver loads the trained weights over the UART of the simulated board top,
    reads them back, sends every kind of bad frame (each answered with its status, nothing
    executed, the board usable after), then runs digits: every x and e = FixedPCN, cycles = the
    cycle model."""
    from pcforge.model.arch.cycles import cycle_report
    from pcforge.boards.simulated import SimBoard
    spec, fx, xq = digits_fixed
    board = SimBoard(spec, 1)
    res = board.run({"W": [w.tolist() for w in fx.W], "b": [v.tolist() for v in fx.b],
                     "samples": [{0: v.tolist()} for v in xq], "mask": "inference",
                     "bad_input": True})
    from pcforge.boards.system import design_id
    assert res["design"]["design_id"] == design_id(spec) and res["design"]["lanes"] == 1
    for key in ("weights", "weights_after_bad_input"):
        for l in range(spec.L):
            assert np.array_equal(res[key]["W"][l], fx.W[l]), key
            assert np.array_equal(res[key]["b"][l], fx.b[l]), key
    bad = res["bad_input"]
    assert bad["corrupted"][0] == Status.BAD_CHECKSUM
    assert bad["wrong_checksum"][0] == Status.BAD_CHECKSUM
    assert bad["truncated"][0] == Status.TRUNCATED
    assert bad["out_of_sequence"][0] == Status.BAD_SEQUENCE
    assert bad["out_of_sequence"][2] == [bad["expected_seq"]]
    assert bad["bad_command"][0] == Status.BAD_COMMAND
    assert bad["bad_length"][0] == Status.BAD_LENGTH
    assert bad["bad_argument"][0] == Status.BAD_ARGUMENT
    assert bad["busy"][0] == Status.BUSY
    assert bad["status_after"]["done"] and not bad["status_after"]["busy"]
    for i, run in enumerate(res["runs"]):
        ref = fx.relax({0: xq[i:i + 1]}, "inference")
        expect_cycles = cycle_report(spec, 1, "inference", iterations=ref.iterations[0]).total
        for k in range(spec.n_layers):
            assert np.array_equal(run["x"][k], ref.x[k][0]), (i, k)
        for k in range(1, spec.n_layers):
            assert np.array_equal(run["e"][k - 1], ref.e[k][0]), (i, k)
        assert run["cycles"] == expect_cycles


@pytest.mark.xdist_group("board_sim")
@pytest.mark.parametrize("rows", [1, 2])
def test_ulx3s_logic_with_its_hard_multipliers_through_the_simulated_board(digits_fixed, rows):
    """The ULX3S's bitstream logic (its profile's core options: MULT18X18D blocks with their
    registers, here at 2 lanes, with one or two rows per token) under Verilator with the
    blocks' simulation model, driven over the UART by the host driver (which loads the weights
    at the addresses of the core's rows per token, and refuses a board of another kind):
    training-mask relaxations (input and label clamped, T iterations) give every x and e of
    FixedPCN and the cycle model's cycles; BATCH gives FixedPCN's outputs."""
    from pcforge.boards.simulated import SimBoard
    from pcforge.model.arch.cycles import cycle_report
    from pcforge.model.data import one_hot
    spec, fx, xq = digits_fixed
    lanes = 2
    board = SimBoard.for_board(BOARDS["ulx3s"], spec, lanes, rows=rows)
    assert board.hard_multipliers == "ecp5"
    board.build()
    verilog = (board.dir / "hdl" / "pcforge_board.v").read_text()
    assert verilog.count("  MULT18X18D #(") == lanes * rows and "module MULT18X18D #(" in verilog
    labels = fx.quantize(one_hot(np.arange(len(xq)) % spec.sizes[-1], spec.sizes[-1]))
    res = board.run({"W": [w.tolist() for w in fx.W], "b": [v.tolist() for v in fx.b],
                     "samples": [{0: x.tolist(), spec.L: y.tolist()}
                                 for x, y in zip(xq, labels)], "mask": "training",
                     "batches": [{"inputs": xq.tolist(), "argmax": False}]})
    assert res["design"]["lanes"] == lanes and res["design"]["rows"] == rows
    for i, run in enumerate(res["runs"]):
        ref = fx.relax({0: xq[i:i + 1], spec.L: labels[i:i + 1]}, "training")
        for k in range(spec.n_layers):
            assert np.array_equal(run["x"][k], ref.x[k][0]), (i, k)
        for k in range(1, spec.n_layers):
            assert np.array_equal(run["e"][k - 1], ref.e[k][0]), (i, k)
        assert run["cycles"] == cycle_report(spec, lanes, "training", rows=rows,
                                             iterations=ref.iterations[0]).total
    (words,) = res["batch"]
    assert np.array_equal(words["results"], fx.relax({0: xq}, "inference").x[spec.L])


@pytest.mark.slow
@pytest.mark.xdist_group("bitstreams")
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s"])
def test_bitstream_for_the_digits_default_fits_and_meets_its_clock(tmp_path, board):
    """The digits default (64-64-10, T = 20, 16-bit) on each board at the board's lanes and
    clock: Yosys + nextpnr from the YoWASP wheels; it fits, meets the clock it asks for, and
    the report says so; the DSP count is the estimate's."""
    from click.testing import CliRunner

    from pcforge.cli import main
    from pcforge.model.arch.cycles import cycle_report
    out = tmp_path / board
    args = ["build", "--board", board, "--out", str(out)]
    spec = digits_spec()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["board"] == board and rep["device"] == BOARDS[board].device
    assert rep["timing_met"] and rep["fmax_mhz"] >= rep["clock_mhz"]
    for k, u in rep["utilization"].items():
        assert 0 <= u["used"] <= u["available"], k
    assert rep["utilization"]["DSP"]["used"] == rep["estimate"]["DSP"]
    assert rep["utilization"]["BRAM"]["used"] == rep["estimate"]["BRAM"]
    assert (out / rep["bitstream"]).stat().st_size == rep["bitstream_bytes"] > 10_000
    assert (out / "report.md").read_text().startswith("# pcforge build")
    assert rep["cycles_per_inference"] == cycle_report(spec, rep["lanes"], "inference").total
