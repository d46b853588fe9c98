"""Hardware (the emitted Verilog, cycle-accurate under cocotb + Verilator) against FixedPCN and
FloatPCN on the digits test set: ``pcforge compare``.

``compare(spec, weights, out_dir)`` writes, once everything has run:

* ``report.json`` — ``samples``, ``bit_exact_samples``, ``hw_test_accuracy``,
  ``fixed_test_accuracy``, ``float_test_accuracy``, ``cycles_per_inference`` and the cycle
  model's ``cycle_model`` (one number, or min/median/mean/max when the exact stop makes them
  data-dependent; ``cycles_match_model``: sample by sample), ``iterations_run`` (how many
  samples ran how many iterations), per-layer ``max``/``mean`` |hw − float| of x, saturation
  counts of FixedPCN, wall times, simulated cycles per second;
* ``report.md`` — the same as a readable table;
* ``energy.png`` (energy per iteration, float / fixed / hardware), ``cycles.png`` (iterations
  and cycles per sample: the exact stop's distribution), ``error_hist.png``
  (per-layer histograms of hw − float), ``scatter.png`` (float vs hardware outputs),
  ``profile.png`` (weights and activations against the chosen formats, as hls4ml profiles).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..model.arch.cycles import cycle_distribution, cycle_report
from ..model.data import load_digits_split
from ..model.files import atomic_write, atomic_write_json
from ..model.fixed_pcn import FixedPCN
from ..model.float_pcn import FloatPCN
from ..model.spec import PCSpec
from ..model.weights import Weights
from .batch import run_samples
from .simulators import emitted_core

__all__ = ["compare"]

SIMULATOR_NAMES = {"native": "Verilator + pcforge native harness", "cocotb": "cocotb + Verilator",
                   "icarus": "cocotb + Icarus Verilog"}


def compare(spec: PCSpec, weights: Weights, out_dir, *, lanes: int = 8, limit: int | None = None,
            chunk: int = 60, traced: int | None = None, simulator: str = "native",
            mask="inference", clamped: dict | None = None, labels=None,
            progress=None, pins: dict | None = None, rows: int = 1) -> dict:
    """Run the comparison (see the module docstring) under ``simulator`` (a core of ``lanes``
    lanes and ``rows`` rows per token)
    (:data:`~pcforge.sim.simulators.SIMULATORS`); the first ``traced`` samples (default: every
    sample with the native harness, 2 under cocotb) are run with a pause after every iteration
    (every x and e checked, energy read back), the rest to their final state; ``progress(done,
    total, info)`` is called after every chunk of ``chunk`` samples.

    ``mask`` (a name or a tuple) and ``clamped`` ({layer: float values (samples, n_l)} for
    every layer the mask clamps; default: the digits test set on layer 0, with its labels) run
    any clamp (``pins``: per-node clamps {layer: bools (samples, n_l)}, the layer's values in
    ``clamped``); the read-out layer (:meth:`PCSpec.readout`) is the one the accuracy (when
    ``labels`` are known) and the plots look at."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weights.check(spec)
    out = Path(out_dir)
    pins = {k: np.atleast_2d(v)[:limit] for k, v in spec.pins(mask, pins).items()}
    mask_t = spec.mask(mask)
    if clamped is None:
        data = load_digits_split()
        clamped, labels = {0: data.x_test}, data.y_test
    missing = [k for k in range(spec.n_layers) if mask_t[k] and k not in clamped]
    if missing:
        raise ValueError(f"layer {missing[0]} is clamped by mask {mask!r} but no values were "
                         "given")
    clamped = {k: np.atleast_2d(np.asarray(v, dtype=np.float64))[:limit]
               for k, v in clamped.items() if mask_t[k] or k in pins}
    y = None if labels is None else np.asarray(labels)[:limit]
    ro = spec.readout(mask_t)
    n = len(next(iter(clamped.values())))
    t0 = time.perf_counter()
    fl = FloatPCN(spec, weights)
    rf = fl.relax(clamped, mask_t, pins=pins)
    fx = FixedPCN.from_float(spec, weights)
    cq = {k: fx.quantize(v, k) for k, v in clamped.items()}
    rq = fx.relax(cq, mask_t, pins=pins)
    X = spec.formats.x
    model_s = time.perf_counter() - t0

    core = emitted_core(spec, lanes, simulator=simulator,
                        core_options={"rows": rows} if rows != 1 else None)
    core.build()
    if traced is None:
        traced = n if simulator == "native" else 2
    n_tr = min(traced, n)
    if progress:
        progress(0, n, {"build s": core.build_s})
    runs = run_samples(core, fx.W, fx.b, cq, mask_t, traced=n_tr, chunk=chunk,
                       parallel=simulator == "native", progress=progress, pins=pins)
    hw_s, hw_x, hw_cyc = runs.wall_s, runs.x, runs.cycles
    energy_hw, sim_cycles, workers = runs.energy, runs.simulated_cycles, runs.workers

    # final-state agreement with FixedPCN for every sample (the per-iteration check ran on the
    # traced ones inside the testbench)
    # and the cycle counter of every sample against the cycle model's for the iterations
    # FixedPCN says it makes (all T, or fewer with the exact stop)
    model_cyc = cycle_distribution(spec, lanes, rq.iterations, mask_t, rows=rows)
    exact = runs.bit_exact(rq, model_cyc)
    bad = runs.mismatches
    hw_out = X.to_float(hw_x[ro])
    acc = ({"hw": None, "fixed": None, "float": None} if y is None else
           {"hw": float(np.mean(hw_out.argmax(1) == y)),
            "fixed": float(np.mean(X.to_float(rq.x[ro]).argmax(1) == y)),
            "float": float(np.mean(rf.x[ro].argmax(1) == y))})
    per_layer = []
    for k in range(spec.n_layers):
        d = np.abs(X.to_float(hw_x[k]) - rf.x[k])
        per_layer.append({"layer": k, "max_abs_hw_minus_float": float(d.max()),
                          "mean_abs_hw_minus_float": float(d.mean())})
    model_cycles = _cycle_summary(model_cyc)
    report = {
        "spec_digest": spec.digest, "lanes": lanes, "rows": rows,
        "simulator": SIMULATOR_NAMES[simulator],
        "mask": mask if isinstance(mask, str) else list(mask_t), "clamped": list(mask_t),
        "pinned_nodes": {str(k): int(np.count_nonzero(v)) for k, v in pins.items()},
        "readout_layer": ro,
        "samples": n, "bit_exact_samples": int(sum(exact)),
        "traced_samples": n_tr,
        "hw_test_accuracy": acc["hw"], "fixed_test_accuracy": acc["fixed"],
        "float_test_accuracy": acc["float"],
        "cycles_per_inference": _cycle_summary(hw_cyc),
        "cycle_model": model_cycles,
        "cycles_match_model": bool(np.array_equal(hw_cyc, model_cyc)),
        "stop": spec.stop,
        "iterations_run": {str(k): int(c) for k, c in
                           zip(*np.unique(rq.iterations, return_counts=True))},
        "cycle_model_all_iterations": cycle_report(spec, lanes, mask_t, rows=rows).total,
        "per_layer": per_layer,
        "saturation_counts": fx.sat.as_dict(),
        "hw_float_argmax_agreement": float(np.mean(hw_out.argmax(1) == rf.x[ro].argmax(1))),
        "wall_s": {"models": model_s, "verilator_build": core.build_s, "hardware_runs": hw_s},
        "simulated_cycles": int(sim_cycles),
        "simulated_cycles_per_s": sim_cycles / hw_s if hw_s else None,
        "parallel_simulator_processes": workers,
        "mismatches": [{"sample": s, "what": m[:5]} for s, m in enumerate(bad) if m][:20],
    }

    out.mkdir(parents=True, exist_ok=True)
    # plots
    fig, ax = plt.subplots(figsize=(6, 4))
    ef = rf.energy[:, :n_tr].mean(axis=1)
    eq = rq.energy[:, :n_tr].mean(axis=1)
    T = spec.iterations
    # a run that stopped early read back fewer iterations: the rest repeats its final state
    eh = (np.mean([e[:-1] + [e[-1]] * (T + 1 - len(e)) + [e[-1]] for e in energy_hw], axis=0)
          if energy_hw else None)
    ax.semilogy(ef, "o-", label="FloatPCN (float64)")
    ax.semilogy(eq, "s--", label="FixedPCN (bit-exact model)")
    if eh is not None:
        ax.semilogy(eh, "x:", ms=9, label="hardware (Verilator)")
    ax.set_xlabel("iteration t")
    ax.set_ylabel(f"mean energy ½Σ‖e‖² over {n_tr} samples")
    ax.legend()
    ax.set_title(f"Relaxation energy (clamped layers {[k for k in range(spec.n_layers) if mask_t[k]]}"
                 f", init {spec.init})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "energy.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    its = np.asarray(rq.iterations)
    axes[0].hist(its, bins=np.arange(0.5, T + 1.5), rwidth=0.85)
    axes[0].set_xlabel(f"iterations run (of T = {T})")
    axes[0].set_ylabel("samples")
    axes[0].set_title(f"stop = {spec.stop}", fontsize=9)
    axes[1].hist(hw_cyc, bins=30)
    axes[1].axvline(report["cycle_model_all_iterations"], color="k", ls="--", lw=1,
                    label="all T iterations")
    axes[1].set_xlabel(f"cycles per inference ({lanes} lanes)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "cycles.png", dpi=120)
    plt.close(fig)

    free = [k for k in range(spec.n_layers) if not mask_t[k]] or [spec.L]
    fig, axes = plt.subplots(1, len(free), figsize=(4 * len(free), 3.2), squeeze=False)
    for i, k in enumerate(free):
        d = (X.to_float(hw_x[k]) - rf.x[k]).ravel()
        axes[0, i].hist(d, bins=60)
        axes[0, i].set_title(f"layer {k}: x_hw − x_float")
        axes[0, i].set_yscale("log")
    fig.tight_layout()
    fig.savefig(out / "error_hist.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(rf.x[ro].ravel(), hw_out.ravel(), s=3, alpha=0.4)
    lim = [min(rf.x[ro].min(), hw_out.min()), max(rf.x[ro].max(), hw_out.max())]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set_xlabel(f"FloatPCN x_{ro} (read-out)")
    ax.set_ylabel(f"hardware x_{ro}")
    ax.set_title("Float vs hardware read-out")
    fig.tight_layout()
    fig.savefig(out / "scatter.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    vals, labels = [], []
    for name, arr in ([(f"W{l}", w) for l, w in enumerate(weights.W, start=1)]
                      + [(f"x{k}", v) for k, v in enumerate(rf.x)]):
        a = np.abs(arr.ravel())
        nz = a[a > 0]
        vals.append(nz if len(nz) else np.array([1.0]))
        labels.append(f"{name} ({100 * (1 - len(nz) / len(a)):.0f}% zero)")
    ax.boxplot([np.log2(v) for v in vals], vert=False, tick_labels=labels, showfliers=False)
    F = spec.formats
    for fmt, style, name in ((F.w, "C1", "w"), (F.x, "C2", "x")):
        ax.axvline(np.log2(fmt.max_int * fmt.lsb), color=style, ls="-", lw=1,
                   label=f"{name} max ({fmt})")
        ax.axvline(np.log2(fmt.lsb), color=style, ls=":", lw=1, label=f"{name} LSB")
    ax.set_xlabel("log2 |value|")
    ax.legend(fontsize=7)
    ax.set_title("Numerical profile against the formats")
    fig.tight_layout()
    fig.savefig(out / "profile.png", dpi=120)
    plt.close(fig)

    md = [f"# pcforge compare — spec {spec.digest}, {lanes} lanes", "",
          "| quantity | value |", "|---|---|",
          f"| samples | {n} |",
          f"| bit-exact samples (hw = FixedPCN, final x and e; every iteration for the first "
          f"{n_tr}) | {sum(exact)} |",
          f"| mask (clamped layers) | {report['mask']} {list(mask_t)}; read-out layer {ro} |"]
    if y is not None:
        md += [f"| hardware accuracy | {100 * acc['hw']:.2f} % |",
               f"| FixedPCN accuracy | {100 * acc['fixed']:.2f} % |",
               f"| FloatPCN accuracy | {100 * acc['float']:.2f} % |"]
    md += [f"| cycles per inference (simulated / model) | {report['cycles_per_inference']} / "
          f"{model_cycles} (sample by sample equal: {report['cycles_match_model']}) |",
          f"| iterations run (stop = {spec.stop}; T = {T}) | {report['iterations_run']} |",
          f"| cycles per inference with all T iterations | "
          f"{report['cycle_model_all_iterations']} |",
          f"| hardware vs float argmax agreement | "
          f"{100 * report['hw_float_argmax_agreement']:.2f} % |",
          f"| simulated cycles/s ({report['simulator']}) | "
          f"{report['simulated_cycles_per_s']:.0f} |",
          "", "| layer | max abs(hw − float) | mean abs(hw − float) |", "|---|---|---|"]
    md += [f"| {p['layer']} | {p['max_abs_hw_minus_float']:.4g} | "
           f"{p['mean_abs_hw_minus_float']:.4g} |" for p in per_layer]
    md += ["", f"Saturations in FixedPCN: {fx.sat.as_dict()}", "",
           "![energy](energy.png) ![cycles](cycles.png) ![errors](error_hist.png) "
           "![scatter](scatter.png) "
           "![profile](profile.png)", ""]
    atomic_write(out / "report.md", "\n".join(md))
    atomic_write_json(out / "report.json", report)
    return report


def _cycle_summary(cycles):
    """One number when every sample took the same cycles, else min/median/mean/max."""
    c = np.asarray(cycles, dtype=np.int64)
    if c.size and np.all(c == c[0]):
        return int(c[0])
    return {"min": int(c.min()), "median": float(np.median(c)), "mean": float(c.mean()),
            "max": int(c.max())} if c.size else 0

