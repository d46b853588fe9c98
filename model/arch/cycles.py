"""The core's exact cycle model: what the hardware's ``cycles`` counter says at the end of a run.

It walks the very slot list the controller walks (:mod:`pcforge.model.arch.schedule`) under the
run's clamp mask, iteration counter and learn flag: a run starts with
:data:`~pcforge.model.arch.schedule.SETTLE_CYCLES`, a job costs 1 set-up cycle + its wait (the
hazard-derived constant of its slot) + one cycle per token, a ``next`` marker 1 (+ its wait with
the exact stop) + ``SETTLE_CYCLES``, the ``end`` marker 1 + what is left of
:data:`~pcforge.model.arch.schedule.FINAL_DRAIN_CYCLES` since the last token's issue. With the
exact stop a run makes as many iterations as FixedPCN says (``FixedResult.iterations``): pass
them as ``iterations``; :func:`cycle_distribution` gives the cycles of many samples at once.
Where values live is :class:`~pcforge.model.arch.geometry.CoreGeometry`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..spec import PCSpec
from .schedule import (FINAL_DRAIN_CYCLES, SETTLE_CYCLES, learns_incrementally, marker_cost,
                       schedule)

__all__ = ["CycleReport", "cycle_report", "cycle_distribution", "multipliers_per_lane"]


@dataclass
class CycleReport:
    """Cycles of one run (one sample) of the core, by part (``prologue``: the slots before the
    first pass; ``per_iteration[t]``; ``final_pass``: the final error pass, learning sweeps and
    the final drain); ``useful_macs`` counts the multiply-accumulates the network needs,
    ``mac_lane_cycles`` the lane-cycles the MAC sweeps occupy; ``waits`` the idle cycles the
    hazards cost in all."""

    prologue: int
    per_iteration: list
    final_pass: int
    useful_macs: int
    mac_lane_cycles: int
    lanes: int
    multipliers_per_lane: int = 1
    waits: int = 0

    @property
    def total(self) -> int:
        return self.prologue + sum(self.per_iteration) + self.final_pass

    @property
    def utilisation(self) -> float:
        """Useful MACs / (multipliers × total cycles); see :func:`multipliers_per_lane`."""
        return self.useful_macs / (self.lanes * self.multipliers_per_lane * self.total)

    def as_dict(self) -> dict:
        return {"total": self.total, "prologue": self.prologue,
                "per_iteration": self.per_iteration[-1] if self.per_iteration else 0,
                "final_pass": self.final_pass, "useful_macs": self.useful_macs,
                "lanes": self.lanes, "multipliers": self.lanes * self.multipliers_per_lane,
                "utilisation": self.utilisation, "waits": self.waits}


def cycle_report(spec: PCSpec, lanes: int, mask="inference", learn: bool = False,
                 iterations: int | None = None, rows: int = 1) -> CycleReport:
    """The exact cycle count of one run of the core (the hardware's ``cycles`` counter).

    ``iterations``: the iterations the run makes (default T; with the exact stop, FixedPCN's
    ``FixedResult.iterations`` of the sample — 1..T). ``rows``: rows per token of the core
    (:class:`~pcforge.model.arch.geometry.CoreGeometry`).

    ``learn``: with ``learning = "after_relaxation"`` the run ends with one read-modify-write
    row sweep per connection; with ``"incremental"`` (synchronous schedule) every iteration
    learns: predictions are recomputed instead of cached, column sweeps update their weights in
    passing, and connections from clamped layers get a row sweep after the feedback sweeps."""
    if learn and spec.learning == "incremental" and not learns_incrementally(spec):
        raise ValueError("incremental learning in hardware needs the synchronous schedule "
                         "(delayed_feedback computes e(t) inside the sweep that would use it)")
    sch = schedule(spec, lanes, rows)
    g = sch.geometry
    n = spec.sizes
    T = spec.iterations
    runs = T if iterations is None else int(iterations)
    if not 1 <= runs <= T:
        raise ValueError(f"a run makes 1..T = {T} iterations, not {iterations}")
    if runs < T and spec.stop != "exact":
        raise ValueError(f"a run of {runs} < T = {T} iterations needs the exact stop "
                         "(spec stop = \"exact\")")
    prologue, final, per_iter = SETTLE_CYCLES, 0, [0] * runs
    macs = lane_cycles = waits = 0
    idle = FINAL_DRAIN_CYCLES                 # cycles since the last token's issue
    for v in sch.visits(spec.mask(mask), learn, its=range(runs)):
        if v.job is None:
            cost = marker_cost(sch, v.slot, idle)
            idle += cost
            waits += sch.waits[v.slot][0]
        else:
            idle = 0
            job = v.job
            wait = sch.waits[v.slot][v.alt]
            tokens = job.tokens(g)
            cost = 1 + wait + tokens
            waits += wait
            if job.op != "node":
                l = job.layer
                k = 2 if (job.op == "fb" and job.learns) or (job.op == "fused" and v.it > 0) \
                    else 1
                macs += n[l] * n[l - 1] * k
                lane_cycles += g.pred_tokens(l) * lanes * rows
        if v.slot < sch.first:
            prologue += cost
        elif v.it == T:
            final += cost
        else:
            per_iter[v.it] += cost
    return CycleReport(prologue=prologue, per_iteration=per_iter, final_pass=final,
                       useful_macs=macs, mac_lane_cycles=lane_cycles, lanes=lanes,
                       multipliers_per_lane=multipliers_per_lane(spec, rows), waits=waits)


def cycle_distribution(spec: PCSpec, lanes: int, iterations, mask="inference",
                       learn: bool = False, rows: int = 1) -> np.ndarray:
    """The cycles of many runs from their iteration counts (``FixedResult.iterations``): an
    int64 array like ``iterations``."""
    its = np.asarray(iterations, dtype=np.int64)
    table = {int(k): cycle_report(spec, lanes, mask, learn, iterations=int(k), rows=rows).total
             for k in np.unique(its)}
    return np.vectorize(table.__getitem__, otypes=[np.int64])(its) if its.size else its


def multipliers_per_lane(spec: PCSpec, rows: int = 1) -> int:
    """2 for the one-sweep ``delayed_feedback`` core (W·e(t−1) beside W·f(x)), for cores
    that learn incrementally (e·f(x) beside W·e in column sweeps) and for cores of two rows per
    token (``rows`` = 2); 1 otherwise."""
    if rows == 2:
        return 2
    if spec.schedule == "delayed_feedback":
        return 2
    return 2 if spec.learning == "incremental" else 1
