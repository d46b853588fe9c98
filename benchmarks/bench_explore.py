"""Benchmark: a design-space sweep of the digits default on Dask — the default grid (model +
estimates: lanes 1-16, widths 16/12/10, both schedules, both boards) and real builds on both
boards — with the Pareto front, plots and report; then the wall time of the model + estimate
grid on 1 worker and on 2 workers, one after the other, each from an empty result cache.

Writes benchmarks/results/explore/ (results.json, results.csv, report.md, plots) and
benchmarks/results/bench_explore.json; prints the Pareto front and the timing table.

    python benchmarks/bench_explore.py [--workers 2] [--no-builds]
"""
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pcforge.explore import (AXES, DEFAULT_GRID, PARETO_COLUMNS, explore, grid, pareto_front,
                             pareto_row, write_results)
from pcforge.model.data import load_digits_split
from pcforge.model.presets import digits_spec
from pcforge.model.train import train_float

from common import RESULTS, bench_parser, write_results as write_json

#: the points placed and routed: every width on the iCEBreaker's one lane, and 2-8 lanes at
#: 16 and 12 bits on the ULX3S
BUILDS = ([dict(AXES, board="icebreaker", lanes=1, width=w, build=True) for w in (16, 12, 10)]
          + [dict(AXES, board="ulx3s", lanes=p, width=w, build=True)
             for p in (2, 4, 8) for w in (16, 12)])


def main():
    ap = bench_parser(__doc__, "bench_explore")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-builds", action="store_true")
    args = ap.parse_args()
    con = Console()
    spec = digits_spec()
    net, _ = train_float(spec, load_digits_split(), seed=0)
    points = grid(DEFAULT_GRID) + ([] if args.no_builds else BUILDS)
    t0 = time.perf_counter()
    res = explore(spec, net.weights, points, executor="dask", workers=args.workers,
                  progress=lambda d, n, info: con.print(f"  {d}/{n} points {info}")
                  if d % 10 == 0 or d == n else None)
    sweep_s = time.perf_counter() - t0
    files = write_results(res, RESULTS / "explore")
    front = pareto_front(res["results"])
    t = Table(title=f"Pareto front: {len(front)} of {len(res['results'])} points")
    for col in PARETO_COLUMNS:
        t.add_column(col)
    for r in front:
        t.add_row(*pareto_row(r))
    con.print(t)

    # 1 worker vs 2 workers on the model + estimate grid, each from an empty result cache
    timing = {}
    grid_points = grid(DEFAULT_GRID)
    for n in (1, 2):
        with tempfile.TemporaryDirectory() as cache:
            t1 = time.perf_counter()
            r = explore(spec, net.weights, grid_points, executor="dask", workers=n,
                        cache_dir=cache)
            timing[n] = {"wall_s": round(time.perf_counter() - t1, 2),
                         "points": r["meta"]["evaluated"], "workers": r["meta"]["workers"]}
    tt = Table(title=f"{len(grid_points)} model + estimate points on a Dask LocalCluster")
    for col in ("workers", "wall s (cluster start included)", "points/s"):
        tt.add_column(col)
    for n, v in timing.items():
        tt.add_row(str(n), f"{v['wall_s']:.1f}", f"{v['points'] / v['wall_s']:.1f}")
    con.print(tt)
    builds = [r for r in res["results"] if "build" in r]
    out = {"points": len(res["results"]), "builds": len(builds),
           "sweep_wall_s": round(sweep_s, 1), "meta": res["meta"],
           "statuses": {s: sum(r["status"] == s for r in res["results"])
                        for s in {r["status"] for r in res["results"]}},
           "builds_detail": [{"point": r["point"], **r["build"], "estimate": r["estimate"]}
                             for r in builds],
           "pareto": [r["digest"] for r in front], "workers_timing": timing,
           "cpu_count": os.cpu_count(), "files": {k: str(v) for k, v in files.items()
                                                  if k != "plots"}}
    con.print(f"wrote {write_json(args.out, out)} and {Path(files['report'])}")


if __name__ == "__main__":
    main()
