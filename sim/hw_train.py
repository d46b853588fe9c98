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


def _train_pipelined(core, fixed: FixedPCN, chunks: list, job_for, after_chunk, state: dict):
    """The native path: chunk k + 1 is simulated (in the harness, on another CPU) while chunk k
    is scored. It starts from the weights the hardware read back after chunk k — equal to
    FixedPCN's, or chunk k's scoring stops the run before chunk k + 1's is looked at; the
    scoreboard's FixedPCN, advanced through each chunk, becomes the model (no second FixedPCN
    run in lockstep)."""
    from concurrent.futures import ThreadPoolExecutor
    spec = fixed.spec
    sat = fixed.sat
    with ThreadPoolExecutor(1) as pool:
        job = job_for(0, fixed.W, fixed.b)
        pending = pool.submit(core.simulate, [job])
        for k in range(len(chunks)):
            raw = pending.result()
            state["sim_s"] += raw.sim_s
            nxt = None
            if k + 1 < len(chunks):
                W_hw, b_hw = _read_back_weights(spec, raw.samples[0][-1].conns)
                nxt = job_for(k + 1, W_hw, b_hw)
                pending = pool.submit(core.simulate, [nxt])
            run = core.score([job], raw)[0]
            model = run.model
            fixed.W, fixed.b = model.W, model.b
            sat.add(model.sat)
            after_chunk(k, run)
            if nxt is not None and not all(
                    np.array_equal(a, np.asarray(c)) for a, c in
                    zip(fixed.W + fixed.b, nxt["W"] + nxt["b"])):
                raise HardwareMismatch(f"after chunk {k}: the weights read back to start the "
                                       "next chunk differ from FixedPCN's")
            job = nxt


def _read_back_weights(spec: PCSpec, conns: list) -> tuple[list, list]:
    """(W_l, b_l) lists from the read-back words of every connection (W_l row-major, then
    b_l)."""
    W, b = [], []
    for l, words in enumerate(conns, start=1):
        n, m = spec.sizes[l], spec.sizes[l - 1]
        words = np.asarray(words, dtype=np.int64)
        W.append(words[:n * m].reshape(n, m).copy())
        b.append(words[n * m:n * m + n].copy())
    return W, b


