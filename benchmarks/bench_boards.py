"""Benchmark: the digits default on both boards against the CPU, in one run.

For each board: a real bitstream (``pcforge.boards.build_board``: Yosys + nextpnr from the YoWASP
wheels; cached builds are reused), its post-route fmax and timing at the requested clock, the
LUT/FF/DSP/BRAM use; inferences per second at that clock from the exact cycle model (T = the
spec's), and that as a fraction of the lane limit (lanes × clock ÷ MACs per inference). Beside
them, FloatPCN (numpy, float64) on one thread at batch 1 and batch 256 on the same machine, and
a lean numpy loop of the same relaxation at batch 1 (checked equal to FloatPCN) for what a
hand-tuned CPU implementation costs, and the bare feed-forward pass at batch 1 — the CPU's best
answer for classification, where the free layers start at rest. The boards' inference with the
exact stop (the digits default; every test digit is at rest and stops after 2 iterations) is
beside their all-T figure.
Prints a table and writes benchmarks/results/bench_boards.json.

    python benchmarks/bench_boards.py [--boards icebreaker,ulx3s]
"""
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

from pcforge.boards.build import build_board
from pcforge.model import FloatPCN, Weights
from pcforge.model.data import load_digits_split
from pcforge.model.presets import digits_spec

from common import bench_parser, write_results

GOALS = {"icebreaker": 30.0, "ulx3s": 100.0}


