"""``PCCore``: the predictive coding core generated from a :class:`~pcforge.model.PCSpec`.

It computes exactly what :class:`~pcforge.model.FixedPCN` computes (``docs/datapath.md``), bit
for bit, every iteration. Where each value lives is :class:`~pcforge.model.arch.geometry.CoreGeometry`;
what runs when, and how long each job waits for the results of the previous ones, is the
:class:`~pcforge.model.arch.schedule.Schedule` that :class:`~pcforge.hdl.controller.SlotController`
walks; ``docs/hardware.md`` draws it.

Structure
---------
* **Value-node and error-node arrays**: for every layer k and lane p a memory bank of x_k (and
  e_k, k ≥ 1), node j in lane ``j mod P`` at address ``j div P``; per lane one bank of the
  cached predictions of every connection k (the prediction from a clamped layer, computed once
  per sample), connection k at offset ``c_base[k]``.
* **Local weight memories**: for every connection l and lane p a memory holding the columns
  j ≡ p (mod P) of W_l, row-major (``i·ceil(n_{l-1}/P) + j div P``); one bias memory per
  connection. The same memory serves W f(x) (row sweeps) and Wᵀ e (column sweeps).
* **P MAC lanes**, each with an :class:`ActivationUnit` and a multiplier; a two-stage adder
  tree across lanes for prediction rows; a lane-local accumulator for feedback columns.
* **P node units** (one per lane): error e = E(x·2^s − acc), feedback ε = E(Σ W e), state update
  x ← X(x + round(γ (f'(x) ε − e))), feed-forward x = X(acc), zero.
* For ``schedule = "delayed_feedback"``: a second multiplier per lane and per-lane column
  accumulators, so that one row sweep of W_l feeds both W f(x) and W_lᵀ e_l(t−1); for
  incremental learning a second multiplier per lane forms e·f(x) beside W·e.

Pipeline (a token per cycle; every stage is a register; the stage numbers of the writes and of
the late reads are the schedule's constants ``W_WRITE_STAGE``, ``E_WRITE_STAGE``,
``X_WRITE_STAGE``, ``READ_STAGE``, asserted where they are built)::

  S0  issue register (the controller's token)    S9  adder tree (2nd half); learning: rounding
  S1  read addresses registered beside each port  S10 row accumulator; learning: W, b written
  S2  memory data                                 S11 node operands (acc + bias, cache, Σ W e)
  S3  memory data registered (raw)                S12 x·2^s − acc
  S4  lanes' operands selected; f, f' (act. unit) S13 requantize e, ε, x; e and cache written
  S5  multiplier operands registered              S14 δ = f'·ε − e·2^fx
  S6  ... again, beside each multiplier           S15 γ·δ rounded
  S7  products                                    S16 x + inc fitted; x written
  S8  adder tree (1st half) / lane accumulators; learning: α·e·a

Every memory output is registered before any logic (an ECP5 block RAM's clock-to-output is
~6 ns), and every multiplier's input twice, the second time beside its multiplier (an ECP5
MULT18X18D takes ~4 ns); biases are read by the token in S7 and cached predictions by the
token in S8, so their words do not ride down the pipeline. Datapath registers are reset-less
(only the tokens' valid bits and the controller are reset).

Host interface (all streams follow ``amaranth.lib.stream``: a beat moves when valid & ready)
------------------------------------------------------------------------------------------------
``host_write`` (In): {target, layer, bank, addr, data}. Writes one word (data: signed 32 bits,
  the low bits of the target's format) into memory ``target`` ∈ {X=0, E=1, W=2, B=3} of layer
  (connection for W/B) ``layer``, lane ``bank``, address ``addr`` (see ``CoreGeometry``; bank is
  ignored for B). Ready whenever no run is working and the pipeline is empty (idle, paused or
  done): 1 word/cycle; the word lands one cycle after its beat.
``host_read`` (In) / ``read_data`` (Out): the same addressing, plus target CACHE=4; the word
  appears on ``read_data`` 5 cycles after the request beat and is held until taken; one request
  in flight.
``control`` (In): {resume, pause, learn, mask}. With ``resume = 0`` (accepted when idle) it
  starts a run: x of the clamped layers (mask bit k = 1 clamps layer k) must have been written;
  free layers are initialised by the core. With ``pause = 1`` the core stops after every
  iteration (``paused`` = 1 once the pipeline is empty: x(t+1) and e(t) readable);
  ``resume = 1`` continues it. With ``learn = 1`` the core learns with the spec's rule,
  W_l += round(α e_l f(x_{l−1})ᵀ), b_l += round(α e_l), saturating (``docs/datapath.md`` step
  7): ``after_relaxation`` ends the run with one read-modify-write sweep per connection from
  e(T) and x(T); ``incremental`` (synchronous schedule) updates every iteration from e(t) and
  x(t), inside the feedback sweeps and in row sweeps for connections from clamped layers.
Status: ``busy`` (a run is in progress, also while paused), ``paused``, ``done`` (the last run
  finished; cleared by the next start), ``iteration`` (iterations completed), ``cycles`` (clock
  cycles the run has been working, pauses excluded — equal to
  :func:`pcforge.model.arch.cycles.cycle_report` ``.total`` at the end).
"""
from __future__ import annotations

