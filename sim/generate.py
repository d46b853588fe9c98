"""``pcforge generate``: digits from the generative (Rao–Ballard) network — FloatPCN, FixedPCN
and the hardware (the emitted Verilog, cycle-accurate) side by side — and classification by
inference in the same network.

:func:`generate_report` writes into ``out_dir``:

* ``generated.png`` — one column per class: the class-mean training image, then the image each
  model generates with that one-hot label clamped (FloatPCN, FixedPCN, hardware, and a board's
  when given), each titled with its correlation with the class mean;
* ``generate.json`` / ``generate.md`` — the correlations per class and model, whether the
  hardware equals FixedPCN bit for bit (every x and e of every iteration, cycles = the cycle
  model), classification by inference on the test set (float, fixed, hardware) beside a
  discriminative network's accuracy when one is given, cycles and wall times.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..model.arch.cycles import cycle_distribution
from ..model.data import load_digits_split
from ..model.files import atomic_write, atomic_write_json
from ..model.fixed_pcn import FixedPCN
from ..model.float_pcn import FloatPCN
from ..model.generative import (CLASSIFY_MASK, GENERATE_MASK, check_generative, class_means,
                                classify, correlations, generate, label_inputs)
from ..model.spec import PCSpec
from ..model.weights import Weights
from .batch import run_samples
from .simulators import emitted_core

__all__ = ["generate_report", "GENERATE_OUTPUTS"]

#: what :func:`generate_report` writes
GENERATE_OUTPUTS = ("generated.png", "generate.json", "generate.md")


def generate_report(spec: PCSpec, weights: Weights, out_dir, *, lanes: int = 8,
                    simulator: str = "native", limit: int | None = None,
                    discriminative_accuracy: float | None = None, board_images=None,
                    board_name: str | None = None, progress=None) -> dict:
    """Generate one image per class on every model, classify the test set by inference, write
    the outputs (module docstring) and return the report. ``limit``: only the first N test
    images are classified on the hardware (the models classify all of them);
    ``board_images``: (classes, pixels) x words a board generated (``pcforge generate
    --port``)."""
    weights.check(spec)
    out = Path(out_dir)
    data = load_digits_split()
    C = data.n_classes
    check_generative(spec, data)
    means = class_means(data)
    X = spec.formats.x
    t0 = time.perf_counter()
    fl = FloatPCN(spec, weights)
    fx = FixedPCN.from_float(spec, weights)
    labels = label_inputs(C)
    img = {"FloatPCN": generate(fl, labels).x[-1]}
    lq = fx.quantize(labels, 0)
    gq = generate(fx, lq)
    img["FixedPCN"] = X.to_float(gq.x[-1])
    pred_float = classify(fl, data.x_test)
    iq = fx.quantize(data.x_test, spec.L)
    pred_fixed = classify(fx, iq)
    model_s = time.perf_counter() - t0

    core = emitted_core(spec, lanes, simulator=simulator)
    core.build()
    if progress:
        progress(0, 1, {"build s": core.build_s})
    gen_runs = run_samples(core, fx.W, fx.b, {0: lq}, GENERATE_MASK, traced=C,
                           parallel=False)
    gen_exact = gen_runs.bit_exact(gq, cycle_distribution(spec, lanes, gq.iterations,
                                                          GENERATE_MASK))
    img["hardware"] = X.to_float(gen_runs.x[-1])
    n_cls = len(iq) if limit is None else min(limit, len(iq))
    ref = fx.relax({spec.L: iq[:n_cls]}, CLASSIFY_MASK)
    cls_runs = run_samples(core, fx.W, fx.b, {spec.L: iq[:n_cls]}, CLASSIFY_MASK,
                           traced=min(n_cls, 10), parallel=simulator == "native",
                           progress=progress)
    cls_exact = cls_runs.bit_exact(ref, cycle_distribution(spec, lanes, ref.iterations,
                                                           CLASSIFY_MASK))
    pred_hw = np.argmax(cls_runs.x[0], axis=1)
    if board_images is not None:
        img[board_name or "board"] = X.to_float(np.asarray(board_images))
    y = data.y_test
    corr = {name: correlations(v, means) for name, v in img.items()}
    report = {
        "spec_digest": spec.digest, "sizes": list(spec.sizes), "lanes": lanes,
        "simulator": simulator,
        "correlation_with_class_mean": {k: [round(float(c), 4) for c in v]
                                        for k, v in corr.items()},
        "correlation_min": {k: float(v.min()) for k, v in corr.items()},
        "correlation_mean": {k: float(v.mean()) for k, v in corr.items()},
        "generated_max_abs_fixed_minus_float": float(np.abs(img["FixedPCN"]
                                                            - img["FloatPCN"]).max()),
        "generation_bit_exact": int(sum(gen_exact)), "generation_samples": C,
        "generation_cycles": [int(c) for c in gen_runs.cycles],
        "generation_iterations": [int(k) for k in gq.iterations],
        "classification_accuracy": {
            "FloatPCN": float(np.mean(pred_float == y)),
            "FixedPCN": float(np.mean(pred_fixed == y)),
            "hardware": float(np.mean(pred_hw == y[:n_cls])),
            "FixedPCN_on_hardware_samples": float(np.mean(pred_fixed[:n_cls] == y[:n_cls]))},
        "classification_hardware_samples": n_cls,
        "classification_bit_exact": int(sum(cls_exact)),
        "classification_cycles": {"min": int(cls_runs.cycles.min()),
                                  "median": float(np.median(cls_runs.cycles)),
                                  "max": int(cls_runs.cycles.max())},
        "classification_iterations": {str(k): int(c) for k, c in
                                      zip(*np.unique(ref.iterations, return_counts=True))},
        "discriminative_accuracy": discriminative_accuracy,
        "mismatches": [m[:5] for m in gen_runs.mismatches + cls_runs.mismatches if m][:10],
        "wall_s": {"models": model_s, "verilator_build": core.build_s,
                   "hardware_generation": gen_runs.wall_s,
                   "hardware_classification": cls_runs.wall_s},
    }
    out.mkdir(parents=True, exist_ok=True)
    _plot(out / "generated.png", means, img, corr)
    atomic_write(out / "generate.md", _markdown(report, spec))
    atomic_write_json(out / "generate.json", report)
    return report


def _plot(path: Path, means, img: dict, corr: dict):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [("class mean (data)", means, None)] + [(k, v, corr[k]) for k, v in img.items()]
    C = len(means)
    fig, axes = plt.subplots(len(rows), C, figsize=(1.2 * C, 1.45 * len(rows)), squeeze=False)
    for r, (name, images, cs) in enumerate(rows):
        for c in range(C):
            ax = axes[r, c]
            ax.imshow(np.clip(images[c].reshape(8, 8), 0, 1), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if cs is not None:
                ax.set_title(f"r={cs[c]:.3f}", fontsize=7)
            if c == 0:
                ax.set_ylabel(name, fontsize=7)
            if r == 0:
                ax.set_title(f"{c}", fontsize=9)
    fig.suptitle("Generated digits (label clamped, image relaxed); r: correlation with the "
                 "class mean", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _markdown(rep: dict, spec: PCSpec) -> str:
    acc = rep["classification_accuracy"]
    md = [f"# pcforge generate — spec {spec.digest} {list(spec.sizes)}, {rep['lanes']} lanes",
          "", "![generated digits](generated.png)", "",
          "| model | correlation with the class mean: min / mean | per class |", "|---|---|---|"]
    for k, v in rep["correlation_with_class_mean"].items():
        md.append(f"| {k} | {rep['correlation_min'][k]:.3f} / {rep['correlation_mean'][k]:.3f} "
                  f"| {' '.join(f'{c:.3f}' for c in v)} |")
    md += ["", f"Hardware generation bit-exact with FixedPCN (every x and e of every iteration, "
           f"cycles = model): {rep['generation_bit_exact']}/{rep['generation_samples']}; "
           f"cycles per image {rep['generation_cycles']}.", "",
           "Classification by inference (image clamped, label relaxed):", "",
           "| | accuracy |", "|---|---|",
           f"| FloatPCN (360 test images) | {100 * acc['FloatPCN']:.2f} % |",
           f"| FixedPCN (360) | {100 * acc['FixedPCN']:.2f} % |",
           f"| hardware ({rep['classification_hardware_samples']}; bit-exact "
           f"{rep['classification_bit_exact']}) | {100 * acc['hardware']:.2f} % |"]
    if rep["discriminative_accuracy"] is not None:
        md.append(f"| discriminative network (FloatPCN, input clamped) | "
                  f"{100 * rep['discriminative_accuracy']:.2f} % |")
    md += ["", f"Iterations of the classifying relaxation (T = {spec.iterations}, stop = "
           f"{spec.stop}): {rep['classification_iterations']}; cycles "
           f"{rep['classification_cycles']}.", ""]
    return "\n".join(md)