def numpy_us_per_sample(spec, batch: int, repeats: int = 3) -> float:
    d = load_digits_split()
    net = FloatPCN(spec, Weights.init(spec, np.random.default_rng(0)))
    x = np.concatenate([d.x_test] * 2)
    n = (len(x) // batch) * batch if batch > 1 else 200
    best = np.inf
    with threadpool_limits(1):
        for _ in range(repeats):
            t0 = time.perf_counter()
            for i in range(0, n, batch):
                net.infer(x[i:i + batch])
            best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def lean_relax(W, b, acts, x0, T: int, gamma: float):
    """The inference relaxation (input clamped, feed-forward init, synchronous) as a bare numpy
    loop over one sample: the same arithmetic as FloatPCN without its generality (no masks,
    traces, energies or caches beyond the clamped input's prediction) — what a hand-tuned CPU
    implementation costs. Returns the output layer."""
    from pcforge.model.activations import f_float, fprime_float
    L = len(W)
    x = [x0]
    for l in range(L):
        x.append(W[l] @ f_float(acts[l], x[l]) + b[l])
    mu1 = x[1].copy()                                   # layer 0 is clamped: cached
    for _ in range(T):
        e = [None, x[1] - mu1]
        for l in range(1, L):
            e.append(x[l + 1] - (W[l] @ f_float(acts[l], x[l]) + b[l]))
        for l in range(1, L + 1):
            d = -e[l]
            if l < L:
                d = d + fprime_float(acts[l], x[l]) * (W[l].T @ e[l + 1])
            x[l] = x[l] + gamma * d
    return x[L]


def feedforward_us_per_sample(spec, n: int = 200, repeats: int = 5) -> float:
    """x_l = W_l f(x_{l−1}) + b_l layer by layer for one sample at a time (what classification
    at rest needs: with feed-forward initialisation the relaxation leaves it unchanged)."""
    from pcforge.model.activations import f_float
    d = load_digits_split()
    w = Weights.init(spec, np.random.default_rng(0))
    x = d.x_test[:n]
    best = np.inf
    with threadpool_limits(1):
        for _ in range(repeats):
            t0 = time.perf_counter()
            for v in x:
                for l in range(spec.L):
                    v = w.W[l] @ f_float(spec.activations[l], v) + w.b[l]
            best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def lean_us_per_sample(spec, n: int = 200, repeats: int = 3) -> float:
    d = load_digits_split()
    w = Weights.init(spec, np.random.default_rng(0))
    net = FloatPCN(spec, w)
    x = d.x_test[:n]
    ref = net.infer(x[:8])
    got = np.stack([lean_relax(w.W, w.b, spec.activations, v, spec.iterations,
                               spec.gamma.value) for v in x[:8]])
    assert np.allclose(got, ref, rtol=1e-9, atol=1e-12), "the lean loop differs from FloatPCN"
    best = np.inf
    with threadpool_limits(1):
        for _ in range(repeats):
            t0 = time.perf_counter()
            for v in x:
                lean_relax(w.W, w.b, spec.activations, v, spec.iterations, spec.gamma.value)
            best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def main():
    ap = bench_parser(__doc__, "bench_boards")
    ap.add_argument("--boards", default="icebreaker,ulx3s")
    args = ap.parse_args()
    spec = digits_spec()
    cpu = {b: numpy_us_per_sample(spec, b) for b in (1, 256)}
    lean = lean_us_per_sample(spec)
    ff = feedforward_us_per_sample(spec)
    rows = []
    for name in args.boards.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            rep = build_board(name, spec, tmp)
        us = 1e6 / rep["inferences_per_s"]
        rows.append({
            "board": name, "device": rep["device"], "lanes": rep["lanes"],
            "clock_mhz": rep["clock_mhz"], "fmax_mhz": rep["fmax_mhz"],
            "fmax_goal_mhz": GOALS[name], "timing_met": rep["timing_met"],
            "utilization": {k: [v["used"], v["available"]] for k, v in rep["utilization"].items()},
            "cycles_per_inference": rep["cycles_per_inference"],
            "inferences_per_s": rep["inferences_per_s"], "us_per_inference": us,
            "lane_limit_fraction": rep["lane_limit_fraction"],
            "speedup_vs_numpy_batch1": cpu[1] / us, "speedup_vs_numpy_batch256": cpu[256] / us,
            "speedup_vs_lean_numpy_batch1": lean / us,
            "cycles_per_inference_at_rest": rep["cycles_per_inference_fewest"],
            "us_per_inference_at_rest": rep["cycles_per_inference_fewest"] / rep["clock_mhz"],
            "speedup_at_rest_vs_feedforward_batch1":
                ff / (rep["cycles_per_inference_fewest"] / rep["clock_mhz"]),
            "build_s": rep["build_s"]})
    t = Table(title=f"digits {list(spec.sizes)}, T = {spec.iterations}: boards vs numpy "
                    f"(FloatPCN, 1 thread: {cpu[1]:.1f} µs/sample at batch 1, {cpu[256]:.2f} "
                    f"at batch 256; a lean numpy loop: {lean:.1f} µs at batch 1; the "
                    f"feed-forward pass: {ff:.1f} µs at batch 1)")
    for c in ("board", "lanes", "clock MHz", "fmax MHz (goal)", "timing", "LUT", "DSP", "BRAM",
              "cycles/inf", "µs/inf", "lane limit", "× numpy b1", "× numpy b256", "× lean b1",
              "cycles at rest (stop)", "µs at rest", "× feed-forward b1"):
        t.add_column(c, justify="right")
    for r in rows:
        u = r["utilization"]
        t.add_row(r["board"], str(r["lanes"]), f"{r['clock_mhz']:.1f}",
                  f"{r['fmax_mhz']:.1f} ({r['fmax_goal_mhz']:.0f})",
                  "met" if r["timing_met"] else "NOT met", f"{u['LUT'][0]}/{u['LUT'][1]}",
                  f"{u['DSP'][0]}/{u['DSP'][1]}", f"{u['BRAM'][0]}/{u['BRAM'][1]}",
                  str(r["cycles_per_inference"]), f"{r['us_per_inference']:.1f}",
                  f"{r['lane_limit_fraction']:.1%}", f"{r['speedup_vs_numpy_batch1']:.2f}",
                  f"{r['speedup_vs_numpy_batch256']:.2f}",
                  f"{r['speedup_vs_lean_numpy_batch1']:.2f}",
                  str(r["cycles_per_inference_at_rest"]), f"{r['us_per_inference_at_rest']:.1f}",
                  f"{r['speedup_at_rest_vs_feedforward_batch1']:.2f}")
    Console(width=200).print(t)   # a wide table: not squeezed to a terminal
    out = Path(args.out)
    write_results(out, {"benchmark": "boards", "spec_digest": spec.digest,
                               "numpy_us_per_sample": {str(k): v for k, v in cpu.items()},
                               "lean_numpy_us_per_sample_batch1": lean,
                               "feedforward_numpy_us_per_sample_batch1": ff,
                               "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
