"""Verification at scale: many random networks through the emitted Verilog (Verilator, native
harness), every x and e of every iteration and every weight after every update compared with
FixedPCN — ``pcforge verify``.

Each case is drawn from its own seed (:func:`random_case`; a failure is replayed from it): a
random spec (2–5 layers, sizes 1–24, widths 6–20, every rounding/overflow mode, activation,
init, both schedules, both learning rules), random integer weights (sometimes full range), a
random clamp mask (the named masks — inference, training, generation — or a random one), in
about a third of the cases per-node clamps on some free layers (random pins per sample), in
about a third of the learning cases α as a run-time register (a random α per sample), two
samples in a row, learning wherever the spec can, random idle cycles and back-pressure on the
host streams. Cases are built side by side, ``group`` cores per Verilator build (builds run in
parallel, one per CPU), and each case's cycle counts must equal the cycle model's (for the
iterations FixedPCN says the sample makes: specs with the exact stop end early).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from ..hdl.core import PCCore
from ..model.executor import Executor
from ..model.randspec import (random_clamped, random_int_weights, random_mask, random_node_clamp,
                              random_pins, random_spec)
from ..model.spec import PCSpec

__all__ = ["VerifyCase", "random_case", "verify_random_specs"]


@dataclass
class VerifyCase:
    """One random network and its job: ``spec`` (what FixedPCN runs), ``hw`` (what the core is
    built from: the same spec, or a deliberately different one in a test of the scoreboard)."""

    seed: int
    spec: PCSpec
    lanes: int
    W: list
    b: list
    mask: tuple
    samples: list
    learn: bool
    hw: PCSpec | None = None
    pins: list | None = None       # per sample {layer: n_l bools} (layers of spec.node_clamp)
    alpha: list | None = None      # per sample the α register's mantissa (rates.alpha_runtime)

    @property
    def name(self) -> str:
        return f"random seed {self.seed}"


def random_case(seed: int, *, max_iterations: int = 4, samples: int = 2,
                rows: int = 1) -> VerifyCase:
    """The case of ``seed`` (see the module docstring). ``rows`` = 2: a case for a core of two
    rows per token (run it with ``core_options={"rows": 2}``) — the synchronous schedule,
    after-relaxation learning where the draw said incremental, an even lane count (2–6)."""
    rng = np.random.default_rng(seed)
    if rows == 2:
        spec = random_spec(rng, iterations=(1, max_iterations), schedules=("synchronous",))
        if spec.learning == "incremental":
            spec = spec.replace(learning="after_relaxation")
        lanes = 2 * int(rng.integers(1, 4))
    else:
        spec = random_spec(rng, iterations=(1, max_iterations))
        lanes = int(rng.integers(1, 7))
    W, b = random_int_weights(spec, rng)
    mask = random_mask(spec, rng)
    clamped = [{k: v[0] for k, v in random_clamped(spec, mask, rng).items()}
               for _ in range(samples)]
    # per-node clamps from a stream of their own (the draws above stay what they were)
    prng = np.random.default_rng([seed, 1])
    spec = random_node_clamp(spec, mask, prng) if prng.random() < 0.35 else spec
    pins = []
    for c in clamped:
        p, v = random_pins(spec, prng)
        c.update({k: a[0] for k, a in v.items()})
        pins.append({k: a[0] for k, a in p.items()})
    learn = PCCore.spec_learns(spec)
    # α as a run-time register in about a third of the learning cases: a new α every sample
    arng = np.random.default_rng([seed, 3])
    alpha = None
    if learn and arng.random() < 0.35:
        spec = spec.replace(alpha_runtime=True)
        alpha = [int(a) for a in arng.integers(1, 1 << spec.alpha_bits, size=samples)]
    return VerifyCase(seed=seed, spec=spec, lanes=lanes, W=W, b=b, mask=mask, samples=clamped,
                      learn=learn, pins=pins if spec.node_clamp else None, alpha=alpha)


def _run_group(cases: list, stall: float, make_jobs: int, core_options=None) -> list:
    """Build one native model of ``cases``' cores side by side (``PCCore`` options
    ``core_options``) and run each case's job."""
    from .native_sim import NativeCore
    core = NativeCore(cores=[(c.hw or c.spec, c.lanes) for c in cases], fast_build=True,
                      make_jobs=make_jobs, core_options=core_options)
    jobs = [core.job(n, c.W, c.b, c.samples, c.mask, stall=stall, seed=c.seed,
                     model_spec=c.spec, learn=c.learn, pins=c.pins, alpha=c.alpha)
            for n, c in enumerate(cases)]
    runs = core.run_jobs(jobs)
    for run in runs:
        run.model = None                    # not needed by callers: less to send back
    return runs


def _group_task(arg) -> list:
    return _run_group(*arg)


