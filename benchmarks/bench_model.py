"""Benchmark: FloatPCN and FixedPCN inference time per sample on the digits default.

Batch 1 and batch 256, T = 20 relaxation iterations (the spec's), one BLAS thread, after
training the default network briefly (the timing does not depend on the weights' values).
Prints a table and writes benchmarks/results/bench_model.json.

    python benchmarks/bench_model.py [--repeats N]
"""
import platform
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_info, threadpool_limits

from pcforge.model import FixedPCN, FloatPCN, Weights
from pcforge.model.data import load_digits_split
from pcforge.model.presets import digits_spec

from common import bench_parser, write_results


def per_sample_us(fn, x, batch, repeats):
    n = (len(x) // batch) * batch if batch > 1 else min(len(x), 200)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            fn(x[i:i + batch])
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def main():
    ap = bench_parser(__doc__, "bench_model")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    spec = digits_spec()
    d = load_digits_split()
    w = Weights.init(spec, np.random.default_rng(0))
    fl, fx = FloatPCN(spec, w), FixedPCN.from_float(spec, w)
    x = np.concatenate([d.x_test] * 2)            # 720 samples: batch 256 runs twice
    xq = fx.quantize(x)
    rows = []
    with threadpool_limits(1):
        for batch in (1, 256):
            rows.append({"model": "FloatPCN (float64)", "batch": batch,
                         "us_per_sample": per_sample_us(lambda v: fl.infer(v), x, batch,
                                                        args.repeats)})
            rows.append({"model": "FixedPCN (bit-exact int64)", "batch": batch,
                         "us_per_sample": per_sample_us(lambda v: fx.infer(v), xq, batch,
                                                        args.repeats)})
    macs = spec.sizes[0] * spec.sizes[1] + spec.iterations * 2 * spec.sizes[1] * spec.sizes[2]
    t = Table(title=f"inference per sample, digits {list(spec.sizes)}, T = {spec.iterations}, "
                    "1 thread")
    for c in ("model", "batch", "µs / sample", "MMAC/s"):
        t.add_column(c, justify="right" if c != "model" else "left")
    for r in rows:
        r["mmac_per_s"] = macs / r["us_per_sample"]
        t.add_row(r["model"], str(r["batch"]), f"{r['us_per_sample']:.1f}",
                  f"{r['mmac_per_s']:.1f}")
    Console().print(t)
    out = Path(args.out)
    write_results(out, {
        "benchmark": "model_inference", "spec_digest": spec.digest, "sizes": list(spec.sizes),
        "iterations": spec.iterations, "macs_per_sample": macs, "rows": rows,
        "machine": {"python": platform.python_version(), "cpu": platform.processor(),
                    "numpy": np.__version__,
                    "blas": [i.get("internal_api") for i in threadpool_info()]},
    })
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
