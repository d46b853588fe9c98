"""The core's run schedule: one place for what the controller of :class:`pcforge.hdl.PCCore`
does, in which order, and how long it waits — read by the generator and by the cycle model.

Slots
-----
A run is a fixed list of *slots* (:attr:`Schedule.slots`) walked under the run-time clamp mask
m, the iteration counter ``it`` and the ``learn`` flag. Each slot has a run condition, a
:class:`Cond` over ``m[k]``, ``FIRST`` (it = 0), ``FINAL`` (it = T, the final error pass) and
``LEARN`` (and, with the exact stop, ``STOPPED``: the relaxation ended early); the controller
looks ahead to the first slot whose condition holds, so a slot with nothing to do costs
nothing. A slot that runs issues one *job*, a sweep of tokens, one per
cycle (:class:`Job`; which job can depend on the mask: a slot lists alternatives). Two markers
close the list: ``end`` (FINAL: the final drain, then done) and ``next`` (always: it ← it + 1,
back to the first iteration slot; the core pauses here when asked to; with the exact stop under
``synchronous`` a copy under FIRST precedes it, with a wait of its own: below).

``synchronous``::

    prologue   zero(0); for l = 1..L: ppred(l) [, pzero(l) with zero init]
    each pass  a(1..L); b(L..1) [not FINAL]; linc(1..L) [incremental learning, not FINAL];
               learn(1..L) [FINAL and LEARN, the after-relaxation rule]; end [FINAL]; next

``delayed_feedback``::

    prologue   as above
    each pass  f(1..L) [not FINAL]; a(1..L) [FINAL]; learn(1..L) [FINAL and LEARN]; end; next

Prediction sweeps go row by row, or column chunk by column chunk where rows are short
(:func:`pred_by_columns`: then the next iteration's prediction need not wait for the feedback
sweep's last chunk).

a(l) is the error pass of connection l (a prediction sweep, or a lane-parallel pass from the
cached prediction when layer l−1 is clamped, and in the first iteration of a free layer after
feed-forward initialisation, which cached every prediction it computed — unless that sweep
wrote the errors itself: :func:`ff_writes_errors`); b(l) the feedback
sweep W_lᵀ e_l that updates x_{l−1}; f(l) the one-sweep pass of ``delayed_feedback``;
``docs/hardware.md`` has the rest.

Hazards instead of drains
-------------------------
A token reads its operands at :data:`READ_STAGE` (its memory addresses are registered from the
issue register: stage 1; biases and cached predictions later) and writes its results
:data:`W_WRITE_STAGE` (weights, biases), :data:`E_WRITE_STAGE` (errors, cached predictions) or
:data:`X_WRITE_STAGE` (value nodes) cycles later. A job may start while earlier ones are still in
the pipeline as long as every location it reads is read after the last write to it: for a
writer job whose first token issues at cycle w0 and a reader at r0,
``r0 ≥ w0 + need(writer, reader)`` with need = max over the locations both touch of
(last write token + write stage + 1 − first read token − read stage). :class:`Schedule` computes, once per
spec and lane count, the idle cycles each slot alternative waits after its set-up cycle so that
this holds in every run the core can be asked for (every mask, iteration and learn flag): the
largest wait any run needs. The hardware loads these constants and the cycle model adds them;
nothing is decided at run time but which slots run.

Exact stop
----------
With ``stop = "exact"`` a ``next`` marker may end the run's relaxation (the iteration counter
jumps to T, the final pass follows) when the state repeats
(:func:`pcforge.model.fixed_pcn.stop_iterations`): ``synchronous`` — the first iteration's marker
(a slot of its own, FIRST) when iteration 0 wrote no x word with a new value (a state at rest
from the start: one iteration), the marker of iteration k ≥ 1 when iteration k−1 wrote none;
``delayed_feedback`` — the marker of iteration k ≥ 2 when neither k−1 nor k−2 did. The node
units flag each changing x write by the iteration's parity; a marker reads the flag
:data:`STOP_FLAG_LAG` cycles after the last x-writing token of the iteration it looks at at the
earliest — its wait makes sure, found by the same walk as the hazards (the FIRST marker waits
for its own iteration's writes; a later one usually not at all: its iteration's jobs had to
wait for the writes of the iteration before). A stopped run (fewer than T iterations) skips
the final error passes (STOPPED): the quiet iteration computed every error from the same x.
The walk also covers a stopped final pass after iterations 1..4.

Cycle accounting: a run starts with :data:`SETTLE_CYCLES`; a job costs 1 (set-up) + wait +
tokens cycles, a ``next`` marker 1 + its wait (0 without the stop) + :data:`SETTLE_CYCLES`, the
``end`` marker 1 + what is left of :data:`FINAL_DRAIN_CYCLES` (until the last write has
landed: the drain counts from the last token's issue, so after the markers of a run that
stopped at its first marker — whose wait outlasted every write — nothing is left).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from .geometry import CoreGeometry
from ..spec import PCSpec, SpecError

__all__ = ["Cond", "TRUE", "FALSE", "FIRST", "FINAL", "LEARN", "STOPPED", "M", "Job", "Slot",
           "Schedule", "schedule", "Env", "Visit", "visits", "learns_after", "learns_incrementally",
           "can_learn", "W_WRITE_STAGE", "E_WRITE_STAGE", "X_WRITE_STAGE", "PIPELINE_DEPTH",
           "FINAL_DRAIN_CYCLES", "WRITE_STAGE", "READ_STAGE", "STAGES", "STOP_FLAG_LAG",
           "SETTLE_CYCLES", "TOKEN_BROADCAST", "stops_early", "marker_cost", "pred_by_columns",
           "ROW_ACC_MIN_ROWS", "row_acc_depth", "ff_writes_errors", "counts_changes",
           "check_rows"]

#: The core's pipeline, stage by stage (cycles after the issue register, stage 0); every stage
#: number the generator and the cycle model use comes from here. Stage 1 registers each memory's
#: read address, stage 2 is the memory's data; then: ``raw`` the memory words registered,
#: ``sel`` the lanes' operands selected and f, f' (activation unit), ``opd`` the multiplier
#: operands, ``dsp`` the same again beside each multiplier, ``mul`` the products (lane
#: accumulators), ``sum1``/``sum2`` the two halves of the adder tree across lanes (learning: α·e·a,
#: then rounded), ``row`` the row accumulator (learning: W and b written), ``node`` the node
#: units' operands, ``diff`` x·2^s − acc, ``rq`` requantized e, ε, x (e and the cache written),
#: ``delta`` δ = f'·ε − e·2^fx, ``inc`` γ·δ rounded, ``x`` x + inc fitted and written.
STAGES = {"raw": 3, "sel": 4, "opd": 5, "dsp": 6, "mul": 7, "sum1": 8, "sum2": 9, "row": 10,
          "node": 11, "diff": 12, "rq": 13, "delta": 14, "inc": 15, "x": 16}
#: Stage (cycles after issue) at which learning writes W and b.
W_WRITE_STAGE = STAGES["row"]
#: Stage at which errors e and the prediction cache are written.
E_WRITE_STAGE = STAGES["rq"]
#: Stage at which value nodes x are written: the last write of a token.
X_WRITE_STAGE = STAGES["x"]
#: Stages from the issue register to the last memory write.
PIPELINE_DEPTH = X_WRITE_STAGE
#: Registers between the controller's issue decision and stage 0 beyond the first: the
#: controller registers each token beside its own logic, then once more into the issue
#: register that fans out to every lane (timing: at 16 lanes the controller's registers were
#: pulled across the chip towards the lanes, and its slot decision's routes set the ECP5's
#: fmax at 82.75 MHz). Every token moves by the same amount, so hazards and waits (between
#: tokens) are unchanged; the drain and the stop flag's lag (controller to pipeline) grow.
TOKEN_BROADCAST = 1
#: Cycles after a token's issue decision (the cycle after it, counted) until its last write
#: has landed: the ``end`` marker waits for what is left of it after its own cycle.
FINAL_DRAIN_CYCLES = X_WRITE_STAGE + TOKEN_BROADCAST
#: Cycles the controller spends after a start and after each ``next`` marker before its next
#: slot decision: the decision is registered a cycle ahead from the slot counter and the run's
#: atoms, which a start and a marker have just changed (timing: see ``SlotController``).
SETTLE_CYCLES = 1
#: Cycles from a token's issue until the controller sees, in its stop flag, whether the token's
#: x write changed its word (the exact stop): the write at :data:`X_WRITE_STAGE` with the
#: compare beside it, the OR over the lanes registered, then the flag register (counted from
#: the controller's issue decision: :data:`TOKEN_BROADCAST` cycles more than from stage 0).
STOP_FLAG_LAG = X_WRITE_STAGE + 3 + TOKEN_BROADCAST
#: Write stage per memory kind (x: value nodes, e: errors, c: cached predictions, w, b).
WRITE_STAGE = {"x": X_WRITE_STAGE, "e": E_WRITE_STAGE, "c": E_WRITE_STAGE,
               "w": W_WRITE_STAGE, "b": W_WRITE_STAGE}
#: Read stage per memory kind: the stage of the token whose address the memory samples (each
#: port's address is a register loaded from the token one stage earlier). Biases and cached
#: predictions are only needed by the node units, so their (unshared) ports are read late
#: instead of carrying the words down the pipeline.
READ_STAGE = {"x": 1, "e": 1, "w": 1, "b": 7, "c": 8}


# ---- the order of a prediction sweep ----------------------------------------------------
#: Rows a prediction sweep needs to be taken column by column: a row's partial sum is read
#: back (its address at ``mul``, the word registered before it is added) four tokens after
#: it was written (``row``), no earlier — the row accumulator memory's read-modify-write
#: distance (see :func:`pred_by_columns`).
ROW_ACC_MIN_ROWS = STAGES["row"] - STAGES["mul"] + 1


def pred_by_columns(g: CoreGeometry, l: int) -> bool:
    """Whether a prediction sweep of connection l (``pred`` jobs) visits its weights column
    chunk by column chunk — chunk c of every row, then chunk c + 1 — instead of row by row.

    Row by row, the first row reads every chunk of the source layer x_{l−1} in its first
    C = ceil(n_{l−1}/P) tokens, so the sweep waits until the job that wrote x_{l−1} (a
    feedback sweep, which finishes its chunks one after another) has landed its *last* chunk:
    about a pipeline's depth of idle cycles every iteration. Column by column, chunk c is
    first read at token c·n_l, when the writer has long finished it; the price is one partial
    sum per row (the row accumulator memory, ``n_l`` words) and rows that all end in the last
    chunk. Taken when the reads are what waits and the memory is cheap: 2 ≤ C < the pipeline's
    depth (with C at least the depth, row by row already reads the last chunk late enough;
    narrow cores — the iCE40's one lane — keep their RAM) and ceil(n_l / R) ≥
    :data:`ROW_ACC_MIN_ROWS` (R rows per token: the sweep comes back to a row that many tokens
    later).
    Learning sweeps and ``delayed_feedback``'s fused sweeps stay row by row."""
    return 2 <= g.depth(l - 1) < PIPELINE_DEPTH and g.row_groups(l) >= ROW_ACC_MIN_ROWS


def ff_writes_errors(g: CoreGeometry, l: int) -> bool:
    """Whether the feed-forward initialisation of a free layer l (its ``ppred`` sweep) also
    writes the layer's first errors e_l(0) = E(x_l(0)·2^s − acc) from the same sum — and, for
    the top layer, its first update x_L(1) = X(x_L(0) + round(γ(−e_L(0)))) — instead of leaving
    them to a lane-parallel pass of the first iteration from the cache: that pass waited for
    the sweep's last row to land (a pipeline's depth) and the next sweep for the pass.

    The node unit forms x_l(0)·2^s − acc before x_l(0) is known: without saturation it is the
    rounding's residual, a function of the sum's low bits; saturated, the rail's (the side of
    the sum's sign). Hence: the synchronous schedule, feed-forward initialisation, X saturating;
    not for layers whose nodes may be pinned (``spec.node_clamp``: a pinned node keeps its x);
    and cores of at least 2 lanes (the residual costs logic in every lane: the one-lane
    iCE40UP5K core has none to spare, and would save 17 of its 5 421 cycles at rest)."""
    spec = g.spec
    return (spec.schedule == "synchronous" and spec.init == "feedforward"
            and spec.formats.x.overflow == "saturate" and l not in spec.node_clamp
            and g.lanes >= 2)


def counts_changes(job: "Job", L: int) -> bool:
    """Whether the exact stop watches ``job``'s x writes (a resolved job): state updates —
    the error pass's top-layer update, the feedback sweep's — and the feed-forward sweep of the
    top layer that makes its first update in passing (:func:`ff_writes_errors`); not the
    initialisation's writes."""
    if job.nop == "ff":
        return job.node_layer == L and bool(job.we_e) and bool(job.we_x)
    return job.nop != "zero"


def row_acc_depth(g: CoreGeometry) -> int:
    """Words of the core's row accumulator memory (of each half, with R = 2 rows per token):
    the most row groups of a connection whose prediction sweeps go column by column (0: none
    does, and the core has no such memory)."""
    return max([g.row_groups(l) for l in range(1, g.spec.L + 1) if pred_by_columns(g, l)],
               default=0)


def check_rows(spec: PCSpec, rows: int):
    """Refuse, naming the fix, a core of ``rows`` = 2 rows per token for a spec it cannot run:
    the one-sweep ``delayed_feedback`` core and incremental learning already give each lane a
    second multiplier for another product of the same row."""
    if rows == 2 and spec.schedule == "delayed_feedback":
        raise SpecError("rows = 2 with schedule = \"delayed_feedback\": the one-sweep core "
                        "takes one row per token; use rows = 1 or the synchronous schedule")
    if rows == 2 and spec.learning == "incremental":
        raise SpecError("rows = 2 with learning = \"incremental\": the feedback sweeps' second "
                        "multiplier forms e·f(x); use rows = 1 or after_relaxation learning")


# ---- learning capabilities ---------------------------------------------------------------
def learns_after(spec: PCSpec) -> bool:
    """The core has the after-relaxation learning sweeps."""
    return spec.learning == "after_relaxation"


def learns_incrementally(spec: PCSpec) -> bool:
    """The core learns at every iteration (incremental rule, synchronous schedule only: with
    ``delayed_feedback`` e(t) is computed inside the very sweep that would have to use it)."""
    return spec.learning == "incremental" and spec.schedule == "synchronous"


def can_learn(spec: PCSpec) -> bool:
    return learns_after(spec) or learns_incrementally(spec)


def stops_early(spec: PCSpec) -> bool:
    """The core has the exact stop (its flags and the ``next`` marker's decision)."""
    return spec.stop == "exact"


# ---- run-time conditions ------------------------------------------------------------------
class Cond:
    """A run-time condition of the controller (mask bits, iteration, learn flag), folded to a
    constant wherever generation already knows it. ``&``, ``|`` and ``~`` combine conditions
    and Python bools; :meth:`eval` evaluates it for one run (the model), :meth:`value` builds it
    from Amaranth values (the hardware) — a constant condition stays a Python bool there."""

    __slots__ = ("op", "args")

    def __init__(self, op: str, *args):
        self.op, self.args = op, args

    @staticmethod
    def of(v) -> "Cond":
        if isinstance(v, Cond):
            return v
        return TRUE if v else FALSE

    @property
    def known(self):
        """True or False when the condition is a constant, else None."""
        return {"true": True, "false": False}.get(self.op)

    def __and__(self, other):
        other = Cond.of(other)
        if self.op == "false" or other.op == "false":
            return FALSE
        if self.op == "true":
            return other
        if other.op == "true":
            return self
        return Cond("and", self, other)

    __rand__ = __and__

    def __or__(self, other):
        other = Cond.of(other)
        if self.op == "true" or other.op == "true":
            return TRUE
        if self.op == "false":
            return other
        if other.op == "false":
            return self
        return Cond("or", self, other)

    __ror__ = __or__

    def __invert__(self):
        if self.op == "true":
            return FALSE
        if self.op == "false":
            return TRUE
        if self.op == "not":
            return self.args[0]
        return Cond("not", self)

    def eval(self, env: "Env") -> bool:
        op, a = self.op, self.args
        if op == "true":
            return True
        if op == "false":
            return False
        if op == "m":
            return bool(env.mask[a[0]])
        if op == "first":
            return env.it == 0
        if op == "final":
            return env.it == env.T
        if op == "learn":
            return bool(env.learn)
        if op == "stopped":
            return bool(env.stopped)
        if op == "not":
            return not a[0].eval(env)
        if op == "and":
            return a[0].eval(env) and a[1].eval(env)
        return a[0].eval(env) or a[1].eval(env)

    def value(self, atoms: dict):
        """As an Amaranth value from ``atoms`` = {"m": mask signal, "first", "final", "learn",
        "stopped": 1-bit values}; a constant condition is returned as a Python bool."""
        op, a = self.op, self.args
        if op in ("true", "false"):
            return op == "true"
        if op == "m":
            return atoms["m"][a[0]]
        if op in ("first", "final", "learn", "stopped"):
            return atoms[op]
        if op == "not":
            return ~a[0].value(atoms)
        x, y = a[0].value(atoms), a[1].value(atoms)
        return x & y if op == "and" else x | y

    def __repr__(self):
        op, a = self.op, self.args
        if op in ("true", "false", "first", "final", "learn", "stopped"):
            return op.upper()
        if op == "m":
            return f"m{a[0]}"
        if op == "not":
            return f"~{a[0]!r}"
        return f"({a[0]!r} {'&' if op == 'and' else '|'} {a[1]!r})"


TRUE, FALSE = Cond("true"), Cond("false")
FIRST, FINAL, LEARN = Cond("first"), Cond("final"), Cond("learn")
#: The exact stop ended the relaxation before T (the final pass follows a quiet iteration).
STOPPED = Cond("stopped")


def M(k: int) -> Cond:
    """Mask bit k: layer k is clamped."""
    return Cond("m", k)


class Env(NamedTuple):
    """One point of a run: the mask, the iteration counter, T, the learn flag and whether the
    exact stop ended the relaxation early (only ever true in the final pass)."""
    mask: tuple
    it: int
    T: int
    learn: bool
    stopped: bool = False


# ---- jobs and slots -------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One sweep of tokens (see the module docstring and ``docs/hardware.md``).

    ``op``: ``pred`` (row sweep of W_l: W_l f(x_{l−1}) + b_l), ``fb`` (column sweep: W_lᵀ e_l,
    lane-local), ``node`` (lane-parallel pass over the nodes of ``layer``), ``fused``
    (``delayed_feedback``: one row sweep feeding both, + a bubble token), ``learn`` (row sweep,
    read-modify-write of W_l and b_l). ``nop``: what the node units do — ``err`` (e = E(x·2^s −
    acc), plus the top layer's update when ``we_x``), ``ff`` (x = X(acc)), ``zero`` (x = 0),
    ``upd`` (x ← X(x + round(γ(f′ε − e)))). ``layer``: the connection of a sweep (the layer of a
    node pass); ``lane_layer``: the layer whose nodes the lanes read; ``node_layer``: the layer
    the node units write. The ``we_*`` write enables, ``fuse`` (a feedback sweep also computes
    e_{l−1} from the cache at its column ends) and ``learns`` (a feedback sweep updates W_l and
    b_l in passing: incremental learning) are bools or :class:`Cond`\\ s."""

    op: str
    nop: str
    layer: int
    lane_layer: int
    node_layer: int
    we_e: object = False
    we_x: object = False
    we_c: object = False
    fuse: object = False
    learns: object = False

    def resolve(self, env: Env) -> "Job":
        """The job with every condition evaluated for one run point."""
        return replace(self, **{k: Cond.of(getattr(self, k)).eval(env)
                                for k in ("we_e", "we_x", "we_c", "fuse", "learns")})

    def tokens(self, g: CoreGeometry) -> int:
        if self.op == "node":
            return g.node_tokens(self.layer)
        return g.pred_tokens(self.layer) + (1 if self.op == "fused" else 0)


@dataclass(frozen=True)
class Slot:
    """A slot of the schedule: ``kind`` and ``layer`` name it, ``cond`` says when it runs,
    ``alts`` = ((Cond, Job), ...) which job it issues (the first alternative whose condition
    holds; the last one's is TRUE). Markers (``end``, ``next``) issue nothing."""

    kind: str
    layer: int | None
    cond: Cond
    alts: tuple = ()

    @property
    def is_marker(self) -> bool:
        return self.kind in ("end", "next")


def _slots(g: CoreGeometry) -> tuple[tuple, int]:
    """The slot list of the core (``g``: spec and lanes) and the index of the first slot of a
    pass."""
    spec = g.spec
    L = spec.L
    ff = spec.init == "feedforward"
    inc = LEARN if learns_incrementally(spec) else FALSE
    one = lambda job: ((TRUE, job),)                                    # noqa: E731
    # the exact stop skips the final error pass after a quiet iteration: its errors are those
    # of the iteration, computed from the same x (FINAL & STOPPED)
    again = ~(FINAL & STOPPED) if stops_early(spec) else TRUE
    # the same job under two conditions: two waits (a wait is the largest any run needs)
    split = lambda c, job: ((c, job), (TRUE, job)) if c.known is None else one(job)  # noqa: E731
    S = [Slot("zero", 0, ~M(0), one(Job("node", "zero", 0, 0, 0, we_x=True)))]
    for l in range(1, L + 1):
        # with feed-forward initialisation every prediction computed here is cached: the first
        # iteration's errors come from the cache (a lane-parallel pass, not a sweep); from a
        # clamped source the sweep waits for nothing before it
        # (and, where it can, the free layer's first errors: ff_writes_errors)
        S.append(Slot("ppred", l, (M(l - 1) | ~M(l)) if ff else M(l - 1),
                      split(M(l - 1), Job("pred", "ff", l, l - 1, l,
                                          we_x=~M(l) if ff else False,
                                          we_e=~M(l) if ff_writes_errors(g, l) else False,
                                          we_c=TRUE if ff else M(l - 1)))))
        if not ff:
            S.append(Slot("pzero", l, ~M(l), one(Job("node", "zero", l, l, l, we_x=True))))
    first = len(S)
    # a layer clamped with its source clamped too has nothing new to say after t = 0
    stale = lambda l: M(l - 1) & M(l) & ~FIRST                          # noqa: E731
    if spec.schedule == "synchronous":
        for l in range(1, L + 1):
            # e_l from the cache is computed by b(l+1) when layer l is free (its only consumer)
            fused = (~M(l) & ~FINAL & ~inc) if l < L else FALSE
            run = ~M(l - 1) | inc | (~stale(l) & ~fused)
            top = (~M(L) & ~FINAL) if l == L else FALSE
            early = ff and ff_writes_errors(g, l)
            if early:           # the first errors (and top update) came with the initialisation
                run = run & ~(FIRST & ~M(l))
            cached = (M(l - 1) & ~inc) | ((FIRST & ~M(l)) if ff and not early else FALSE)
            S.append(Slot("a", l, run & again, (
                (cached, Job("node", "err", l, l, l, we_e=True, we_x=top)),
                (TRUE, Job("pred", "err", l, l - 1, l, we_e=True, we_x=top)))))
        for l in range(L, 0, -1):
            fuse = (M(l - 2) & ~inc) if l >= 2 else FALSE
            # after a first error pass from the cache (short: layer l free) the sweep waits
            # longer than after a first prediction sweep (layer l clamped, e.g. the label)
            fb = Job("fb", "upd", l, l - 1, l - 1, we_x=True, we_e=fuse, fuse=fuse, learns=inc)
            S.append(Slot("b", l, ~M(l - 1) & ~FINAL,
                          ((FIRST & ~M(l), fb), (FIRST, fb), (TRUE, fb)) if ff else one(fb)))
        if learns_incrementally(spec):        # connections from clamped layers learn here
            for l in range(1, L + 1):
                S.append(Slot("linc", l, inc & M(l - 1) & ~FINAL,
                              one(Job("learn", "err", l, l - 1, l))))
    else:
        for l in range(1, L + 1):
            top = ~M(L) if l == L else FALSE
            S.append(Slot("f", l, (~M(l - 1) | ~stale(l)) & ~FINAL, (
                (M(l - 1), Job("node", "err", l, l, l, we_e=True, we_x=top)),
                (TRUE, Job("fused", "err", l, l - 1, l, we_e=True, we_x=top)))))
        for l in range(1, L + 1):
            S.append(Slot("a", l, FINAL & again & (~M(l - 1) | ~stale(l)), (
                (M(l - 1), Job("node", "err", l, l, l, we_e=True)),
                (TRUE, Job("pred", "err", l, l - 1, l, we_e=True)))))
    if learns_after(spec):
        for l in range(1, L + 1):
            # after a stopped run's last feedback sweep (no final error pass) it waits longer
            S.append(Slot("learn", l, FINAL & LEARN, split(
                STOPPED if stops_early(spec) else FALSE, Job("learn", "err", l, l - 1, l))))
    S.append(Slot("end", None, FINAL))
    if stops_early(spec) and spec.schedule == "synchronous":
        # the first iteration's marker waits for its own stop flag (a state at rest from the
        # start — feed-forward initialisation, input clamped — ends after one iteration); later
        # markers look one iteration back instead of waiting for a drain
        S.append(Slot("next", None, FIRST))
    S.append(Slot("next", None, TRUE))
    return tuple(S), first


class Visit(NamedTuple):
    """One step of a run: slot index, alternative (None for markers), the resolved job (None
    for markers) and the iteration counter."""
    slot: int
    alt: int | None
    job: Job | None
    it: int


def visits(slots: tuple, first: int, mask: tuple, T: int, learn: bool, its=None,
           stopped: bool | None = None):
    """The steps of one run in order, as the controller takes them. ``its``: the iterations to
    walk before the final pass (default 0..T−1; the hazard analysis walks a few); ``stopped``:
    the exact stop ended the relaxation (default: when ``its`` has fewer than T iterations)."""
    its = list(range(T)) if its is None else list(its)
    if stopped is None:
        stopped = len(its) < T
    k = 0
    it = its[0] if its else T
    idx = 0
    while True:
        env = Env(mask, it, T, learn, bool(stopped) and it == T)
        while not slots[idx].cond.eval(env):
            idx += 1
        s = slots[idx]
        if s.kind == "next":
            yield Visit(idx, None, None, it)
            k += 1
            it = its[k] if k < len(its) else T
            idx = first
            continue
        if s.kind == "end":
            yield Visit(idx, None, None, it)
            return
        alt = next(a for a, (c, _) in enumerate(s.alts) if c.eval(env))
        yield Visit(idx, alt, s.alts[alt][1].resolve(env), it)
        idx += 1


# ---- memory access profiles -----------------------------------------------------------------
_NONE_R = np.iinfo(np.int64).max // 4          # "never read"
_NONE_W = -1                                    # "never written"


class _Profile:
    """First (used) read and last write token of every location a job touches, per memory
    (``("x", k)``, ``("e", k)``, ``("c", k)``, ``("w", l)``, ``("b", l)``; a weight's location
    is i·n_{l−1} + j)."""

    def __init__(self, job: Job, g: CoreGeometry):
        self.reads, self.writes = {}, {}
        self.span = 0                                # last write cycle relative to w0 + 1
        self.x_last = None                           # the last token that writes some x
        spec, P = g.spec, g.lanes
        n = spec.sizes
        op, l = job.op, job.layer
        if op == "node":
            k = l
            j = np.arange(n[k])
            tok = j // P
            if job.nop == "err":
                self._r(("x", k), j, tok)
                self._r(("c", k), j, tok)
                if job.we_e:
                    self._w(("e", k), j, tok)
            if job.we_x:
                self._w(("x", k), j, tok)
            return
        N, ns, C = n[l], n[l - 1], g.depth(l - 1)
        Nq = g.row_groups(l)                        # rows visited as one (R per token)
        i = np.arange(N)
        q = i // g.rows                             # the row group of row i
        j = np.arange(ns)
        cj = j // P
        wl = (i[:, None] * ns + j[None, :]).ravel()
        by_col = op == "pred" and pred_by_columns(g, l)
        if by_col:                                  # chunk c of every row, then chunk c + 1
            wtok = (cj[None, :] * Nq + q[:, None]).ravel()
            self._r(("w", l), wl, wtok)
            self._r(("x", l - 1), j, cj * Nq)                # chunk c: first read by row 0
        elif op in ("pred", "learn", "fused"):
            wtok = (q[:, None] * C + cj[None, :]).ravel()
            self._r(("w", l), wl, wtok)
            self._r(("x", l - 1), j, cj)                     # row 0 reads every source node
        if op == "pred":
            end = (C - 1) * Nq + q if by_col else q * C + C - 1     # each row's last token
            self._r(("b", l), i, end)
            if job.nop == "err":
                self._r(("x", l), i, end)
            if job.we_e:
                self._w(("e", l), i, end)
            if job.we_x:
                self._w(("x", l), i, end)
            if job.we_c:
                self._w(("c", l), i, end)
        elif op == "learn":
            self._r(("e", l), i, q * C)
            self._r(("b", l), i, q * C)
            self._w(("w", l), wl, wtok)
            self._w(("b", l), i, q * C)
        elif op == "fused":
            assert g.rows == 1
            end = np.where(i < N - 1, i * C + C - 1, N * C)       # the last row: the bubble
            col = (N - 1) * C + cj                                # column ends, last row
            self._r(("e", l), i, i * C)                           # e_l(t−1), broadcast
            self._r(("b", l), i, end)
            self._r(("x", l), i, end)
            if l - 1 >= 1:
                self._r(("e", l - 1), j, col)
            if job.we_e:
                self._w(("e", l), i, end)
            if job.we_x:
                self._w(("x", l), i, end)
            self._w(("x", l - 1), j, col)
        elif op == "fb":
            wtok = (cj[None, :] * Nq + q[:, None]).ravel()
            col = cj * Nq + Nq - 1
            self._r(("w", l), wl, wtok)
            self._r(("e", l), i, q)                               # column 0 reads e_l first
            self._r(("x", l - 1), j, cj * Nq if job.learns else col)
            if job.fuse:
                self._r(("c", l - 1), j, col)
            elif l - 1 >= 1:
                self._r(("e", l - 1), j, col)
            if job.we_x:
                self._w(("x", l - 1), j, col)
            if job.we_e:
                self._w(("e", l - 1), j, col)
            if job.learns:
                self._r(("b", l), i, q)
                self._w(("w", l), wl, wtok)
                self._w(("b", l), i, q)
        else:                                                     # pragma: no cover
            raise ValueError(f"unknown job op {op!r}")

    def _r(self, key, locs, toks):
        first = self.reads.get(key)
        if first is None:
            first = self.reads[key] = np.full(self._size(key, locs), _NONE_R, dtype=np.int64)
        np.minimum.at(first, locs, toks)

    def _w(self, key, locs, toks):
        last = self.writes.get(key)
        if last is None:
            last = self.writes[key] = np.full(self._size(key, locs), _NONE_W, dtype=np.int64)
        np.maximum.at(last, locs, toks)
        self.span = max(self.span, int(np.max(toks)) + WRITE_STAGE[key[0]] + 1)
        if key[0] == "x":
            self.x_last = max(self.x_last or 0, int(np.max(toks)))

    @staticmethod
    def _size(key, locs):
        return int(np.max(locs)) + 1 if len(locs) else 0

    def need(self, reader: "_Profile") -> int:
        """The smallest r0 − w0 with which ``reader`` sees every write of this job."""
        d = -(1 << 40)
        for key, last in self.writes.items():
            first = reader.reads.get(key)
            if first is None:
                continue
            k = min(len(first), len(last))
            lw, fr = last[:k], first[:k]
            both = (lw != _NONE_W) & (fr != _NONE_R)
            if both.any():
                d = max(d, int(np.max(lw[both] + WRITE_STAGE[key[0]] + 1
                                      - READ_STAGE[key[0]] - fr[both])))
        return d


# ---- the schedule ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    """The slot list of a spec and lane count with the wait of every slot alternative."""

    geometry: CoreGeometry
    slots: tuple
    first: int
    waits: tuple            # waits[slot][alt]: idle cycles after the set-up cycle

    @property
    def spec(self) -> PCSpec:
        return self.geometry.spec

    def visits(self, mask, learn: bool = False, its=None, stopped=None):
        return visits(self.slots, self.first, tuple(mask), self.spec.iterations, learn, its,
                      stopped)

    def scenarios(self):
        """Every run the core can be asked for: each mask and learn flag."""
        return _scenarios(self.spec)

    def for_run(self, mask, learn: bool = False) -> "Schedule":
        """The same slots with the smallest waits that this one run (mask, learn flag) needs —
        smaller than or equal to :attr:`waits`; what the tests use to show that the hazard
        analysis is exact: with these waits the core is still bit-exact, with one of them a
        cycle shorter it is not."""
        return replace(self, waits=_compute_waits(self.slots, self.first, self.geometry,
                                                  [(tuple(mask), bool(learn))]))

    def overlaps(self, mask, learn: bool = False) -> int:
        """How many jobs of a run issue their first token while the previous job still has
        writes in flight (what the hazard waits buy over draining the pipeline each time)."""
        return self._walk(mask, learn, drain=False)[1]

    def drained_cycles(self, mask, learn: bool = False) -> int:
        """The cycles of the same run if every job instead waited for the pipeline to drain
        (all earlier writes landed) before its first token: the schedule without hazard
        analysis, for comparison."""
        return self._walk(mask, learn, drain=True)[0]

    def _walk(self, mask, learn, drain):
        g = self.geometry
        t, busy_until, count = SETTLE_CYCLES, 0, 0
        spans = {}
        idle = FINAL_DRAIN_CYCLES                     # cycles since the last token's issue
        for v in self.visits(mask, learn):
            if v.job is None:
                cost = marker_cost(self, v.slot, idle)
                t, idle = t + cost, idle + cost
                continue
            idle = 0
            r0 = t + 1 + (max(0, busy_until - t - 1) if drain else self.waits[v.slot][v.alt])
            count += r0 < busy_until
            if v.job not in spans:
                spans[v.job] = _Profile(v.job, g).span
            busy_until = max(busy_until, r0 + spans[v.job])
            t = r0 + v.job.tokens(g)
        return t, count


def _scenarios(spec: PCSpec) -> list:
    learns = (False, True) if can_learn(spec) else (False,)
    return [(mask, learn) for mask in itertools.product((False, True), repeat=spec.n_layers)
            for learn in learns]


def _hazard_its(spec: PCSpec) -> list:
    """The runs the hazard walk visits, as (iterations, stopped) pairs: the first iteration,
    then two more (the first of them follows the first iteration, the second a steady one;
    every later iteration repeats the timing of the second), then the final pass. With the
    exact stop a stopped final pass (no error passes) may follow any iteration and a marker's
    decision looks at its own iteration (the first) or one back: every prefix of four
    iterations, stopped, and the full final pass after three."""
    T = spec.iterations
    full = (list(range(min(T, 3))), False)
    if stops_early(spec):
        return [(list(range(k)), True) for k in range(1, min(T - 1, 4) + 1)] + [full]
    return [full]


def marker_cost(sch: "Schedule", slot: int, idle: int = 0) -> int:
    """Cycles of a marker: 1, + the ``next`` slot's wait (the exact stop's flag) and the
    SETTLE cycle after it; for ``end``, + what is left of the final drain when the last token
    was issued ``idle`` cycles before the marker's own cycle (0: by the job just before it;
    after markers, their cycles; :data:`FINAL_DRAIN_CYCLES` or more: nothing in flight)."""
    return _marker_cycles(sch.slots[slot].kind, sch.waits[slot][0], idle)


def _marker_cycles(kind: str, wait: int, idle: int = 0) -> int:
    if kind == "end":
        return 1 + wait + max(0, FINAL_DRAIN_CYCLES - idle)
    return 1 + wait + SETTLE_CYCLES


def _compute_waits(slots, first, g: CoreGeometry, scenarios=None) -> tuple:
    """The smallest waits with which no job of any of ``scenarios`` ((mask, learn) pairs;
    default: every run the core can be asked for) reads a location before its last write."""
    spec = g.spec
    waits = [[0] * max(1, len(s.alts)) for s in slots]
    profiles = {}
    needs = {}

    def profile(job):
        p = profiles.get(job)
        if p is None:
            p = profiles[job] = _Profile(job, g)
        return p

    def need(wj, rj):
        key = (wj, rj)
        d = needs.get(key)
        if d is None:
            d = needs[key] = profile(wj).need(profile(rj))
        return d

    if scenarios is None:
        scenarios = _scenarios(spec)
    stop = stops_early(spec)
    T = spec.iterations
    for _ in range(100):
        changed = False
        for (mask, learn), (its, stopped) in itertools.product(scenarios, _hazard_its(spec)):
            t = 0                                         # the current decision cycle
            recent = []                                   # (w0, job, horizon)
            flags = {}                                    # iteration: its stop flag is final
            last = None                                   # (slot, alt, it) of the last job
            for v in visits(slots, first, mask, T, learn, its, stopped):
                if v.job is None:
                    # the stop flag the marker reads: its own iteration's (the FIRST marker)
                    # or the one before
                    read = v.it if slots[v.slot].cond is FIRST else v.it - 1
                    if stop and slots[v.slot].kind == "next" and read in flags:
                        late = flags[read] - (t + waits[v.slot][0])
                        if late > 0:
                            changed = True
                            if last is not None and last[2] == v.it > read:
                                # the flag is an iteration older than the job before the
                                # marker: delaying that job (one slot alternative) delays
                                # the marker as well, and not every run that passes here
                                waits[last[0]][last[1]] += late
                                break
                            waits[v.slot][0] += late
                    t += _marker_cycles(slots[v.slot].kind, waits[v.slot][0])
                    continue
                last = (v.slot, v.alt, v.it)
                r0 = t + 1 + waits[v.slot][v.alt]
                recent = [w for w in recent if w[2] > r0]
                req = max([w0 + need(wj, v.job) for w0, wj, _ in recent], default=r0)
                if req > r0:
                    waits[v.slot][v.alt] += req - r0
                    r0 = req
                    changed = True
                recent.append((r0, v.job, r0 + profile(v.job).span))
                x_last = profile(v.job).x_last
                if stop and counts_changes(v.job, spec.L) and v.it < T and x_last is not None:
                    flags[v.it] = max(flags.get(v.it, 0), r0 + x_last + STOP_FLAG_LAG)
                t = r0 + v.job.tokens(g)
        if not changed:
            return tuple(tuple(w) for w in waits)
    raise RuntimeError("the schedule's waits did not converge")       # pragma: no cover


@lru_cache(maxsize=256)
def _schedule(digest: str, lanes: int, rows: int, keyed: "_Keyed") -> Schedule:
    g = CoreGeometry(keyed.spec, lanes, rows)
    slots, first = _slots(g)
    return Schedule(g, slots, first, _compute_waits(slots, first, g))


def schedule(spec: PCSpec, lanes: int, rows: int = 1) -> Schedule:
    """The schedule (slots and waits) of the core for ``spec`` with ``lanes`` MAC lanes taking
    ``rows`` rows per token."""
    CoreGeometry(spec, lanes, rows)                       # validates lanes and rows
    check_rows(spec, rows)
    return _schedule(spec.digest, lanes, rows, _Keyed(spec))


class _Keyed:
    """Wraps a spec for lru_cache (a spec holds a dict and is not hashable; the digest above is
    the key, this wrapper only carries the object)."""

    __slots__ = ("spec",)

    def __init__(self, spec):
        self.spec = spec

    def __hash__(self):
        return 0

    def __eq__(self, other):
        return True
