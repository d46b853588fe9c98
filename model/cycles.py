"""The hardware core's geometry and its exact cycle model.

:class:`CoreGeometry` is the one place that says where every value lives in the generated core
(:class:`pcforge.hdl.PCCore`) and how many cycles each piece of work takes; the generator, the
host drivers and the cycle model all read it.

Banking (``lanes`` = P MAC lanes, shared by all connections):

* node j of layer l (x_l, e_l, the cached prediction of connection l) lives in lane
  ``j mod P`` at address ``j div P``; each lane's bank of layer l is ``ceil(n_l / P)`` deep;
* weight W_l[i, j] lives in lane ``j mod P`` of connection l's weight memory at address
  ``i · ceil(n_{l-1} / P) + j div P`` — the lanes split the *source* (column) index, so a
  prediction row is P products per cycle summed by an adder tree, and a feedback column sum is
  lane-local;
* bias b_l[i] lives in connection l's bias memory at address i.

Schedule (``docs/hardware.md`` has the picture): a run is a fixed sequence of *slots*. A slot
that does work costs 1 set-up cycle plus one cycle per issued token; a slot that has nothing to
do costs nothing (the controller looks ahead to the next slot with work); a drain (waiting until
the pipeline has written its last result) costs :data:`DRAIN_CYCLES`. The slot list:

* prologue: ``zero(0)`` if layer 0 is free; then for l = 1..L: ``prologue_pred(l)`` when layer
  l−1 is clamped (fills the cache of connection l, computed once per sample) or layer l is free
  with feed-forward init (writes x_l), followed by a drain when it ran; ``zero(l)`` when layer l
  is free with zero init, followed by a drain (the zeros must land before anything reads them —
  the banks still hold the previous sample);
* iterations t = 0..T−1, then a final error pass t = T:
  phase A, l = 1..L: ``node_error(l)`` (lane-parallel, from the cache) when layer l−1 is clamped
  — skipped for t > 0 when layer l is clamped too (nothing changed), and skipped for t < T when
  l < L and layer l is free, because then ``feedback(l+1)`` computes e_l from the cache in the
  same pass that updates x_l (its only consumer) — else ``pred(l)`` (a MAC sweep); the top
  layer's state update rides on its error pass. Then a drain of :data:`DRAIN_A_CYCLES` (the
  errors are written by then; phase A writes no x that phase B reads).
  Phase B (t < T), l = L..1: ``feedback(l)`` when layer l−1 is free (a MAC sweep of W_lᵀ e_l that
  updates x_{l−1} lane-parallel). Then a drain of :data:`DRAIN_CYCLES`.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from .spec import PCSpec

__all__ = ["CoreGeometry", "CycleReport", "cycle_report", "PIPELINE_DEPTH", "DRAIN_CYCLES",
           "DRAIN_A_CYCLES", "E_WRITE_STAGE", "MAX_LANES"]

#: Pipeline stages from token issue to the last memory write (x); see ``hdl/core.py``.
PIPELINE_DEPTH = 10
#: Cycles a drain costs: the last token's last write retires ``PIPELINE_DEPTH`` cycles after it was
#: issued, so the next token's reads (and the host) see every write of the previous job.
DRAIN_CYCLES = PIPELINE_DEPTH
#: Stage at which errors (and the prediction cache) are written; phase A → B drains this long.
E_WRITE_STAGE = 7
DRAIN_A_CYCLES = E_WRITE_STAGE
#: The largest lane count the generator builds.
MAX_LANES = 256


@dataclass(frozen=True)
class CoreGeometry:
    """Where values live in a core of ``lanes`` MAC lanes built for ``spec``."""

    spec: PCSpec
    lanes: int

    def __post_init__(self):
        from .spec import SpecError
        if not isinstance(self.lanes, int) or not 1 <= self.lanes <= MAX_LANES:
            raise SpecError(f"lanes = {self.lanes!r}: the core needs 1..{MAX_LANES} MAC lanes")

    # ---- banking ------------------------------------------------------------------------
    def depth(self, layer: int) -> int:
        """Words per lane of layer ``layer``'s node banks: ceil(n_l / P)."""
        return ceil(self.spec.sizes[layer] / self.lanes)

    def node_location(self, layer: int, j: int) -> tuple[int, int]:
        """(lane, address) of node j of layer ``layer``."""
        return j % self.lanes, j // self.lanes

    def weight_depth(self, l: int) -> int:
        """Words per lane of connection l's weight memory: n_l · ceil(n_{l−1} / P)."""
        return self.spec.sizes[l] * self.depth(l - 1)

    def weight_location(self, l: int, i: int, j: int) -> tuple[int, int]:
        """(lane, address) of W_l[i, j]."""
        return j % self.lanes, i * self.depth(l - 1) + j // self.lanes

    # ---- work per slot ------------------------------------------------------------------
    def pred_tokens(self, l: int) -> int:
        return self.spec.sizes[l] * self.depth(l - 1)

    feedback_tokens = pred_tokens

    def node_tokens(self, layer: int) -> int:
        return self.depth(layer)

    def needs_pre_drain(self, l: int) -> bool:
        """``delayed_feedback``: whether the one-sweep pass of connection l ≥ 2 must wait for the
        errors e_{l−1} the previous pass writes. Its first column end (the first read of
        e_{l−1}) is token (n_l − 1)·ceil(n_{l−1}/P); the previous pass's last error is written
        E_WRITE_STAGE cycles after its last token and the set-up cycle sits in between."""
        return l >= 2 and (self.spec.sizes[l] - 1) * self.depth(l - 1) \
            < E_WRITE_STAGE - 1


