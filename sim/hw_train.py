"""Training on the hardware: ``pcforge train --on hardware``.

The digits network learns *on chip*: the emitted core, cycle-accurate (by default Verilator with
the native harness, :mod:`pcforge.sim.native_sim`; or the cocotb testbench), relaxes every
training sample with input and label clamped and applies its own local update (the spec's rule:
one read-modify-write sweep after relaxation, or an update every iteration). After every update
every weight and bias is read out of the simulated memories — after each sample, and learning
incrementally in a pause after every iteration (native) — and compared with FixedPCN run on the
same samples (the scoreboard also checks x and e); any difference stops the run with the first
mismatches. FixedPCN and FloatPCN are trained the same way beside it (same initial weights, same sample order, plain SGD with
rate α, one sample at a time), and the final weights are evaluated on the test set — by the
hardware itself (inference through the same Verilator model), by FixedPCN and by FloatPCN.
"""
from __future__ import annotations

import time

import numpy as np

from ..model.arch.cycles import cycle_report
from ..model.data import Dataset, one_hot
from ..model.fixed_pcn import FixedPCN
from ..model.float_pcn import FloatPCN
from ..model.spec import PCSpec
from ..model.train import SGD, accuracy_fixed, accuracy_float
from ..model.weights import Weights
from .simulators import emitted_core
from .verilator_sim import VerilatorCore

__all__ = ["train_on_hardware", "HardwareMismatch"]


class HardwareMismatch(AssertionError):
    """The hardware's weights or state differed from FixedPCN's during training."""


def _hw_accuracy(core: VerilatorCore, net: FixedPCN, x, y, chunk: int) -> tuple[float, int]:
    """Test accuracy of the weights now in ``net``, measured by inference on the hardware;
    also returns the number of samples whose final state differed from FixedPCN's."""
    xq = net.quantize(x)
    hits, bad = 0, 0
    for lo in range(0, len(x), chunk):
        run = core.run(net.W, net.b, [{0: v} for v in xq[lo:lo + chunk]], "inference",
                       trace=False, check=False, seed=lo)
        for s, xs in enumerate(run.x):
            hits += int(np.argmax(xs[-1]) == y[lo + s])
        bad += sum(1 for m in run.mismatches if m)
    return hits / len(x), bad


