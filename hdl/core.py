"""``PCCore``: the predictive coding core generated from a :class:`~pcforge.model.PCSpec`.

It computes exactly what :class:`~pcforge.model.FixedPCN` computes (``docs/datapath.md``), bit
for bit, every iteration. Where each value lives and what every cycle does is stated in
:mod:`pcforge.model.cycles` (:class:`~pcforge.model.cycles.CoreGeometry` and the slot schedule);
``docs/hardware.md`` draws it.

Structure
---------
* **Value-node and error-node arrays**: for every layer k and lane p a memory bank of x_k (and
  e_k, k ≥ 1), node j in lane ``j mod P`` at address ``j div P``; per lane one bank of the
  cached predictions of every connection k (the prediction from a clamped layer, computed once
  per sample), connection k at offset ``c_base[k]``.
* **Local weight memories**: for every connection l and lane p a memory holding the columns
  j ≡ p (mod P) of W_l, row-major (``i·ceil(n_{l-1}/P) + j div P``); one bias memory per
  connection. The same memory serves W f(x) (row sweeps) and Wᵀ e (column sweeps).
* **P MAC lanes**, each with an :class:`ActivationUnit` and a multiplier; an adder tree across
  lanes for prediction rows; a lane-local accumulator for feedback columns.
* **P node units** (one per lane): error e = E(x·2^s − acc), feedback ε = E(Σ W e), state update
  x ← X(x + round(γ (f'(x) ε − e))), feed-forward x = X(acc), zero.
* **Controller**: runs the slot schedule of :mod:`pcforge.model.cycles` for T iterations under a
  run-time clamp mask.
* For ``schedule = "delayed_feedback"``: a second multiplier per lane and per-lane column
  accumulators, so that one row sweep of W_l feeds both W f(x) and W_lᵀ e_l(t−1)
  (``docs/hardware.md``).

Pipeline (a token is issued per cycle; every stage is a register)::

  S0 issue: addresses to every read port       S6  node-unit operands (acc + bias, cache, Σ W e)
  S1 memory data (registered reads)            S7 requantize e / ε / feed-forward x; write e, cache
  S2 activation f, f' (ROM or logic)           S8  δ = f'·ε − e·2^fx
  S3 multiplier output (inputs registered S2)  S9  γ·δ rounded
  S4 adder tree (prediction) / lane acc (fb)   S10 x + inc fitted to X; write x
  S5 row accumulator (prediction)

Host interface (all streams follow ``amaranth.lib.stream``: a beat moves when valid & ready)
------------------------------------------------------------------------------------------------
``host_write`` (In): {target, layer, bank, addr, data}. Writes one word (data: signed 32 bits,
  the low bits of the target's format) into memory ``target`` ∈ {X=0, E=1, W=2, B=3} of layer
  (connection for W/B) ``layer``, lane ``bank``, address ``addr`` (see ``CoreGeometry``; bank is
  ignored for B). Ready whenever the core is not running (idle, paused or done): 1 word/cycle.
``host_read`` (In) / ``read_data`` (Out): the same addressing, plus target CACHE=4; the word
  appears on ``read_data`` 2 cycles after the request beat and is held until taken; one request
  in flight.
``control`` (In): {resume, pause, learn, mask}. With ``resume = 0`` (accepted when idle) it
  starts a run: x of the clamped layers (mask bit k = 1 clamps layer k) must have been written;
  free layers are initialised by the core. With ``pause = 1`` the core stops after every
  iteration (``paused`` = 1, x(t+1) and e(t) readable); ``resume = 1`` continues it. With
  ``learn = 1`` the core learns with the spec's rule, W_l += round(α e_l f(x_{l−1})ᵀ),
  b_l += round(α e_l), saturating (``docs/datapath.md`` step 7): ``after_relaxation`` ends the
  run with one read-modify-write sweep per connection from e(T) and x(T); ``incremental``
  (synchronous schedule) updates every iteration from e(t) and x(t), inside the feedback
  sweeps and in row sweeps for connections from clamped layers (``docs/hardware.md``).
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

from ..model.cycles import DRAIN_A_CYCLES, DRAIN_CYCLES, PIPELINE_DEPTH, CoreGeometry
from ..model.cycles import MAX_LANES
from ..model.spec import PCSpec, SpecError
from .activation import ActivationUnit
from .fixed import fit, requantize, round_shift

__all__ = ["PCCore", "Target", "HOST_DATA_WIDTH", "check_buildable", "MAX_ROM_BITS"]

#: Width of the host data words (storage formats are at most 32 bits).
HOST_DATA_WIDTH = 32


class Target(enum.Enum, shape=3):
    """Which memory a host access addresses."""
    X = 0
    E = 1
    W = 2
    B = 3
    CACHE = 4


class Op(enum.Enum, shape=3):
    PRED = 0        # row sweep of W_l: acc_l = W_l f(x_{l-1}) + b_l, one row per C tokens
    FB = 1          # column sweep of W_l: Σ_k W_l[k, j] e_l[k], lane-local
    NODE = 2        # lane-parallel pass over the nodes of one layer
    FUSED = 3       # delayed_feedback: one row sweep feeding W f(x) and Wᵀ e(t−1), + 1 bubble
    LEARN = 4       # row sweep of W_l, read-modify-write: W += round(α e aᵀ), b += round(α e)


class NodeOp(enum.Enum, shape=2):
    ERR = 0         # e = E(x·2^s − acc)   (+ top-layer update when we_x)
    FF = 1          # x = X(acc)
    ZERO = 2        # x = 0
    UPD = 3         # ε = E(Σ W e); x ← X(x + round(γ (f'ε − e)))


def _depth(words: int) -> int:
    """Memory depth for ``words`` words (at least 2, so that the address port is not 0 bits)."""
    return max(2, words)


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
        self.logic_ram_bits = int(logic_ram_bits)
        #: learning hardware (``control.learn``): the after-relaxation rule, or incremental
        #: learning (an update every iteration) for the synchronous schedule
        self.learns_after = spec.learning == "after_relaxation"
        self.learns_incremental = (spec.learning == "incremental"
                                   and spec.schedule == "synchronous")
        self.learns = self.spec_learns(spec)
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
        self.control_layout = data.StructLayout({
            "resume": 1, "pause": 1, "learn": 1, "mask": spec.n_layers})
        # memories (created here so that testbenches can look inside them)
        X, E, W, B = F.x, F.e, F.w, F.b
        d2 = _depth  # every memory holds ≥ 2 words: a 1-word memory has a 0-bit address port
        def mem(shape, words, init=()):
            depth = d2(words)
            bits = depth * Shape.cast(shape).width
            attrs = {"ram_style": "logic"} if bits <= self.logic_ram_bits else None
            return memory.Memory(shape=shape, depth=depth, init=list(init), attrs=attrs)

        w_init, b_init = self.weight_images(g, weights)

        layers = range(1, L + 1)
        self.x_mem = [[mem(signed(X.width), g.depth(k)) for _ in range(P)] for k in range(L + 1)]
        self.e_mem = [None] + [[mem(signed(E.width), g.depth(k)) for _ in range(P)]
                               for k in layers]
        # one cache bank per lane for every connection (layer k at offset c_base[k]): reads
        # share the address c and a write touches one layer per cycle, so nothing conflicts,
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
        return spec.learning == "after_relaxation" or spec.schedule == "synchronous"

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
        L, T = spec.L, spec.iterations
        F = spec.formats
        X, E, Wf, Bf = F.x, F.e, F.w, F.b
        G, Ws = F.w_guard, F.w_store       # weight memories keep G guard bits (format Ws)
        Facc = F.acc.frac
        A = self.acc_width
        sizes = spec.sizes
        depths = [g.depth(k) for k in range(L + 1)]
        max_n = max(sizes)
        max_c = max(depths)
        max_wd = max(g.weight_depth(l) for l in range(1, L + 1))
        ff = spec.init == "feedforward"
        delayed = spec.schedule == "delayed_feedback"

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

        # ---- token layout ---------------------------------------------------------------
        token = data.StructLayout({
            "valid": 1, "op": Op, "nop": NodeOp,
            "layer": range(L + 1), "lane_layer": range(L + 1), "node_layer": range(L + 1),
            "first": 1, "last": 1,
            "c": range(max(max_c, 2)), "i_bank": range(max(P, 2)),
            "i_addr": range(max(max_c, 2)), "row": range(max(max_n, 2)),
            "w_addr": range(max(max_wd, 2)),
            "lane_mask": P, "node_mask": P, "node_addr": range(max(max_c, 2)),
            "we_e": 1, "we_x": 1, "we_c": 1, "fuse": 1,
            "bubble": 1, "fb_on": 1, "row_end": 1,
        })
        t = [Signal(token, name=f"tok{k}") for k in range(PIPELINE_DEPTH + 1)]
        for k in range(1, PIPELINE_DEPTH + 1):
            m.d.sync += t[k].eq(t[k - 1])

        # ---- controller -----------------------------------------------------------------
        mask = Signal(spec.n_layers)
        pause = Signal()
        learn = Signal()                 # after the final pass, one learning sweep per connection
        it = Signal(range(T + 2))
        cycles = Signal(32)
        done = Signal()
        slot = Signal(range(4 * L + 8))
        drain_cnt = Signal(range(DRAIN_CYCLES + 1))
        after_drain = Signal(2)          # 0: next slot, 1: end of an error phase, 2: end of an
        #                                  iteration's updates
        bubble = Signal()                # FUSED: the extra token that retires the last row
        j_op, j_nop = Signal(Op), Signal(NodeOp)
        j_layer, j_lane_layer, j_node_layer = (Signal(range(L + 1)) for _ in range(3))
        j_we_e, j_we_x, j_we_c, j_drain = Signal(), Signal(), Signal(), Signal()
        j_fuse = Signal()
        j_C, j_N, j_nsrc = (Signal(range(max_n + 1)) for _ in range(3))
        c_cnt = Signal(range(max(max_c, 2)))
        i_cnt = Signal(range(max(max_n, 2)))
        i_bank = Signal(range(max(P, 2)))
        i_addr = Signal(range(max(max_c, 2)))
        w_addr = Signal(range(max(max_wd + max_c + 1, 2)))

        running = Signal()

        # the static slot list (see pcforge.model.cycles)
        slots = [("zero", 0)]
        for l in range(1, L + 1):
            slots += [("ppred", l), ("pzero", l)]
        first_iter = len(slots)
        if not delayed:
            slots += [("a", l) for l in range(1, L + 1)] + [("drain_a", None)]
            first_b = len(slots)
            slots += [("b", l) for l in range(L, 0, -1)]
            if self.learns_incremental:       # connections from clamped layers learn here
                slots += [("linc", l) for l in range(1, L + 1)]
            slots += [("drain_b", None)]
            first_final = first_iter
        else:
            for l in range(1, L + 1):
                if g.needs_pre_drain(l):
                    slots += [("pre", l)]
                slots += [("f", l)]
            slots += [("drain_b", None)]
            first_final = len(slots)
            slots += [("a", l) for l in range(1, L + 1)] + [("drain_a", None)]
        first_learn = len(slots)
        if self.learns_after:
            slots += [("learn", l) for l in range(1, L + 1)] + [("drain_end", None)]
        # incremental learning: no prediction is cached and no error is fused into a feedback
        # sweep (the weights change every iteration)
        inc = learn if self.learns_incremental else None

        def not_inc(v):
            """``v`` while incremental learning is off (v itself in cores without it)."""
            return v if inc is None else v & ~inc

        def setup(op, nop, layer, lane_layer, node_layer, we_e=0, we_x=0, we_c=0, drain=0,
                  fuse=0):
            C = depths[lane_layer]
            return [j_op.eq(op), j_nop.eq(nop), j_layer.eq(layer), j_lane_layer.eq(lane_layer),
                    j_fuse.eq(fuse),
                    j_node_layer.eq(node_layer), j_we_e.eq(we_e), j_we_x.eq(we_x),
                    j_we_c.eq(we_c), j_drain.eq(drain), j_C.eq(C), j_N.eq(sizes[layer]),
                    j_nsrc.eq(sizes[lane_layer]), c_cnt.eq(0), i_cnt.eq(0), i_bank.eq(0),
                    i_addr.eq(0), w_addr.eq(0), bubble.eq(0)]

        def advance_bank():
            with m.If(i_bank == P - 1):
                m.d.sync += [i_bank.eq(0), i_addr.eq(i_addr + 1)]
            with m.Else():
                m.d.sync += i_bank.eq(i_bank + 1)

        def run(idx):
            """Whether slot ``idx`` has work under the run-time mask and iteration."""
            kind, l = slots[idx]
            if kind == "zero":
                return ~mask[0]
            if kind == "ppred":
                return mask[l - 1] | ~mask[l] if ff else mask[l - 1]
            if kind == "pzero":
                return ~mask[l] if not ff else False
            if kind == "a":
                # e_l from the cache is computed by feedback(l+1) in phase B when layer l is
                # free (that update is its only consumer)
                fused = not_inc(~mask[l] & (it < T)) if l < L else Const(0, 1)
                cond = ~(mask[l] & (it > 0)) & ~fused
                return Mux(mask[l - 1], cond if inc is None else cond | inc, 1)
            if kind == "b" or kind == "pre":
                return ~mask[l - 1]
            if kind == "linc":
                return inc & mask[l - 1]
            if kind == "f":
                return Mux(mask[l - 1], ~(mask[l] & (it > 0)), 1)
            return True                                      # learn sweeps and drains

        def emit(idx):
            """Set up slot ``idx`` (its job registers and the next state)."""
            kind, l = slots[idx]
            m.d.sync += slot.eq(idx + 1)
            if kind == "zero":
                m.d.sync += setup(Op.NODE, NodeOp.ZERO, 0, 0, 0, we_x=1, drain=1)
            elif kind == "ppred":
                m.d.sync += setup(Op.PRED, NodeOp.FF, l, l - 1, l,
                                  we_x=(~mask[l] if ff else 0), we_c=mask[l - 1], drain=1)
            elif kind == "pzero":
                m.d.sync += setup(Op.NODE, NodeOp.ZERO, l, l, l, we_x=1, drain=1)
            elif kind == "a":
                top = (~mask[L] & (it < T)) if l == L else 0
                with m.If(not_inc(mask[l - 1])):
                    m.d.sync += setup(Op.NODE, NodeOp.ERR, l, l, l, we_e=1, we_x=top)
                with m.Else():
                    m.d.sync += setup(Op.PRED, NodeOp.ERR, l, l - 1, l, we_e=1, we_x=top)
            elif kind == "f":
                top = ~mask[L] if l == L else 0
                with m.If(mask[l - 1]):
                    m.d.sync += setup(Op.NODE, NodeOp.ERR, l, l, l, we_e=1, we_x=top)
                with m.Else():
                    m.d.sync += setup(Op.FUSED, NodeOp.ERR, l, l - 1, l, we_e=1, we_x=top)
            elif kind == "pre":
                m.d.sync += [drain_cnt.eq(DRAIN_A_CYCLES - 2), after_drain.eq(0)]
                m.next = "DRAIN"
                return
            elif kind in ("learn", "linc"):
                m.d.sync += setup(Op.LEARN, NodeOp.ERR, l, l - 1, l)
            elif kind == "drain_end":
                m.d.sync += [drain_cnt.eq(DRAIN_CYCLES - 2), after_drain.eq(3)]
                m.next = "DRAIN"
                return
            elif kind == "b":
                fuse = not_inc(mask[l - 2]) if l >= 2 else 0
                m.d.sync += setup(Op.FB, NodeOp.UPD, l, l - 1, l - 1, we_x=1, we_e=fuse,
                                  fuse=fuse)
            else:                                                    # drain_a / drain_b
                n_drain = DRAIN_A_CYCLES if kind == "drain_a" else DRAIN_CYCLES
                m.d.sync += [drain_cnt.eq(n_drain - 2),
                             after_drain.eq(1 if kind == "drain_a" else 2)]
                m.next = "DRAIN"
                return
            m.next = "ISSUE"

        job_end = Signal()
        with m.FSM(name="controller") as fsm:
            with m.State("IDLE"):
                m.d.comb += self.control.ready.eq(~self.control.payload.resume)
                with m.If(self.control.valid & ~self.control.payload.resume):
                    m.d.sync += [mask.eq(self.control.payload.mask),
                                 pause.eq(self.control.payload.pause),
                                 learn.eq(self.control.payload.learn & int(self.learns)),
                                 it.eq(0), cycles.eq(0),
                                 done.eq(0), slot.eq(0)]
                    m.next = "SLOT"
            with m.State("SLOT"):
                # one cycle per slot that has work: the first slot at or after `slot` whose run
                # condition holds is set up now (empty slots cost nothing; drains always run)
                # (conditions known when generating are resolved here: Yosys's Verilog writer
                # emits an invalid empty statement for an If on a constant)
                with m.Switch(slot):
                    for s0 in range(len(slots)):
                        with m.Case(s0):
                            first = True
                            for idx in range(s0, len(slots)):
                                cond = run(idx)
                                if cond is False:
                                    continue
                                if cond is True:
                                    if first:
                                        emit(idx)
                                    else:
                                        with m.Else():
                                            emit(idx)
                                    break
                                with (m.If(cond) if first else m.Elif(cond)):
                                    emit(idx)
                                first = False
            with m.State("ISSUE"):
                m.d.comb += t[0].valid.eq(1)
                with m.Switch(j_op):
                    with m.Case(Op.PRED, Op.LEARN):
                        m.d.sync += w_addr.eq(w_addr + 1)
                        with m.If(c_cnt == j_C - 1):
                            m.d.sync += [c_cnt.eq(0), i_cnt.eq(i_cnt + 1)]
                            advance_bank()
                            m.d.comb += job_end.eq(i_cnt == j_N - 1)
                        with m.Else():
                            m.d.sync += c_cnt.eq(c_cnt + 1)
                    with m.Case(Op.FB):
                        with m.If(i_cnt == j_N - 1):
                            m.d.sync += [i_cnt.eq(0), i_bank.eq(0), i_addr.eq(0),
                                         c_cnt.eq(c_cnt + 1), w_addr.eq(c_cnt + 1)]
                            m.d.comb += job_end.eq(c_cnt == j_C - 1)
                        with m.Else():
                            m.d.sync += [i_cnt.eq(i_cnt + 1), w_addr.eq(w_addr + j_C)]
                            advance_bank()
                    with m.Case(Op.NODE):
                        m.d.sync += c_cnt.eq(c_cnt + 1)
                        m.d.comb += job_end.eq(c_cnt == j_C - 1)
                    with m.Case(Op.FUSED):
                        with m.If(bubble):
                            m.d.comb += job_end.eq(1)
                        with m.Else():
                            m.d.sync += w_addr.eq(w_addr + 1)
                            with m.If(c_cnt == j_C - 1):
                                with m.If(i_cnt == j_N - 1):
                                    m.d.sync += bubble.eq(1)    # row n−1 retires next cycle
                                with m.Else():
                                    m.d.sync += [c_cnt.eq(0), i_cnt.eq(i_cnt + 1)]
                                    advance_bank()
                            with m.Else():
                                m.d.sync += c_cnt.eq(c_cnt + 1)
                with m.If(job_end):
                    with m.If(j_drain):
                        m.d.sync += [drain_cnt.eq(DRAIN_CYCLES - 1), after_drain.eq(0)]
                        m.next = "DRAIN"
                    with m.Else():
                        m.next = "SLOT"
            with m.State("DRAIN"):
                m.d.sync += drain_cnt.eq(drain_cnt - 1)
                with m.If(drain_cnt == 0):
                    with m.Switch(after_drain):
                        with m.Case(0):
                            m.next = "SLOT"
                        with m.Case(1):                              # end of phase A
                            if self.learns_after:
                                with m.If((it == T) & learn):
                                    m.d.sync += slot.eq(first_learn)
                                    m.next = "SLOT"
                                with m.Elif(it == T):
                                    m.d.sync += done.eq(1)
                                    m.next = "IDLE"
                                with m.Else():
                                    m.next = "SLOT"
                            else:
                                with m.If(it == T):
                                    m.d.sync += done.eq(1)
                                    m.next = "IDLE"
                                with m.Else():
                                    m.next = "SLOT"
                        with m.Case(3):                              # end of learning
                            m.d.sync += done.eq(1)
                            m.next = "IDLE"
                        with m.Case(2):                              # end of an iteration
                            m.d.sync += [it.eq(it + 1),
                                         slot.eq(Mux(it + 1 == T, first_final, first_iter))]
                            with m.If(pause):
                                m.next = "PAUSED"
                            with m.Else():
                                m.next = "SLOT"
            with m.State("PAUSED"):
                m.d.comb += self.control.ready.eq(self.control.payload.resume)
                with m.If(self.control.valid & self.control.payload.resume):
                    m.next = "SLOT"
        m.d.comb += [self.busy.eq(~fsm.ongoing("IDLE")), self.paused.eq(fsm.ongoing("PAUSED")),
                     self.done.eq(done), self.iteration.eq(it), self.cycles.eq(cycles),
                     running.eq(fsm.ongoing("SLOT") | fsm.ongoing("ISSUE")
                                | fsm.ongoing("DRAIN"))]
        with m.If(running):
            m.d.sync += cycles.eq(cycles + 1)
        # synchronous: phase A's slots are followed by phase B's only while iterating (the slot
        # counter runs on from drain_a to first_b); after drain_b it jumps back to first_iter.
        assert delayed or slots[first_b - 1][0] == "drain_a"

        # token fields at issue (S0)
        lane_mask0 = Signal(P)
        for p in range(P):
            m.d.comb += lane_mask0[p].eq((c_cnt * P + p) < j_nsrc)
        last0 = Signal()
        with m.Switch(j_op):
            with m.Case(Op.LEARN):               # no node-unit work: node_mask stays 0
                m.d.comb += [t[0].first.eq(c_cnt == 0), last0.eq(c_cnt == j_C - 1)]
            with m.Case(Op.PRED):
                m.d.comb += [t[0].first.eq(c_cnt == 0), last0.eq(c_cnt == j_C - 1),
                             t[0].node_addr.eq(i_addr),
                             t[0].node_mask.eq(Mux(last0, (Const(1, P) << i_bank)[:P], 0))]
            with m.Case(Op.FB):
                m.d.comb += [t[0].first.eq(i_cnt == 0), last0.eq(i_cnt == j_N - 1),
                             t[0].node_addr.eq(c_cnt),
                             t[0].node_mask.eq(Mux(last0, lane_mask0, 0))]
            with m.Case(Op.NODE):
                m.d.comb += [t[0].first.eq(1), last0.eq(1), t[0].node_addr.eq(c_cnt),
                             t[0].node_mask.eq(lane_mask0)]
        m.d.comb += [t[0].last.eq(last0), t[0].op.eq(j_op), t[0].nop.eq(j_nop),
                     t[0].layer.eq(j_layer), t[0].lane_layer.eq(j_lane_layer),
                     t[0].node_layer.eq(j_node_layer), t[0].c.eq(c_cnt),
                     t[0].i_bank.eq(i_bank), t[0].i_addr.eq(i_addr), t[0].row.eq(i_cnt),
                     t[0].w_addr.eq(w_addr), t[0].lane_mask.eq(lane_mask0),
                     t[0].we_e.eq(j_we_e), t[0].we_x.eq(j_we_x), t[0].we_c.eq(j_we_c),
                     t[0].fuse.eq(j_fuse), t[0].fb_on.eq(it > 0), t[0].bubble.eq(bubble)]
        with m.If(j_op == Op.FUSED):
            # a row ends at its last column (the last row's end is the bubble token, so that it
            # never meets the column ends of the last row in the node units); a column of
            # Σ W e(t−1) ends in the last row
            row_end = Signal()
            col_end = Signal()
            m.d.comb += [row_end.eq(bubble | ((c_cnt == j_C - 1) & (i_cnt != j_N - 1))),
                         col_end.eq(~bubble & (i_cnt == j_N - 1))]
            m.d.comb += [t[0].first.eq(~bubble & (c_cnt == 0)), t[0].last.eq(row_end),
                         t[0].row_end.eq(row_end),
                         t[0].lane_mask.eq(Mux(bubble, 0, lane_mask0)),
                         t[0].nop.eq(Mux(row_end, NodeOp.ERR, NodeOp.UPD)),
                         t[0].node_layer.eq(Mux(row_end, j_layer, j_lane_layer)),
                         t[0].node_addr.eq(Mux(row_end, i_addr, c_cnt)),
                         t[0].node_mask.eq(Mux(row_end, (Const(1, P) << i_bank)[:P],
                                               Mux(col_end, lane_mask0, 0))),
                         t[0].we_e.eq(row_end & j_we_e),
                         t[0].we_x.eq(Mux(row_end, j_we_x, col_end))]

        # ---- host access ----------------------------------------------------------------
        hw, hr = self.host_write, self.host_read
        host_ok = ~running
        rd_pending = Signal()          # a response is on read_data or being fetched
        rd_fetch = Signal()            # the request was accepted last cycle
        rd_sel = Signal(self.read_layout)
        m.d.comb += [hw.ready.eq(host_ok), hr.ready.eq(host_ok & ~rd_pending)]
        hw_fire = hw.valid & hw.ready
        hr_fire = hr.valid & hr.ready
        m.d.sync += rd_fetch.eq(hr_fire)
        with m.If(hr_fire):
            m.d.sync += [rd_sel.eq(hr.payload), rd_pending.eq(1)]
        with m.If(self.read_data.valid & self.read_data.ready):
            m.d.sync += [self.read_data.valid.eq(0), rd_pending.eq(0)]

        def host_wr(port, target, layer, bank=None):
            sel = hw_fire & (hw.payload.target == target) & (hw.payload.layer == layer)
            if bank is not None:
                sel = sel & (hw.payload.bank == bank)
            return [port.en.eq(sel), port.addr.eq(hw.payload.addr), port.data.eq(hw.payload.data)]

        # ---- S0: read addresses ---------------------------------------------------------
        for p in range(P):
            for k in range(L + 1):
                with m.If(running):
                    m.d.comb += x_rd[k, p].addr.eq(Mux(t[0].lane_layer == k, t[0].c, t[0].i_addr))
                with m.Else():
                    m.d.comb += x_rd[k, p].addr.eq(hr.payload.addr)
            for k in range(1, L + 1):
                with m.If(running):
                    m.d.comb += [
                        e_rd[k, p].addr.eq(Mux(t[0].lane_layer == k, t[0].c, t[0].i_addr)),
                        w_rd[k, p].addr.eq(t[0].w_addr)]
                with m.Else():
                    m.d.comb += [e_rd[k, p].addr.eq(hr.payload.addr),
                                 w_rd[k, p].addr.eq(hr.payload.addr)]
            m.d.comb += c_rd[p].addr.eq(Mux(running, c_base[t[0].node_layer] + t[0].c,
                                            c_base[hr.payload.layer] + hr.payload.addr))
        for l in range(1, L + 1):
            m.d.comb += b_rd[l].addr.eq(Mux(running, t[0].row, hr.payload.addr))

        # host read response: the data of the port selected by the request of last cycle
        resp = Signal(signed(HOST_DATA_WIDTH))
        with m.Switch(rd_sel.target):
            with m.Case(Target.X):
                with m.Switch(Cat(rd_sel.bank, rd_sel.layer)):
                    for (k, p), port in x_rd.items():
                        with m.Case(p | (k << len(rd_sel.bank))):
                            m.d.comb += resp.eq(port.data)
            with m.Case(Target.CACHE):
                with m.Switch(rd_sel.bank):
                    for p, port in c_rd.items():
                        with m.Case(p):
                            m.d.comb += resp.eq(port.data)
            for tgt, table in ((Target.E, e_rd), (Target.W, w_rd)):
                with m.Case(tgt):
                    with m.Switch(Cat(rd_sel.bank, rd_sel.layer)):
                        for (k, p), port in table.items():
                            with m.Case(p | (k << len(rd_sel.bank))):
                                m.d.comb += resp.eq(port.data)
            with m.Case(Target.B):
                with m.Switch(rd_sel.layer):
                    for l, port in b_rd.items():
                        with m.Case(l):
                            m.d.comb += resp.eq(port.data)
        with m.If(rd_fetch):
            m.d.sync += [self.read_data.payload.eq(resp), self.read_data.valid.eq(1)]

        # ---- S1: memory data ------------------------------------------------------------
        t1 = t[1]
        WA = max(X.width, E.width)
        xl1 = [Signal(signed(X.width), name=f"xl1_{p}") for p in range(P)]
        el1 = [Signal(signed(E.width), name=f"el1_{p}") for p in range(P)]
        ca1 = [Signal(signed(A), name=f"ca1_{p}") for p in range(P)]
        w1 = [Signal(signed(Ws.width), name=f"w1_{p}") for p in range(P)]
        xs1 = Signal(signed(X.width))
        eb1 = Signal(signed(E.width))
        b1 = Signal(signed(Bf.width))
        for p in range(P):
            with m.Switch(t1.lane_layer):
                for k in range(L + 1):
                    with m.Case(k):
                        m.d.comb += xl1[p].eq(x_rd[k, p].data)
                        if k >= 1:
                            m.d.comb += el1[p].eq(e_rd[k, p].data)
            with m.Switch(t1.layer):
                for k in range(1, L + 1):
                    with m.Case(k):
                        m.d.comb += w1[p].eq(w_rd[k, p].data)
            m.d.comb += ca1[p].eq(c_rd[p].data)
        with m.Switch(Cat(t1.i_bank, t1.layer)):
            for k in range(L + 1):
                for p in range(P):
                    with m.Case(p | (k << len(t1.i_bank))):
                        m.d.comb += xs1.eq(x_rd[k, p].data)
                        if k >= 1:
                            m.d.comb += eb1.eq(e_rd[k, p].data)
        with m.Switch(t1.layer):
            for l in range(1, L + 1):
                with m.Case(l):
                    m.d.comb += b1.eq(b_rd[l].data)

        # activation units (latency 1: outputs belong to the token in S2)
        f2, d2 = [], []
        for p in range(P):
            au = ActivationUnit(spec)
            m.submodules[f"act_lane{p}"] = au
            m.d.comb += [au.x.eq(xl1[p]), au.layer_out.eq(t[2].lane_layer)]
            f2.append(au.f)
            d2.append(au.d)

        def stage(sig, name, k):
            reg = Signal(sig.shape(), name=f"{name}{k}")
            m.d.sync += reg.eq(sig)
            return reg

        def carry(sigs, name, k):
            return [stage(s, f"{name}_{p}_s", k) for p, s in enumerate(sigs)]

        # ---- S2: registered operands ----------------------------------------------------
        w2 = carry(w1, "w", 2)
        wm2 = [w >> G for w in w2] if G else w2     # the multipliers' W: guard bits dropped
        xl2, el2, ca2 = carry(xl1, "xl", 2), carry(el1, "el", 2), carry(ca1, "ca", 2)
        xs2, eb2, b2 = stage(xs1, "xs", 2), stage(eb1, "eb", 2), stage(b1, "b", 2)

        # ---- S3: products ---------------------------------------------------------------
        t2, t3, t4, t5 = t[2], t[3], t[4], t[5]
        prod3 = []
        for p in range(P):
            opa = Signal(signed(WA), name=f"opa2_{p}")
            m.d.comb += opa.eq(Mux(t2.lane_mask[p],
                                   Mux((t2.op == Op.FB) | (t2.op == Op.LEARN), eb2, f2[p]), 0))
            WB = max(Wf.width, X.width)
            opb = Signal(signed(WB), name=f"opb2_{p}")       # W, or f(x) when learning
            m.d.comb += opb.eq(Mux(t2.op == Op.LEARN, f2[p], wm2[p]))
            pr = Signal(signed(WA + WB), name=f"prod3_{p}")
            m.d.sync += pr.eq(opa * opb)
            prod3.append(pr)
        if delayed:                   # the second multiplier: W · e_l(t−1) from the same read
            prodfb3 = []
            for p in range(P):
                pr = Signal(signed(E.width + Wf.width), name=f"prodfb3_{p}")
                m.d.sync += pr.eq(Mux(t2.lane_mask[p] & t2.fb_on, eb2, 0) * wm2[p])
                prodfb3.append(pr)
        xl3, el3, ca3 = carry(xl2, "xl", 3), carry(el2, "el", 3), carry(ca2, "ca", 3)
        d3 = carry(d2, "d", 3)
        xs3, b3 = stage(xs2, "xs", 3), stage(b2, "b", 3)

        # ---- learning (LEARN tokens): S4 rounded increments, S5 new values, written at S5
        al = spec.alpha
        w3 = carry(w2, "w", 3)
        if self.learns:
            eb3 = stage(eb2, "eb", 3)
            dw4 = [Signal(signed(WA + WB + al.mantissa.bit_length() + 2), name=f"dw4_{p}")
                   for p in range(P)]
            learn_prod3 = prod3
            if self.learns_incremental:
                # a second multiplier per lane: e_l[i] · f(x_{l−1}[j]) beside the feedback
                # product W[i, j] · e_l[i] of the same token (column sweeps learn in passing)
                learn_prod3 = []
                for p in range(P):
                    pr = Signal(signed(E.width + X.width), name=f"prodl3_{p}")
                    m.d.sync += pr.eq(Mux(t2.lane_mask[p], eb2, 0) * f2[p])
                    learn_prod3.append(pr)
            for p in range(P):
                m.d.sync += dw4[p].eq(round_shift(learn_prod3[p] * al.mantissa,
                                                  E.frac + X.frac + al.frac - Ws.frac,
                                                  Ws.rounding))
            db4 = Signal(signed(E.width + al.mantissa.bit_length() + 2 + max(0, Bf.frac)),
                         name="db4")
            m.d.sync += db4.eq(round_shift(eb3 * al.mantissa, E.frac + al.frac - Bf.frac,
                                           Bf.rounding))
            w4 = carry(w3, "w", 4)
            wn5 = []
            for p in range(P):
                new, _ = fit(w4[p] + dw4[p], Ws)
                wn5.append(stage(new, f"wn_{p}_s", 5))

        # ---- S4: adder tree (prediction) / lane accumulators (feedback) ----------------
        tree4 = Signal(signed(A), name="tree4")
        m.d.sync += tree4.eq(sum(prod3))
        lacc4 = [Signal(signed(A), name=f"lacc4_{p}") for p in range(P)]
        with m.If(t3.valid & (t3.op == Op.FB)):
            for p in range(P):
                m.d.sync += lacc4[p].eq(Mux(t3.first, 0, lacc4[p]) + prod3[p])
        if delayed:                   # per lane one accumulator per column it owns
            n_cols = max(depths[:L])
            colacc = [Array(Signal(signed(A), name=f"colacc_{p}_{c}") for c in range(n_cols))
                      for p in range(P)]
            with m.If(t3.valid & (t3.op == Op.FUSED) & ~t3.bubble):
                for p in range(P):
                    cell = colacc[p][t3.c]
                    m.d.sync += cell.eq(Mux(t3.row == 0, 0, cell) + prodfb3[p])
        xl4, el4, ca4 = carry(xl3, "xl", 4), carry(el3, "el", 4), carry(ca3, "ca", 4)
        d4 = carry(d3, "d", 4)
        xs4, b4 = stage(xs3, "xs", 4), stage(b3, "b", 4)

        # ---- S5: row accumulator --------------------------------------------------------
        acc5 = Signal(signed(A), name="acc5")
        with m.If(t4.valid & ((t4.op == Op.PRED) | (t4.op == Op.FUSED))):
            m.d.sync += acc5.eq(Mux(t4.first, 0, acc5) + tree4)
        if delayed:
            fb5 = carry([Mux(t4.op == Op.FUSED, colacc[p][t4.c], lacc4[p]) for p in range(P)],
                        "fb", 5)
        else:
            fb5 = carry(lacc4, "fb", 5)
        xl5, el5, ca5 = carry(xl4, "xl", 5), carry(el4, "el", 5), carry(ca4, "ca", 5)
        d5 = carry(d4, "d", 5)
        xs5, b5 = stage(xs4, "xs", 5), stage(b4, "b", 5)

        # ---- S6: node-unit operands -----------------------------------------------------
        pred6 = Signal(signed(A + 1), name="pred6")
        m.d.comb += pred6.eq((acc5 << (Facc - X.frac - Wf.frac)) + (b5 << (Facc - Bf.frac)))
        acc6 = [Signal(signed(A + 1), name=f"acc6_{p}") for p in range(P)]   # acc_l (frac F)
        fbs6 = [Signal(signed(A), name=f"fbs6_{p}") for p in range(P)]      # Σ W e (fe + fw)
        x6 = [Signal(signed(X.width), name=f"x6_{p}") for p in range(P)]
        for p in range(P):
            m.d.sync += fbs6[p].eq(fb5[p])
            with m.Switch(t5.op):
                with m.Case(Op.PRED):
                    m.d.sync += [acc6[p].eq(pred6), x6[p].eq(xs5)]
                with m.Case(Op.FB, Op.NODE):
                    m.d.sync += [acc6[p].eq(ca5[p]), x6[p].eq(xl5[p])]
                with m.Case(Op.FUSED):
                    m.d.sync += [acc6[p].eq(pred6), x6[p].eq(Mux(t5.row_end, xs5, xl5[p]))]
        e6, d6 = carry(el5, "e", 6), carry(d5, "d", 6)

        # ---- S7: requantize; write e and the cache --------------------------------------
        t6, t7, t9, t10 = t[6], t[7], t[9], t[10]
        e7 = [Signal(signed(E.width), name=f"e7_{p}") for p in range(P)]
        eps7 = [Signal(signed(E.width), name=f"eps7_{p}") for p in range(P)]
        xq7 = [Signal(signed(X.width), name=f"xq7_{p}") for p in range(P)]
        cache7 = [Signal(signed(A), name=f"cache7_{p}") for p in range(P)]
        for p in range(P):
            err, _ = requantize((x6[p] << (Facc - X.frac)) - acc6[p], Facc, E)
            eps, _ = requantize(fbs6[p], E.frac + Wf.frac, E)
            xq, _ = requantize(acc6[p], Facc, X)
            m.d.sync += [e7[p].eq(Mux((t6.nop == NodeOp.ERR) | t6.fuse, err, e6[p])),
                         eps7[p].eq(eps), xq7[p].eq(xq), cache7[p].eq(acc6[p])]
        x7, d7 = carry(x6, "x", 7), carry(d6, "d", 7)
        for p in range(P):
            for k in range(1, L + 1):
                sel = t7.valid & (t7.node_layer == k) & t7.node_mask[p]
                with m.If(running):
                    m.d.comb += [e_wr[k, p].en.eq(sel & t7.we_e), e_wr[k, p].addr.eq(t7.node_addr),
                                 e_wr[k, p].data.eq(e7[p])]
                with m.Else():
                    m.d.comb += host_wr(e_wr[k, p], Target.E, k, p)
            m.d.comb += [c_wr[p].en.eq(running & t7.valid & (t7.node_layer != 0)
                                       & t7.node_mask[p] & t7.we_c),
                         c_wr[p].addr.eq(c_base[t7.node_layer] + t7.node_addr),
                         c_wr[p].data.eq(cache7[p])]

        # ---- S8: δ = f'·ε − e·2^fx ------------------------------------------------------
        dw = X.width + E.width + 2
        delta8 = [Signal(signed(dw), name=f"delta8_{p}") for p in range(P)]
        for p in range(P):
            if "tanh" in spec.activations:
                fe_term = d7[p] * eps7[p]
            else:                                    # f' ∈ {0, 1.0}: a mux, no multiplier
                fe_term = Mux(d7[p] != 0, eps7[p] << X.frac, 0)
            m.d.sync += delta8[p].eq(Mux(t7.nop == NodeOp.UPD, fe_term, 0) - (e7[p] << X.frac))
        x8, xq8 = carry(x7, "x", 8), carry(xq7, "xq", 8)

        # ---- S9: γ·δ rounded ------------------------------------------------------------
        gm = spec.gamma
        inc9 = [Signal(signed(dw + gm.mantissa.bit_length() + 1), name=f"inc9_{p}")
                for p in range(P)]
        for p in range(P):
            m.d.sync += inc9[p].eq(round_shift(delta8[p] * gm.mantissa, E.frac + gm.frac,
                                               X.rounding))
        x9, xq9 = carry(x8, "x", 9), carry(xq8, "xq", 9)

        # ---- S10: x + inc fitted; write x -----------------------------------------------
        x10 = [Signal(signed(X.width), name=f"x10_{p}") for p in range(P)]
        for p in range(P):
            upd, _ = fit(x9[p] + inc9[p], X)
            with m.Switch(t9.nop):
                with m.Case(NodeOp.FF):
                    m.d.sync += x10[p].eq(xq9[p])
                with m.Case(NodeOp.ZERO):
                    m.d.sync += x10[p].eq(0)
                with m.Default():
                    m.d.sync += x10[p].eq(upd)
            for k in range(L + 1):
                sel = t10.valid & t10.we_x & (t10.node_layer == k) & t10.node_mask[p]
                with m.If(running):
                    m.d.comb += [x_wr[k, p].en.eq(sel), x_wr[k, p].addr.eq(t10.node_addr),
                                 x_wr[k, p].data.eq(x10[p])]
                with m.Else():
                    m.d.comb += host_wr(x_wr[k, p], Target.X, k, p)
        # weight and bias memories: learning writes (S5) while running, the host otherwise
        if self.learns:
            bn5 = stage(fit(b4 + db4, Bf)[0], "bn", 5)
            t5l = t5.valid & (t5.op == Op.LEARN)
            t5b = t5l & t5.first                   # a row sweep's first token: its row's bias
            if self.learns_incremental:            # column sweeps while learning: W, and each
                t5fb = t5.valid & (t5.op == Op.FB) & learn        # row's bias in column 0
                t5b = t5b | (t5fb & (t5.c == 0))
                t5l = t5l | t5fb
        for l in range(1, L + 1):
            with m.If(running):
                if self.learns:
                    for p in range(P):
                        m.d.comb += [w_wr[l, p].en.eq(t5l & (t5.layer == l) & t5.lane_mask[p]),
                                     w_wr[l, p].addr.eq(t5.w_addr), w_wr[l, p].data.eq(wn5[p])]
                    m.d.comb += [b_wr[l].en.eq(t5b & (t5.layer == l)),
                                 b_wr[l].addr.eq(t5.row), b_wr[l].data.eq(bn5)]
            with m.Else():
                for p in range(P):
                    m.d.comb += host_wr(w_wr[l, p], Target.W, l, p)
                m.d.comb += host_wr(b_wr[l], Target.B, l)
        return m