def run_cases(cases: list, *, group: int = 12, stall: float = 0.25, workers: int | None = None,
              progress=None, executor: str = "local", scheduler: str | None = None,
              core_options: dict | None = None) -> list:
    """Run every case through the native harness, ``group`` cores per build, the builds on an
    :class:`~pcforge.model.executor.Executor` (``local``: processes here — emitting Verilog is
    Python, threads would share one CPU; ``dask``: a local cluster or ``scheduler``); returns
    one :class:`~pcforge.sim.verilator_sim.HardwareRun` per case, in order (its mismatches
    include the cycle counter's against the cycle model). ``core_options``: keyword options of
    every ``PCCore`` built (e.g. ``hard_multipliers``)."""
    groups = [list(range(g, min(g + group, len(cases)))) for g in range(0, len(cases), group)]
    workers = max(1, workers or min(len(groups), os.cpu_count() or 1))
    make_jobs = max(1, (os.cpu_count() or 1) // workers)
    out = [None] * len(cases)
    args = [([cases[k] for k in idx], stall, make_jobs, core_options) for idx in groups]
    done = [0]

    def cb(_, __, info):
        done[0] += len(groups[info["last"]])
        progress(done[0], len(cases), {})
    with Executor(executor, workers=workers, scheduler=scheduler) as ex:
        outcomes = ex.map(_group_task, args, progress=cb if progress else None)
    for idx, o in zip(groups, outcomes):
        if not o.ok:
            raise RuntimeError(f"the Verilator group of cases {idx[0]}..{idx[-1]} failed: "
                               f"{o.error}")
        for k, run in zip(idx, o.value):
            out[k] = run
    return out


def verify_random_specs(n: int, *, first_seed: int = 0, group: int = 12,
                        progress=None, executor: str = "local", workers: int | None = None,
                        scheduler: str | None = None, rows: int = 1) -> dict:
    """Verify ``n`` random cases (seeds ``first_seed`` … ``first_seed + n − 1``; ``rows``: for
    cores of that many rows per token); returns a JSON-able report: counts of specs, samples,
    compared words, the coverage (schedules, learning rules, masks, activations) and every
    failing case with its seed."""
    t0 = time.perf_counter()
    cases = [random_case(first_seed + k, rows=rows) for k in range(n)]
    results = run_cases(cases, group=group, progress=progress, executor=executor,
                        workers=workers, scheduler=scheduler,
                        core_options={"rows": rows} if rows != 1 else None)
    failures, words, cycles, stopped = [], 0, 0, 0
    for c, run in zip(cases, results):
        bad = [f"sample {i}: {m[:6]}" for i, m in enumerate(run.mismatches) if m]
        if bad:
            failures.append({"seed": c.seed, "sizes": list(c.spec.sizes), "lanes": c.lanes,
                             "mask": list(c.mask), "what": bad})
        nodes = sum(c.spec.sizes) + sum(c.spec.sizes[1:])
        conn = sum(c.spec.sizes[l] * (c.spec.sizes[l - 1] + 1) for l in range(1, c.spec.n_layers))
        inc = c.learn and c.spec.learning == "incremental"
        for energy in run.energy:               # one per pause (iteration run), + the final
            its = len(energy) - 1
            stopped += its < c.spec.iterations
            words += (its + 1) * nodes + (conn * (its + 1 if inc else 1) if c.learn else 0)
        cycles += sum(run.cycles)
    named = {}
    for c in cases:
        name = next((k for k, v in c.spec.clamp.items() if tuple(v) == tuple(c.mask)), "random")
        named[name] = named.get(name, 0) + 1
    coverage = {
        "schedules": _count(c.spec.schedule for c in cases),
        "learning": _count(c.spec.learning if c.learn else "none" for c in cases),
        "masks": named,
        "activations": _count(a for c in cases for a in c.spec.activations[1:]),
        "layers": _count(c.spec.n_layers for c in cases),
        "lanes": _count(c.lanes for c in cases),
        "stop": _count(c.spec.stop for c in cases),
        "node_clamp": sum(bool(c.spec.node_clamp) for c in cases),
        "alpha_runtime": sum(c.alpha is not None for c in cases),
        "pinned_nodes": int(sum(np.count_nonzero(v) for c in cases for p in (c.pins or [])
                                for v in p.values())),
        "samples_stopped_early": stopped,
    }
    return {"specs": n, "first_seed": first_seed, "samples": sum(len(c.samples) for c in cases),
            "passed": n - len(failures), "failed": len(failures), "failures": failures,
            "compared_words": words, "core_cycles": cycles, "coverage": coverage,
            "group": group, "rows": rows, "wall_s": round(time.perf_counter() - t0, 1)}


def _count(items) -> dict:
    out = {}
    for i in items:
        out[str(i)] = out.get(str(i), 0) + 1
    return dict(sorted(out.items()))