def train_on_hardware(spec: PCSpec, data: Dataset, *, epochs: int, limit: int | None = None,
                      lanes: int = 8, seed: int = 0, chunk: int = 240,
                      test_limit: int | None = None, simulator: str = "native",
                      progress=None) -> tuple[Weights, dict]:
    """Train ``spec`` on chip; returns (the trained weights as floats, metrics).

    ``limit``: training samples per epoch (the first of each shuffled epoch; default all);
    ``chunk``: samples per simulator run (the weights carry over from run to run);
    ``simulator``: ``native`` (weights read out of the simulated memories after every update,
    learning incrementally in a pause after every iteration) or ``cocotb`` (after every
    sample).
    """
    rng = np.random.default_rng(seed)
    init = Weights.init(spec, rng)
    fixed = FixedPCN.from_float(spec, init)          # the scoreboard's model, in lockstep
    flt = FloatPCN(spec, fixed.to_float_weights())   # trained the same way in float64
    sgd = SGD(flt, spec.alpha.value)
    L = spec.L
    x_all = fixed.quantize(data.x_train)
    t_all = fixed.quantize(one_hot(data.y_train, data.n_classes))
    target = one_hot(data.y_train, data.n_classes)
    n = len(x_all) if limit is None else min(limit, len(x_all))
    xt, yt = data.x_test, data.y_test
    if test_limit:
        xt, yt = xt[:test_limit], yt[:test_limit]

    core = emitted_core(spec, lanes, simulator=simulator)
    native = simulator == "native"
    # learning incrementally, an update follows every iteration: the native path pauses there
    # and reads every weight (cocotb reads them once per sample)
    per_iteration = native and spec.learning == "incremental"
    t0 = time.perf_counter()
    core.build()
    build_s = time.perf_counter() - t0
    hist = {"fixed_test_accuracy": [], "float_test_accuracy": [], "train_energy": []}
    hw_cycles, checked, sim_s = [], 0, 0.0
    total = epochs * n
    t1 = time.perf_counter()
    for ep in range(epochs):
        order = rng.permutation(len(x_all))[:n]
        energy = 0.0
        for lo in range(0, n, chunk):
            idx = order[lo:lo + chunk]
            samples = [{0: x_all[i], L: t_all[i]} for i in idx]
            ts = time.perf_counter()
            run = core.run_jobs([core.job(0, fixed.W, fixed.b, samples, "training",
                                          trace=per_iteration, learn=True,
                                          check="peek",
                                          seed=ep * 100_000 + lo)])[0]
            sim_s += time.perf_counter() - ts
            for k, bad in enumerate(run.mismatches):
                if bad:
                    raise HardwareMismatch(
                        f"epoch {ep}, sample {lo + k} of the epoch (training index "
                        f"{idx[k]}): the hardware differs from FixedPCN: {bad[:6]}")
            hw_cycles += run.cycles
            checked += len(idx)
            for i in idx:                   # the model, advanced exactly as the chip was
                res = fixed.train_sample(x_all[i:i + 1], t_all[i:i + 1])
                energy += float(res.energy[-1].sum())
                flt.train_batch(data.x_train[i:i + 1], target[i:i + 1], step=sgd)
            if progress:
                progress(ep * n + lo + len(idx), total,
                         {"epoch": ep + 1, "energy": energy / (lo + len(idx))})
        hist["train_energy"].append(energy / n)
        hist["fixed_test_accuracy"].append(accuracy_fixed(fixed, xt, yt))
        hist["float_test_accuracy"].append(accuracy_float(flt, xt, yt))
        if progress:
            progress((ep + 1) * n, total, {"epoch": ep + 1,
                                           "test_acc": hist["fixed_test_accuracy"][-1]})
    train_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    hw_acc, hw_bad = _hw_accuracy(core, fixed, xt, yt, 180)
    test_s = time.perf_counter() - t2
    if hw_bad:
        raise HardwareMismatch(f"{hw_bad} test samples: hardware inference differs from "
                               "FixedPCN with the trained weights")
    model_cycles = cycle_report(spec, lanes, "training", learn=True).total
    metrics = {
        "trained_on": f"hardware (the emitted Verilog under {simulator})",
        "weights_checked": ("after every iteration's update" if per_iteration
                            else "after every sample") + " (read out of the simulated memories)",
        "spec_digest": spec.digest, "learning": spec.learning, "lanes": lanes,
        "seed": seed, "epochs": epochs, "samples_per_epoch": n,
        "training_samples": "first %d of each shuffled epoch of the %d-sample digits "
                            "training split" % (n, len(x_all)),
        "samples": epochs * n, "updates_checked": checked,
        "weights_checked_per_update": int(sum(spec.sizes[l] * (spec.sizes[l - 1] + 1)
                                              for l in range(1, L + 1))),
        "hw_test_accuracy": hw_acc,
        "fixed_test_accuracy": hist["fixed_test_accuracy"][-1],
        "float_test_accuracy": hist["float_test_accuracy"][-1],
        "test_samples": len(xt),
        "fixed_test_accuracy_per_epoch": hist["fixed_test_accuracy"],
        "float_test_accuracy_per_epoch": hist["float_test_accuracy"],
        "train_energy_per_epoch": hist["train_energy"],
        "cycles_per_training_sample": int(np.median(hw_cycles)) if hw_cycles else 0,
        "cycle_model_per_training_sample": model_cycles,
        "cycles_match_model": all(c == model_cycles for c in hw_cycles),
        "verilator_build_s": round(build_s, 2), "train_wall_s": round(train_s, 2),
        "simulation_wall_s": round(sim_s, 2), "test_wall_s": round(test_s, 2),
        "wall_s": round(time.perf_counter() - t0, 2),
        "weight_saturation": fixed.sat.as_dict(),
    }
    return fixed.to_float_weights(), metrics
