"""``SlotController``: walks the schedule of :mod:`pcforge.model.arch.schedule` and issues one token per
cycle into the issue register (pipeline stage S0) of :class:`~pcforge.hdl.core.PCCore`.

What runs, in which order and how long each job waits comes from the
:class:`~pcforge.model.arch.schedule.Schedule` — the same object the cycle model walks — so the
hardware's ``cycles`` counter equals :func:`pcforge.model.arch.cycles.cycle_report` by construction
of one list, and the tests check it.

Timing: a start costs one SETTLE cycle; one cycle per slot that runs (its set-up: the job
registers below), then its constant wait, then one token per cycle; a ``next`` marker costs one
cycle (``it`` ← it + 1; the controller pauses here when asked to; with the exact stop it may end
the relaxation there, after the ``next`` slot's wait) and a SETTLE cycle, the ``end`` marker one
cycle plus what is left of the final drain (:func:`~pcforge.model.arch.schedule.marker_cost`).
The
token is computed from the job registers and counters and *registered*: the memory read
addresses leave a register, never a chain of counter compares.
"""
from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.hdl import Value, ValueCastable
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ..model.arch.schedule import (FINAL_DRAIN_CYCLES, PIPELINE_DEPTH, TOKEN_BROADCAST, Cond,
                                   Schedule, can_learn, learns_incrementally, pred_by_columns,
                                   stops_early)

__all__ = ["Op", "NodeOp", "MaskKind", "SlotController", "token_layout", "compact_token_layout",
           "control_layout", "IN_FLIGHT_CYCLES"]

#: Cycles from a token's issue decision (cycle t) to its cycle in the pipeline's last stage:
#: the broadcast registers, the issue register S0 and PIPELINE_DEPTH stages after it. The
#: controller's ``in_flight`` holds from t + 1 through t + IN_FLIGHT_CYCLES.
IN_FLIGHT_CYCLES = TOKEN_BROADCAST + 1 + PIPELINE_DEPTH
assert IN_FLIGHT_CYCLES == FINAL_DRAIN_CYCLES + 1


class Op(enum.Enum, shape=3):
    PRED = 0        # row sweep of W_l: acc_l = W_l f(x_{l-1}) + b_l, one row per C tokens
                    # (row by row, or column chunk by column chunk: pred_by_columns)
    FB = 1          # column sweep of W_l: Σ_k W_l[k, j] e_l[k], lane-local
    NODE = 2        # lane-parallel pass over the nodes of one layer
    FUSED = 3       # delayed_feedback: one row sweep feeding W f(x) and Wᵀ e(t−1), + 1 bubble
    LEARN = 4       # row sweep of W_l, read-modify-write: W += round(α e aᵀ), b += round(α e)


class NodeOp(enum.Enum, shape=2):
    ERR = 0         # e = E(x·2^s − acc)   (+ top-layer update when we_x)
    FF = 1          # x = X(acc); with we_e also e = E(x·2^s − acc), and for the top layer
                    # the first update x ← X(x + round(γ(−e))) (ff_writes_errors)
    ZERO = 2        # x = 0
    UPD = 3         # ε = E(Σ W e); x ← X(x + round(γ (f'ε − e)))


_OPS = {"pred": Op.PRED, "fb": Op.FB, "node": Op.NODE, "fused": Op.FUSED, "learn": Op.LEARN}
_NOPS = {"err": NodeOp.ERR, "ff": NodeOp.FF, "zero": NodeOp.ZERO, "upd": NodeOp.UPD}


def control_layout(spec) -> data.StructLayout:
    """``control`` stream payload: resume, pause, learn, mask (bit k clamps layer k)."""
    return data.StructLayout({"resume": 1, "pause": 1, "learn": 1, "mask": spec.n_layers})


class MaskKind(enum.Enum, shape=2):
    """What a compact token's ``node_mask`` is (see :func:`compact_token_layout`)."""
    ZERO = 0      # no node unit writes
    ROW = 1       # the row's lane: bit i_bank
    LANES = 2     # the lanes of lane_mask


def compact_token_layout(sch: Schedule) -> data.StructLayout:
    """A token as the controller registers it beside itself: :func:`token_layout` without the
    per-lane ``lane_mask`` and ``node_mask`` (P bits each, every bit bound for its lane) and
    with what they are decoded from on the way to the issue register: ``nsrc`` (nodes of the
    lanes' source layer), ``lm_off`` (no lane works: the bubble token) and ``nm_kind``
    (:class:`MaskKind`)."""
    spec = sch.spec
    fields = {name: f.shape for name, f in token_layout(sch)
              if name not in ("lane_mask", "node_mask")}
    fields.update({"nsrc": range(max(spec.sizes) + 1), "lm_off": 1, "nm_kind": MaskKind})
    return data.StructLayout(fields)