@dataclass
class CycleReport:
    """Cycles of one run (one sample) of the core, by part; ``macs`` counts multiply-accumulates
    that the network needs (``useful_macs``) and lane-cycles the MAC sweeps occupy."""

    prologue: int
    per_iteration: list
    final_pass: int
    useful_macs: int
    mac_lane_cycles: int
    lanes: int
    multipliers_per_lane: int = 1

    @property
    def total(self) -> int:
        return self.prologue + sum(self.per_iteration) + self.final_pass

    @property
    def utilisation(self) -> float:
        """Useful MACs / (multipliers × total cycles); see :func:`multipliers_per_lane`."""
        return self.useful_macs / (self.lanes * self.multipliers_per_lane * self.total)

    def as_dict(self) -> dict:
        return {"total": self.total, "prologue": self.prologue,
                "per_iteration": self.per_iteration[0] if self.per_iteration else 0,
                "final_pass": self.final_pass, "useful_macs": self.useful_macs,
                "lanes": self.lanes, "multipliers": self.lanes * self.multipliers_per_lane,
                "utilisation": self.utilisation}


def cycle_report(spec: PCSpec, lanes: int, mask="inference", iterations: int | None = None,
                 learn: bool = False) -> CycleReport:
    """The exact cycle count of one run of the core (the hardware's ``cycles`` counter).

    ``learn``: with ``learning = "after_relaxation"`` the run ends with one read-modify-write
    row sweep per connection; with ``"incremental"`` (synchronous schedule) every iteration
    learns: predictions are recomputed instead of cached, column sweeps update their weights in
    passing, and connections from clamped layers get a row sweep after phase B."""
    g = CoreGeometry(spec, lanes)
    m = spec.mask(mask)
    L = spec.L
    T = spec.iterations if iterations is None else iterations
    n = spec.sizes
    ff = spec.init == "feedforward"
    inc = learn and spec.learning == "incremental"
    if inc and spec.schedule != "synchronous":
        raise ValueError("incremental learning in hardware needs the synchronous schedule "
                         "(delayed_feedback computes e(t) inside the sweep that would use it)")
    macs = 0
    lane_cycles = 0

    prologue = 0
    if not m[0]:                                     # zero(0), then a drain
        prologue += 1 + g.node_tokens(0) + DRAIN_CYCLES
    for l in range(1, L + 1):
        free = not m[l]
        if m[l - 1] or (free and ff):                # prologue_pred(l)
            prologue += 1 + g.pred_tokens(l) + DRAIN_CYCLES
            macs += n[l] * n[l - 1]
            lane_cycles += g.pred_tokens(l) * lanes
        if free and not ff:                          # zero(l), then a drain
            prologue += 1 + g.node_tokens(l) + DRAIN_CYCLES

    def phase_a(t: int) -> int:
        nonlocal macs, lane_cycles
        cyc = 0
        for l in range(1, L + 1):
            if m[l - 1] and not inc:
                fused = l < L and not m[l] and t < T     # computed by feedback(l+1) instead
                if not (m[l] and t > 0) and not fused:
                    cyc += 1 + g.node_tokens(l)
            else:
                cyc += 1 + g.pred_tokens(l)
                macs += n[l] * n[l - 1]
                lane_cycles += g.pred_tokens(l) * lanes
        return cyc + DRAIN_A_CYCLES

    def phase_b() -> int:
        nonlocal macs, lane_cycles
        cyc = 0
        for l in range(L, 0, -1):
            if not m[l - 1]:
                cyc += 1 + g.feedback_tokens(l)
                macs += n[l] * n[l - 1] * (2 if inc else 1)     # + e·f(x) when learning
                lane_cycles += g.feedback_tokens(l) * lanes
        if inc:                          # row sweeps learn the connections from clamped layers
            for l in range(1, L + 1):
                if m[l - 1]:
                    cyc += 1 + g.pred_tokens(l)
                    macs += n[l] * n[l - 1]
                    lane_cycles += g.pred_tokens(l) * lanes
        return cyc + DRAIN_CYCLES

    def one_sweep(t: int) -> int:
        """``delayed_feedback``: per connection one pass (+ its bubble token) feeding both
        W f(x) and Wᵀ e(t−1) (the latter known zero at t = 0), then a drain."""
        nonlocal macs, lane_cycles
        cyc = 0
        for l in range(1, L + 1):
            if m[l - 1]:
                if not (m[l] and t > 0):
                    cyc += 1 + g.node_tokens(l)
            else:
                if g.needs_pre_drain(l):
                    cyc += DRAIN_A_CYCLES
                cyc += 1 + g.pred_tokens(l) + 1
                macs += n[l] * n[l - 1] * (2 if t > 0 else 1)
                lane_cycles += g.pred_tokens(l) * lanes
        return cyc + DRAIN_CYCLES

    if spec.schedule == "delayed_feedback":
        per_iter = [one_sweep(t) for t in range(T)]
    else:
        per_iter = [phase_a(t) + phase_b() for t in range(T)]
    final = phase_a(T)
    if learn and not inc:              # one read-modify-write row sweep per connection, a drain
        for l in range(1, L + 1):
            final += 1 + g.pred_tokens(l)
            macs += n[l] * n[l - 1]
            lane_cycles += g.pred_tokens(l) * lanes
        final += DRAIN_CYCLES
    return CycleReport(prologue=prologue, per_iteration=per_iter, final_pass=final,
                       useful_macs=macs, mac_lane_cycles=lane_cycles, lanes=lanes,
                       multipliers_per_lane=multipliers_per_lane(spec))


def multipliers_per_lane(spec: PCSpec) -> int:
    """2 for the one-sweep ``delayed_feedback`` core (W·e(t−1) beside W·f(x)) and for cores
    that learn incrementally (e·f(x) beside W·e in column sweeps); 1 otherwise."""
    if spec.schedule == "delayed_feedback":
        return 2
    return 2 if spec.learning == "incremental" else 1

