"""PC vs backprop on random networks: Z-IL exactness and the small-nudge approximation.

Prints a table and writes benchmarks/results/pc_vs_backprop.json.
    python benchmarks/pc_vs_backprop.py [--networks N]
"""
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from pcforge.model import FloatPCN, PCSpec, Weights
from pcforge.model.backprop import backprop_directions, nudge_similarity
from pcforge.model.qformat import FixedConst

from common import bench_parser, write_results

BETAS = (1.0, 0.3, 0.1, 0.03, 0.01)


def main():
    ap = bench_parser(__doc__, "pc_vs_backprop")
    ap.add_argument("--networks", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    zil = {}
    for act in ("tanh", "relu"):
        worst = 0.0
        for _ in range(args.networks):
            depth = int(rng.integers(2, 6))
            sizes = [int(rng.integers(2, 16)) for _ in range(depth + 1)]
            spec = PCSpec(sizes=sizes, activations=[act] * depth)
            net = FloatPCN(spec, Weights.init(spec, rng))
            x0, y = rng.normal(size=(8, sizes[0])), rng.normal(size=(8, sizes[-1]))
            dW, db = net.zil_updates(x0, y)
            gW, gb = backprop_directions(net.W, net.b, spec.activations, x0, y)
            worst = max(worst, max(float(np.max(np.abs(a - c))) for a, c in zip(dW + db, gW + gb)))
        zil[act] = worst
    sims = {beta: [] for beta in BETAS}
    for _ in range(args.networks):
        spec = PCSpec(sizes=[6, 10, 8, 4], activations=["identity", "tanh", "tanh"],
                      gamma=FixedConst(1, 3))
        net = FloatPCN(spec, Weights.init(spec, rng))
        x0, y = rng.normal(size=(5, 6)), rng.normal(size=(5, 4))
        for beta in BETAS:
            sims[beta].append(nudge_similarity(net, x0, y, beta))
    con = Console()
    t = Table(title=f"Z-IL vs backprop ({args.networks} random networks per activation, depth 2–5)")
    t.add_column("activation")
    t.add_column("max |ΔW_ZIL − ΔW_BP|", justify="right")
    for k, v in zil.items():
        t.add_row(k, f"{v:.2e}")
    con.print(t)
    t = Table(title="standard PC vs backprop: cosine similarity at output nudge β (6-10-8-4 tanh)")
    for c in ("β", "mean cosine", "min cosine"):
        t.add_column(c, justify="right")
    for beta, v in sims.items():
        t.add_row(f"{beta:g}", f"{np.mean(v):.5f}", f"{np.min(v):.5f}")
    con.print(t)
    out = Path(args.out)
    write_results(out, {"zil_max_abs_diff": zil, "nudge_cosine": {
        str(b): {"mean": float(np.mean(v)), "min": float(np.min(v))} for b, v in sims.items()}})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
