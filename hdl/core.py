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
  tree across lanes for prediction rows; a lane-local accumulator for feedback columns; for
  prediction sweeps taken column chunk by column chunk
  (:func:`~pcforge.model.arch.schedule.pred_by_columns`), a memory of the rows' partial sums.
* **P node units** (one per lane): error e = E(x·2^s − acc), feedback ε = E(Σ W e), state update
  x ← X(x + round(γ (f'(x) ε − e))), feed-forward x = X(acc) (with its first errors where
  ``ff_writes_errors``), zero.
* With ``rows = 2`` (two rows per token, ``docs/hardware.md``): a second multiplier per lane
  for the odd row of every weight sweep, odd-row halves of every weight and bias memory, a
  second adder tree, row accumulator and learning unit; the node units stay one per lane.
* For ``schedule = "delayed_feedback"``: a second multiplier per lane and per-lane column
  accumulators, so that one row sweep of W_l feeds both W f(x) and W_lᵀ e_l(t−1); for
  incremental learning a second multiplier per lane forms e·f(x) beside W·e.

Pipeline (a token per cycle; every stage is a register). The stages and their numbers are
:data:`pcforge.model.arch.schedule.STAGES` — the one table the generator, the schedule and the
cycle model share; the write and late-read stages are asserted where they are built::

  0      issue register (the controller's token)    sum2   adder tree (2nd half); learning: rounding
  1      read addresses registered beside each port  row    row accumulator; learning: W, b written
  2      memory data                                 node   node operands (acc + bias, cache, Σ W e)
  raw    memory data registered                      diff   x·2^s − acc
  sel    lanes' operands selected; f, f'             rq     requantize e, ε, x; e and cache written
  opd    multiplier operands registered              delta  δ = f'·ε − e·2^fx
  dsp    ... again, beside each multiplier           inc    γ·δ rounded
  mul    products; lane accumulators                 x      x + inc fitted; x written
  sum1   adder tree (1st half); learning: α·e·a

Every memory output is registered before any logic (an ECP5 block RAM's clock-to-output is
~6 ns), and every multiplier's input twice, the second time beside its multiplier (an ECP5
MULT18X18D takes ~4 ns); biases and cached predictions are read late (``READ_STAGE``), so
their words do not ride down the pipeline. Datapath registers are reset-less (only the tokens'
valid bits and the controller are reset). The stages are built by one module each:
:mod:`.pipeline` (tokens), :mod:`.host_port` (host access to every memory), :mod:`.operands`,
:mod:`.mac` (multipliers, adder tree, accumulators), :mod:`.learning`, :mod:`.node_unit`.

Host interface (all streams follow ``amaranth.lib.stream``: a beat moves when valid & ready)
------------------------------------------------------------------------------------------------
``host_write`` (In): {target, layer, bank, addr, data}. Writes one word (data: signed 32 bits,
  the low bits of the target's format) into memory ``target`` ∈ {X=0, E=1, W=2, B=3, PIN=5}
  of layer (connection for W/B) ``layer``, lane ``bank``, address ``addr`` (see
  ``CoreGeometry``; bank is ignored for B). PIN (layers in ``spec.node_clamp`` only; bit 0)
  holds a node of a free layer at its x: the core's writes of that x are dropped. ALPHA=6
  (``rates.alpha_runtime`` only; layer, bank, addr ignored) sets the α register's mantissa
  (α = m·2^−alpha.frac; reset: alpha.mantissa), used by every later update. Ready whenever no run is working and the pipeline is empty (idle, paused or
  done): 1 word/cycle; the word lands two cycles after its beat (a host_read request waits out
  the cycle after a write beat).
``host_read`` (In) / ``read_data`` (Out): the same addressing, plus target CACHE=4; the word
  appears on ``read_data`` 6 cycles after the request beat and is held until taken; one request
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
  :func:`pcforge.model.arch.cycles.cycle_report` ``.total`` at the end); ``busy_reg``,
  ``paused_reg``: ``busy`` and ``paused`` two cycles late, through two flip-flops from the
  controller (what a host link across the chip reads).
"""
from __future__ import annotations

import numpy as np
from amaranth import Array, Const, Module, Mux, Shape, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..model.activations import tanh_table
from ..model.arch.geometry import MAX_LANES, CoreGeometry
from ..model.arch.schedule import (E_WRITE_STAGE, PIPELINE_DEPTH, READ_STAGE, STAGES,
                                   W_WRITE_STAGE, X_WRITE_STAGE, can_learn, learns_after,
                                   check_rows, learns_incrementally, pred_by_columns,
                                   row_acc_depth, schedule)
from ..model.spec import PCSpec, SpecError
from .controller import SlotController, control_layout
from .dsp import HARD_MULTIPLIERS
from .host_port import HOST_DATA_WIDTH, HostPort, Target
from .learning import row_bias, weight_updates
from .mac import adder_tree, feedback_sums, lane_products, odd_products, row_accumulator
from .node_unit import NodeInputs, node_units
from .operands import select_operands
from .pipeline import TokenPipeline
from .protocol import TARGET, weight_words

__all__ = ["PCCore", "check_buildable", "MAX_ROM_BITS", "PIN_READ_STAGE"]

#: Name suffixes of the halves (rows per token: even rows, odd rows).
_HALF = ("", "_odd")

#: The pin memories' read stage: the word is out a stage later, beside the token in ``inc``,
#: and registered into the x write stage where it drops the core's x write.
PIN_READ_STAGE = STAGES["x"] - 2


def _depth(words: int) -> int:
    """Memory depth for ``words`` words (at least 2, so that the address port is not 0 bits)."""
    return max(2, words)


#: Activation ROM bits (all lanes) the generator accepts: beyond this no supported FPGA holds it.
MAX_ROM_BITS = 1 << 22


def check_buildable(spec: PCSpec, lanes: int, rows: int = 1) -> CoreGeometry:
    """Refuse, naming the field and the fix, a spec/lane count the generator cannot build."""
    if not isinstance(lanes, int) or isinstance(lanes, bool) or not 1 <= lanes <= MAX_LANES:
        raise SpecError(f"lanes = {lanes!r}: the generator builds 1..{MAX_LANES} MAC lanes")
    g = CoreGeometry(spec, lanes, rows)
    check_rows(spec, rows)
    if "tanh" in spec.activations:
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


class _PortView:
    """What the core's port logic uses of a memory port (``memory``, ``addr``, ``data``,
    ``en``), as signals of its own: :func:`_single_port` joins a read and a write view on one
    address."""

    def __init__(self, memory, name: str):
        self.memory = memory
        self.addr = Signal(range(memory.depth), name=f"{name}_addr")
        self.data = Signal(memory.shape, name=f"{name}_data")
        self.en = Signal(name=f"{name}_en")


def _single_port(m, mem, rp, wp) -> tuple:
    """Views of ``mem``'s read port ``rp`` and write port ``wp`` that drive both from one
    address: the write's while it writes, else the read's (a single-ported RAM: SPRAM)."""
    rv, wv = _PortView(mem, f"{rp.addr.name}_sp_r"), _PortView(mem, f"{wp.addr.name}_sp_w")
    addr = Mux(wv.en, wv.addr, rv.addr)
    # the read port holds its word while the write has the address (an SPRAM's "no change")
    m.d.comb += [rp.addr.eq(addr), rp.en.eq(~wv.en), wp.addr.eq(addr), wp.en.eq(wv.en),
                 wp.data.eq(wv.data), rv.data.eq(rp.data)]
    return rv, wv


class PCCore(wiring.Component):
    """The PC core for ``spec`` with ``lanes`` MAC lanes (see the module docstring for ports)."""

    def __init__(self, spec: PCSpec, lanes: int, *, rows: int = 1, weights=None,
                 logic_ram_bits: int = 0, pow2_depth_above: int = 0, spram_weights: tuple = (),
                 hard_multipliers: str | None = None):
        """``weights``: optional ``(W, b)`` integer arrays (``FixedPCN``'s W and b: the W-store
        and B formats) that the weight and bias memories hold from configuration (a bitstream
        that boots with a trained network); else they start at zero and the host loads them.
        ``logic_ram_bits``: memories of at most this many bits (depth × width) are built from
        flip-flops (Yosys ``ram_style = "logic"``) instead of block RAM — for FPGAs whose block
        RAMs are few (the iCE40UP5K's 30 EBRs); behaviour and cycles are unchanged.
        ``pow2_depth_above``: memories of more words than this get a power-of-two depth (0:
        never; the words past the geometry's are never used). A block RAM cascaded by depth
        needs a multiplexer after the blocks' outputs, and placement spreads the blocks over
        the chip (ECP5, 784-128-10 on 8 lanes: 62 MHz); at a power-of-two depth Yosys slices
        the memory by bits instead (16 × DP16KD 16384 × 1) and no multiplexer is left.
        ``spram_weights``: connections whose weight memories are *single-ported* — one address
        for reading and writing, marked ``ram_style = "huge"`` so that Yosys puts them in the
        iCE40UP's SPRAMs (16 K × 16 each, no initial contents). A core with any cannot learn
        (the update sweep reads one weight while it writes another); inference reads them
        while nothing writes, and the host writes them only while the core is idle (never in
        the cycles of a host read).
        ``hard_multipliers``: ``"ecp5"`` instantiates every multiplier whose operands fit 18
        bits as a MULT18X18D with its own input and output registers (:mod:`pcforge.hdl.dsp`;
        same cycles; a simulation needs :func:`~pcforge.hdl.dsp.simulation_models` beside the
        Verilog); None leaves the choice to synthesis.
        ``rows``: rows per token (:class:`~pcforge.model.arch.geometry.CoreGeometry`): 2 gives
        every lane a second multiplier and every weight and bias memory an odd-row half, and
        halves the tokens of every weight sweep (an even lane count; not with
        ``delayed_feedback``, incremental learning or SPRAM weights)."""
        self._MustUse__silence = True        # a core refused below is not "never used"
        self.spec = spec
        self.rows = int(rows)
        self.geometry = g = check_buildable(spec, lanes, self.rows)
        self.schedule = schedule(spec, lanes, self.rows)
        self.logic_ram_bits = int(logic_ram_bits)
        self.pow2_depth_above = int(pow2_depth_above)
        #: simulation only: assert on every clock edge that no memory port is read or written
        #: outside its depth (set before elaboration; never in emitted Verilog)
        self.check_addresses = False
        #: learning hardware (``control.learn``): the after-relaxation rule, or incremental
        #: learning (an update every iteration) for the synchronous schedule
        self.spram_weights = tuple(sorted(set(int(l) for l in spram_weights)))
        if any(not 1 <= l <= spec.L for l in self.spram_weights):
            raise SpecError(f"spram_weights = {spram_weights!r}: give connections in "
                            f"1..{spec.L}")
        if self.spram_weights and self.rows == 2:
            raise SpecError("rows = 2 with weights in SPRAM: an SPRAM has one port and a "
                            "token of two rows reads two halves; use rows = 1")
        if hard_multipliers not in HARD_MULTIPLIERS:
            raise SpecError(f"hard_multipliers = {hard_multipliers!r}: use one of "
                            f"{', '.join(map(repr, HARD_MULTIPLIERS))}")
        self.hard_multipliers = hard_multipliers
        learning = not self.spram_weights
        self.learns_after = learning and learns_after(spec)
        self.learns_incremental = learning and learns_incrementally(spec)
        self.learns = learning and can_learn(spec)
        self.lanes = P = lanes
        L = spec.L
        F = spec.formats
        self.acc_width = F.acc.width + 2
        max_depth = max([g.depth(k) for k in range(L + 1)]
                        + [g.weight_depth(l) * self.rows for l in range(1, L + 1)]
                        + [spec.sizes[l] for l in range(1, L + 1)])
        self.host_layout = data.StructLayout({
            "target": Target, "layer": range(L + 1), "bank": range(max(P, 2)),
            "addr": range(max(max_depth, 2)), "data": signed(HOST_DATA_WIDTH)})
        self.read_layout = data.StructLayout({
            "target": Target, "layer": range(L + 1), "bank": range(max(P, 2)),
            "addr": range(max(max_depth, 2))})
        self.control_layout = control_layout(spec)
        self._make_memories(g, weights)        # (so that testbenches can look inside)
        super().__init__({
            "host_write": In(stream.Signature(self.host_layout)),
            "host_read": In(stream.Signature(self.read_layout)),
            "read_data": Out(stream.Signature(signed(HOST_DATA_WIDTH))),
            "control": In(stream.Signature(self.control_layout)),
            "busy": Out(1), "paused": Out(1), "done": Out(1),
            "busy_reg": Out(1), "paused_reg": Out(1),
            "iteration": Out(range(spec.iterations + 2)),
            "cycles": Out(32),
        })
        del self._MustUse__silence            # built: Amaranth's own rule again

    def _make_memories(self, g: CoreGeometry, weights):
        """Every memory of the core (see the module docstring), as attributes."""
        spec, P, L, F = self.spec, self.lanes, self.spec.L, self.spec.formats
        X, E, B = F.x, F.e, F.b

        def mem(shape, words, init=(), huge=False):
            depth = _depth(words)
            if self.pow2_depth_above and depth > self.pow2_depth_above:
                depth = 1 << (depth - 1).bit_length()
            bits = depth * Shape.cast(shape).width
            attrs = {"ram_style": "logic"} if bits <= self.logic_ram_bits else None
            if huge:
                attrs, init = {"ram_style": "huge"}, ()
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
        # the cache's host address is c_base[layer] + addr (an adder): a power-of-two depth
        # keeps every address it forms inside with no comparison after the adder (ECP5 timing;
        # free in block RAM and in 16-word distributed RAM)
        c_words = sum(g.depth(k) for k in layers)
        self.c_mem = [mem(signed(self.acc_width), 1 << max(1, (c_words - 1).bit_length()))
                      for _ in range(P)]
        # per half (rows per token: the even rows' weights and biases, then the odd rows')
        w_half = [[None] + [[mem(signed(F.w_store.width), g.weight_depth(k), w_init[h][k][p],
                                 huge=k in self.spram_weights)
                             for p in range(P)]
                            for k in layers]
                  for h in range(self.rows)]
        b_half = [[None] + [mem(signed(B.width), g.bias_depth(k), b_init[h][k]) for k in layers]
                  for h in range(self.rows)]
        self.w_mem, self.b_mem = w_half[0], b_half[0]
        #: the odd rows' halves (``rows`` = 2; else None)
        self.w_mem_odd = w_half[1] if self.rows == 2 else None
        self.b_mem_odd = b_half[1] if self.rows == 2 else None
        # per-node clamps: one pin bit per node of every layer in spec.node_clamp, beside x
        self.pin_mem = {k: [mem(1, g.depth(k)) for _ in range(P)] for k in spec.node_clamp}
        # the partial sums of the rows of a prediction sweep taken column by column
        # (pred_by_columns): one word per row, read back n_l tokens after it was written
        self.by_col_layers = tuple(l for l in layers if pred_by_columns(g, l))
        acc_words = row_acc_depth(g)
        self.row_acc_mem = mem(signed(self.acc_width), acc_words) if acc_words else None
        self.row_acc_mem_odd = (mem(signed(self.acc_width), acc_words)
                                if acc_words and self.rows == 2 else None)

    @classmethod
    def interface(cls, spec: PCSpec, lanes: int, **options) -> "PCCore":
        """A core that is only described, never elaborated: for drivers and harnesses that need
        its stream layouts, geometry and memory depths (its memories do not warn that they
        were never used)."""
        core = cls(spec, lanes, **options)
        mems = [*core.c_mem, *(m for k in core.x_mem for m in k),
                *(m for k in core.e_mem[1:] for m in k), *(m for k in core.w_mem[1:] for m in k),
                *core.b_mem[1:], *(m for k in core.pin_mem.values() for m in k),
                *(m for m in (core.row_acc_mem, core.row_acc_mem_odd) if m is not None)]
        if core.rows == 2:
            mems += [*(m for k in core.w_mem_odd[1:] for m in k), *core.b_mem_odd[1:]]
        for obj in (core, *mems):
            obj._MustUse__silence = True
        return core

    def weight_memory(self, l: int, lane: int, addr: int) -> tuple:
        """(memory, word) holding the weight at host address ``addr`` of connection l in lane
        ``lane`` (:meth:`CoreGeometry.weight_location`: with two rows per token the address's
        low bit is the half)."""
        if self.rows == 2:
            return (self.w_mem_odd if addr & 1 else self.w_mem)[l][lane], addr >> 1
        return self.w_mem[l][lane], addr

    def bias_memory(self, l: int, i: int) -> tuple:
        """(memory, word) holding b_l[i] (the bias's host address is i)."""
        if self.rows == 2:
            return (self.b_mem_odd if i & 1 else self.b_mem)[l], i >> 1
        return self.b_mem[l], i

    @staticmethod
    def weight_images(geometry: CoreGeometry, weights) -> tuple:
        """Initial contents of every weight memory ``[half][l][lane]`` and bias memory
        ``[half][l]`` for ``weights = (W, b)`` — the very words the host protocol would write —
        or empty (half: the rows' parity with two rows per token; else only half 0)."""
        spec, P, R = geometry.spec, geometry.lanes, geometry.rows
        w_img = [[None] + [[[] for _ in range(P)] for _ in range(spec.L)] for _ in range(R)]
        b_img = [[None] + [[] for _ in range(spec.L)] for _ in range(R)]
        if weights is None:
            return w_img, b_img
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
        w_img = [[None] + [[[0] * _depth(geometry.weight_depth(l)) for _ in range(P)]
                           for l in range(1, spec.L + 1)] for _ in range(R)]
        b_img = [[None] + [[0] * _depth(geometry.bias_depth(l)) for l in range(1, spec.L + 1)]
                 for _ in range(R)]
        for w in weight_words(geometry, W, b):
            half, word = (w.addr % R, w.addr // R)
            if w.target == TARGET["w"]:
                w_img[half][w.layer][w.bank][word] = w.data
            else:
                b_img[half][w.layer][word] = w.data
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
        spec, P, L = self.spec, self.lanes, self.spec.L
        S = STAGES
        rd, wr = self._memory_ports(m)
        self._pin_write = wr["pin"]
        ctl, pl = self._controller(m)
        host = HostPort(m, self, ctl.host_ok, pl.tokens)
        self._read_addresses(host, rd)
        raw = self._registered_words(pl, rd)
        host.respond(self._response_groups(raw))

        ops = select_operands(m, pl, spec, P, raw, S, self.rows)
        prod, prodfb, _ = lane_products(m, pl, spec, P, ops, S, self.hard_multipliers)
        # per half (rows per token): the lanes' products, the rows' broadcast x
        prods = [prod] + ([odd_products(m, pl, spec, P, ops, S, self.hard_multipliers)]
                          if self.rows == 2 else [])
        # values the node units need later ride down the pipeline
        xl = pl.chains(ops.x, "xl", S["sel"], S["row"])
        el = pl.chains(ops.e, "el", S["sel"], S["diff"])
        dd = pl.chains(ops.d, "d", S["sel"], S["rq"])
        xs = [pl.chain(v, f"xs{_HALF[h]}", S["sel"], S["row"])
              for h, v in enumerate(ops.x_rows)]

        assert S["row"] == W_WRITE_STAGE
        alpha = None
        if spec.alpha_runtime:                 # α's mantissa in a register the host writes
            alpha = Signal(spec.alpha_bits, init=spec.alpha.mantissa, name="alpha_m")
            host.register(alpha, Target.ALPHA)
        assert READ_STAGE["b"] + 2 == S["sum2"]
        b_rows = []
        for h in range(self.rows):
            updates = (weight_updates(m, pl, spec, P, ops, prods[h], self.learns_incremental, S,
                                      alpha, self.hard_multipliers, half=h)
                       if self.learns else None)
            b_row, b_new = row_bias(m, pl, spec, raw["b_odd" if h else "b"], updates, S, h)
            self._learning_writes(m, host, wr, pl, updates, b_new, h)
            b_rows.append(b_row)

        trees = [adder_tree(m, pl, prods[h], self.acc_width, S, _HALF[h])
                 for h in range(self.rows)]
        n_cols = max(self.geometry.depth(k) for k in range(L))
        fb_row = feedback_sums(m, pl, spec, prod, prodfb, self.acc_width, n_cols, S,
                               prods[1] if self.rows == 2 else None)
        acc_rows = [row_accumulator(m, pl, trees[h], self.acc_width, S,
                                    rd.get(("row_acc", "row_acc_odd")[h]),
                                    wr.get(("row_acc", "row_acc_odd")[h]), self.by_col_layers,
                                    _HALF[h])
                    for h in range(self.rows)]

        assert READ_STAGE["c"] + 2 == S["row"]
        assert S["rq"] == E_WRITE_STAGE and S["x"] == X_WRITE_STAGE == PIPELINE_DEPTH
        x_changed = node_units(m, pl, self, host, wr,
                               NodeInputs(acc_row=acc_rows, b_row=b_rows, fb_row=fb_row,
                                          raw_c=raw["c"], x_lane=xl, e_lane=el, d_lane=dd,
                                          x_row=xs), S, rd["pin"])
        if x_changed is not None:
            m.d.comb += ctl.x_changed.eq(x_changed)
        return m

    def _memory_ports(self, m) -> tuple[dict, dict]:
        """Every memory as a submodule with one read and one write port: ({"x": {(k, p): read
        port}, "e", "w", "c": {p: ...}, "b": {l: ...}}, the same for the write ports)."""
        P, L = self.lanes, self.spec.L

        def ports(mem, name, single=False):
            m.submodules[name] = mem
            rp, wp = mem.read_port(), mem.write_port()
            if single:
                rp, wp = _single_port(m, mem, rp, wp)
            self.memory_ports[name] = rp, wp
            self.memory_names[mem] = name
            return self.memory_ports[name]

        #: every memory's (read port, write port) by name, for testbenches to watch; names
        self.memory_ports, self.memory_names = {}, {}
        rd = {"x": {}, "e": {}, "w": {}, "c": {}, "b": {}, "pin": {}, "w_odd": {}, "b_odd": {}}
        wr = {"x": {}, "e": {}, "w": {}, "c": {}, "b": {}, "pin": {}, "w_odd": {}, "b_odd": {}}
        for p in range(P):
            for k in range(L + 1):
                rd["x"][k, p], wr["x"][k, p] = ports(self.x_mem[k][p], f"x{k}_lane{p}")
            for k in range(1, L + 1):
                rd["e"][k, p], wr["e"][k, p] = ports(self.e_mem[k][p], f"e{k}_lane{p}")
                rd["w"][k, p], wr["w"][k, p] = ports(self.w_mem[k][p], f"w{k}_lane{p}",
                                                     single=k in self.spram_weights)
                if self.rows == 2:
                    rd["w_odd"][k, p], wr["w_odd"][k, p] = ports(self.w_mem_odd[k][p],
                                                                 f"w{k}_odd_lane{p}")
        for p in range(P):
            rd["c"][p], wr["c"][p] = ports(self.c_mem[p], f"cache_lane{p}")
        for l in range(1, L + 1):
            rd["b"][l], wr["b"][l] = ports(self.b_mem[l], f"bias{l}")
            if self.rows == 2:
                rd["b_odd"][l], wr["b_odd"][l] = ports(self.b_mem_odd[l], f"bias{l}_odd")
        for k, mems in self.pin_mem.items():
            for p, mem in enumerate(mems):
                rd["pin"][k, p], wr["pin"][k, p] = ports(mem, f"pin{k}_lane{p}")
        if self.row_acc_mem is not None:
            rd["row_acc"], wr["row_acc"] = ports(self.row_acc_mem, "row_acc")
        if self.row_acc_mem_odd is not None:
            rd["row_acc_odd"], wr["row_acc_odd"] = ports(self.row_acc_mem_odd, "row_acc_odd")
        return rd, wr

    def _controller(self, m) -> tuple[SlotController, TokenPipeline]:
        """The controller (its control stream is the core's), the token pipeline behind its
        issue register, and the status outputs."""
        m.submodules.controller = ctl = SlotController(self.schedule, self.learns)
        wiring.connect(m, wiring.flipped(self.control), ctl.control)
        pl = TokenPipeline(m, ctl.token, ctl.layout)
        self._tokens = pl.tokens          # the pipeline's tokens, for testbenches to watch
        m.d.comb += [self.busy.eq(ctl.busy), self.paused.eq(ctl.paused), self.done.eq(ctl.done),
                     self.busy_reg.eq(ctl.busy_reg), self.paused_reg.eq(ctl.paused_reg),
                     self.iteration.eq(ctl.iteration), self.cycles.eq(ctl.cycles)]
        return ctl, pl

    def _read_addresses(self, host: HostPort, rd: dict):
        """Each read port's address register: the token's address at the port's read stage
        (:data:`~pcforge.model.arch.schedule.READ_STAGE`), else the host's request."""
        P, L = self.lanes, self.spec.L
        hr = self.host_read
        R = READ_STAGE
        c_base = Array(Const(b or 0, range(max(2, sum(self.geometry.depth(k)
                                                        for k in range(1, L + 1)) + 1)))
                       for b in self.c_base)

        def node_addr(k):
            return lambda tk: Mux(tk.lane_layer == k, tk.c, tk.i_addr)

        # a weight's or bias's host address: its word · R + its half
        word = hr.payload.addr >> 1 if self.rows == 2 else hr.payload.addr
        for p in range(P):
            for k in range(L + 1):
                host.read_address(rd["x"][k, p], R["x"], node_addr(k), hr.payload.addr)
            for k in range(1, L + 1):
                host.read_address(rd["e"][k, p], R["e"], node_addr(k), hr.payload.addr)
                for key in ("w", "w_odd")[:self.rows]:
                    host.read_address(rd[key][k, p], R["w"], lambda tk: tk.w_addr, word)
            host.read_address(rd["c"][p], R["c"], lambda tk: tk.cache_addr,
                              c_base[hr.payload.layer] + hr.payload.addr)
        for l in range(1, L + 1):
            for key in ("b", "b_odd")[:self.rows]:
                host.read_address(rd[key][l], R["b"], lambda tk: tk.row, word)
        for kp, port in rd["pin"].items():      # write-only for the host: no host address
            host.read_address(port, PIN_READ_STAGE, lambda tk: tk.node_addr, 0)
            host.write_port(self._pin_write[kp], Const(0, 1), 0, 0, Target.PIN, *kp)

    def _registered_words(self, pl: TokenPipeline, rd: dict) -> dict:
        """Every memory output registered before any logic (an ECP5 block RAM's clock-to-output
        is ~6 ns): x, e, W words into ``raw``; biases and cached predictions, read late, two
        stages after their read stage."""
        S, R = STAGES, READ_STAGE
        assert R["x"] == R["e"] == R["w"] and R["x"] + 2 == S["raw"]
        return {
            "x": {kp: pl.stage(port.data, f"rx{kp[0]}_{kp[1]}_", S["raw"])
                  for kp, port in rd["x"].items()},
            "e": {kp: pl.stage(port.data, f"re{kp[0]}_{kp[1]}_", S["raw"])
                  for kp, port in rd["e"].items()},
            "w": {kp: pl.stage(port.data, f"rw{kp[0]}_{kp[1]}_", S["raw"])
                  for kp, port in rd["w"].items()},
            "w_odd": {kp: pl.stage(port.data, f"rwo{kp[0]}_{kp[1]}_", S["raw"])
                      for kp, port in rd["w_odd"].items()},
            "b": {l: pl.stage(port.data, f"rb{l}_", R["b"] + 2) for l, port in rd["b"].items()},
            "b_odd": {l: pl.stage(port.data, f"rbo{l}_", R["b"] + 2)
                      for l, port in rd["b_odd"].items()},
            "c": {p: pl.stage(port.data, f"rc{p}_", R["c"] + 2) for p, port in rd["c"].items()},
        }

    def _response_groups(self, raw: dict) -> list:
        """The host read response's groups (:meth:`HostPort.respond`): per layer the lanes' x,
        e and W words, then the cache banks (by lane) and the biases (by layer)."""
        P, L = self.lanes, self.spec.L
        groups = [(Target.X, k, {p: raw["x"][k, p] for p in range(P)}, False)
                  for k in range(L + 1)]
        groups += [(Target.E, k, {p: raw["e"][k, p] for p in range(P)}, False)
                   for k in range(1, L + 1)]
        halves = ((None, "w", "b"),) if self.rows == 1 else ((0, "w", "b"), (1, "w_odd", "b_odd"))
        for half, w, _ in halves:
            groups += [(Target.W, k, {p: raw[w][k, p] for p in range(P)}, False, half)
                       for k in range(1, L + 1)]
        groups += [(Target.CACHE, None, raw["c"], False)]
        groups += [(Target.B, None, raw[b], True, half) for half, _, b in halves]
        return groups

    def _learning_writes(self, m, host: HostPort, wr: dict, pl, updates, b_new, half: int = 0):
        """The W and b write ports of one half (rows per token): the learning token in
        ``W_WRITE_STAGE`` rewrites its lanes' weight words and its row's bias; the host writes
        otherwise. Each memory's enable is a register of its own, decoded from the token a
        stage ahead (timing: decoded from the write stage's token, its valid bit through two
        LUTs to a lane's weight memory across the chip set the 16-lane ECP5's fmax, 94.65 MHz)
        and cleared by reset like the tokens' valid bits (nothing in flight writes after a
        reset)."""
        P, L = self.lanes, self.spec.L
        w, b = ("w_odd", "b_odd") if half else ("w", "b")
        hh = half if self.rows == 2 else None          # the host address's half bit
        tw, ta = pl.tokens[W_WRITE_STAGE], pl.tokens[W_WRITE_STAGE - 1]

        def enable(cond, name):               # a register of the write stage, reset-cleared
            en = Signal(name=name)
            m.d.sync += en.eq(ta.valid & cond)
            return en
        sfx = "_odd" if half else ""
        for l in range(1, L + 1):
            for p in range(P):
                if updates is not None:
                    en = enable(ta.learn_w & (ta.layer == l) & ta.lane_mask[p],
                                f"wen{l}{sfx}_{p}")
                else:
                    en = Const(0, 1)
                host.write_port(wr[w][l, p], en, tw.w_addr,
                                updates.w_new[p] if updates is not None else 0, Target.W, l, p,
                                half=hh)
            if updates is not None:
                en = enable(ta.learn_b & (ta.layer == l), f"ben{l}{sfx}")
            else:
                en = Const(0, 1)
            host.write_port(wr[b][l], en, tw.row, b_new if updates is not None else 0,
                            Target.B, l, half=hh)
