"""Benchmark: three PC workloads on the digits default, hardware and CPU side by side in one run.

* **W1 classify** — input clamped, feed-forward initialisation, the exact stop (the free layers
  start at rest: every test digit stops after the fewest iterations the schedule allows).
* **W2 train step** — input and one-hot label clamped, up to T = 20 iterations (the exact stop
  ends a relaxation whose state repeats), then the local update W_l += α e_l f(x_{l−1})ᵀ.
* **W3 generate** — the label clamped, the input and hidden layers free from zero, up to T.

Hardware: for each board and each lane count built (``--ulx3s-lanes``, ``--icebreaker-lanes``;
real bitstreams through Yosys + nextpnr, cached), the core's cycles per sample from the exact
cycle model (checked equal to the simulated ``cycles`` counter by the test suite) over the 360
test digits — FixedPCN decides each sample's iterations — at the clock the build met. The best
lane count per board is the one with the lowest mean latency among builds that meet timing.
MAC-lane utilisation = useful MACs / (multipliers × cycles); "chip limit" = useful MACs per
second / (every multiplier on the chip × its fmax). The core runs one sample at a time
(throughput = 1 / latency: no interleaving of samples yet).

CPU, one thread, same run: FloatPCN (the package's numpy model) at batch 1 and 256; a lean numpy
loop of the same relaxation at batch 1 and 256; numpy's bare feed-forward pass at batch 1 (W1:
what classification at rest needs); and a scalar C loop (``benchmarks/c/pc_relax.c``) compiled
here with the system C compiler, at batch 1. Every CPU implementation is checked against
FloatPCN before it is timed. CPU numbers differ ~3× between machines: compare within one run.

Prints one table per workload and writes benchmarks/results/bench_workloads.json.

    python benchmarks/bench_workloads.py [--ulx3s-lanes 8,16] [--icebreaker-lanes 1]
"""
from __future__ import annotations

import ctypes
import itertools
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

from pcforge.boards.build import DEFAULT_SEED
from pcforge.model import FixedPCN, FloatPCN, Weights
from pcforge.model.activations import f_float, fprime_float
from pcforge.model.arch.cycles import cycle_distribution, cycle_report
from pcforge.model.data import load_digits_split
from pcforge.model.presets import digits_spec
from pcforge.model.train import train_float

from common import bench_parser, write_results

ACT_CODE = {"identity": 0, "relu": 1, "hardtanh": 2, "tanh": 3}
C_SOURCE = Path(__file__).parent / "c" / "pc_relax.c"


# ---- the workloads --------------------------------------------------------------------------
class Workload:
    """One workload: its spec (W3 starts from zero), clamp mask, clamped layers per sample and
    whether it ends with the weight update."""

    def __init__(self, key, title, spec, mask, clamped, learn):
        self.key, self.title, self.spec, self.mask = key, title, spec, mask
        self.clamped, self.learn = clamped, learn     # clamped: {layer: (N, n_l) floats}


def workloads(spec, data):
    L = spec.L
    x, t = data.x_test, np.eye(spec.sizes[L])[data.y_test]
    return [
        Workload("W1", "classify: input clamped, feed-forward init, exact stop", spec,
                 "inference", {0: x}, False),
        Workload("W2", f"train step: input + label clamped, T ≤ {spec.iterations}, then the "
                 "update", spec, "training", {0: x, L: t}, True),
        Workload("W3", f"generate: label clamped, input free, zero init, T ≤ {spec.iterations}",
                 spec.replace(init="zero"), "generation", {L: t}, False),
    ]