def token_layout(sch: Schedule) -> data.StructLayout:
    """One pipeline token: what a stage needs to know about the work it carries.

    ``c``: lane address (column of a row sweep, column sweep index, node pass address);
    ``row``/``i_bank``/``i_addr``: the row (node i of ``layer`` and its location); ``w_addr``:
    the weight word; ``lane_mask``: lanes whose source node exists; ``node_mask``/``node_addr``/
    ``node_layer``: the node units that write and where; ``cache_addr``: the prediction-cache
    word of (node_layer, node_addr); ``mul_e``/``mul_f``: multiplier operand selects (e_l[i]
    instead of f(x); f(x) instead of W); in cores that learn, ``learn_w``/``learn_b``: this
    token rewrites W (its lanes) / b_l[row]; in ``delayed_feedback`` cores, ``bubble`` (the
    token that retires the last row), ``fb_on`` (e(t−1) exists: t > 0) and ``row_end``; in
    cores with the exact stop, ``par`` (the parity of the token's iteration: which stop flag its
    x write sets); in cores of two rows per token, ``odd_ok`` (the token's odd row exists: not
    the last of an odd row count) — ``row`` and ``i_bank``/``i_addr`` are then the row pair's
    and its even row's."""
    g = sch.geometry
    spec, P = g.spec, g.lanes
    L = spec.L
    max_c = max(g.depth(k) for k in range(L + 1))
    max_n = max(spec.sizes)
    max_wd = max(g.weight_depth(l) for l in range(1, L + 1))
    cache_words = sum(g.depth(k) for k in range(1, L + 1))
    fields = {
        "valid": 1, "op": Op, "nop": NodeOp,
        "layer": range(L + 1), "lane_layer": range(L + 1), "node_layer": range(L + 1),
        "first": 1, "last": 1,
        "c": range(max(max_c, 2)), "i_bank": range(max(P, 2)),
        "i_addr": range(max(max_c, 2)), "row": range(max(max_n, 2)),
        "w_addr": range(max(max_wd, 2)),
        "lane_mask": P, "node_mask": P, "node_addr": range(max(max_c, 2)),
        "cache_addr": range(max(cache_words, 2)),
        "we_e": 1, "we_x": 1, "we_c": 1, "fuse": 1, "mul_e": 1, "mul_f": 1,
    }
    if spec.schedule == "delayed_feedback":         # the one-sweep core's extra fields
        fields.update({"bubble": 1, "fb_on": 1, "row_end": 1})
    if can_learn(spec):
        fields.update({"learn_w": 1, "learn_b": 1})
    if stops_early(spec):
        fields.update({"par": 1})
    if g.rows == 2:
        fields.update({"odd_ok": 1})
    return data.StructLayout(fields)


