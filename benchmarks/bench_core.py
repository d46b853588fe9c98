"""Benchmark: the hardware core on the digits default — cycles per iteration and per inference
and MAC-lane utilisation for lane budgets 1..64, the numpy models in the same run, and the
Amaranth simulator's speed.

* Cycles come from the exact cycle model (``pcforge.model.arch.cycles``), which the test suite checks
  equal to the simulated ``cycles`` counter on every spec it runs; ``--verify N`` additionally
  simulates budgets ≤ N here and asserts the equality on a real digit.
* MAC-lane utilisation = useful MACs / (lanes × cycles) over a whole inference (inference clamp
  mask, T = 20). Useful MACs: the input layer's prediction once per sample (the input is
  clamped), the other predictions and feedbacks every iteration, plus the feed-forward
  initialisation and the final error pass.
* Hazard waits: the idle cycles the schedule's waits cost in the run; "if drained": the same
  run if every job waited for the pipeline to drain instead (what the hazard analysis buys).
* Latency at a clock: cycles / f; the numpy models (float64 FloatPCN, int64 FixedPCN, batch 1,
  one thread) per sample for comparison.

Prints a table and writes benchmarks/results/bench_core.json.

    python benchmarks/bench_core.py [--verify 8] [--clock-mhz 30]
"""
import platform
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

from pcforge.hdl.core import PCCore
from pcforge.model import FixedPCN, FloatPCN, Weights
from pcforge.model.arch.cycles import cycle_distribution, cycle_report
from pcforge.model.data import load_digits_split
from pcforge.model.arch.schedule import schedule
from pcforge.model.presets import digits_spec
from pcforge.model.train import train_float
from pcforge.sim.amaranth_sim import run_core

from common import bench_parser, write_results

BUDGETS = (1, 2, 4, 8, 16, 32, 64)


