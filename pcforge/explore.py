"""Design-space exploration: which configuration (lanes, widths, schedule, stop, learning rule,
board, clock, nextpnr seed) for what accuracy, latency, throughput, logic and memory.

A *point* is one configuration. :func:`evaluate_point` is a pure function of the point, the
base spec and the float weights; for each point it gives

* the test accuracy of FixedPCN on the digits test set (bit-exact with the hardware, so no
  simulation is needed), and its argmax agreement with FloatPCN;
* cycles per inference from the exact cycle model (per test digit with the exact stop: mean,
  median, max; and with all T iterations), the MAC-lane utilisation, the cycles of one training
  step, and latency and throughput at the clock;
* the pre-synthesis estimate (LUT/FF/DSP/BRAM) and whether it fits — a point that does not fit
  is marked, never built;
* with ``build``: Yosys + nextpnr through the bitstream cache (post-route fmax, timing, placed
  LUT/FF/DSP/BRAM).

Results are cached by the point's digest (which covers the base spec, the weights, the
generator's and the boards' sources), so a killed sweep resumes where it stopped and a point is
never evaluated twice. :func:`explore` runs the missing points on an
:class:`~pcforge.model.executor.Executor` (Dask by default) and :func:`pareto_front` picks the
points no other beats on accuracy, latency and resources at once.
"""
from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np

from .model.executor import Executor
from .model.files import atomic_write, atomic_write_json
from .model.qformat import QFormat
from .model.spec import PCSpec, SpecError
from .model.weights import Weights
from .sim.toolchain import arrays_digest, cache_root, generator_hash

__all__ = ["AXES", "DEFAULT_GRID", "grid", "point_digest", "evaluate_point", "explore",
           "pareto_front", "pareto_row", "PARETO_COLUMNS", "write_results"]

#: the axes of a point and the value that means "as the base spec / the board default"
AXES = {"lanes": 8, "rows": 1, "width": None, "schedule": None, "stop": None,
        "learning": None, "board": "ulx3s", "clock_mhz": None, "seed": 1, "build": None}
#: the default sweep: model + estimates only (60 points, a few minutes)
DEFAULT_GRID = {"lanes": [1, 2, 4, 8, 16], "width": [16, 12, 10],
                "schedule": ["synchronous", "delayed_feedback"], "board": ["icebreaker", "ulx3s"]}
#: the measures of a point, in the order of the CSV's columns
RESOURCES = ("LUT", "FF", "DSP", "BRAM")


def grid(axes: dict) -> list:
    """Every combination of the axes' values, as full points (unnamed axes at their default)."""
    unknown = set(axes) - set(AXES)
    if unknown:
        raise ValueError(f"unknown axes {sorted(unknown)}; the axes are {', '.join(AXES)}")
    names = list(axes)
    points = []
    for combo in itertools.product(*(axes[k] for k in names)):
        p = dict(AXES)
        p.update(zip(names, combo))
        points.append(p)
    return points


def point_digest(point: dict, base: PCSpec, weights: Weights, build: bool) -> str:
    from .boards.system import boards_hash
    parts = [point, base.digest, arrays_digest([*weights.W, *weights.b]), bool(build),
             generator_hash(), boards_hash()]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def point_spec(base: PCSpec, point: dict) -> PCSpec:
    """The base spec with the point's changes; ``width`` keeps each format's integer bits."""
    changes = {k: point[k] for k in ("schedule", "stop", "learning") if point.get(k)}
    if point.get("width"):
        w = int(point["width"])
        fm = {}
        for k in ("x", "e", "w", "b"):
            f = getattr(base.formats, k)
            frac = f.frac - (f.width - w)
            if frac < 0:
                raise SpecError(f"width {w}: formats.{k} keeps {f.int_bits} integer bits, more "
                                "than the width")
            fm[k] = QFormat(w, frac, f.rounding, f.overflow)
        changes["formats"] = replace(base.formats, acc=None, **fm)
    return replace(base, **changes) if changes else base