# ---- CPU implementations --------------------------------------------------------------------
def lean_relax(W, b, acts, clamped, mask, T, gamma, init_zero, learn, alpha):
    """The relaxation as a bare numpy loop over a batch (rows = samples): FloatPCN's arithmetic
    without its generality (no traces, energies or options). Returns (x, W, b)."""
    L = len(W)
    B = next(iter(clamped.values())).shape[0]
    x = []
    for l in range(L + 1):
        if mask[l]:
            x.append(clamped[l])
        elif l > 0 and not init_zero:
            x.append(f_float(acts[l - 1], x[l - 1]) @ W[l - 1].T + b[l - 1])
        else:
            x.append(np.zeros((B, len(b[l - 1]) if l else W[0].shape[1])))
    cache = {l: f_float(acts[l - 1], x[l - 1]) @ W[l - 1].T + b[l - 1]
             for l in range(1, L + 1) if mask[l - 1]}

    def errors():
        return [None] + [x[l] - (cache[l] if l in cache else
                                 f_float(acts[l - 1], x[l - 1]) @ W[l - 1].T + b[l - 1])
                         for l in range(1, L + 1)]
    for _ in range(T):
        e = errors()
        for l in range(L + 1):
            if mask[l]:
                continue
            d = -e[l] if l else 0.0
            if l < L:
                d = d + fprime_float(acts[l], x[l]) * (e[l + 1] @ W[l])
            x[l] = x[l] + gamma * d
    if learn:
        e = errors()
        W = [W[l - 1] + alpha * e[l].T @ f_float(acts[l - 1], x[l - 1]) / B
             for l in range(1, L + 1)]
        b = [b[l - 1] + alpha * e[l].mean(axis=0) for l in range(1, L + 1)]
    return x, W, b


#: the C loop's builds: plain -O2 (a scalar loop as written: each dot product is one dependent
#: chain of adds), and what the compiler makes of it when allowed to reorder float sums and use
#: the machine's vector units (the fastest this source gets)
C_BUILDS = {"-O2": ("-O2",), "-O3 -march=native -ffast-math": ("-O3", "-march=native",
                                                                "-ffast-math")}


def compile_c(tmp: Path, flags=C_BUILDS["-O2"]):
    """Compile pc_relax.c with the system C compiler and ``flags`` into a shared library;
    returns the ctypes function and the compiler's command line."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        cc = "cc"
    if shutil.which(cc) is None:
        sys.exit("no C compiler (cc) on PATH: the README requires one (e.g. apt-get install gcc)")
    lib = tmp / f"pc_relax{abs(hash(flags))}.so"
    obj = lib.with_suffix(".o")
    cmd = [cc, *flags, "-fPIC", "-c", str(C_SOURCE), "-o", str(obj)]
    subprocess.run(cmd, check=True)
    # linked without the compile flags: -ffast-math at link time adds crtfastmath.o, whose
    # constructor turns on flush-to-zero for the whole process that loads the library
    subprocess.run([cc, "-shared", str(obj), "-o", str(lib), "-lm"], check=True)
    fn = ctypes.CDLL(str(lib)).pc_relax
    dp = np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")
    ip = np.ctypeslib.ndpointer(np.int32, flags="C_CONTIGUOUS")
    up = np.ctypeslib.ndpointer(np.uint8, flags="C_CONTIGUOUS")
    fn.argtypes = [ctypes.c_int, ip, ip, dp, dp, dp, dp, up, ctypes.c_int, ctypes.c_int,
                   ctypes.c_double, ctypes.c_int, ctypes.c_int, ctypes.c_double, dp]
    fn.restype = ctypes.c_int
    return fn, " ".join(cmd[:1 + len(flags)])


class CRelax:
    """The C loop on one sample at a time (batch 1), with its buffers allocated once."""

    def __init__(self, fn, spec, weights, wl: Workload):
        s = spec
        self.fn, self.L = fn, s.L
        self.n = np.array(s.sizes, np.int32)
        self.act = np.array([ACT_CODE[a] for a in s.activations], np.int32)
        self.W = np.concatenate([w.ravel() for w in weights.W])
        self.b = np.concatenate(weights.b)
        self.x = np.zeros(sum(s.sizes))
        self.e = np.zeros(sum(s.sizes[1:]))
        self.work = np.zeros(3 * sum(s.sizes))
        self.mask = np.array(s.mask(wl.mask), np.uint8)
        self.off = np.cumsum([0, *s.sizes])
        self.init_zero = int(s.init == "zero")
        self.T, self.gamma, self.alpha = s.iterations, s.gamma.value, s.alpha.value
        self.learn = int(wl.learn)
        self.stop = 0                 # 1: stop after an iteration that changed no x

    def run(self, sample: dict) -> int:
        for l, v in sample.items():
            self.x[self.off[l]:self.off[l + 1]] = v
        return self.fn(self.L, self.n, self.act, self.W, self.b, self.x, self.e, self.mask,
                       self.init_zero, self.T, self.gamma, self.stop, self.learn, self.alpha, self.work)


def best_us(fn, n: int, repeats: int = 3) -> float:
    """Best of ``repeats`` of ``fn()`` (which handles ``n`` samples), in µs per sample."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