def main():
    ap = bench_parser(__doc__, "bench_core")
    ap.add_argument("--verify", type=int, default=8,
                    help="simulate lane budgets up to this many in Amaranth (0: none)")
    ap.add_argument("--clock-mhz", type=float, default=30.0,
                    help="clock for the latency column (iCE40UP5K target: 30 MHz)")
    args = ap.parse_args()
    console = Console(width=200)
    spec = digits_spec()
    data = load_digits_split()
    net, _ = train_float(spec, data, epochs=1)
    fixed = FixedPCN.from_float(spec, Weights(net.W, net.b))
    x0 = fixed.quantize(data.x_test[:1])

    with threadpool_limits(1):
        fl = FloatPCN(spec, Weights(net.W, net.b))
        t0 = time.perf_counter()
        for _ in range(50):
            fl.infer(data.x_test[:1])
        float_us = (time.perf_counter() - t0) / 50 * 1e6
        t0 = time.perf_counter()
        for _ in range(20):
            fixed.infer(x0)
        fixed_us = (time.perf_counter() - t0) / 20 * 1e6

    # with the exact stop (the digits default) a run makes as many iterations as FixedPCN says:
    # every test digit is at rest under the inference mask; training relaxation varies
    ref0 = fixed.infer(x0)
    n_inf = int(ref0.iterations[0])
    xq_all = fixed.quantize(data.x_test)
    tq_all = fixed.quantize(np.eye(10)[data.y_test])
    its_inf = fixed.relax({0: xq_all}, "inference").iterations
    its_train = fixed.relax({0: xq_all, spec.L: tq_all}, "training").iterations
    rows = []
    for lanes in BUDGETS:
        rep = cycle_report(spec, lanes, "inference", iterations=n_inf)
        rep_T = cycle_report(spec, lanes, "inference")
        sch = schedule(spec, lanes)
        mask = spec.mask("inference")
        row = {"lanes": lanes, "cycles_per_inference": rep.total,
               "iterations_run": n_inf, "cycles_all_T_iterations": rep_T.total,
               "test_set_cycles_mean": float(cycle_distribution(spec, lanes, its_inf).mean()),
               "cycles_per_iteration": rep.per_iteration[-1], "prologue_cycles": rep.prologue,
               "hazard_wait_cycles": rep.waits, "overlapping_jobs": sch.overlaps(mask),
               "cycles_if_drained": sch.drained_cycles(mask),
               "final_pass_cycles": rep.final_pass, "useful_macs": rep.useful_macs,
               "utilisation": rep.utilisation,
               "latency_us_at_clock": rep.total / args.clock_mhz}
        if lanes <= args.verify:
            core = PCCore(spec, lanes)
            t0 = time.perf_counter()
            run = run_core(core, fixed.W, fixed.b, {0: x0[0]}, "inference", trace=False)
            wall = time.perf_counter() - t0
            ref = ref0
            assert run.cycles == rep.total, (lanes, run.cycles, rep.total)
            assert all(np.array_equal(run.x[k], ref.x[k][0]) for k in range(spec.n_layers))
            row["simulated_cycles"] = run.cycles
            row["amaranth_sim_wall_s"] = wall
        rows.append(row)

    table = Table(title=f"digits 64-64-10, T ≤ {spec.iterations} (stop = {spec.stop}: "
                        f"{n_inf} iterations at rest), inference mask — latency at "
                        f"{args.clock_mhz:g} MHz")
    for col in ("lanes", "cycles/inference", "all T", "cycles/iteration", "hazard waits",
                "if drained", "MAC-lane util.", "latency µs", "simulated = model",
                "Amaranth sim s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["lanes"]), str(r["cycles_per_inference"]),
                      str(r["cycles_all_T_iterations"]), str(r["cycles_per_iteration"]), str(r["hazard_wait_cycles"]),
                      str(r["cycles_if_drained"]), f"{100 * r['utilisation']:.1f} %",
                      f"{r['latency_us_at_clock']:.1f}",
                      "yes" if "simulated_cycles" in r else "(model)",
                      f"{r['amaranth_sim_wall_s']:.1f}" if "amaranth_sim_wall_s" in r else "")
    console.print(table)
    learn_rows = []
    tl = Table(title="learning on chip: training clamp mask, one sample, T = "
                     f"{spec.iterations} (with the exact stop: the median over the test set's "
                     f"training relaxations, {int(np.median(its_train))} iterations)")
    for col in ("rule", "lanes", "cycles/training sample", "stop: median", "useful MACs",
                "multipliers", "MAC util."):
        tl.add_column(col, justify="right")
    for rule in ("after_relaxation", "incremental"):
        rspec = spec.replace(learning=rule)
        for lanes in BUDGETS:
            rep = cycle_report(rspec, lanes, "training", learn=True)
            stops = rule == "after_relaxation"      # not while learning incrementally
            med = (float(np.median(cycle_distribution(rspec, lanes, its_train, "training",
                                                      learn=True))) if stops else rep.total)
            learn_rows.append({"rule": rule, "lanes": lanes,
                               "cycles_per_training_sample": rep.total,
                               "cycles_median_with_stop": med,
                               "useful_macs": rep.useful_macs,
                               "multipliers": lanes * rep.multipliers_per_lane,
                               "utilisation": rep.utilisation})
            tl.add_row(rule, str(lanes), str(rep.total), f"{med:.0f}", str(rep.useful_macs),
                       str(lanes * rep.multipliers_per_lane), f"{100 * rep.utilisation:.1f} %")
    console.print(tl)
    console.print(f"numpy, batch 1, one thread: FloatPCN {float_us:.0f} µs, FixedPCN "
                  f"{fixed_us:.0f} µs per sample")
    out = Path(args.out)
    write_results(out, {
        "spec_digest": spec.digest, "clock_mhz": args.clock_mhz, "budgets": rows,
        "learning": learn_rows,
        "numpy_float_batch1_us": float_us, "numpy_fixed_batch1_us": fixed_us,
        "machine": platform.platform(), "python": platform.python_version()})
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
