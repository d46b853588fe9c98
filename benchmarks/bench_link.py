"""Benchmark: inferences per second end to end through a board's UART link, beside the core's
own rate — the digits default on the simulated board top (cocotb + Verilator: the board's
logic, UART included, with a bit-level UART model on its pins and the host driver ``PCLink``).

For each board at its lane count, core clock and UART rate (and, for comparison, at 1 Mbaud —
the rate before BATCH): one sample at a time without BATCH (WRITE x_0, RUN, STATUS until done,
READ the output layer), BATCH with compact 1-byte inputs returning only the argmax, and BATCH
returning the output layer's 10 words (boards whose link has BATCH: not the iCEBreaker, whose
logic cells the 1-lane core fills). Rates are simulated clock cycles from the first byte
sent to the last byte received, at the board's clock. Every answer is checked against FixedPCN
(argmax, output words) and the BATCH cycle sums against the cycle model.
Prints a table and writes benchmarks/results/bench_link.json.

    python benchmarks/bench_link.py [--boards icebreaker,ulx3s] [--samples 24] [--bauds board]
"""
from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.table import Table

from pcforge.boards.frame import BatchFormat
from pcforge.boards.profiles import BOARDS
from pcforge.boards.simulated import SimBoard
from pcforge.boards.top import link_timing
from pcforge.model import FixedPCN, Weights
from pcforge.model.arch.cycles import cycle_report
from pcforge.model.data import load_digits_split
from pcforge.model.presets import digits_spec
from pcforge.model.train import train_float

from common import bench_parser, write_results


def main():
    ap = bench_parser(__doc__, "bench_link")
    ap.add_argument("--boards", default="icebreaker,ulx3s")
    ap.add_argument("--samples", type=int, default=24)
    ap.add_argument("--bauds", choices=("both", "board"), default="both",
                    help="both: 1 Mbaud and the board's rate; board: the board's rate only")
    args = ap.parse_args()
    spec = digits_spec()
    data = load_digits_split()
    net, _ = train_float(spec, data, epochs=5)
    fx = FixedPCN.from_float(spec, Weights(net.W, net.b))
    x0 = fx.quantize(data.x_test[:args.samples])
    ref = fx.relax({0: x0}, "inference")
    want_arg = np.argmax(ref.x[spec.L], axis=1)
    rows = []
    for name in args.boards.split(","):
        board = BOARDS[name]
        lanes, clock = board.lanes, board.clock_mhz
        core_cycles = sum(cycle_report(spec, lanes, "inference", iterations=int(i)).total
                          for i in ref.iterations)
        for baud in sorted({board.baud} | ({1_000_000} if args.bauds == "both" else set())):
            divisor, _ = link_timing(clock, baud)
            # the weights in the "bitstream" (memory init): loading 4 736 words over a
            # simulated 1 Mbaud UART costs ~19 M simulated cycles before anything is timed
            sim = SimBoard.for_board(board, spec, lanes, divisor=divisor,
                                     timeout_cycles=int(clock * 1e4), weights=(fx.W, fx.b))
            n_single = min(6, args.samples)
            batches = ([{"inputs": x0.tolist(), "argmax": True},
                        {"inputs": x0.tolist(), "argmax": False}] if board.link_batch else [])
            res = sim.run({"samples": [], "mask": "inference",
                           "classify": x0[:n_single].tolist(), "batches": batches})
            one = res["classify"]
            assert one["results"] == list(want_arg[:n_single]), "per-sample argmax differs"
            modes = [("one at a time", one, n_single)]
            if board.link_batch:
                arg, words = res["batch"]
                assert arg["results"] == list(want_arg), "BATCH argmax differs from FixedPCN"
                assert np.array_equal(words["results"], ref.x[spec.L]), "BATCH words differ"
                assert arg["core_cycles"] == core_cycles == words["core_cycles"]
                modes += [("BATCH argmax", arg, args.samples),
                          ("BATCH output words", words, args.samples)]
            fmt = BatchFormat(spec.sizes[0], spec.sizes[-1], argmax=True,
                              compact=BatchFormat.compact_shift(x0) is not None)
            hz = clock * 1e6
            core_rate = args.samples / (core_cycles / hz)
            for how, r, n in modes:
                rows.append({
                    "board": name, "lanes": lanes, "clock_mhz": clock, "baud": baud,
                    "uart_divisor": divisor, "mode": how, "samples": n,
                    "link_cycles": r["link_cycles"],
                    "inferences_per_s": n / (r["link_cycles"] / hz),
                    "core_inferences_per_s": core_rate,
                    "link_share": 1 - r["core_cycles"] / r["link_cycles"],
                    "bytes_per_inference": (r.get("bytes") / n) if r.get("bytes") else None,
                    "samples_per_frame": fmt.max_samples if how == "BATCH argmax" else None})
    t = Table(title=f"digits {list(spec.sizes)}: inferences/s through the board's UART link "
                    "(simulated board, every answer = FixedPCN)")
    for c in ("board", "lanes", "baud", "mode", "inferences/s", "bytes/inf", "core alone /s",
              "link's share of the time"):
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(r["board"], str(r["lanes"]), f"{r['baud'] / 1e6:g} M", r["mode"],
                  f"{r['inferences_per_s']:.0f}",
                  f"{r['bytes_per_inference']:.0f}" if r["bytes_per_inference"] else "—",
                  f"{r['core_inferences_per_s']:.0f}", f"{r['link_share']:.1%}")
    Console(width=160).print(t)
    out = write_results(args.out, {"benchmark": "link", "spec_digest": spec.digest,
                                   "samples": args.samples, "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
