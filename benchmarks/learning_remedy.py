"""Sub-LSB weight updates and the guard-bit remedy: the digits network trained with the
hardware's own rule (FixedPCN, one sample at a time, W += round(α e f(x)ᵀ), after relaxation —
bit-exact with on-chip learning) for several weight formats and seeds.

With narrow multipliers α·e·f(x) often falls below one LSB of W and rounds away; guard bits
(``formats.w_guard``) keep more fraction bits in the weight memories while the multipliers keep
their width. Prints a table and writes ``benchmarks/results/learning_remedy.json``.

    python benchmarks/learning_remedy.py [--epochs 6] [--seeds 3]
"""
from __future__ import annotations

import os
import platform
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from pcforge.model.data import load_digits_split
from pcforge.model.qformat import QFormat
from pcforge.model.spec import Formats
from pcforge.model.presets import digits_spec
from pcforge.model.train import train_fixed

from common import bench_parser, write_results

CONFIGS = {            # name: (W width, W frac, guard bits)
    "16-bit W (default)": (16, 12, 0),
    "16-bit W + 8 guard bits": (16, 12, 8),
    "12-bit W": (12, 8, 0),
    "12-bit W + 4 guard bits": (12, 8, 4),
    "12-bit W + 8 guard bits": (12, 8, 8),
}


def spec_of(width, frac, guard):
    return digits_spec(formats=Formats(x=QFormat(16, 10), e=QFormat(16, 12),
                                       w=QFormat(width, frac), b=QFormat(16, 12),
                                       w_guard=guard))


def one(args):
    name, seed, epochs = args
    spec = spec_of(*CONFIGS[name])
    net, hist = train_fixed(spec, load_digits_split(), epochs=epochs, seed=seed)
    nz, lost = net.weight_updates
    return name, seed, hist.test_accuracy, lost / max(nz, 1)


def main():
    ap = bench_parser(__doc__, "learning_remedy")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    jobs = [(n, s, args.epochs) for n in CONFIGS for s in range(args.seeds)]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        res = list(pool.map(one, jobs))
    rows = []
    t = Table(title=f"digits, hardware learning rule (FixedPCN = on-chip), {args.epochs} "
                    f"epochs, seeds 0..{args.seeds - 1}")
    for col in ("weights", "multiplier W bits", "memory bits/weight", "sub-LSB updates lost",
                "final accuracy (mean)", "per seed", "best epoch (mean)"):
        t.add_column(col, justify="right")
    for name, (w, f, g) in CONFIGS.items():
        runs = [r for r in res if r[0] == name]
        final = [r[2][-1] for r in runs]
        best = [max(r[2]) for r in runs]
        lost = float(np.mean([r[3] for r in runs]))
        rows.append({"name": name, "w_width": w, "w_frac": f, "w_guard": g,
                     "memory_bits_per_weight": w + g, "lost_update_fraction": lost,
                     "final_accuracy": final, "accuracy_per_epoch": [r[2] for r in runs],
                     "final_accuracy_mean": float(np.mean(final)),
                     "best_accuracy_mean": float(np.mean(best))})
        t.add_row(name, str(w), str(w + g), f"{100 * lost:.1f} %",
                  f"{100 * np.mean(final):.2f} %", " ".join(f"{100 * a:.1f}" for a in final),
                  f"{100 * np.mean(best):.2f} %")
    Console().print(t)
    out = Path(args.out)
    write_results(out, {"epochs": args.epochs, "seeds": args.seeds, "configs": rows,
                               "machine": platform.platform()})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
