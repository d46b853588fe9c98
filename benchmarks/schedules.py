"""Schedule co-design on the digits default: ``synchronous`` (two sweeps of each weight memory
per iteration, the built hardware) against ``delayed_feedback`` (feedback from the previous
iteration's errors, so one sweep can feed W f(x) and Wᵀ e).

For each schedule: float PC trained with that schedule (Adam, cosine, ``--epochs``), test
accuracy of FloatPCN and of the bit-exact FixedPCN with the quantised weights, and cycles per
inference and per iteration at 8 and 64 lanes from the exact cycle model (= the simulated
hardware's counter, asserted by the tests), with multiplier utilisation (the one-sweep core has
two multipliers per lane).
Prints a table and writes benchmarks/results/schedules.json.

    python benchmarks/schedules.py [--epochs 50] [--seeds 0 1 2]
"""
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from pcforge.model import FixedPCN
from pcforge.model.arch.cycles import cycle_report
from pcforge.model.data import load_digits_split
from pcforge.model.presets import digits_spec
from pcforge.model.train import accuracy_fixed, accuracy_float, train_float

from common import bench_parser, write_results


def main():
    ap = bench_parser(__doc__, "schedules")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    data = load_digits_split()
    rows = []
    for schedule in ("synchronous", "delayed_feedback"):
        spec = digits_spec(schedule=schedule)
        fl, fx = [], []
        for seed in args.seeds:
            net, _ = train_float(spec, data, epochs=args.epochs, seed=seed)
            fl.append(accuracy_float(net, data.x_test, data.y_test))
            fixed = FixedPCN.from_float(spec, net.weights)
            fx.append(accuracy_fixed(fixed, data.x_test, data.y_test))
        cyc = {}
        for lanes in (8, 64):
            rep = cycle_report(spec, lanes)
            cyc[lanes] = {"cycles_per_inference": rep.total,
                          "cycles_per_iteration": rep.per_iteration[0],
                          "multipliers": rep.lanes * rep.multipliers_per_lane,
                          "utilisation": rep.utilisation}
        rows.append({"schedule": schedule, "float_accuracy": fl, "fixed_accuracy": fx,
                     "float_mean": float(np.mean(fl)), "fixed_mean": float(np.mean(fx)),
                     "cycles": cyc})
    table = Table(title=f"digits 64-64-10 relu, T = 20, {args.epochs} epochs, seeds {args.seeds}")
    for col in ("schedule", "float acc.", "fixed acc.", "cycles/inf. @8", "cycles/iter @8",
                "cycles/inf. @64", "multipliers @8", "util. @8"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["schedule"], f"{100 * r['float_mean']:.2f} %",
                      f"{100 * r['fixed_mean']:.2f} %",
                      str(r["cycles"][8]["cycles_per_inference"]),
                      str(r["cycles"][8]["cycles_per_iteration"]),
                      str(r["cycles"][64]["cycles_per_inference"]),
                      str(r["cycles"][8]["multipliers"]),
                      f"{100 * r['cycles'][8]['utilisation']:.1f} %")
    Console().print(table)
    out = Path(args.out)
    write_results(out, {"epochs": args.epochs, "seeds": args.seeds, "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