class CpuImplementations:
    """Every CPU implementation of workload ``wl`` on float ``weights``: FloatPCN (the package's
    model), the lean numpy loop (any batch) and the C loop (batch 1; ``c_fns``: {build label:
    function from :func:`compile_c`}). :meth:`check` compares them; :meth:`timings` times
    them."""

    def __init__(self, wl: Workload, weights: Weights, c_fns: dict):
        self.wl, self.spec = wl, wl.spec
        self.W0 = [np.array(w, dtype=np.float64) for w in weights.W]
        self.b0 = [np.array(v, dtype=np.float64) for v in weights.b]
        self.cs = {k: CRelax(fn, wl.spec, Weights(self.W0, self.b0), wl)
                   for k, fn in c_fns.items()}
        self.N = next(iter(wl.clamped.values())).shape[0]

    def part(self, lo, hi) -> dict:
        return {l: v[lo:hi] for l, v in self.wl.clamped.items()}

    def float_run(self, lo, hi):
        spec, wl, L = self.spec, self.wl, self.spec.L
        net = FloatPCN(spec, Weights([w.copy() for w in self.W0], [v.copy() for v in self.b0]))
        part = self.part(lo, hi)
        if wl.learn:
            a = spec.alpha.value
            res = net.train_batch(part[0], part[L], step=lambda dW, db: net.apply(dW, db, a))
        else:
            res = net.relax(part, wl.mask)
        return res, net

    def lean_run(self, lo, hi):
        s = self.spec
        return lean_relax(self.W0, self.b0, s.activations, self.part(lo, hi), s.mask(self.wl.mask),
                          s.iterations, s.gamma.value, s.init == "zero", self.wl.learn,
                          s.alpha.value)

    def check(self, n: int = 8) -> list:
        """The lean loop (batch n) and the C loop (each sample, with and without its exact stop)
        against FloatPCN: every layer's x, and the weights after the update. Returns the C
        loop's iterations with the stop."""
        wl, L = self.wl, self.spec.L
        n = min(n, self.N)
        close = dict(rtol=1e-9, atol=1e-12)
        ref, net = self.float_run(0, n)
        x_lean, W_lean, _ = self.lean_run(0, n)
        assert all(np.allclose(x_lean[l], ref.x[l], **close) for l in range(L + 1)), \
            f"{wl.key}: the lean numpy loop differs from FloatPCN"
        if wl.learn:
            assert all(np.allclose(W_lean[l], net.W[l], **close) for l in range(L)), \
                f"{wl.key}: the lean numpy loop's update differs from FloatPCN's"
        stopped = []
        for i, c in itertools.product(range(n), self.cs.values()):
            ref1, net1 = self.float_run(i, i + 1)
            runs = []
            for c.stop in (1, 0):        # the exact stop changes nothing but the iterations run
                self.reset_c(c)
                its = c.run({l: v[i] for l, v in wl.clamped.items()})
                runs.append((c.x.copy(), c.W.copy(), c.b.copy()))
                if c.stop and c is next(iter(self.cs.values())):
                    stopped.append(its)
            assert all(np.array_equal(u, v) for u, v in zip(*runs)), \
                f"{wl.key}: the C loop's exact stop changed its result"
            got = np.split(c.x, c.off[1:-1])
            assert all(np.allclose(got[l], ref1.x[l][0], **close) for l in range(L + 1)), \
                f"{wl.key}: the C loop differs from FloatPCN"
            if wl.learn:
                Wc = np.split(c.W, np.cumsum([w.size for w in self.W0])[:-1])
                assert all(np.allclose(Wc[l].reshape(self.W0[l].shape), net1.W[l], **close)
                           for l in range(L)), f"{wl.key}: the C loop's update differs"
                assert np.allclose(c.b, np.concatenate(net1.b), **close)
            self.reset_c(c)
        return stopped

    def reset_c(self, c):
        c.W[:] = np.concatenate([w.ravel() for w in self.W0])
        c.b[:] = np.concatenate(self.b0)

    def timings(self, n1: int = 100) -> list:
        """(implementation, µs per sample) on one thread, best of a few repeats."""
        wl, L, acts = self.wl, self.spec.L, self.spec.activations
        N = self.N
        n1 = min(n1, N)
        n256 = (N // 256) * 256 or N
        samples = [{l: v[i] for l, v in wl.clamped.items()} for i in range(n1)]
        W0, b0 = self.W0, self.b0
        rows = []
        with threadpool_limits(1):
            rows.append(("FloatPCN (numpy), batch 1",
                         best_us(lambda: [self.float_run(i, i + 1) for i in range(n1)], n1)))
            rows.append(("FloatPCN (numpy), batch 256",
                         best_us(lambda: [self.float_run(i, i + 256)
                                          for i in range(0, n256, 256)], n256)))
            rows.append(("lean numpy loop, batch 1",
                         best_us(lambda: [self.lean_run(i, i + 1) for i in range(n1)], n1)))
            rows.append(("lean numpy loop, batch 256",
                         best_us(lambda: [self.lean_run(i, i + 256)
                                          for i in range(0, n256, 256)], n256)))
            if wl.key == "W1":
                def ff():
                    for s in samples:
                        v = s[0]
                        for l in range(L):
                            v = W0[l] @ f_float(acts[l], v) + b0[l]
                rows.append(("numpy feed-forward pass, batch 1", best_us(ff, n1)))
            # W2: the update stays in, so each sample sees the previous one's weights (as on chip)
            for label, c in self.cs.items():
                for c.stop, name in ((0, f"scalar C loop ({label}), batch 1"),
                                     (1, f"scalar C loop ({label}), exact stop, batch 1")):
                    rows.append((name, best_us(lambda: [c.run(s) for s in samples], n1,
                                               repeats=5)))
                self.reset_c(c)
        return rows


# ---- hardware -------------------------------------------------------------------------------
def hardware_rows(wl: Workload, its: np.ndarray, builds: list) -> list:
    """Per board build: cycles per sample over the test set (exact model), latency at the
    built clock, utilisation, fraction of the chip's multiplier limit."""
    rows = []
    for rep in builds:
        spec, lanes, rows_ = wl.spec, rep["lanes"], rep.get("rows", 1)
        cyc = cycle_distribution(spec, lanes, its, wl.mask, wl.learn, rows=rows_)
        reps = {int(k): cycle_report(spec, lanes, wl.mask, wl.learn, iterations=int(k),
                                     rows=rows_)
                for k in np.unique(its)}
        r = next(iter(reps.values()))
        macs = np.array([reps[int(k)].useful_macs for k in its])
        clock = rep["clock_mhz"]
        us = cyc / clock
        rows.append({
            "board": rep["board"], "lanes": lanes, "rows": rows_, "clock_mhz": clock,
            "fmax_mhz": rep["fmax_mhz"], "timing_met": rep["timing_met"],
            "nextpnr_seed": rep.get("nextpnr_seed"),
            "multipliers_used": lanes * r.multipliers_per_lane,
            "chip_multipliers": rep["utilization"]["DSP"]["available"],
            "cycles_mean": float(cyc.mean()), "cycles_min": int(cyc.min()),
            "cycles_max": int(cyc.max()), "us_mean": float(us.mean()),
            "samples_per_s": float(1e6 / us.mean()),
            "utilisation": float(macs.sum() / (lanes * r.multipliers_per_lane * cyc.sum())),
            "chip_limit_fraction": float(macs.sum() / us.sum() /
                                         (rep["utilization"]["DSP"]["available"] * clock)),
        })
    return rows


def parse_lane_clocks(arg: str) -> list:
    """``"8,16@85,16/2,16x2"`` → [(8, None, None, 1), (16, 85.0, None, 1), (16, None, 2, 1),
    (16, None, None, 2)]: lane counts, each with an optional number of rows per token (``x2``:
    two multipliers per lane), an optional clock in MHz (default: the board's), so a build
    that misses the board's clock can be built at one it meets and still count, and an
    optional nextpnr placer seed (default: the build's; the placement, and with it fmax,
    moves by a few percent from seed to seed)."""
    out = []
    for item in (v.strip() for v in arg.split(",") if v.strip()):
        rest, _, seed = item.partition("/")
        rest, _, clock = rest.partition("@")
        lanes, _, rows = rest.partition("x")
        try:
            out.append((int(lanes), float(clock) if clock else None,
                        int(seed) if seed else None, int(rows) if rows else 1))
        except ValueError:
            raise SystemExit(f"bad lane count {item!r}: give LANES[xROWS][@MHz][/SEED], "
                             "e.g. 8,16@85,16/2,16x2") from None
    return out


def board_builds(args, spec, log) -> list:
    """Build (or take from the cache) every requested board/lane configuration."""
    from pcforge.boards.build import build_board
    out = []
    for board, lanes_arg in (("ulx3s", args.ulx3s_lanes), ("icebreaker", args.icebreaker_lanes)):
        for lanes, clock, seed, rows in parse_lane_clocks(lanes_arg):
            kw = {} if seed is None else {"seed": seed}
            if rows != 1:
                kw["rows"] = rows
            with tempfile.TemporaryDirectory() as tmp:
                rep = build_board(board, spec, tmp, lanes=lanes, clock_mhz=clock, log=log, **kw)
            rep["board"] = board
            out.append(rep)
    return out


def acceptance(results) -> list:
    """The issue's acceptance checks from this run's rows (timing-met builds only): W1 on the
    ULX3S — latency per digit ≤ numpy's feed-forward pass at batch 1; W2 on the ULX3S —
    samples/s ≥ the better scalar C loop with MAC-lane utilisation ≥ 80 % (the fastest lane
    count that has both; the 2× goal beside it); the iCEBreaker's lane count."""
    by = {r["workload"]: r for r in results}
    cpu = {w: dict((c["implementation"], c["us_per_sample"]) for c in r["cpu"])
           for w, r in by.items()}
    met = {w: [h for h in r["hardware"] if h["timing_met"]] for w, r in by.items()}
    out = []
    ff = cpu["W1"]["numpy feed-forward pass, batch 1"]
    w1 = min((h for h in met["W1"] if h["board"] == "ulx3s"), key=lambda h: h["us_mean"],
             default=None)
    out.append({"check": "W1 ULX3S latency ≤ numpy feed-forward (batch 1)",
                "hardware": (f"{w1['us_mean']:.2f} µs ({w1['lanes']} lanes × {w1['rows']} "
                             "rows)") if w1 else "none",
                "cpu": f"{ff:.2f} µs", "holds": bool(w1 and w1["us_mean"] <= ff)})
    c_us = min(us for name, us in cpu["W2"].items() if "C loop" in name)
    ok = [h for h in met["W2"] if h["board"] == "ulx3s" and h["utilisation"] >= 0.8]
    w2 = min(ok, key=lambda h: h["us_mean"], default=None)
    out.append({"check": "W2 ULX3S samples/s ≥ best scalar C loop, utilisation ≥ 80 %",
                "hardware": (f"{w2['samples_per_s']:,.0f}/s, {w2['utilisation']:.1%} "
                             f"({w2['lanes']} lanes × {w2['rows']} rows; "
                             f"{c_us / w2['us_mean']:.2f}× the C loop, "
                             "goal 2×)") if w2 else "no build with utilisation ≥ 80 %",
                "cpu": f"{1e6 / c_us:,.0f}/s", "holds": bool(w2 and w2["us_mean"] <= c_us)})
    ice = [h for h in met["W2"] if h["board"] == "icebreaker"]
    lanes = max((h["lanes"] for h in ice), default=0)
    out.append({"check": "iCEBreaker ≥ 4 lanes", "hardware": f"{lanes} lane(s) built",
                "cpu": "", "holds": lanes >= 4})
    return out


def main():
    ap = bench_parser(__doc__, "bench_workloads")
    ap.add_argument("--ulx3s-lanes", default="8,16",
                    help="lane counts to build for the ULX3S, each LANES[@MHz][/SEED] (a clock "
                         "other than the board's, a nextpnr placer seed other than the build's)")
    ap.add_argument("--icebreaker-lanes", default="1",
                    help="lane counts to build for the iCEBreaker (LANES[@MHz][/SEED])")
    ap.add_argument("--epochs", type=int, default=3, help="float training epochs for the weights")
    args = ap.parse_args()
    console = Console(width=200)
    spec = digits_spec()
    data = load_digits_split()
    net, _ = train_float(spec, data, epochs=args.epochs)
    weights = Weights(net.W, net.b)
    builds = board_builds(args, spec, lambda s: console.print(s, style="dim"))
    with tempfile.TemporaryDirectory() as tmp:
        c_fns, cc = {}, []
        for label, flags in C_BUILDS.items():
            c_fns[label], cmd = compile_c(Path(tmp), flags)
            cc.append(cmd)
        results = []
        for wl in workloads(spec, data):
            fixed = FixedPCN.from_float(wl.spec, weights)
            clamped_q = {l: fixed.quantize(v) for l, v in wl.clamped.items()}
            its = fixed.relax(clamped_q, wl.mask).iterations
            hw = hardware_rows(wl, its, builds)
            impl = CpuImplementations(wl, weights, c_fns)
            c_info = {"c_loop_iterations_with_stop": impl.check()}
            cpu = impl.timings()
            best = {}
            for r in hw:
                if r["timing_met"] and (r["board"] not in best or
                                        r["us_mean"] < best[r["board"]]["us_mean"]):
                    best[r["board"]] = r
            for r in hw:
                r["best_for_board"] = best.get(r["board"]) is r
            results.append({"workload": wl.key, "title": wl.title,
                            "iterations": {"mean": float(its.mean()), "min": int(its.min()),
                                           "max": int(its.max())},
                            "hardware": hw, **c_info, "cpu": [{"implementation": k, "us_per_sample": v}
                                                    for k, v in cpu]})
            t = Table(title=f"{wl.key} {wl.title} — 360 test digits, iterations {its.min()}–"
                            f"{its.max()} (mean {its.mean():.1f})")
            for col in ("implementation", "µs / sample", "samples/s", "× best C loop",
                        "cycles (min–max)", "MAC util.", "chip limit"):
                t.add_column(col, justify="right")
            c_us = min(us for name, us in cpu if "C loop" in name)     # the better C loop
            for r in hw:
                seed = r.get("nextpnr_seed")
                t.add_row(f"{r['board']} {r['lanes']} lanes"
                          f"{' × 2 rows' if r['rows'] == 2 else ''} @ {r['clock_mhz']:.0f} MHz"
                          f"{'' if seed in (None, DEFAULT_SEED) else f' (seed {seed})'}"
                          f"{' (best)' if r['best_for_board'] else ''}"
                          f"{'' if r['timing_met'] else ' TIMING NOT MET'}",
                          f"{r['us_mean']:.2f}", f"{r['samples_per_s']:,.0f}",
                          f"{c_us / r['us_mean']:.2f}×",
                          f"{r['cycles_min']}–{r['cycles_max']}",
                          f"{r['utilisation']:.1%}", f"{r['chip_limit_fraction']:.2%}")
            for name, us in cpu:
                t.add_row(name, f"{us:.2f}", f"{1e6 / us:,.0f}", f"{c_us / us:.2f}×", "", "", "")
            console.print(t)
    checks = acceptance(results)
    t = Table(title="issue 16's acceptance, measured in this run")
    for col in ("check", "hardware", "CPU", "holds"):
        t.add_column(col)
    for c in checks:
        t.add_row(c["check"], c["hardware"], c["cpu"], "yes" if c["holds"] else "NO")
    console.print(t)
    out = write_results(Path(args.out), {
        "benchmark": "workloads", "spec_digest": spec.digest, "c_compiler": cc,
        "machine": platform.platform(), "processor": platform.processor(),
        "python": platform.python_version(), "workloads": results, "acceptance": checks})
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