import numpy as np
from amaranth import Array, Cat, Const, Module, Mux, ResetSignal, Shape, Signal, signed
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..model.arch.geometry import MAX_LANES, CoreGeometry
from ..model.arch.schedule import (E_WRITE_STAGE, PIPELINE_DEPTH, READ_STAGE, W_WRITE_STAGE,
                              X_WRITE_STAGE, can_learn, learns_after, learns_incrementally,
                              schedule)
from ..model.spec import PCSpec, SpecError
from .activation import ActivationUnit
from .controller import NodeOp, Op, SlotController, control_layout
from .fixed import fit, requantize, round_shift

__all__ = ["PCCore", "Target", "HOST_DATA_WIDTH", "check_buildable", "MAX_ROM_BITS"]

#: Width of the host data words (storage formats are at most 32 bits).
HOST_DATA_WIDTH = 32

#: Cycles from a ``host_read`` beat to its word on ``read_data``.
HOST_READ_LATENCY = 5


class Target(enum.Enum, shape=3):
    """Which memory a host access addresses."""
    X = 0
    E = 1
    W = 2
    B = 3
    CACHE = 4


def _depth(words: int) -> int:
    """Memory depth for ``words`` words (at least 2, so that the address port is not 0 bits)."""
    return max(2, words)


#: The pipeline's stages after the read addresses (the schedule's write and late-read stages are
#: asserted against these where they are built): memory words registered ("raw"), the lanes'
#: operands selected and f, f' ("sel"), multiplier operands, the same beside the multiplier,
#: products, the adder tree's two halves, the row accumulator (and learning's writes), node
#: operands, x·2^s − acc, requantize (errors written), δ, γ·δ, x written.
_STAGES = {"raw": 3, "sel": 4, "opd": 5, "dsp": 6, "mul": 7, "t1": 8, "t2": 9, "row": 10,
           "node": 11, "diff": 12, "rq": 13, "delta": 14, "inc": 15, "x": 16}

#: Activation ROM bits (all lanes) the generator accepts: beyond this no supported FPGA holds it.
MAX_ROM_BITS = 1 << 22


def check_buildable(spec: PCSpec, lanes: int) -> CoreGeometry:
    """Refuse, naming the field and the fix, a spec/lane count the generator cannot build."""
    if not isinstance(lanes, int) or isinstance(lanes, bool) or not 1 <= lanes <= MAX_LANES:
        raise SpecError(f"lanes = {lanes!r}: the generator builds 1..{MAX_LANES} MAC lanes")
    g = CoreGeometry(spec, lanes)
    if "tanh" in spec.activations:
        from ..model.activations import tanh_table
        tab = tanh_table(spec.formats.x, spec.table_bits)
        bits = 2 * tab.entries * spec.formats.x.width * lanes
        if bits > MAX_ROM_BITS:
            raise SpecError(
                f"network.table_bits = {spec.table_bits}: the tanh ROMs would need {bits} bits "
                f"over {lanes} lanes (limit {MAX_ROM_BITS}); lower table_bits or use fewer lanes")
    if spec.formats.acc.width + 2 > 64:
        raise SpecError(f"formats.acc width {spec.formats.acc.width}: the core's accumulators "
                        "are limited to 62 bits; narrow formats.w/x/e or use smaller layers")
    return g