class SlotController(wiring.Component):
    """Ports: ``control`` (In stream, see :func:`control_layout`; a start is accepted when idle
    and the pipeline is empty, a resume when paused); ``token`` (Out, the issue register S0,
    :func:`token_layout`); ``host_ok`` (Out: no run is working and the pipeline is empty —
    idle or paused — so the host may access the memories); status ``busy``, ``paused``, ``done``, ``iteration``,
    ``cycles`` (working cycles of the run, pauses excluded). With the exact stop, ``x_changed``
    (In, 2 bits): bit p — an x write of a token of iteration parity p changed its word (seen
    :data:`~pcforge.model.arch.schedule.STOP_FLAG_LAG` cycles after that token's issue)."""

    def __init__(self, sch: Schedule, learns: bool):
        self.schedule = sch
        self.learns = learns
        self.layout = token_layout(sch)
        self.compact = compact_token_layout(sch)
        assert TOKEN_BROADCAST >= 1, "the masks are decoded on the way to the issue register"
        spec = sch.spec
        self.stops = stops_early(spec)
        ports = {
            "control": In(stream.Signature(control_layout(spec))),
            "token": Out(self.layout),
            "host_ok": Out(1),
            "busy": Out(1), "paused": Out(1), "done": Out(1),
            "busy_reg": Out(1), "paused_reg": Out(1),
            "iteration": Out(range(spec.iterations + 2)),
            "cycles": Out(32),
        }
        if self.stops:
            ports["x_changed"] = In(2)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        r = _Registers(self.schedule)
        fsm = self._sequencer(m, r)
        self._status(m, r, fsm)
        self._next_token(m, r)
        return m

    def _setup(self, r: "_Registers", job, wait_cycles: int) -> list:
        """The job registers' set-up for ``job`` (its fields resolved under the run's atoms)."""
        g = self.schedule.geometry
        sizes, L = g.spec.sizes, g.spec.L
        depths = [g.depth(k) for k in range(L + 1)]
        c_base = [0] + [sum(depths[1:k]) for k in range(1, L + 1)]

        def val(v):
            """A job field (bool or Cond) as a value for the set-up registers."""
            v = Cond.of(v).value(r.atoms)
            return int(v) if isinstance(v, bool) else v

        lane = job.lane_layer
        return [(r.j_op, _OPS[job.op]), (r.j_nop, _NOPS[job.nop]), (r.j_layer, job.layer),
                (r.j_lane_layer, lane), (r.j_node_layer, job.node_layer),
                (r.j_we_e, val(job.we_e)), (r.j_we_x, val(job.we_x)),
                (r.j_we_c, val(job.we_c)), (r.j_fuse, val(job.fuse)),
                (r.j_learns, val(job.learns)),
                (r.j_by_col, int(job.op == "pred" and pred_by_columns(g, job.layer))),
                (r.j_Cm1, depths[lane] - 1),
                (r.j_Nm1, (g.row_groups(job.layer) if job.op != "node" else sizes[job.layer])
                 - 1),
                *([(r.j_odd_last, sizes[job.layer] % 2)] if g.rows == 2 else []),
                (r.j_nsrc, sizes[lane]), (r.j_cbase, c_base[job.node_layer]),
                (r.c_cnt, 0), (r.i_cnt, 0), (r.i_bank, 0), (r.i_addr, 0), (r.w_addr, 0),
                (r.bubble, 0), (r.wait, wait_cycles)]

    def _slot_actions(self, r: "_Registers", idx: int) -> tuple[str, list]:
        """What acting on slot ``idx`` does (its condition holds): the next state and the
        (register, value) pairs — a job's set-up (the first alternative whose condition holds),
        or a marker's (``next``: one more iteration, pausing here when asked; ``end``: what is
        left of the final drain)."""
        sch = self.schedule
        s = sch.slots[idx]
        if s.kind == "next":
            wait = sch.waits[idx][0]
            if wait:
                return "MARK", [(r.wait, wait - 1)]
            return "next", self._next_pairs(r)
        if s.kind == "end":
            return "end", []
        alts = [(cond.value(r.atoms), self._setup(r, job, sch.waits[idx][a]))
                for a, (cond, job) in enumerate(s.alts)]
        alts = alts[:next((k + 1 for k, (c, _) in enumerate(alts) if c is True), len(alts))]
        alts = [(c, pairs) for c, pairs in alts if c is not False]
        regs = [reg for reg, _ in alts[-1][1]]
        values = []
        for k, reg in enumerate(regs):          # the first alternative that holds wins
            v = _as_value(alts[-1][1][k][1])
            for c, pairs in reversed(alts[:-1]):
                v = Mux(c, _as_value(pairs[k][1]), v)
            values.append((reg, v))
        return "ISSUE", [(r.slot, idx + 1)] + values

    def _next_pairs(self, r: "_Registers") -> list:
        """The ``next`` marker's (register, value) pairs: one more iteration — or, with the
        exact stop, the final pass (``it`` ← T, ``stopped`` set) when the stop flags say the
        state repeats (:func:`pcforge.model.fixed_pcn.stop_iterations`: ``synchronous`` —
        iteration 0 itself at the first marker, iteration it−1 at later ones; with
        ``delayed_feedback`` iterations it−1 and it−2, it ≥ 2) and iterations remain."""
        sch = self.schedule
        T = sch.spec.iterations
        pairs = [(r.slot, sch.first), (r.it_first, 0)]
        last = r.it + 1 == T
        if not self.stops:
            return pairs + [(r.it, r.it + 1), (r.it_final, last)]
        # the flag of the iteration this marker looks at: its own at the first marker (which
        # waited for it), the one before at later markers
        quiet = ~Mux(r.it_first, r.chg[0], Mux(r.it[0], r.chg[0], r.chg[1]))
        stop = quiet & ~last
        if sch.spec.schedule == "delayed_feedback":
            stop = stop & ~r.it_first & r.last_quiet
        if learns_incrementally(sch.spec):                 # the weights move: no stop
            stop = stop & ~r.learn
        return pairs + [(r.it, Mux(stop, T, r.it + 1)), (r.it_final, stop | last),
                        (r.stopped, stop), (r.last_quiet, quiet & ~r.it_first)]

    def _choose_slot(self, m, r: "_Registers"):
        """SLOT: act on the first slot at or after ``slot`` whose condition holds, as a one-hot
        choice — each slot's hit (``slot ≤ idx`` and its condition), the first hit, then every
        register an AND-OR of the chosen slot's values — so each slot's action is written once
        (conditions known at generation are resolved here; Yosys writes invalid Verilog for an
        If on a constant). The choice is *registered* (``slot<k>_acts``, computed every cycle
        from ``slot`` and the atoms): SLOT acts on flip-flops, not on the compare-and-priority
        chain (timing: at 16 lanes that chain into the issue register's enable set the ECP5's
        fmax). It is current whenever ``slot`` and the atoms held for the cycle before SLOT —
        after a job's ISSUE (≥ 1 cycle), and after the SETTLE cycle that follows a start and a
        ``next`` marker (:data:`~pcforge.model.arch.schedule.SETTLE_CYCLES`)."""
        firsts = r.choice
        contributions, order, moves = {}, [], {}
        for idx, f in firsts:
            state, pairs = self._slot_actions(r, idx)
            moves.setdefault(state, []).append(f)
            for reg, v in pairs:
                key = id(reg)
                if key not in contributions:
                    contributions[key] = (reg, [])
                    order.append(key)
                contributions[key][1].append((f, _as_value(v)))
        for key in order:
            reg, parts = contributions[key]
            target = reg.as_value() if hasattr(reg, "as_value") else reg
            chosen = _or_tree([Mux(f, v, 0) for f, v in parts])
            if len(parts) == len(firsts):
                m.d.sync += target.eq(chosen)
            else:
                m.d.sync += target.eq(Mux(_or_tree([f for f, _ in parts]), chosen, target))
        for state, fs in moves.items():
            with m.If(_or_tree(fs)):
                if state == "next":
                    m.d.comb += r.marker.eq(1)
                    with m.If(r.pause):
                        m.next = "PAUSED"
                    with m.Else():
                        m.next = "SETTLE"
                elif state == "end":            # done now if every write has landed
                    with m.If(r.drain == 0):
                        m.d.sync += r.done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DRAIN"
                else:
                    m.next = state

    def _register_choice(self, m, r: "_Registers"):
        """Every cycle, in every state: ``r.choice`` ← [(slot index, ``slot<k>_acts``)], the
        first slot at or after ``slot`` whose condition holds, one-hot (see
        :meth:`_choose_slot`)."""
        slots = self.schedule.slots
        hits = [(idx, _and(r.slot <= idx, slots[idx].cond.value(r.atoms)))
                for idx in range(len(slots))]
        hits = [(idx, h) for idx, h in hits if h is not False]
        r.choice, seen = [], []
        for idx, h in hits:
            f = Signal(name=f"slot{idx}_acts")
            m.d.sync += f.eq(h & ~Cat(*seen).any() if seen else h)
            seen.append(h)
            r.choice.append((idx, f))

    def _sequencer(self, m, r: "_Registers"):
        """The controller's state machine: IDLE (a start beat), SETTLE (after a start and a
        ``next`` marker: the slot choice is registered from the new ``slot`` and atoms), SLOT
        (the first slot at or after ``slot`` whose condition holds acts), ISSUE (a job's wait,
        then one token per cycle), MARK (with the exact stop: the ``next`` marker's wait, then
        its action), DRAIN (what is left of the final drain), PAUSED (a resume beat, then
        SETTLE)."""
        sch = self.schedule
        T = sch.spec.iterations
        self._register_choice(m, r)
        with m.FSM(name="controller") as fsm:
            with m.State("IDLE"):
                with m.If(r.beat):                      # a start beat (taken last cycle)
                    m.d.sync += [r.mask.eq(r.beat_payload.mask),
                                 r.pause.eq(r.beat_payload.pause),
                                 r.learn.eq(r.beat_payload.learn & int(self.learns)),
                                 r.it.eq(0), r.it_first.eq(1), r.it_final.eq(int(T == 0)),
                                 r.cycles.eq(0), r.done.eq(0), r.slot.eq(0)]
                    if self.stops:
                        m.d.comb += r.start.eq(1)
                        m.d.sync += [r.last_quiet.eq(0), r.stopped.eq(0)]
                    m.next = "SETTLE"
            with m.State("SETTLE"):                     # the slot choice is registered
                m.next = "SLOT"
            with m.State("SLOT"):
                self._choose_slot(m, r)
            with m.State("ISSUE"):
                with m.If(r.wait != 0):
                    m.d.sync += r.wait.eq(r.wait - 1)
                with m.Else():
                    m.d.comb += r.issue.eq(1)
                    self._advance(m, r.j_op, r.c_cnt, r.i_cnt, r.i_bank, r.i_addr, r.w_addr,
                                  r.bubble, r.j_Cm1, r.j_Nm1, r.job_end, r.j_by_col)
                    with m.If(r.job_end):
                        m.next = "SLOT"
            if self.stops:
                with m.State("MARK"):               # the next marker's wait (exact stop)
                    with m.If(r.wait != 0):
                        m.d.sync += r.wait.eq(r.wait - 1)
                    with m.Else():
                        m.d.comb += r.marker.eq(1)
                        m.d.sync += [reg.eq(v) for reg, v in self._next_pairs(r)]
                        with m.If(r.pause):
                            m.next = "PAUSED"
                        with m.Else():
                            m.next = "SETTLE"
            with m.State("DRAIN"):                     # the final drain (see _status)
                with m.If(r.drain == 0):
                    m.d.sync += r.done.eq(1)
                    m.next = "IDLE"
            with m.State("PAUSED"):
                with m.If(r.beat):                      # a resume beat (see _status)
                    m.next = "SETTLE"
        if self.stops:
            # the stop flags: set by the node units' x writes, the one of iteration it − 1
            # cleared by the marker of iteration it ≥ 1 that read it (its iteration's writes
            # have all landed; the first marker's flag is read again by the second), both
            # cleared by a start (one place assigns them: a later assignment would win)
            clear = Mux(r.start, 0b11,
                        Mux(r.marker & ~r.it_first, Mux(r.it[0], 0b01, 0b10), 0))
            m.d.sync += r.chg.eq((r.chg & ~clear) | self.x_changed)
        return fsm

    def _status(self, m, r: "_Registers", fsm):
        """Status outputs, the working-cycle counter, and the registered host/start readies."""
        running = (fsm.ongoing("SETTLE") | fsm.ongoing("SLOT") | fsm.ongoing("ISSUE")
                   | fsm.ongoing("DRAIN"))
        if self.stops:
            running = running | fsm.ongoing("MARK")
        # a token in the controller's broadcast registers or the pipeline: a countdown from
        # each issue, here beside the state (timing: the OR of the pipeline's valid bits, a
        # register among the lanes, shared LUTs with the state's decode and pulled them across
        # the chip — ECP5 16 lanes 80.96 MHz, 8 lanes 99.67). A token issued in cycle t is in
        # the pipeline's last stage in t + IN_FLIGHT_CYCLES; in_flight holds through that cycle
        # (as the pipeline's registered OR did; it also covers t + 1, when the controller is
        # neither idle nor paused).
        nf = Mux(r.issue, IN_FLIGHT_CYCLES, Mux(r.flight != 0, r.flight - 1, 0))
        m.d.sync += [r.flight.eq(nf), r.in_flight.eq(nf != 0)]
        in_flight = r.in_flight
        m.d.comb += [self.busy.eq(~fsm.ongoing("IDLE") | r.beat),
                     self.paused.eq(fsm.ongoing("PAUSED") & ~in_flight & ~r.beat),
                     self.done.eq(r.done & ~r.beat), self.iteration.eq(r.it),
                     self.cycles.eq(r.cycles)]
        # busy and paused two cycles late: a flip-flop here, beside the state whose decode it
        # shares, then one that placement may pull towards the host link across the chip
        # (timing: a link that registered the decodes itself shared their LUTs with the
        # controller's own logic, and placement pulled them, and the controller's paths, across
        # the chip — ECP5 8 lanes 94.5 MHz, 16 lanes 81.6 MHz; with one flip-flop here, 16
        # lanes: the state → busy_reg's input LUT by the link → back to the iteration
        # register's enable, 78.88 MHz)
        busy_here, paused_here = Signal(), Signal()
        m.d.sync += [busy_here.eq(self.busy), paused_here.eq(self.paused),
                     self.busy_reg.eq(busy_here), self.paused_reg.eq(paused_here)]
        with m.If(running):
            m.d.sync += r.cycles.eq(r.cycles + 1)
        # the final drain's countdown: FINAL_DRAIN_CYCLES after each token's issue, down by
        # one every working cycle (paused cycles do not count, like ``cycles``) — 0 once every
        # write of the tokens issued so far has landed, so the ``end`` marker waits only for
        # what is still in flight (none after a run that stopped at its first marker: that
        # marker's wait outlasted the writes)
        with m.If(r.issue):
            m.d.sync += r.drain.eq(FINAL_DRAIN_CYCLES)
        with m.Elif(running & (r.drain != 0)):
            m.d.sync += r.drain.eq(r.drain - 1)
        # host_ok as a register (timing: the host's ready is a flip-flop, not the FSM's
        # decode): last cycle's "idle or paused with the pipeline empty", unless a control
        # beat started a run then. Safe: from such a cycle only a control beat leaves the
        # state, and nothing was in the pipeline to keep it busy; it turns on a cycle late.
        # idle_ok likewise gates a start, paused_ok a resume: the control beat's ready comes
        # from these registers, not from the state's decode (timing: ready and the beat's
        # effects stay a few LUTs deep). Both are exact: from IDLE, and from PAUSED, only a
        # control beat leaves, so last cycle's "idle/paused and no beat" holds now. (A resume
        # in the first paused cycle waits one cycle; a host waits for ``paused`` anyway, and
        # ``cycles`` counts no paused cycle.)
        # The control beat itself is registered (``beat``, ``beat_payload``): the state machine
        # acts on it a cycle after it is taken, from flip-flops beside it — not from the host
        # link's valid across the chip (timing: that route once set the ECP5 fmax). The status
        # outputs count the beat as taken at once (busy, not done, not paused), as before.
        # "A beat was taken last cycle" enters these as ``beat``, after the registers, not as
        # the link's ``fired`` before them: the same function (``beat`` is last cycle's
        # ``fired``), but the state's decode no longer shares a LUT with the link's valid
        # (timing: ECP5 16 lanes, the state → a LUT beside the link's valid → the iteration
        # register's enable was the critical path, 91.4 MHz).
        host_ok = Signal()
        fired = self.control.valid & self.control.ready
        m.d.sync += [r.beat.eq(fired), r.beat_payload.eq(self.control.payload)]
        m.d.sync += [host_ok.eq((fsm.ongoing("IDLE") | fsm.ongoing("PAUSED")) & ~in_flight
                                & ~r.beat),
                     r.idle_ok.eq(fsm.ongoing("IDLE") & ~in_flight & ~r.beat),
                     r.paused_ok.eq(fsm.ongoing("PAUSED") & ~r.beat)]
        m.d.comb += self.control.ready.eq(Mux(self.control.payload.resume, r.paused_ok,
                                              r.idle_ok) & ~r.beat)
        m.d.comb += self.host_ok.eq(host_ok & ~r.beat)

    def _next_token(self, m, r: "_Registers"):
        """The next token, from the job registers and counters: registered beside the
        controller in its compact form (:func:`compact_token_layout`: the per-lane masks as
        what they are made of), then decoded into the issue register S0 that fans out to the
        lanes (:data:`~pcforge.model.arch.schedule.TOKEN_BROADCAST` registers in all)."""
        spec = self.schedule.spec
        delayed = spec.schedule == "delayed_feedback"
        inc = learns_incrementally(spec)
        j_op, c_cnt, i_cnt = r.j_op, r.c_cnt, r.i_cnt
        nt = Signal(self.compact)
        last = Signal()
        with m.Switch(j_op):
            with m.Case(Op.LEARN):               # no node-unit work: node_mask stays 0
                m.d.comb += [nt.first.eq(c_cnt == 0), last.eq(c_cnt == r.j_Cm1)]
            with m.Case(Op.PRED):
                m.d.comb += [nt.first.eq(c_cnt == 0), last.eq(c_cnt == r.j_Cm1),
                             nt.node_addr.eq(r.i_addr),
                             nt.nm_kind.eq(Mux(last, MaskKind.ROW, MaskKind.ZERO))]
            with m.Case(Op.FB):
                m.d.comb += [nt.first.eq(i_cnt == 0), last.eq(i_cnt == r.j_Nm1),
                             nt.node_addr.eq(c_cnt),
                             nt.nm_kind.eq(Mux(last, MaskKind.LANES, MaskKind.ZERO))]
            with m.Case(Op.NODE):
                m.d.comb += [nt.first.eq(1), last.eq(1), nt.node_addr.eq(c_cnt),
                             nt.nm_kind.eq(MaskKind.LANES)]
        m.d.comb += [nt.valid.eq(r.issue), nt.last.eq(last), nt.op.eq(j_op),
                     nt.nop.eq(r.j_nop), nt.layer.eq(r.j_layer),
                     nt.lane_layer.eq(r.j_lane_layer), nt.node_layer.eq(r.j_node_layer),
                     nt.c.eq(c_cnt), nt.i_bank.eq(r.i_bank), nt.i_addr.eq(r.i_addr),
                     nt.row.eq(i_cnt), nt.w_addr.eq(r.w_addr), nt.nsrc.eq(r.j_nsrc),
                     # driven even where only FUSED sets it: an undriven bit is X in a
                     # 4-state simulator (Icarus), where Amaranth and Verilator read 0
                     nt.lm_off.eq(0),
                     nt.we_e.eq(r.j_we_e), nt.we_x.eq(r.j_we_x), nt.we_c.eq(r.j_we_c),
                     nt.fuse.eq(r.j_fuse),
                     nt.mul_e.eq((j_op == Op.FB) | (j_op == Op.LEARN)),
                     nt.mul_f.eq(j_op == Op.LEARN)]
        if self.learns:
            # W rewritten by every learning row token and (incremental) by column sweeps while
            # learning; b_l[row] by a row's first token, or by column 0 of a column sweep
            fb_learn = (j_op == Op.FB) & r.j_learns if inc else Const(0, 1)
            m.d.comb += [nt.learn_w.eq((j_op == Op.LEARN) | fb_learn),
                         nt.learn_b.eq(((j_op == Op.LEARN) & (c_cnt == 0))
                                       | (fb_learn & (c_cnt == 0)))]
        if self.stops:
            m.d.comb += nt.par.eq(r.it[0])
        if self.schedule.geometry.rows == 2:     # the last pair of an odd row count
            m.d.comb += nt.odd_ok.eq(~(r.j_odd_last & (i_cnt == r.j_Nm1)))
        if delayed:
            self._fused_token(m, r, nt)
        else:
            m.d.comb += nt.cache_addr.eq(r.j_cbase + nt.node_addr)
        # the compact token registered beside the controller (the counters' and job
        # registers' only reader outside it), then decoded into the issue register
        held = nt
        for k in range(TOKEN_BROADCAST):
            reg = Signal(self.compact, name=f"token_b{k}")
            m.d.sync += reg.eq(held)
            held = reg
        self._decode_masks(m, held)

    def _decode_masks(self, m, held):
        """The issue register S0 from the compact token ``held``: every field copied, and the
        per-lane masks decoded beside it — ``lane_mask[p]`` = lane p's source node exists
        (c·P + p < nsrc, unless ``lm_off``), ``node_mask`` by ``nm_kind``: none, the row's
        lane (bit i_bank) or the lanes of ``lane_mask`` (before ``lm_off``)."""
        P = self.schedule.geometry.lanes
        tok = self.token
        m.d.sync += [getattr(tok, name).eq(getattr(held, name))
                     for name, _ in self.layout if name not in ("lane_mask", "node_mask")]
        lanes = Cat(*(((held.c * P + p) < held.nsrc) for p in range(P)))
        if self.schedule.geometry.rows == 2:     # the pair's lanes: i_bank and the next
            row_bit = (Cat(Const(1, 1), held.odd_ok) << held.i_bank)[:P]
        else:
            row_bit = (Const(1, P) << held.i_bank)[:P]
        m.d.sync += tok.lane_mask.eq(Mux(held.lm_off, 0, lanes))
        with m.Switch(held.nm_kind):
            with m.Case(MaskKind.ROW):
                m.d.sync += tok.node_mask.eq(row_bit)
            with m.Case(MaskKind.LANES):
                m.d.sync += tok.node_mask.eq(lanes)
            with m.Default():
                m.d.sync += tok.node_mask.eq(0)

    def _fused_token(self, m, r: "_Registers", nt):
        """``delayed_feedback``: a FUSED token's fields (a row ends at its last column — the
        last row's end is the bubble token, so that it never meets the column ends of the last
        row in the node units; a column of Σ W e(t−1) ends in the last row)."""
        c_cnt, i_cnt, bubble = r.c_cnt, r.i_cnt, r.bubble
        m.d.comb += [nt.fb_on.eq(r.it != 0), nt.bubble.eq(bubble)]
        with m.If(r.j_op == Op.FUSED):
            row_end = Signal()
            col_end = Signal()
            m.d.comb += [row_end.eq(bubble | ((c_cnt == r.j_Cm1) & (i_cnt != r.j_Nm1))),
                         col_end.eq(~bubble & (i_cnt == r.j_Nm1))]
            m.d.comb += [nt.first.eq(~bubble & (c_cnt == 0)), nt.last.eq(row_end),
                         nt.row_end.eq(row_end),
                         nt.lm_off.eq(bubble),
                         nt.nop.eq(Mux(row_end, NodeOp.ERR, NodeOp.UPD)),
                         nt.node_layer.eq(Mux(row_end, r.j_layer, r.j_lane_layer)),
                         nt.node_addr.eq(Mux(row_end, r.i_addr, c_cnt)),
                         nt.nm_kind.eq(Mux(row_end, MaskKind.ROW,
                                           Mux(col_end, MaskKind.LANES, MaskKind.ZERO))),
                         nt.we_e.eq(row_end & r.j_we_e),
                         nt.we_x.eq(Mux(row_end, r.j_we_x, col_end))]
            m.d.comb += nt.cache_addr.eq(0)
        with m.Else():
            m.d.comb += nt.cache_addr.eq(r.j_cbase + nt.node_addr)

    def _advance(self, m, j_op, c_cnt, i_cnt, i_bank, i_addr, w_addr, bubble, j_Cm1, j_Nm1,
                 job_end, j_by_col):
        """Counter updates of one issued token, and whether it is the job's last. Row sweeps
        go row by row (c inner) — prediction sweeps with ``j_by_col`` column chunk by column
        chunk (i inner), like a column sweep
        (:func:`~pcforge.model.arch.schedule.pred_by_columns`)."""
        P, R = self.schedule.geometry.lanes, self.schedule.geometry.rows
        delayed = self.schedule.spec.schedule == "delayed_feedback"

        def advance_bank(P):            # the next row (pair): R lanes on
            with m.If(i_bank == P - R):
                m.d.sync += [i_bank.eq(0), i_addr.eq(i_addr + 1)]
            with m.Else():
                m.d.sync += i_bank.eq(i_bank + R)

        def by_columns():
            with m.If(i_cnt == j_Nm1):
                m.d.sync += [i_cnt.eq(0), i_bank.eq(0), i_addr.eq(0),
                             c_cnt.eq(c_cnt + 1), w_addr.eq(c_cnt + 1)]
                m.d.comb += job_end.eq(c_cnt == j_Cm1)
            with m.Else():
                m.d.sync += [i_cnt.eq(i_cnt + 1), w_addr.eq(w_addr + j_Cm1 + 1)]
                advance_bank(P)

        with m.Switch(j_op):
            with m.Case(Op.PRED, Op.LEARN):
                with m.If(j_by_col):
                    by_columns()
                with m.Else():
                    m.d.sync += w_addr.eq(w_addr + 1)
                    with m.If(c_cnt == j_Cm1):
                        m.d.sync += [c_cnt.eq(0), i_cnt.eq(i_cnt + 1)]
                        advance_bank(P)
                        m.d.comb += job_end.eq(i_cnt == j_Nm1)
                    with m.Else():
                        m.d.sync += c_cnt.eq(c_cnt + 1)
            with m.Case(Op.FB):
                by_columns()
            with m.Case(Op.NODE):
                m.d.sync += c_cnt.eq(c_cnt + 1)
                m.d.comb += job_end.eq(c_cnt == j_Cm1)
            if delayed:
                with m.Case(Op.FUSED):
                    with m.If(bubble):
                        m.d.comb += job_end.eq(1)
                    with m.Else():
                        m.d.sync += w_addr.eq(w_addr + 1)
                        with m.If(c_cnt == j_Cm1):
                            with m.If(i_cnt == j_Nm1):
                                m.d.sync += bubble.eq(1)    # row n−1 retires next cycle
                            with m.Else():
                                m.d.sync += [c_cnt.eq(0), i_cnt.eq(i_cnt + 1)]
                                advance_bank(P)
                        with m.Else():
                            m.d.sync += c_cnt.eq(c_cnt + 1)


