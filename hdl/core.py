"""``PCCore``: the predictive coding core generated from a :class:`~pcforge.model.PCSpec`.

It computes exactly what :class:`~pcforge.model.FixedPCN` computes (``docs/datapath.md``), bit
for bit, every iteration. Where each value lives is :class:`~pcforge.model.geometry.CoreGeometry`;
what runs when, and how long each job waits for the results of the previous ones, is the
:class:`~pcforge.model.schedule.Schedule` that :class:`~pcforge.hdl.controller.SlotController`
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

  S0  issue register: read addresses (x, e, W)    S8  row accumulator; learning: W, b written
  S1  memory data                                 S9  node operands (acc + bias, cache, Σ W e)
  S2  memory data registered (raw)                S10 x·2^s − acc
  S3  lanes' operands selected; f, f' (act. unit) S11 requantize e, ε, x; e and cache written
  S4  multiplier operands registered              S12 δ = f'·ε − e·2^fx
  S5  products                                    S13 γ·δ rounded
  S6  adder tree (1st half) / lane accumulators   S14 x + inc fitted; x written
  S7  adder tree (2nd half); learning: rounding

Every memory output is registered before any logic (an ECP5 block RAM's clock-to-output is
~6 ns), and so is every multiplier's input, next to its multiplier; biases are read by the
token in S5 and cached predictions by the token in S6, so their words do not ride down the
pipeline.

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
  :func:`pcforge.model.cycles.cycle_report` ``.total`` at the end).
"""
from __future__ import annotations