def evaluate_point(task: dict) -> dict:
    """One point (``task``: point, base spec dict, weights, build flag, cache folder): its
    measures (see the module docstring). Written to the cache before it returns."""
    from .boards.estimate import estimate
    from .boards.profiles import board_profile
    from .model.arch.cycles import cycle_report
    from .model.arch.geometry import CoreGeometry
    from .model.arch.schedule import check_rows
    from .model.data import load_digits_split
    from .model.fixed_pcn import FixedPCN
    from .model.float_pcn import FloatPCN

    t0 = time.perf_counter()
    point, digest = task["point"], task["digest"]
    base = PCSpec.from_dict(task["base"])
    weights = Weights([np.asarray(w) for w in task["W"]], [np.asarray(v) for v in task["b"]])
    res = {"digest": digest, "point": point, "status": "ok"}
    profile = board_profile(point["board"])
    lanes, rows = int(point["lanes"]), int(point.get("rows") or 1)
    try:
        spec = point_spec(base, point)
        CoreGeometry(spec, lanes, rows)                 # e.g. two rows with an odd lane count
        check_rows(spec, rows)
    except SpecError as exc:
        res.update(status="invalid", reason=str(exc))
        return _cached(task, res)
    res["spec_digest"] = spec.digest
    res["formats"] = {k: str(getattr(spec.formats, k)) for k in ("x", "e", "w", "b", "acc")}
    data = load_digits_split()
    fx = FixedPCN.from_float(spec, weights)
    out = fx.infer(fx.quantize(data.x_test))
    pred = np.argmax(out.output, axis=1)
    fpred = np.argmax(FloatPCN(spec, weights).infer(data.x_test), axis=1)
    res["accuracy"] = float(np.mean(pred == data.y_test))
    res["float_accuracy"] = float(np.mean(fpred == data.y_test))
    res["agreement_with_float"] = float(np.mean(pred == fpred))
    its = np.asarray(out.iterations)
    per_t = {int(t): cycle_report(spec, lanes, "inference", iterations=int(t), rows=rows).total
             for t in np.unique(its)}
    cyc = np.array([per_t[int(t)] for t in its])
    full = cycle_report(spec, lanes, "inference", rows=rows)
    try:
        train = cycle_report(spec, lanes, "training", learn=True, rows=rows).total
    except ValueError:
        train = None
    clock = float(point["clock_mhz"] or profile.clock_mhz)
    res.update(cycles_mean=float(cyc.mean()), cycles_median=float(np.median(cyc)),
               cycles_max=int(cyc.max()), cycles_all_T=full.total,
               utilisation=full.utilisation, train_step_cycles=train, clock_mhz=clock,
               latency_us=float(cyc.mean() / clock),
               throughput_per_s=float(clock * 1e6 / cyc.mean()))
    est = estimate(spec, lanes, profile, rows=rows)
    res["estimate"] = {k: est[k] for k in RESOURCES}
    res["available"] = {k: profile.available[k] for k in RESOURCES}
    res["fits"] = all(est[k] <= profile.available[k] for k in RESOURCES)
    if est["spram_weights"]:                # weights in SPRAM: inference only on this board
        res["spram_weights"] = list(est["spram_weights"])
        res["learns_on_chip"] = False
    if not res["fits"]:
        res["status"] = "does not fit"
    elif point.get("build") if point.get("build") is not None else task["build"]:
        res["build"] = _build(spec, lanes, point, profile, rows)
        if not res["build"]["timing_met"]:
            res["status"] = "timing not met"
    res["wall_s"] = round(time.perf_counter() - t0, 3)
    return _cached(task, res)


def _build(spec, lanes, point, profile, rows=1) -> dict:
    import tempfile

    from .boards.build import build_board
    with tempfile.TemporaryDirectory(prefix="pcforge-explore-") as tmp:
        rep = build_board(profile.name, spec, tmp, lanes=lanes, clock_mhz=point["clock_mhz"],
                          seed=int(point["seed"]), log=lambda *a, **k: None, rows=rows)
    return {"fmax_mhz": rep["fmax_mhz"], "timing_met": rep["timing_met"],
            "clock_mhz": rep["clock_mhz"], "build_s": rep.get("build_s"),
            "used": {k: rep["utilization"][k]["used"] for k in RESOURCES}}


def _cached(task, res):
    atomic_write_json(Path(task["cache"]) / f"{task['digest']}.json", res)
    return res


def resource_fraction(r: dict) -> float:
    """The largest of LUT/FF/DSP/BRAM used ÷ available (placed when built, else estimated)."""
    used = r.get("build", {}).get("used") or r["estimate"]
    return max(used[k] / r["available"][k] for k in RESOURCES)


def pareto_front(results: list) -> list:
    """The fitting points that no other fitting point beats on all three of accuracy (higher),
    latency and resources (lower) while being strictly better on one."""
    ok = [r for r in results if r.get("fits") and r["status"] in ("ok",)]
    keyed = [(r, r["accuracy"], r["latency_us"], resource_fraction(r)) for r in ok]
    front = []
    for r, a, t, u in keyed:
        if not any(a2 >= a and t2 <= t and u2 <= u and (a2 > a or t2 < t or u2 < u)
                   for _, a2, t2, u2 in keyed):
            front.append(r)
    return sorted(front, key=lambda r: r["latency_us"])