def train_on_hardware(spec: PCSpec, data: Dataset, *, epochs: int, limit: int | None = None,
                      lanes: int = 8, seed: int = 0, chunk: int = 240,
                      test_limit: int | None = None, simulator: str = "native",
                      alpha: list | None = None, progress=None) -> tuple[Weights, dict]:
    """Train ``spec`` on chip; returns (the trained weights as floats, metrics).

    ``limit``: training samples per epoch (the first of each shuffled epoch; default all);
    ``chunk``: samples per simulator run (the weights carry over from run to run);
    ``simulator``: ``native`` (weights read out of the simulated memories after every update,
    learning incrementally in a pause after every iteration) or ``cocotb`` (after every
    sample); ``alpha``: the α register's mantissa per epoch (``rates.alpha_runtime``;
    :func:`pcforge.model.train.alpha_schedule`), written by the host before every chunk, and
    FixedPCN and FloatPCN learn with the same α.
    """
    if alpha is not None:
        if len(alpha) != epochs:
            raise ValueError(f"{len(alpha)} α values for {epochs} epochs")
        alpha = [int(spec.alpha_at(a).mantissa) for a in alpha]
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
    orders = [rng.permutation(len(x_all))[:n] for _ in range(epochs)]
    chunks = [(ep, lo, order[lo:lo + chunk]) for ep, order in enumerate(orders)
              for lo in range(0, n, chunk)]
    total = epochs * n
    state = {"energy": 0.0, "cycles": [], "checked": 0, "sim_s": 0.0}

    def job_for(k, W, b):
        ep, lo, idx = chunks[k]
        return core.job(0, W, b, [{0: x_all[i], L: t_all[i]} for i in idx], "training",
                        trace=per_iteration, learn=True, check="peek", seed=ep * 100_000 + lo,
                        alpha=None if alpha is None else [alpha[ep]] * len(idx))

    def after_chunk(k, run):
        """Check chunk ``k``'s run, train FloatPCN on the same samples, report progress."""
        ep, lo, idx = chunks[k]
        for s, bad in enumerate(run.mismatches):
            if bad:
                raise HardwareMismatch(
                    f"epoch {ep}, sample {lo + s} of the epoch (training index {idx[s]}): the "
                    f"hardware differs from FixedPCN: {bad[:6]}")
        state["cycles"] += run.cycles
        state["checked"] += len(idx)
        state["energy"] += sum(e[-1] for e in run.energy)
        if alpha is not None:
            sgd.lr = spec.alpha_at(alpha[ep]).value
        for i in idx:
            flt.train_batch(data.x_train[i:i + 1], target[i:i + 1], step=sgd)
        done = ep * n + lo + len(idx)
        if progress:
            progress(done, total, {"epoch": ep + 1, "energy": state["energy"] / (lo + len(idx))})
        if lo + len(idx) == n:                       # the epoch's last chunk
            hist["train_energy"].append(state["energy"] / n)
            hist["fixed_test_accuracy"].append(accuracy_fixed(fixed, xt, yt))
            hist["float_test_accuracy"].append(accuracy_float(flt, xt, yt))
            state["energy"] = 0.0
            if progress:
                progress(done, total, {"epoch": ep + 1,
                                       "test_acc": hist["fixed_test_accuracy"][-1]})

    t1 = time.perf_counter()
    if native:
        _train_pipelined(core, fixed, chunks, job_for, after_chunk, state)
    else:
        for k in range(len(chunks)):
            ts = time.perf_counter()
            run = core.run_jobs([job_for(k, fixed.W, fixed.b)])[0]
            state["sim_s"] += time.perf_counter() - ts
            if alpha is not None:
                fixed.set_alpha(alpha[chunks[k][0]])
            for i in chunks[k][2]:          # the model, advanced exactly as the chip was
                fixed.train_sample(x_all[i:i + 1], t_all[i:i + 1])
            after_chunk(k, run)
    hw_cycles, checked, sim_s = state["cycles"], state["checked"], state["sim_s"]
    train_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    hw_acc, hw_bad = _hw_accuracy(core, fixed, xt, yt, 180)
    test_s = time.perf_counter() - t2
    if hw_bad:
        raise HardwareMismatch(f"{hw_bad} test samples: hardware inference differs from "
                               "FixedPCN with the trained weights")
    # every sample's cycles were checked against the cycle model (for the iterations FixedPCN
    # made: fewer than T after an exact stop) by the scoreboard — a mismatch stops the run
    model_cycles = cycle_report(spec, lanes, "training", learn=True).total
    hw_c = np.asarray(hw_cycles, dtype=np.int64)
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
        "alpha_per_epoch": ([spec.alpha_at(a).value for a in alpha] if alpha is not None
                            else [spec.alpha.value] * epochs),
        "float_test_accuracy_per_epoch": hist["float_test_accuracy"],
        "train_energy_per_epoch": hist["train_energy"],
        "cycles_per_training_sample": int(np.median(hw_c)) if hw_c.size else 0,
        "cycles_per_training_sample_range": [int(hw_c.min()), int(hw_c.max())] if hw_c.size
        else [0, 0],
        "cycle_model_per_training_sample": model_cycles,
        "cycle_model_meaning": "all T iterations" + (" (the maximum: the exact stop ends "
                                                     "runs earlier)" if spec.stop == "exact"
                                                     else ""),
        "cycles_match_model": bool(hw_c.size == checked),      # each checked, see above
        "verilator_build_s": round(build_s, 2), "train_wall_s": round(train_s, 2),
        "simulation_wall_s": round(sim_s, 2), "test_wall_s": round(test_s, 2),
        "wall_s": round(time.perf_counter() - t0, 2),
        "weight_saturation": fixed.sat.as_dict(),
    }
    return fixed.to_float_weights(), metrics