def _and(a, b):
    """``a & b`` where ``b`` may be a constant bool (False: False; True: ``a``)."""
    if b is False:
        return False
    return a if b is True else a & b


def _as_value(v) -> Value:
    """A set-up value (int, bool, enum member or Value) as a Value."""
    if isinstance(v, bool):
        v = int(v)
    return Value.cast(v)


def _or_tree(values: list) -> Value:
    """The OR of ``values`` as a balanced tree (a chain would be as deep as the list)."""
    values = [Value.cast(v) for v in values]
    while len(values) > 1:
        values = [values[k] | values[k + 1] if k + 1 < len(values) else values[k]
                  for k in range(0, len(values), 2)]
    return values[0]


class _Registers:
    """The controller's state: the run (mask, pause, learn, iteration and its FIRST/FINAL
    conditions as registers kept beside it — timing: no compare of ``it`` on the slot
    decision's path), the slot walk, the job registers ``j_*`` (set up once per job), the
    counters of the token in issue, and the FSM's combinational flags."""

    def __init__(self, sch: Schedule):
        g = sch.geometry
        spec, P = g.spec, g.lanes
        L, T = spec.L, spec.iterations
        sizes = spec.sizes
        depths = [g.depth(k) for k in range(L + 1)]
        max_n, max_c = max(sizes), max(depths)
        max_wd = max(g.weight_depth(l) for l in range(1, L + 1))
        max_wait = max(max(w) for w in sch.waits)
        mask = Signal(spec.n_layers)
        pause = Signal()
        learn = Signal()
        it = Signal(range(T + 2))
        cycles = Signal(32)
        done = Signal()
        slot = Signal(range(len(sch.slots) + 1))
        wait = Signal(range(max(2, max_wait + 1)))
        drain = Signal(range(FINAL_DRAIN_CYCLES + 1))
        bubble = Signal()                 # FUSED: the extra token that retires the last row
        j_op, j_nop = Signal(Op), Signal(NodeOp)
        j_layer, j_lane_layer, j_node_layer = (Signal(range(L + 1)) for _ in range(3))
        j_we_e, j_we_x, j_we_c, j_fuse, j_learns, j_by_col = (Signal() for _ in range(6))
        j_Cm1, j_Nm1 = Signal(range(max(max_c, 2))), Signal(range(max(max_n, 2)))
        j_odd_last = Signal()             # two rows per token: the job's row count is odd
        j_nsrc = Signal(range(max_n + 1))
        j_cbase = Signal(range(max(2, sum(depths[1:]) + 1)))
        c_cnt = Signal(range(max(max_c, 2)))
        i_cnt = Signal(range(max(max_n, 2)))
        i_bank = Signal(range(max(P, 2)))
        i_addr = Signal(range(max(max_c, 2)))
        w_addr = Signal(range(max(max_wd + max_c + 1, 2)))
        it_first, it_final = Signal(), Signal()
        job_end = Signal()
        issue = Signal()
        chg = Signal(2)                   # exact stop: an x changed in an iteration of parity p
        last_quiet = Signal()             # exact stop: iteration it − 2 changed no x
        stopped = Signal()                # exact stop: the relaxation ended before T
        marker = Signal()                 # a next marker acts this cycle
        start = Signal()                  # the state machine acts on a start beat this cycle
        beat = Signal()                   # a control beat was taken last cycle
        beat_payload = Signal(control_layout(spec), reset_less=True)   # ... and its payload
        idle_ok = Signal()                # idle, pipeline empty (registered: see host_ok)
        paused_ok = Signal()              # paused (registered: see host_ok)
        # cycles until the last token issued has left the pipeline's last stage (in_flight:
        # that count is not 0, as a register of its own)
        flight = Signal(range(IN_FLIGHT_CYCLES + 1))
        in_flight = Signal()
        self.__dict__.update({k: v for k, v in locals().items()
                              if isinstance(v, (Value, ValueCastable))})
        #: the atoms of the schedule's conditions (:class:`~pcforge.model.arch.schedule.Cond`)
        self.atoms = {"m": mask, "first": it_first, "final": it_final, "learn": learn,
                      "stopped": stopped}