class PCCore(wiring.Component):
    """The PC core for ``spec`` with ``lanes`` MAC lanes (see the module docstring for ports)."""

    def __init__(self, spec: PCSpec, lanes: int, *, weights=None, logic_ram_bits: int = 0):
        """``weights``: optional ``(W, b)`` integer arrays (``FixedPCN``'s W and b: the W-store
        and B formats) that the weight and bias memories hold from configuration (a bitstream
        that boots with a trained network); else they start at zero and the host loads them.
        ``logic_ram_bits``: memories of at most this many bits (depth × width) are built from
        flip-flops (Yosys ``ram_style = "logic"``) instead of block RAM — for FPGAs whose block
        RAMs are few (the iCE40UP5K's 30 EBRs); behaviour and cycles are unchanged."""
        self.spec = spec
        self.geometry = g = check_buildable(spec, lanes)
        self.schedule = schedule(spec, lanes)
        self.logic_ram_bits = int(logic_ram_bits)
        #: learning hardware (``control.learn``): the after-relaxation rule, or incremental
        #: learning (an update every iteration) for the synchronous schedule
        self.learns_after = learns_after(spec)
        self.learns_incremental = learns_incrementally(spec)
        self.learns = can_learn(spec)
        self.lanes = P = lanes
        L = spec.L
        F = spec.formats
        self.acc_width = F.acc.width + 2
        max_depth = max([g.depth(k) for k in range(L + 1)]
                        + [g.weight_depth(l) for l in range(1, L + 1)]
                        + [spec.sizes[l] for l in range(1, L + 1)])
        self.host_layout = data.StructLayout({
            "target": Target, "layer": range(L + 1), "bank": range(max(P, 2)),
            "addr": range(max(max_depth, 2)), "data": signed(HOST_DATA_WIDTH)})
        self.read_layout = data.StructLayout({
            "target": Target, "layer": range(L + 1), "bank": range(max(P, 2)),
            "addr": range(max(max_depth, 2))})
        self.control_layout = control_layout(spec)
        # memories (created here so that testbenches can look inside them)
        X, E, B = F.x, F.e, F.b

        def mem(shape, words, init=()):
            depth = _depth(words)
            bits = depth * Shape.cast(shape).width
            attrs = {"ram_style": "logic"} if bits <= self.logic_ram_bits else None
            return memory.Memory(shape=shape, depth=depth, init=list(init), attrs=attrs)

        w_init, b_init = self.weight_images(g, weights)

        layers = range(1, L + 1)
        self.x_mem = [[mem(signed(X.width), g.depth(k)) for _ in range(P)] for k in range(L + 1)]
        self.e_mem = [None] + [[mem(signed(E.width), g.depth(k)) for _ in range(P)]
                               for k in layers]
        # one cache bank per lane for every connection (layer k at offset c_base[k]): reads
        # share the address and a write touches one layer per cycle, so nothing conflicts,
        # and an FPGA spends one set of block RAMs instead of one per layer
        self.c_base = [None] + [sum(g.depth(j) for j in range(1, k)) for k in layers]
        self.c_mem = [mem(signed(self.acc_width), sum(g.depth(k) for k in layers))
                      for _ in range(P)]
        self.w_mem = [None] + [[mem(signed(F.w_store.width), g.weight_depth(k), w_init[k][p])
                                for p in range(P)]
                               for k in layers]
        self.b_mem = [None] + [mem(signed(B.width), spec.sizes[k], b_init[k]) for k in layers]
        super().__init__({
            "host_write": In(stream.Signature(self.host_layout)),
            "host_read": In(stream.Signature(self.read_layout)),
            "read_data": Out(stream.Signature(signed(HOST_DATA_WIDTH))),
            "control": In(stream.Signature(self.control_layout)),
            "busy": Out(1), "paused": Out(1), "done": Out(1),
            "iteration": Out(range(spec.iterations + 2)),
            "cycles": Out(32),
        })

    @staticmethod
    def weight_images(geometry: CoreGeometry, weights) -> tuple:
        """Initial contents of every weight memory ``[l][lane]`` and bias memory ``[l]`` for
        ``weights = (W, b)`` — the very words the host protocol would write — or empty."""
        spec, P = geometry.spec, geometry.lanes
        w_img = [None] + [[[] for _ in range(P)] for _ in range(spec.L)]
        b_img = [None] + [[] for _ in range(spec.L)]
        if weights is None:
            return w_img, b_img
        from .protocol import TARGET, weight_words
        W, b = weights
        F = spec.formats
        for l in range(1, spec.L + 1):
            for name, v, shape, fmt in (
                    (f"W{l}", W[l - 1], (spec.sizes[l], spec.sizes[l - 1]), F.w_store),
                    (f"b{l}", b[l - 1], (spec.sizes[l],), F.b)):
                v = np.asarray(v)
                if v.shape != shape:
                    raise SpecError(f"{name} has shape {v.shape}; the spec needs {shape}")
                lo, hi = -(1 << (fmt.width - 1)), (1 << (fmt.width - 1)) - 1
                if v.size and (v.min() < lo or v.max() > hi):
                    raise SpecError(f"{name} holds values outside the {fmt.width}-bit format "
                                    f"[{lo}, {hi}]: give FixedPCN's integer weights")
        w_img = [None] + [[[0] * _depth(geometry.weight_depth(l)) for _ in range(P)]
                          for l in range(1, spec.L + 1)]
        b_img = [None] + [[0] * _depth(spec.sizes[l]) for l in range(1, spec.L + 1)]
        for w in weight_words(geometry, W, b):
            if w.target == TARGET["w"]:
                w_img[w.layer][w.bank][w.addr] = w.data
            else:
                b_img[w.layer][w.addr] = w.data
        return w_img, b_img

    @staticmethod
    def spec_learns(spec: PCSpec) -> bool:
        """Whether the core for ``spec`` can learn: after relaxation (either schedule), or
        incrementally with the synchronous schedule (with ``delayed_feedback`` e(t) is computed
        inside the very sweep that would have to use it)."""
        return can_learn(spec)

    @classmethod
    def check_learns(cls, spec: PCSpec):
        """Raise ``ValueError`` saying what the core can learn when it cannot learn ``spec``."""
        if not cls.spec_learns(spec):
            raise ValueError(
                f"learning = {spec.learning!r} with schedule = {spec.schedule!r}: the core "
                "learns after relaxation (either schedule) or incrementally (synchronous "
                "schedule only: delayed_feedback computes e(t) inside the sweep that would have "
                "to use it); change network.learning or network.schedule")

    # ------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        spec, g, P = self.spec, self.geometry, self.lanes
        L = spec.L
        F = spec.formats
        X, E, Wf, Bf = F.x, F.e, F.w, F.b
        G, Ws = F.w_guard, F.w_store       # weight memories keep G guard bits (format Ws)
        Facc = F.acc.frac
        A = self.acc_width
        depths = [g.depth(k) for k in range(L + 1)]
        delayed = spec.schedule == "delayed_feedback"
        tanh = "tanh" in spec.activations

        # ---- memories and their ports ---------------------------------------------------
        def ports(mem, name):
            m.submodules[name] = mem
            return mem.read_port(), mem.write_port()

        x_rd, x_wr, e_rd, e_wr, c_rd, c_wr, w_rd, w_wr = ({} for _ in range(8))
        b_rd, b_wr = {}, {}
        for p in range(P):
            for k in range(L + 1):
                x_rd[k, p], x_wr[k, p] = ports(self.x_mem[k][p], f"x{k}_lane{p}")
            for k in range(1, L + 1):
                e_rd[k, p], e_wr[k, p] = ports(self.e_mem[k][p], f"e{k}_lane{p}")
                w_rd[k, p], w_wr[k, p] = ports(self.w_mem[k][p], f"w{k}_lane{p}")
        for p in range(P):
            c_rd[p], c_wr[p] = ports(self.c_mem[p], f"cache_lane{p}")
        c_base = Array(Const(b or 0, range(max(2, sum(depths[1:]) + 1))) for b in self.c_base)
        for l in range(1, L + 1):
            b_rd[l], b_wr[l] = ports(self.b_mem[l], f"bias{l}")

        # ---- controller and the token pipeline -----------------------------------------
        m.submodules.controller = ctl = SlotController(self.schedule, self.learns)
        wiring.connect(m, wiring.flipped(self.control), ctl.control)
        # datapath registers are reset-less (a reset fanned out to thousands of flip-flops
        # was the ECP5's critical net); only the tokens' valid bits are cleared by reset
        t = [ctl.token] + [Signal(ctl.layout, name=f"tok{k}", reset_less=True)
                           for k in range(1, PIPELINE_DEPTH + 1)]
        for k in range(1, PIPELINE_DEPTH + 1):
            m.d.sync += t[k].eq(t[k - 1])
            with m.If(ResetSignal("sync")):
                m.d.sync += t[k].valid.eq(0)
        self._tokens = t                  # the pipeline's tokens, for testbenches to watch
        # some token in flight next cycle (registered: an OR of PIPELINE_DEPTH valid bits stays
        # off the control path; exact whenever the controller is idle or paused, because then
        # it issued nothing in the cycle before)
        pipe_busy = Signal()
        m.d.sync += pipe_busy.eq(Cat(*(tk.valid for tk in t[:-1])).any())
        m.d.comb += ctl.pipe_busy.eq(pipe_busy)
        m.d.comb += [self.busy.eq(ctl.busy), self.paused.eq(ctl.paused), self.done.eq(ctl.done),
                     self.iteration.eq(ctl.iteration), self.cycles.eq(ctl.cycles)]

        def stage(sig, name, k):
            reg = Signal(Shape.cast(sig.shape()), name=f"{name}{k}", reset_less=True)
            m.d.sync += reg.eq(sig)
            return reg

        def carry(sigs, name, k):
            return [stage(s, f"{name}_{p}_s", k) for p, s in enumerate(sigs)]

        def chain(sig, name, k0, k1):
            """``sig`` (valid at stage k0) registered down to stage k1; returns {k: value}."""
            out = {k0: sig}
            for k in range(k0 + 1, k1 + 1):
                out[k] = stage(out[k - 1], name, k)
            return out

        def chains(sigs, name, k0, k1):
            return [chain(s, f"{name}_{p}_s", k0, k1) for p, s in enumerate(sigs)]

        # ---- host access (registered: the memory ports see registers) -------------------
        hw, hr = self.host_write, self.host_read
        host_ok = ctl.host_ok
        rd_pending = Signal()            # a request is being fetched or its word is on read_data
        m.d.comb += [hw.ready.eq(host_ok), hr.ready.eq(host_ok & ~rd_pending)]
        hw_fire = hw.valid & hw.ready
        hr_fire = hr.valid & hr.ready
        hwr = Signal(self.host_layout, reset_less=True)   # the host write of last cycle
        hwr_v = Signal()
        m.d.sync += [hwr_v.eq(hw_fire), hwr.eq(hw.payload)]
        rd_sel = Signal(self.read_layout, reset_less=True)
        rd_step = Signal(HOST_READ_LATENCY - 1)   # one bit per cycle of the read in flight
        m.d.sync += rd_step.eq(Cat(hr_fire, rd_step[:-1]))
        with m.If(hr_fire):
            m.d.sync += [rd_sel.eq(hr.payload), rd_pending.eq(1)]
        with m.If(self.read_data.valid & self.read_data.ready):
            m.d.sync += [self.read_data.valid.eq(0), rd_pending.eq(0)]

        def host_write_to(target, layer, bank=None):
            sel = hwr_v & (hwr.target == target) & (hwr.layer == layer)
            if bank is not None:
                sel = sel & (hwr.bank == bank)
            return sel

        def write_port(port, pipe_en, pipe_addr, pipe_data, target, layer, bank=None):
            """A write port shared by the pipeline (while running) and the host (otherwise:
            the two never write in the same cycle)."""
            host_en = host_write_to(target, layer, bank)
            m.d.comb += [port.en.eq(pipe_en | host_en),
                         port.addr.eq(Mux(hwr_v, hwr.addr, pipe_addr)),
                         port.data.eq(Mux(hwr_v, hwr.data, pipe_data))]

        # ---- read addresses: one register per port, loaded from the token in the stage
        # before its read stage (or from the host's request), so that every memory sees a
        # register right next to it instead of a mux tree fed by one wide fan-out
        def address(port, k_read, pipe_addr, host_addr):
            reg = Signal.like(port.addr, name=f"{port.addr.name}_r", reset_less=True)
            tk = t[k_read - 1]
            m.d.sync += reg.eq(Mux(tk.valid, pipe_addr(tk), host_addr))
            m.d.comb += port.addr.eq(reg)

        R = READ_STAGE
        for p in range(P):
            for k in range(L + 1):
                address(x_rd[k, p], R["x"], lambda tk, k=k: Mux(tk.lane_layer == k, tk.c,
                                                                 tk.i_addr), hr.payload.addr)
            for k in range(1, L + 1):
                address(e_rd[k, p], R["e"], lambda tk, k=k: Mux(tk.lane_layer == k, tk.c,
                                                                 tk.i_addr), hr.payload.addr)
                address(w_rd[k, p], R["w"], lambda tk: tk.w_addr, hr.payload.addr)
            address(c_rd[p], R["c"], lambda tk: tk.cache_addr,
                    c_base[hr.payload.layer] + hr.payload.addr)
        for l in range(1, L + 1):
            address(b_rd[l], R["b"], lambda tk: tk.row, hr.payload.addr)

        # ---- every memory output registered ----------------------------------------------
        S = _STAGES
        assert R["x"] == R["e"] == R["w"] and R["x"] + 2 == S["raw"]
        raw_x = {kp: stage(port.data, f"rx{kp[0]}_{kp[1]}_", S["raw"]) for kp, port in x_rd.items()}
        raw_e = {kp: stage(port.data, f"re{kp[0]}_{kp[1]}_", S["raw"]) for kp, port in e_rd.items()}
        raw_w = {kp: stage(port.data, f"rw{kp[0]}_{kp[1]}_", S["raw"]) for kp, port in w_rd.items()}
        # the late reads: biases (address in S4, word registered in S6), cache (S5 → S7)
        raw_b = {l: stage(port.data, f"rb{l}_", READ_STAGE["b"] + 2) for l, port in b_rd.items()}
        raw_c = {p: stage(port.data, f"rc{p}_", READ_STAGE["c"] + 2) for p, port in c_rd.items()}

        # host read response, in two registered steps (a 32-bit mux over every port is too
        # deep for one cycle): the lane within each memory group, then the group
        groups = [(Target.X, k, {p: raw_x[k, p] for p in range(P)}) for k in range(L + 1)]
        groups += [(Target.E, k, {p: raw_e[k, p] for p in range(P)}) for k in range(1, L + 1)]
        groups += [(Target.W, k, {p: raw_w[k, p] for p in range(P)}) for k in range(1, L + 1)]
        groups += [(Target.CACHE, None, raw_c), (Target.B, None, raw_b)]
        picked = []
        for n, (tgt, k, regs) in enumerate(groups):
            sel = rd_sel.layer if tgt == Target.B else rd_sel.bank
            v = Signal(signed(HOST_DATA_WIDTH), name=f"resp_g{n}", reset_less=True)
            with m.Switch(sel):
                for key, reg in regs.items():
                    with m.Case(key):
                        m.d.sync += v.eq(reg)
            picked.append((tgt, k, v))
        resp = Signal(signed(HOST_DATA_WIDTH))
        with m.Switch(rd_sel.target):
            for tgt in (Target.X, Target.E, Target.W, Target.CACHE, Target.B):
                with m.Case(tgt):
                    mine = [(k, v) for t_, k, v in picked if t_ == tgt]
                    if mine[0][0] is None:
                        m.d.comb += resp.eq(mine[0][1])
                    else:
                        with m.Switch(rd_sel.layer):
                            for k, v in mine:
                                with m.Case(k):
                                    m.d.comb += resp.eq(v)
        with m.If(rd_step[-1]):
            m.d.sync += [self.read_data.payload.eq(resp), self.read_data.valid.eq(1)]

        # ---- S2 → S3: lanes' operands selected from the raw words -----------------------
        t2, t3 = t[S["raw"]], t[S["sel"]]
        xl2 = [Signal(signed(X.width), name=f"xl2_{p}", reset_less=True) for p in range(P)]
        el2 = [Signal(signed(E.width), name=f"el2_{p}", reset_less=True) for p in range(P)]
        w2 = [Signal(signed(Ws.width), name=f"w2_{p}", reset_less=True) for p in range(P)]
        # the broadcast operands in two steps (timing: a (L+1)·P-way mux over words spread
        # over every lane's memory is too deep for one ECP5 cycle): the bank within each
        # layer into a register of S3 → S4, then the layer, in front of the operand registers
        xs_k2 = [Signal(signed(X.width), name=f"xs_k2_{k}") for k in range(L + 1)]
        eb_k2 = [Signal(signed(E.width), name=f"eb_k2_{k}") for k in range(L + 1)]
        for p in range(P):
            with m.Switch(t2.lane_layer):
                for k in range(L + 1):
                    with m.Case(k):
                        m.d.comb += xl2[p].eq(raw_x[k, p])
                        if k >= 1:
                            m.d.comb += el2[p].eq(raw_e[k, p])
            with m.Switch(t2.layer):
                for k in range(1, L + 1):
                    with m.Case(k):
                        m.d.comb += w2[p].eq(raw_w[k, p])
        with m.Switch(t2.i_bank):
            for p in range(P):
                with m.Case(p):
                    for k in range(L + 1):
                        m.d.comb += xs_k2[k].eq(raw_x[k, p])
                        if k >= 1:
                            m.d.comb += eb_k2[k].eq(raw_e[k, p])
        # activation units (latency 1: f, f' belong to the token in S3)
        f3, d3 = [], []
        for p in range(P):
            au = ActivationUnit(spec)
            m.submodules[f"act_lane{p}"] = au
            m.d.comb += [au.x.eq(xl2[p]), au.layer.eq(t2.lane_layer),
                         au.layer_out.eq(t3.lane_layer)]
            f3.append(au.f)
            # f' for the node update (S11): all of it for tanh, else 0 or 1.0 (one bit)
            d3.append(au.d if tanh else au.d != 0)
        w3 = carry(w2, "w", S["sel"])
        xl3, el3 = carry(xl2, "xl", S["sel"]), carry(el2, "el", S["sel"])
        xs_k3 = [stage(v, f"xs_k{k}_", S["sel"]) for k, v in enumerate(xs_k2)]
        eb_k3 = [stage(v, f"eb_k{k}_", S["sel"]) for k, v in enumerate(eb_k2) if k >= 1]
        xs3 = Signal(signed(X.width))
        eb3 = Signal(signed(E.width))
        with m.Switch(t3.layer):
            for k in range(L + 1):
                with m.Case(k):
                    m.d.comb += xs3.eq(xs_k3[k])
                    if k >= 1:
                        m.d.comb += eb3.eq(eb_k3[k - 1])

        # ---- multiplier operands (registered twice: the second beside the multiplier) --
        wm3 = [w >> G for w in w3] if G else w3     # the multipliers' W: guard bits dropped
        WA = max(X.width, E.width)
        WB = max(Wf.width, X.width)

        def multiply(a, b, width, name):
            """a × b: operands registered in S4 and again in S5 (the second register has only
            the multiplier to drive, so placement puts it beside the hard multiplier: an ECP5
            MULT18X18D takes ~4 ns of a 10 ns cycle), product in S6."""
            ra = stage(stage(a, f"{name}a", S["opd"]), f"{name}a", S["dsp"])
            rb = stage(stage(b, f"{name}b", S["opd"]), f"{name}b", S["dsp"])
            pr = Signal(signed(width), name=f"{name}{S['mul']}", reset_less=True)
            m.d.sync += pr.eq(ra * rb)
            return pr

        prod = []
        for p in range(P):
            opa = Mux(t3.lane_mask[p], Mux(t3.mul_e, eb3, f3[p]), 0)
            opb = Mux(t3.mul_f, f3[p], wm3[p])               # W, or f(x) when learning
            prod.append(multiply(opa.as_signed(), opb.as_signed(), WA + WB, f"prod_{p}_"))
        if delayed:                   # the second multiplier: W · e_l(t−1) from the same read
            prodfb = [multiply(Mux(t3.lane_mask[p] & t3.fb_on, eb3, 0).as_signed(), wm3[p],
                                E.width + Wf.width, f"prodfb_{p}_") for p in range(P)]

        # values the node units need later ride down the pipeline
        xl = chains(xl3, "xl", S["sel"], S["row"])
        el = chains(el3, "el", S["sel"], S["diff"])
        dd = chains(d3, "d", S["sel"], S["rq"])
        xs = chain(xs3, "xs", S["sel"], S["row"])

        # ---- learning: α·product, rounded, W and b written (W_WRITE_STAGE) ------------
        assert S["row"] == W_WRITE_STAGE
        tw = t[W_WRITE_STAGE]
        if self.learns:
            al = spec.alpha
            ws = chains(w3, "w", S["sel"], S["t2"])
            ebc = chain(eb3, "eb", S["sel"], S["mul"])
            learn_prod = prod
            if self.learns_incremental:
                # a second multiplier per lane: e_l[i] · f(x_{l−1}[j]) beside the feedback
                # product W[i, j] · e_l[i] of the same token (column sweeps learn in passing)
                learn_prod = [multiply(Mux(t3.lane_mask[p], eb3, 0).as_signed(), f3[p],
                                        E.width + X.width, f"prodl_{p}_") for p in range(P)]
            dwm = [stage(learn_prod[p] * al.mantissa, f"dwm_{p}_s", S["t1"]) for p in range(P)]
            dw = [stage(round_shift(dwm[p], E.frac + X.frac + al.frac - Ws.frac, Ws.rounding),
                        f"dw_{p}_s", S["t2"]) for p in range(P)]
            wn = [stage(fit(ws[p][S["t2"]] + dw[p], Ws)[0], f"wn_{p}_s", S["row"])
                  for p in range(P)]
            dbm = stage(ebc[S["mul"]] * al.mantissa, "dbm", S["t1"])
            db = stage(round_shift(dbm, E.frac + al.frac - Bf.frac, Bf.rounding), "db", S["t2"])
        # the bias of the token in the tree's second half (read by it at READ_STAGE["b"])
        assert READ_STAGE["b"] + 2 == S["t2"]
        t_b = t[S["t2"]]
        b_t2 = Signal(signed(Bf.width), reset_less=True)
        with m.Switch(t_b.layer):
            for l in range(1, L + 1):
                with m.Case(l):
                    m.d.comb += b_t2.eq(raw_b[l])
        b_row = stage(b_t2, "b", S["row"])
        if self.learns:
            bn = stage(fit(b_t2 + db, Bf)[0], "bn", S["row"])
        for l in range(1, L + 1):
            for p in range(P):
                if self.learns:
                    en = tw.valid & tw.learn_w & (tw.layer == l) & tw.lane_mask[p]
                else:
                    en = Const(0, 1)
                write_port(w_wr[l, p], en, tw.w_addr, wn[p] if self.learns else 0,
                           Target.W, l, p)
            if self.learns:
                en = tw.valid & tw.learn_b & (tw.layer == l)
            else:
                en = Const(0, 1)
            write_port(b_wr[l], en, tw.row, bn if self.learns else 0, Target.B, l)

        # ---- adder tree (two halves) / lane accumulators --------------------------------
        t_mul, t_t1, t_t2 = t[S["mul"]], t[S["t1"]], t[S["t2"]]
        levels = max(0, (P - 1).bit_length())
        group = 1 << ((levels + 1) // 2)              # products summed in the first half
        part = [stage(sum(prod[i:i + group]), f"part{i // group}_", S["t1"])
                 for i in range(0, P, group)]
        tree = Signal(signed(A), name="tree", reset_less=True)
        m.d.sync += tree.eq(sum(part))
        lacc = [Signal(signed(A), name=f"lacc_{p}", reset_less=True) for p in range(P)]
        with m.If(t_mul.valid & (t_mul.op == Op.FB)):
            for p in range(P):
                m.d.sync += lacc[p].eq(Mux(t_mul.first, 0, lacc[p]) + prod[p])
        if delayed:                   # per lane one accumulator per column it owns
            n_cols = max(depths[:L])
            colacc = [Array(Signal(signed(A), name=f"colacc_{p}_{c}", reset_less=True) for c in range(n_cols))
                      for p in range(P)]
            with m.If(t_mul.valid & (t_mul.op == Op.FUSED) & ~t_mul.bubble):
                for p in range(P):
                    cell = colacc[p][t_mul.c]
                    m.d.sync += cell.eq(Mux(t_mul.row == 0, 0, cell) + prodfb[p])
            fb_t2 = carry([Mux(t_t1.op == Op.FUSED, colacc[p][t_t1.c], lacc[p]) for p in range(P)],
                        "fb", S["t2"])
        else:
            fb_t2 = carry(lacc, "fb", S["t2"])
        fb_row = carry(fb_t2, "fb", S["row"])

        # ---- row accumulator ----------------------------------------------------------
        acc_row = Signal(signed(A), name="acc_row", reset_less=True)
        with m.If(t_t2.valid & ((t_t2.op == Op.PRED) | (t_t2.op == Op.FUSED))):
            m.d.sync += acc_row.eq(Mux(t_t2.first, 0, acc_row) + tree)

        # ---- node-unit operands -----------------------------------------------------
        t_row = t[S["row"]]
        assert READ_STAGE["c"] + 2 == S["row"]
        pred = Signal(signed(A + 1), name="pred")
        m.d.comb += pred.eq((acc_row << (Facc - X.frac - Wf.frac)) + (b_row << (Facc - Bf.frac)))
        acc_n = [Signal(signed(A + 1), name=f"acc_n_{p}", reset_less=True) for p in range(P)]   # acc_l (frac F)
        x_n = [Signal(signed(X.width), name=f"x_n_{p}", reset_less=True) for p in range(P)]
        fbs_n = carry(fb_row, "fbs", S["node"])                                  # Σ W e (fe + fw)
        for p in range(P):
            with m.Switch(t_row.op):
                with m.Case(Op.PRED):
                    m.d.sync += [acc_n[p].eq(pred), x_n[p].eq(xs[S["row"]])]
                with m.Case(Op.FB, Op.NODE):
                    m.d.sync += [acc_n[p].eq(raw_c[p]), x_n[p].eq(xl[p][S["row"]])]
                if delayed:
                    with m.Case(Op.FUSED):
                        m.d.sync += [acc_n[p].eq(pred),
                                     x_n[p].eq(Mux(t_row.row_end, xs[S["row"]], xl[p][S["row"]]))]

        # ---- x·2^s − acc ---------------------------------------------------------------
        t_diff = t[S["diff"]]
        diff = [stage((x_n[p] << (Facc - X.frac)) - acc_n[p], f"diff_{p}_s", S["diff"])
                  for p in range(P)]
        acc_d, fbs_d = carry(acc_n, "acc", S["diff"]), carry(fbs_n, "fbs", S["diff"])
        x_d = carry(x_n, "x", S["diff"])

        # ---- requantize; write e and the cache --------------------------------------
        assert S["rq"] == E_WRITE_STAGE
        t_rq = t[E_WRITE_STAGE]
        e_q = [Signal(signed(E.width), name=f"e_q_{p}", reset_less=True) for p in range(P)]
        eps_q = [Signal(signed(E.width), name=f"eps_q_{p}", reset_less=True) for p in range(P)]
        xq_q = [Signal(signed(X.width), name=f"xq_q_{p}", reset_less=True) for p in range(P)]
        cache_q = carry(acc_d, "cache", S["rq"])
        for p in range(P):
            err, _ = requantize(diff[p], Facc, E)
            eps, _ = requantize(fbs_d[p], E.frac + Wf.frac, E)
            xq, _ = requantize(acc_d[p], Facc, X)
            m.d.sync += [e_q[p].eq(Mux((t_diff.nop == NodeOp.ERR) | t_diff.fuse, err,
                                       el[p][S["diff"]])),
                         eps_q[p].eq(eps), xq_q[p].eq(xq)]
        x_q = carry(x_d, "x", S["rq"])
        for p in range(P):
            for k in range(1, L + 1):
                en = t_rq.valid & (t_rq.node_layer == k) & t_rq.node_mask[p] & t_rq.we_e
                write_port(e_wr[k, p], en, t_rq.node_addr, e_q[p], Target.E, k, p)
            m.d.comb += [c_wr[p].en.eq(t_rq.valid & (t_rq.node_layer != 0) & t_rq.node_mask[p]
                                       & t_rq.we_c),
                         c_wr[p].addr.eq(t_rq.cache_addr), c_wr[p].data.eq(cache_q[p])]

        # ---- δ = f′·ε − e·2^fx ------------------------------------------------------
        dwidth = X.width + E.width + 2
        delta = [Signal(signed(dwidth), name=f"delta_{p}", reset_less=True) for p in range(P)]
        for p in range(P):
            if tanh:
                fe_term = dd[p][S["rq"]] * eps_q[p]
            else:                                    # f' ∈ {0, 1.0}: a mux, no multiplier
                fe_term = Mux(dd[p][S["rq"]], eps_q[p] << X.frac, 0)
            m.d.sync += delta[p].eq(Mux(t_rq.nop == NodeOp.UPD, fe_term, 0)
                                      - (e_q[p] << X.frac))
        x_dl, xq_dl = carry(x_q, "x", S["delta"]), carry(xq_q, "xq", S["delta"])

        # ---- γ·δ rounded ----------------------------------------------------------------
        gm = spec.gamma
        inc = [stage(round_shift(delta[p] * gm.mantissa, E.frac + gm.frac, X.rounding),
                       f"inc_{p}_s", S["inc"]) for p in range(P)]
        x_i, xq_i = carry(x_dl, "x", S["inc"]), carry(xq_dl, "xq", S["inc"])

        # ---- x + inc fitted; write x -----------------------------------------------
        assert S["x"] == X_WRITE_STAGE == PIPELINE_DEPTH
        t_inc, t_x = t[S["inc"]], t[X_WRITE_STAGE]
        x_new = [Signal(signed(X.width), name=f"x_new_{p}", reset_less=True) for p in range(P)]
        for p in range(P):
            upd, _ = fit(x_i[p] + inc[p], X)
            with m.Switch(t_inc.nop):
                with m.Case(NodeOp.FF):
                    m.d.sync += x_new[p].eq(xq_i[p])
                with m.Case(NodeOp.ZERO):
                    m.d.sync += x_new[p].eq(0)
                with m.Default():
                    m.d.sync += x_new[p].eq(upd)
            for k in range(L + 1):
                en = t_x.valid & t_x.we_x & (t_x.node_layer == k) & t_x.node_mask[p]
                write_port(x_wr[k, p], en, t_x.node_addr, x_new[p], Target.X, k, p)
        return m
