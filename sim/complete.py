"""``pcforge complete``: completion (inpainting) of digits with part of each image hidden, in
FloatPCN, FixedPCN and the hardware (the emitted Verilog, cycle-accurate, per-node clamps in its
pin memories) — :mod:`pcforge.model.completion`.

:func:`completion_report` writes into ``out_dir``:

* ``completed.png`` — for the top half, the bottom half and a random half hidden: originals,
  masked inputs (hidden pixels in blue), and the completions of FloatPCN, FixedPCN and the
  hardware;
* ``complete.json`` / ``complete.md`` — per way of hiding, the error over the hidden pixels
  (RMSE, pixel units 0–1) of each model on the 360 test digits and of the hardware on the
  samples it ran, beside two fillers without a network (the mean image; the mean image of the
  true class), the label the relaxation infers, and whether the hardware equals FixedPCN bit
  for bit (every x and e of every iteration, cycles = the cycle model).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..model.arch.cycles import cycle_distribution
from ..model.completion import (COMPLETION_MASK, HIDE, baseline_rmse, complete, hidden_pixels,
                                hidden_rmse, masked_images)
from ..model.data import load_digits_split
from ..model.files import atomic_write, atomic_write_json
from ..model.fixed_pcn import FixedPCN
from ..model.float_pcn import FloatPCN
from ..model.generative import check_generative
from ..model.spec import PCSpec, SpecError
from ..model.weights import Weights
from .batch import run_samples
from .simulators import emitted_core

__all__ = ["completion_report", "COMPLETE_OUTPUTS"]

#: what :func:`completion_report` writes
COMPLETE_OUTPUTS = ("completed.png", "complete.json", "complete.md")
#: the spec's named per-node masks for the halves (used on the hardware as they are)
_NAMED = {"top": "complete_top", "bottom": "complete_bottom"}
_SHOWN = 6                      # samples per way of hiding in the picture


def completion_report(spec: PCSpec, weights: Weights, out_dir, *, lanes: int = 8,
                      simulator: str = "native", limit: int = 10, seed: int = 0,
                      trained: str | None = None, progress=None) -> dict:
    """Complete the test digits with each way of hiding (:data:`HIDE`) on every model, the
    first ``limit`` of each on the hardware; write the outputs (module docstring) and return
    the report (``trained``: how the weights were trained, when known, recorded in it)."""
    weights.check(spec)
    data = load_digits_split()
    check_generative(spec, data)
    L = spec.L
    if L not in spec.node_clamp or COMPLETION_MASK not in spec.clamp:
        raise SpecError(f"completion needs the image layer {L} in network.node_clamp and a "
                        f"'{COMPLETION_MASK}' mask with every layer free (start from "
                        "pcforge.model.completion.completion_digits_spec)")
    out = Path(out_dir)
    X = spec.formats.x
    truth, y = data.x_test, data.y_test
    n = len(truth)
    rng = np.random.default_rng(seed)
    fl, fx = FloatPCN(spec, weights), FixedPCN.from_float(spec, weights)
    core = emitted_core(spec, lanes, simulator=simulator)
    core.build()
    if progress:
        progress(0, len(HIDE), {"build s": core.build_s})
    m = min(limit, n)
    kinds, shown = {}, {}
    for i, kind in enumerate(HIDE):
        hid = hidden_pixels(kind, n, rng)
        t0 = time.perf_counter()
        rf = complete(fl, truth, hid)
        tq = fx.quantize(truth, L)
        rq = complete(fx, tq, hid)
        model_s = time.perf_counter() - t0
        # the hardware: the halves under the spec's named per-node masks, the random half
        # under run-time pins
        words = {L: masked_images(tq[:m], hid[:m])}
        ref = fx.relax(words, COMPLETION_MASK, pins={L: ~hid[:m]})
        mask = _NAMED.get(kind) if _NAMED.get(kind) in spec.clamp else COMPLETION_MASK
        pins = None if mask != COMPLETION_MASK else {L: ~hid[:m]}
        runs = run_samples(core, fx.W, fx.b, words, mask, traced=min(m, 4),
                           parallel=simulator == "native", pins=pins)
        exact = runs.bit_exact(ref, cycle_distribution(spec, lanes, ref.iterations,
                                                       COMPLETION_MASK))
        img = {"FloatPCN": rf.x[L], "FixedPCN": X.to_float(rq.x[L])}
        hw = X.to_float(runs.x[L])
        kinds[kind] = {
            "hidden_pixels_per_image": int(hid[0].sum()),
            "rmse_hidden": {k: hidden_rmse(v, truth, hid) for k, v in img.items()},
            "rmse_hidden_on_hardware_samples": {
                "hardware": hidden_rmse(hw, truth[:m], hid[:m]),
                "FixedPCN": hidden_rmse(img["FixedPCN"][:m], truth[:m], hid[:m])},
            "rmse_baselines": baseline_rmse(data, truth, y, hid),
            "label_accuracy": {"FloatPCN": float(np.mean(rf.x[0].argmax(1) == y)),
                               "FixedPCN": float(np.mean(rq.x[0].argmax(1) == y))},
            "max_abs_fixed_minus_float": float(np.abs(img["FixedPCN"] - img["FloatPCN"]).max()),
            "hardware_samples": m, "hardware_mask": mask,
            "hardware_bit_exact": int(sum(exact)),
            "hardware_cycles": {"min": int(runs.cycles.min()), "max": int(runs.cycles.max())},
            "iterations": {str(k): int(c) for k, c in
                           zip(*np.unique(rq.iterations, return_counts=True))},
            "mismatches": [mm[:5] for mm in runs.mismatches if mm][:5],
            "wall_s": {"models": model_s, "hardware": runs.wall_s},
        }
        s = min(_SHOWN, m)
        shown[kind] = {"original": truth[:s], "hidden": hid[:s], "FloatPCN": img["FloatPCN"][:s],
                       "FixedPCN": img["FixedPCN"][:s], "hardware": hw[:s]}
        if progress:
            progress(i + 1, len(HIDE), {"bit-exact": int(sum(exact)), "of": m})
    report = {"spec_digest": spec.digest, "sizes": list(spec.sizes), "lanes": lanes,
              "simulator": simulator, "seed": seed, "test_images": n, "hide": kinds,
              "verilator_build_s": core.build_s,
              **({"trained": trained} if trained else {})}
    out.mkdir(parents=True, exist_ok=True)
    _plot(out / "completed.png", shown)
    atomic_write(out / "complete.md", _markdown(report, spec))
    atomic_write_json(out / "complete.json", report)
    return report


def _plot(path: Path, shown: dict):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = ("original", "masked", "FloatPCN", "FixedPCN", "hardware")
    cols = [(k, i) for k, v in shown.items() for i in range(len(v["original"]))]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(0.75 * len(cols) + 0.6, 4.4),
                             squeeze=False)
    cmap = plt.get_cmap("gray_r").with_extremes(bad="#6fa8dc")
    for c, (kind, i) in enumerate(cols):
        v = shown[kind]
        for r, name in enumerate(rows):
            ax = axes[r, c]
            if name == "masked":
                im = np.ma.masked_array(v["original"][i], mask=v["hidden"][i])
            else:
                im = np.clip(v[name][i], 0, 1)
            ax.imshow(im.reshape(8, 8), cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=7)
            if r == 0 and i == 0:
                ax.set_title(f"{kind} hidden", fontsize=8, loc="left")
    fig.suptitle("Completion: known pixels pinned, hidden pixels (blue) relaxed free",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _markdown(rep: dict, spec: PCSpec) -> str:
    md = [f"# pcforge complete — spec {spec.digest} {list(spec.sizes)}, {rep['lanes']} lanes",
          "", "![completion](completed.png)", "",
          f"Error over the hidden pixels (RMSE, pixels 0–1; {rep['test_images']} test digits):",
          "", "| hidden | FloatPCN | FixedPCN | hardware (FixedPCN on its samples) | "
          "mean image | class mean of the true label | label by inference (float / fixed) | "
          "hardware bit-exact |", "|---|---|---|---|---|---|---|---|"]
    for kind, k in rep["hide"].items():
        r, b, h = k["rmse_hidden"], k["rmse_baselines"], k["rmse_hidden_on_hardware_samples"]
        md.append(f"| {kind} ({k['hidden_pixels_per_image']} px) | {r['FloatPCN']:.4f} | "
                  f"{r['FixedPCN']:.4f} | {h['hardware']:.4f} ({h['FixedPCN']:.4f}) | "
                  f"{b['mean image']:.4f} | {b['class mean (true label)']:.4f} | "
                  f"{100 * k['label_accuracy']['FloatPCN']:.1f} % / "
                  f"{100 * k['label_accuracy']['FixedPCN']:.1f} % | "
                  f"{k['hardware_bit_exact']}/{k['hardware_samples']} |")
    md += ["", "The hardware ran the halves under the spec's named per-node masks "
           "(`complete_top`, `complete_bottom`) and the random half under run-time pins.", ""]
    return "\n".join(md)