def explore(base: PCSpec, weights: Weights, points: list, *, build: bool = False,
            executor="dask", workers: int | None = None, scheduler: str | None = None,
            progress=None, cache_dir=None) -> dict:
    """Evaluate ``points`` (cached ones are read, the rest run on the executor: a name, or an
    open :class:`Executor`); returns ``{"results": [...], "meta": {...}}`` in the points'
    order. ``build``: place and route every point that fits (a point's own ``build`` field
    overrides it). ``cache_dir``: where results are cached (default: the pcforge cache)."""
    cache = Path(cache_dir) if cache_dir else cache_root() / "explore"
    cache.mkdir(parents=True, exist_ok=True)
    seen, tasks, results = set(), [], {}
    for p in points:
        d = point_digest(p, base, weights, build)
        if d in seen:
            continue
        seen.add(d)
        f = cache / f"{d}.json"
        if f.exists():
            results[d] = json.loads(f.read_text())
        else:
            tasks.append({"point": p, "digest": d, "base": base.to_dict(),
                          "W": [w.tolist() for w in weights.W],
                          "b": [v.tolist() for v in weights.b], "build": build,
                          "cache": str(cache)})
    cached = len(results)
    t0 = time.perf_counter()
    given = isinstance(executor, Executor)
    with (nullcontext(executor) if given
          else Executor(executor, workers=workers, scheduler=scheduler)) as ex:
        n_workers, kind = ex.n_workers, ex.kind
        outs = ex.map(evaluate_point, tasks, keys=[t["digest"] for t in tasks],
                      progress=progress)
    for t, o in zip(tasks, outs):
        results[t["digest"]] = o.value if o.ok else {
            "digest": t["digest"], "point": t["point"], "status": "failed",
            "error": o.error[-1500:]}
    order = [point_digest(p, base, weights, build) for p in points]
    ordered, done = [], set()
    for d in order:
        if d not in done:
            ordered.append(results[d])
            done.add(d)
    return {"results": ordered,
            "meta": {"points": len(ordered), "evaluated": len(tasks), "cached": cached,
                     "failed": sum(r["status"] == "failed" for r in ordered),
                     "executor": kind, "workers": n_workers, "scheduler": scheduler,
                     "build": build, "base_spec": base.digest,
                     "wall_s": round(time.perf_counter() - t0, 2)}}


# ---- reports ---------------------------------------------------------------------------------
_COLUMNS = ["digest", "status", "board", "lanes", "rows", "width", "schedule", "stop",
            "learning",
            "clock_mhz", "seed", "accuracy", "float_accuracy", "cycles_mean", "cycles_median",
            "cycles_all_T", "utilisation", "train_step_cycles", "latency_us", "throughput_per_s",
            *[f"est_{k}" for k in RESOURCES], "fits", "fmax_mhz", "timing_met",
            *[f"placed_{k}" for k in RESOURCES], "resource_fraction", "pareto"]


def _row(r: dict, front: set) -> dict:
    p = r["point"]
    row = {k: p.get(k) for k in ("board", "lanes", "rows", "width", "schedule", "stop",
                                 "learning", "seed")}
    row.update({k: r.get(k) for k in ("digest", "status", "accuracy", "float_accuracy",
                                      "cycles_mean", "cycles_median", "cycles_all_T",
                                      "utilisation", "train_step_cycles", "latency_us",
                                      "throughput_per_s", "fits")})
    row["clock_mhz"] = r.get("clock_mhz", p.get("clock_mhz"))
    for k in RESOURCES:
        row[f"est_{k}"] = r.get("estimate", {}).get(k)
        row[f"placed_{k}"] = r.get("build", {}).get("used", {}).get(k)
    row["fmax_mhz"] = r.get("build", {}).get("fmax_mhz")
    row["timing_met"] = r.get("build", {}).get("timing_met")
    row["resource_fraction"] = resource_fraction(r) if "estimate" in r else None
    row["pareto"] = r["digest"] in front
    return row


def _fmt(v, nd=3):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{nd}g}"
    return str(v)


#: the columns of a Pareto row (:func:`pareto_row`)
PARETO_COLUMNS = ("board", "lanes × rows", "width", "schedule", "stop", "accuracy", "latency µs",
                  "inferences/s", "resources (max of LUT/FF/DSP/BRAM)", "placed fmax MHz")


def pareto_row(r: dict) -> list:
    """A point of the front as the strings of :data:`PARETO_COLUMNS`."""
    p = r["point"]
    return [p["board"], f"{p['lanes']} × {p.get('rows') or 1}", str(p["width"] or "base"),
            str(p["schedule"] or "base"),
            str(p["stop"] or "base"), f"{100 * r['accuracy']:.2f} %", f"{r['latency_us']:.2f}",
            f"{r['throughput_per_s']:.0f}", f"{100 * resource_fraction(r):.1f} %",
            _fmt(r.get("build", {}).get("fmax_mhz"), 5)]


def pareto_table(front: list) -> str:
    lines = ["| " + " | ".join(PARETO_COLUMNS) + " |", "|---" * len(PARETO_COLUMNS) + "|"]
    lines += ["| " + " | ".join(pareto_row(r)) + " |" for r in front]
    return "\n".join(lines)