import numpy as np
from amaranth import Array, Cat, Const, Module, Mux, Shape, Signal, signed
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..model.geometry import MAX_LANES, CoreGeometry
from ..model.schedule import (E_WRITE_STAGE, PIPELINE_DEPTH, READ_STAGE, W_WRITE_STAGE,
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


#: The pipeline's stages after S3 (the schedule's write and late-read stages are asserted
#: against these where they are built): multiplier operands, products, the adder tree's two
#: halves, the row accumulator (and learning's writes), node operands, x·2^s − acc, requantize
#: (errors written), δ, γ·δ, x written.
_STAGES = {"opd": 4, "mul": 5, "t1": 6, "t2": 7, "row": 8, "node": 9, "diff": 10, "rq": 11,
           "delta": 12, "inc": 13, "x": 14}

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
        t = [ctl.token] + [Signal(ctl.layout, name=f"tok{k}") for k in range(1, PIPELINE_DEPTH + 1)]
        for k in range(1, PIPELINE_DEPTH + 1):
            m.d.sync += t[k].eq(t[k - 1])
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
            reg = Signal(Shape.cast(sig.shape()), name=f"{name}{k}")
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
        hwr = Signal(self.host_layout)   # the host write of last cycle
        hwr_v = Signal()
        m.d.sync += [hwr_v.eq(hw_fire), hwr.eq(hw.payload)]
        rd_sel = Signal(self.read_layout)
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

        # ---- S0: read addresses (from the issue register, or the host's request) -------
        t0 = t[0]
        for p in range(P):
            for k in range(L + 1):
                m.d.comb += x_rd[k, p].addr.eq(Mux(t0.valid, Mux(t0.lane_layer == k, t0.c,
                                                                 t0.i_addr), rd_sel.addr))
            for k in range(1, L + 1):
                m.d.comb += [
                    e_rd[k, p].addr.eq(Mux(t0.valid, Mux(t0.lane_layer == k, t0.c, t0.i_addr),
                                           rd_sel.addr)),
                    w_rd[k, p].addr.eq(Mux(t0.valid, t0.w_addr, rd_sel.addr))]
        tb, tc = t[READ_STAGE["b"]], t[READ_STAGE["c"]]
        host_caddr = Signal.like(tc.cache_addr)
        m.d.sync += host_caddr.eq(c_base[hr.payload.layer] + hr.payload.addr)
        for p in range(P):
            m.d.comb += c_rd[p].addr.eq(Mux(tc.valid, tc.cache_addr, host_caddr))
        for l in range(1, L + 1):
            m.d.comb += b_rd[l].addr.eq(Mux(tb.valid, tb.row, rd_sel.addr))

        # ---- S2: every memory output registered ----------------------------------------
        raw_x = {kp: stage(port.data, f"rx{kp[0]}_{kp[1]}_", 2) for kp, port in x_rd.items()}
        raw_e = {kp: stage(port.data, f"re{kp[0]}_{kp[1]}_", 2) for kp, port in e_rd.items()}
        raw_w = {kp: stage(port.data, f"rw{kp[0]}_{kp[1]}_", 2) for kp, port in w_rd.items()}
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
            v = Signal(signed(HOST_DATA_WIDTH), name=f"resp_g{n}")
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
        t2, t3 = t[2], t[3]
        xl2 = [Signal(signed(X.width), name=f"xl2_{p}") for p in range(P)]
        el2 = [Signal(signed(E.width), name=f"el2_{p}") for p in range(P)]
        w2 = [Signal(signed(Ws.width), name=f"w2_{p}") for p in range(P)]
        xs2 = Signal(signed(X.width))
        eb2 = Signal(signed(E.width))
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
        with m.Switch(Cat(t2.i_bank, t2.layer)):
            for k in range(L + 1):
                for p in range(P):
                    with m.Case(p | (k << len(t2.i_bank))):
                        m.d.comb += xs2.eq(raw_x[k, p])
                        if k >= 1:
                            m.d.comb += eb2.eq(raw_e[k, p])
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
        w3 = carry(w2, "w", 3)
        xl3, el3 = carry(xl2, "xl", 3), carry(el2, "el", 3)
        xs3, eb3 = stage(xs2, "xs", 3), stage(eb2, "eb", 3)

        # ---- S3 → S4: multiplier operands registered (beside each lane's multiplier) ------
        S = _STAGES
        wm3 = [w >> G for w in w3] if G else w3     # the multipliers' W: guard bits dropped
        WA = max(X.width, E.width)
        WB = max(Wf.width, X.width)

        def multiply(a, b, width, name):
            """a × b: operands registered in S4, product in S5."""
            ra = stage(a, f"{name}a", S["opd"])
            rb = stage(b, f"{name}b", S["opd"])
            pr = Signal(signed(width), name=f"{name}{S['mul']}")
            m.d.sync += pr.eq(ra * rb)
            return pr

        prod5 = []
        for p in range(P):
            opa = Mux(t3.lane_mask[p], Mux(t3.mul_e, eb3, f3[p]), 0)
            opb = Mux(t3.mul_f, f3[p], wm3[p])               # W, or f(x) when learning
            prod5.append(multiply(opa.as_signed(), opb.as_signed(), WA + WB, f"prod_{p}_"))
        if delayed:                   # the second multiplier: W · e_l(t−1) from the same read
            prodfb5 = [multiply(Mux(t3.lane_mask[p] & t3.fb_on, eb3, 0).as_signed(), wm3[p],
                                E.width + Wf.width, f"prodfb_{p}_") for p in range(P)]

        # values the node units need later ride down the pipeline
        xl = chains(xl3, "xl", 3, S["row"])
        el = chains(el3, "el", 3, S["diff"])
        dd = chains(d3, "d", 3, S["rq"])
        xs = chain(xs3, "xs", 3, S["row"])

        # ---- learning: α·product (S6), rounded (S7), W and b written (S8) ----------------
        assert S["row"] == W_WRITE_STAGE
        tw = t[W_WRITE_STAGE]
        if self.learns:
            al = spec.alpha
            ws = chains(w3, "w", 3, S["t2"])
            ebc = chain(eb3, "eb", 3, S["mul"])
            learn_prod5 = prod5
            if self.learns_incremental:
                # a second multiplier per lane: e_l[i] · f(x_{l−1}[j]) beside the feedback
                # product W[i, j] · e_l[i] of the same token (column sweeps learn in passing)
                learn_prod5 = [multiply(Mux(t3.lane_mask[p], eb3, 0).as_signed(), f3[p],
                                        E.width + X.width, f"prodl_{p}_") for p in range(P)]
            dwm = [stage(learn_prod5[p] * al.mantissa, f"dwm_{p}_s", S["t1"]) for p in range(P)]
            dw = [stage(round_shift(dwm[p], E.frac + X.frac + al.frac - Ws.frac, Ws.rounding),
                        f"dw_{p}_s", S["t2"]) for p in range(P)]
            wn = [stage(fit(ws[p][S["t2"]] + dw[p], Ws)[0], f"wn_{p}_s", S["row"])
                  for p in range(P)]
            dbm = stage(ebc[S["mul"]] * al.mantissa, "dbm", S["t1"])
            db = stage(round_shift(dbm, E.frac + al.frac - Bf.frac, Bf.rounding), "db", S["t2"])
        # the bias of the token in S7 (read by it in S5)
        assert READ_STAGE["b"] + 2 == S["t2"]
        tb7 = t[S["t2"]]
        b7 = Signal(signed(Bf.width))
        with m.Switch(tb7.layer):
            for l in range(1, L + 1):
                with m.Case(l):
                    m.d.comb += b7.eq(raw_b[l])
        b8 = stage(b7, "b", S["row"])
        if self.learns:
            bn = stage(fit(b7 + db, Bf)[0], "bn", S["row"])
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

        # ---- S6, S7: adder tree (two halves) / lane accumulators ------------------------
        t5, t6, t7 = t[S["mul"]], t[S["t1"]], t[S["t2"]]
        levels = max(0, (P - 1).bit_length())
        group = 1 << ((levels + 1) // 2)              # products summed in the first half
        part6 = [stage(sum(prod5[i:i + group]), f"part{i // group}_", S["t1"])
                 for i in range(0, P, group)]
        tree7 = Signal(signed(A), name="tree7")
        m.d.sync += tree7.eq(sum(part6))
        lacc6 = [Signal(signed(A), name=f"lacc6_{p}") for p in range(P)]
        with m.If(t5.valid & (t5.op == Op.FB)):
            for p in range(P):
                m.d.sync += lacc6[p].eq(Mux(t5.first, 0, lacc6[p]) + prod5[p])
        if delayed:                   # per lane one accumulator per column it owns
            n_cols = max(depths[:L])
            colacc = [Array(Signal(signed(A), name=f"colacc_{p}_{c}") for c in range(n_cols))
                      for p in range(P)]
            with m.If(t5.valid & (t5.op == Op.FUSED) & ~t5.bubble):
                for p in range(P):
                    cell = colacc[p][t5.c]
                    m.d.sync += cell.eq(Mux(t5.row == 0, 0, cell) + prodfb5[p])
            fb7 = carry([Mux(t6.op == Op.FUSED, colacc[p][t6.c], lacc6[p]) for p in range(P)],
                        "fb", S["t2"])
        else:
            fb7 = carry(lacc6, "fb", S["t2"])
        fb8 = carry(fb7, "fb", S["row"])

        # ---- S8: row accumulator ----------------------------------------------------------
        acc8 = Signal(signed(A), name="acc8")
        with m.If(t7.valid & ((t7.op == Op.PRED) | (t7.op == Op.FUSED))):
            m.d.sync += acc8.eq(Mux(t7.first, 0, acc8) + tree7)

        # ---- S9: node-unit operands -----------------------------------------------------
        t8 = t[S["row"]]
        assert READ_STAGE["c"] + 2 == S["row"]
        pred8 = Signal(signed(A + 1), name="pred8")
        m.d.comb += pred8.eq((acc8 << (Facc - X.frac - Wf.frac)) + (b8 << (Facc - Bf.frac)))
        accn = [Signal(signed(A + 1), name=f"acc9_{p}") for p in range(P)]   # acc_l (frac F)
        xn = [Signal(signed(X.width), name=f"x9_{p}") for p in range(P)]
        fbs9 = carry(fb8, "fbs", S["node"])                                  # Σ W e (fe + fw)
        for p in range(P):
            with m.Switch(t8.op):
                with m.Case(Op.PRED):
                    m.d.sync += [accn[p].eq(pred8), xn[p].eq(xs[S["row"]])]
                with m.Case(Op.FB, Op.NODE):
                    m.d.sync += [accn[p].eq(raw_c[p]), xn[p].eq(xl[p][S["row"]])]
                if delayed:
                    with m.Case(Op.FUSED):
                        m.d.sync += [accn[p].eq(pred8),
                                     xn[p].eq(Mux(t8.row_end, xs[S["row"]], xl[p][S["row"]]))]

        # ---- S10: x·2^s − acc ---------------------------------------------------------------
        t10 = t[S["diff"]]
        diff10 = [stage((xn[p] << (Facc - X.frac)) - accn[p], f"diff_{p}_s", S["diff"])
                  for p in range(P)]
        acc10, fbs10 = carry(accn, "acc", S["diff"]), carry(fbs9, "fbs", S["diff"])
        x10 = carry(xn, "x", S["diff"])

        # ---- S11: requantize; write e and the cache --------------------------------------
        assert S["rq"] == E_WRITE_STAGE
        t11 = t[E_WRITE_STAGE]
        e11 = [Signal(signed(E.width), name=f"e11_{p}") for p in range(P)]
        eps11 = [Signal(signed(E.width), name=f"eps11_{p}") for p in range(P)]
        xq11 = [Signal(signed(X.width), name=f"xq11_{p}") for p in range(P)]
        cache11 = carry(acc10, "cache", S["rq"])
        for p in range(P):
            err, _ = requantize(diff10[p], Facc, E)
            eps, _ = requantize(fbs10[p], E.frac + Wf.frac, E)
            xq, _ = requantize(acc10[p], Facc, X)
            m.d.sync += [e11[p].eq(Mux((t10.nop == NodeOp.ERR) | t10.fuse, err,
                                       el[p][S["diff"]])),
                         eps11[p].eq(eps), xq11[p].eq(xq)]
        x11 = carry(x10, "x", S["rq"])
        for p in range(P):
            for k in range(1, L + 1):
                en = t11.valid & (t11.node_layer == k) & t11.node_mask[p] & t11.we_e
                write_port(e_wr[k, p], en, t11.node_addr, e11[p], Target.E, k, p)
            m.d.comb += [c_wr[p].en.eq(t11.valid & (t11.node_layer != 0) & t11.node_mask[p]
                                       & t11.we_c),
                         c_wr[p].addr.eq(t11.cache_addr), c_wr[p].data.eq(cache11[p])]

        # ---- S12: δ = f′·ε − e·2^fx ------------------------------------------------------
        dw_ = X.width + E.width + 2
        delta12 = [Signal(signed(dw_), name=f"delta12_{p}") for p in range(P)]
        for p in range(P):
            if tanh:
                fe_term = dd[p][S["rq"]] * eps11[p]
            else:                                    # f' ∈ {0, 1.0}: a mux, no multiplier
                fe_term = Mux(dd[p][S["rq"]], eps11[p] << X.frac, 0)
            m.d.sync += delta12[p].eq(Mux(t11.nop == NodeOp.UPD, fe_term, 0)
                                      - (e11[p] << X.frac))
        x12, xq12 = carry(x11, "x", S["delta"]), carry(xq11, "xq", S["delta"])

        # ---- S13: γ·δ rounded ----------------------------------------------------------------
        gm = spec.gamma
        inc13 = [stage(round_shift(delta12[p] * gm.mantissa, E.frac + gm.frac, X.rounding),
                       f"inc_{p}_s", S["inc"]) for p in range(P)]
        x13, xq13 = carry(x12, "x", S["inc"]), carry(xq12, "xq", S["inc"])

        # ---- S14: x + inc fitted; write x -----------------------------------------------
        assert S["x"] == X_WRITE_STAGE == PIPELINE_DEPTH
        t13, t14 = t[S["inc"]], t[X_WRITE_STAGE]
        x14 = [Signal(signed(X.width), name=f"x14_{p}") for p in range(P)]
        for p in range(P):
            upd, _ = fit(x13[p] + inc13[p], X)
            with m.Switch(t13.nop):
                with m.Case(NodeOp.FF):
                    m.d.sync += x14[p].eq(xq13[p])
                with m.Case(NodeOp.ZERO):
                    m.d.sync += x14[p].eq(0)
                with m.Default():
                    m.d.sync += x14[p].eq(upd)
            for k in range(L + 1):
                en = t14.valid & t14.we_x & (t14.node_layer == k) & t14.node_mask[p]
                write_port(x_wr[k, p], en, t14.node_addr, x14[p], Target.X, k, p)
        return m
