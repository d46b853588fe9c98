"""Many samples through an emitted core, in chunks on parallel simulator processes: what
``pcforge compare`` and ``pcforge generate`` share.

:func:`run_samples` runs the first ``traced`` samples with a pause after every iteration (every
x and e compared with FixedPCN inside the testbench, the energy read back) and the rest to their
final state, one native harness process per CPU at a time (in order), and gathers every layer's
final x, the cycle counter and the scoreboard's mismatches per sample.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SampleRuns", "run_samples"]


@dataclass
class SampleRuns:
    """Per sample: ``x[k][s]`` the final x words of layer k, ``cycles[s]``, ``mismatches[s]``
    (the scoreboard's, empty when bit-exact); ``energy`` per traced sample (the energies read
    back at each pause); ``simulated_cycles`` in all; ``workers`` simulator processes; ``wall_s``
    of the runs."""

    x: list
    cycles: np.ndarray
    mismatches: list
    energy: list = field(default_factory=list)
    simulated_cycles: int = 0
    workers: int = 1
    wall_s: float = 0.0

    def bit_exact(self, reference, model_cycles) -> list:
        """Per sample: no mismatch, every layer's final x equal to ``reference.x`` (a
        FixedResult over the same samples) and the cycles equal to ``model_cycles``."""
        return [not m and self.cycles[s] == model_cycles[s]
                and all(np.array_equal(self.x[k][s], reference.x[k][s])
                        for k in range(len(self.x)))
                for s, m in enumerate(self.mismatches)]


def run_samples(core, W, b, clamped: dict, mask, *, traced: int, chunk: int = 60,
                parallel: bool = True, progress=None, pins: dict | None = None) -> SampleRuns:
    """Run the samples ``clamped`` ({layer: int words (n, n_layer)}, every clamped layer) under
    ``mask`` through ``core`` (built) with weights ``W``, ``b`` (integer words), with per-node
    clamps ``pins`` ({layer: bools (n, n_layer)}); see the module docstring.
    ``progress(done, total, info)`` after every chunk."""
    import time
    n = len(next(iter(clamped.values())))
    n_layers = core.cores[0][0].n_layers
    n_tr = min(traced, n)
    chunks = ([(s, min(s + chunk, n_tr), True) for s in range(0, n_tr, chunk)]
              + [(s, min(s + chunk, n), False) for s in range(n_tr, n, chunk)])
    chunks = [c for c in chunks if c[0] < c[1]]

    def run_chunk(c):
        lo, hi, trace = c
        samples = [{k: v[s] for k, v in clamped.items()} for s in range(lo, hi)]
        pn = [{k: v[s] for k, v in (pins or {}).items()} for s in range(lo, hi)]
        return core.run(W, b, samples, mask, trace=trace, check=False, seed=lo,
                        pins=pn if pins else None)

    workers = min(len(chunks), os.cpu_count() or 1) if parallel else 1
    xs = [[] for _ in range(n_layers)]
    cycles, bad, energy, sim_cycles = [], [], [], 0
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for (lo, hi, trace), run in zip(chunks, pool.map(run_chunk, chunks)):
            for s in range(hi - lo):
                for k in range(n_layers):
                    xs[k].append(run.x[s][k])
            cycles += run.cycles
            bad += run.mismatches
            if trace:
                energy += run.energy
            sim_cycles += run.total_cycles
            if progress:
                progress(hi, n, {"bit-exact": sum(not m for m in bad), "of": len(bad)})
    return SampleRuns(x=[np.array(v, dtype=np.int64).reshape(len(v), -1) for v in xs],
                      cycles=np.array(cycles, dtype=np.int64), mismatches=bad, energy=energy,
                      simulated_cycles=int(sim_cycles), workers=max(1, workers),
                      wall_s=time.perf_counter() - t0)