def _plots(results: list, front: list, out: Path) -> list:
    import matplotlib
    matplotlib.use("Agg")
    ok = [r for r in results if "latency_us" in r]
    return [_accuracy_plot(ok, front, out / "accuracy_vs_latency.png"),
            _resources_plot(ok, out / "resources_vs_lanes.png")]


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _accuracy_plot(ok: list, front: list, path: Path) -> Path:
    """Accuracy against latency, coloured by board; points that do not fit hollow."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for board, colour in (("icebreaker", "tab:blue"), ("ulx3s", "tab:orange")):
        rs = [r for r in ok if r["point"]["board"] == board]
        if not rs:
            continue
        fits = [r for r in rs if r["fits"]]
        nofit = [r for r in rs if not r["fits"]]
        ax.scatter([r["latency_us"] for r in fits], [100 * r["accuracy"] for r in fits],
                   c=colour, label=f"{board}", s=28, alpha=0.8)
        if nofit:
            ax.scatter([r["latency_us"] for r in nofit], [100 * r["accuracy"] for r in nofit],
                       facecolors="none", edgecolors=colour, s=28,
                       label=f"{board}: does not fit")
    if front:            # a 3-way front (with resources): marked, not joined by a line
        ax.scatter([r["latency_us"] for r in front], [100 * r["accuracy"] for r in front],
                   facecolors="none", edgecolors="k", s=90, lw=1.2,
                   label="Pareto (accuracy, latency, resources)")
    if ok:
        ax.set_xscale("log")
    ax.set_xlabel("latency per inference (µs, mean over the test digits, exact stop)")
    ax.set_ylabel("FixedPCN test accuracy (%) = hardware")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _resources_plot(ok: list, path: Path) -> Path:
    """Per board, the share of the chip against lanes: estimate beside placed."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, board in zip(axes, ("icebreaker", "ulx3s")):
        rs = sorted([r for r in ok if r["point"]["board"] == board],
                    key=lambda r: r["point"]["lanes"])
        if not rs:
            ax.set_title(f"{board}: no points")
            ax.axis("off")
            continue
        for k, m in (("LUT", "o"), ("DSP", "s"), ("BRAM", "^")):
            ax.plot([r["point"]["lanes"] for r in rs],
                    [100 * r["estimate"][k] / r["available"][k] for r in rs], m, mfc="none",
                    label=f"{k} estimate")
            built = [r for r in rs if "build" in r]
            if built:
                ax.plot([r["point"]["lanes"] for r in built],
                        [100 * r["build"]["used"][k] / r["available"][k] for r in built], m,
                        label=f"{k} placed")
        ax.axhline(100, color="k", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_title(board)
        ax.set_xlabel("MAC lanes")
        ax.set_ylabel("% of the chip")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def write_results(res: dict, out: Path) -> dict:
    """results.json, results.csv, report.md (with the Pareto table) and the plots into
    ``out``; returns {name: path}."""
    out = Path(out)
    results = res["results"]
    front = pareto_front(results)
    fset = {r["digest"] for r in front}
    atomic_write_json(out / "results.json", {**res, "pareto": sorted(fset)})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_COLUMNS)
    w.writeheader()
    for r in results:
        w.writerow(_row(r, fset))
    atomic_write(out / "results.csv", buf.getvalue())
    pngs = _plots(results, front, out)
    m = res["meta"]
    status = {}
    for r in results:
        status[r["status"]] = status.get(r["status"], 0) + 1
    failed = [r for r in results if r["status"] == "failed"]
    md = [f"# pcforge explore — {m['points']} points on spec {m['base_spec']}", "",
          f"{m['evaluated']} evaluated here, {m['cached']} from the cache; executor "
          f"{m['executor']} with {m['workers']} worker(s); {m['wall_s']} s; builds: "
          f"{'yes' if m['build'] else 'no (estimates)'}.", "",
          "Points by status: " + ", ".join(f"{k} {v}" for k, v in sorted(status.items())), "",
          "## Pareto front (accuracy ↑, latency ↓, resources ↓)", "", pareto_table(front), "",
          "Accuracy is FixedPCN's on the 360 digits test images — bit-exact with the hardware. "
          "Latency is the exact cycle model's mean over those images (exact stop) at the "
          "point's clock; resources are placed counts when built, else the estimate.", "",
          *[f"![{p.stem}]({p.name})" for p in pngs], ""]
    if failed:
        md += ["## Failed points", ""] + [f"* `{r['digest']}` {r['point']}: "
                                          f"{r['error'].splitlines()[0]}" for r in failed]
    atomic_write(out / "report.md", "\n".join(md) + "\n")
    return {"json": out / "results.json", "csv": out / "results.csv",
            "report": out / "report.md", "plots": pngs}
