"""``HostPort``: the host's access to the core's memories — the ``host_write``, ``host_read`` and
``read_data`` streams of :class:`~pcforge.hdl.core.PCCore` — sharing each memory port with the
pipeline.

* Writes: a beat is registered twice and lands two cycles later on the memory's one write port,
  which the pipeline uses while a run works and the host otherwise (``host_ok`` from the
  controller: the two never write in the same cycle). 1 word/cycle; a read request is not
  taken in the cycle after a write beat (it would read the word before the write lands).
* Reads: every memory read port has its address in a register right next to it, loaded from
  the token in the stage before the port's read stage, or from the host's request; the word
  comes back through two registered OR steps (each lane's words gated by one-hot hit flags,
  then the lanes) and appears on ``read_data`` :data:`HOST_READ_LATENCY` cycles after its request,
  held until taken; one request in flight.
"""
from __future__ import annotations

from amaranth import Assert, Cat, Format, Mux, Signal, signed
from amaranth.lib import enum

__all__ = ["HostPort", "Target", "HOST_DATA_WIDTH", "HOST_READ_LATENCY"]

#: Width of the host data words (storage formats are at most 32 bits).
HOST_DATA_WIDTH = 32

#: Cycles from a ``host_read`` beat to its word on ``read_data``.
HOST_READ_LATENCY = 6


class Target(enum.Enum, shape=3):
    """Which memory a host access addresses."""
    X = 0
    E = 1
    W = 2
    B = 3
    CACHE = 4
    PIN = 5          # per-node clamp bits (write-only; layers in ``spec.node_clamp``)
    ALPHA = 6        # the α register's mantissa (write-only; ``rates.alpha_runtime``)


class HostPort:
    """The host side of ``core``'s memories in module ``m``: ``host_ok`` (the controller says no
    run is working and the pipeline is empty) gates both request streams; ``tokens`` are the
    pipeline's (:class:`~pcforge.hdl.pipeline.TokenPipeline`)."""

    def __init__(self, m, core, host_ok, tokens):
        self.m, self.core, self.tokens = m, core, tokens
        hw, hr = core.host_write, core.host_read
        rd_pending = Signal()            # a request is being fetched or its word is on read_data
        hwr = Signal(core.host_layout, reset_less=True)   # the host write of last cycle
        hwr_v = Signal()
        hwr2 = Signal(core.host_layout, reset_less=True)  # ... and of the cycle before
        hwr2_v = Signal()
        m.d.comb += [hw.ready.eq(host_ok), hr.ready.eq(host_ok & ~rd_pending & ~hwr_v)]
        hw_fire = hw.valid & hw.ready
        hr_fire = hr.valid & hr.ready
        m.d.sync += [hwr_v.eq(hw_fire), hwr.eq(hw.payload), hwr2_v.eq(hwr_v), hwr2.eq(hwr)]
        rd_sel = Signal(core.read_layout, reset_less=True)
        rd_step = Signal(HOST_READ_LATENCY - 1)   # one bit per cycle of the read in flight
        m.d.sync += rd_step.eq(Cat(hr_fire, rd_step[:-1]))
        with m.If(hr_fire):
            m.d.sync += [rd_sel.eq(hr.payload), rd_pending.eq(1)]
        with m.If(core.read_data.valid & core.read_data.ready):
            m.d.sync += [core.read_data.valid.eq(0), rd_pending.eq(0)]
        self.write, self.write_valid = hwr2, hwr2_v        # what lands this cycle
        self.beat, self.beat_valid = hwr, hwr_v             # what it is decoded from
        self.read_sel, self.read_step = rd_sel, rd_step

    def _host_writes(self, target, layer, bank, depth: int, name: str, half=None):
        """A register of this memory's own (``{name}_host``): the host write that lands this
        cycle is to it — target, layer, lane and an address inside its ``depth`` (a word outside
        is dropped, never wrapped onto another word). Decoded from the registered beat, so that
        the memory's write enable and its address and data selects hang on a flip-flop beside
        it, not on one valid register fanned out to every memory of the chip (timing: ECP5 16
        lanes, that register through three LUTs shared across memories to a weight memory's
        write enable, 10 ns of routing, 85.7 MHz), and nothing of the host link's logic — at
        the pins, across the chip — reaches the decode (decoded from the beat as it was taken:
        the link's state through the stream's ready to a lane's x memory, 8.6 ns of routing,
        94.73 MHz)."""
        beat = self.beat
        addr = beat.addr if half is None else beat.addr >> 1
        sel = (self.beat_valid & (beat.target == target) & (beat.layer == layer)
               & (addr < depth))
        if half is not None:            # a memory of one half: the address's low bit
            sel = sel & (beat.addr[0] == half)
        if bank is not None:
            sel = sel & (beat.bank == bank)
        hit = Signal(name=f"{name}_host")
        self.m.d.sync += hit.eq(sel)
        return hit

    def register(self, reg, target):
        """A register the host writes (target ``target``; layer, bank and addr ignored): it
        takes the low bits of the data word of the host's write of last cycle."""
        with self.m.If(self.write_valid & (self.write.target == target)):
            self.m.d.sync += reg.eq(self.write.data[:len(reg)])

    def write_port(self, port, pipe_en, pipe_addr, pipe_data, target, layer, bank=None,
                   half=None):
        """Drive a memory's write port: the pipeline's write (while running) or the host's
        (otherwise) to memory ``target`` of ``layer`` in lane ``bank``; ``half``: the memory
        holds one half of two rows per token, and the host address is its word · 2 + half."""
        name = self.core.memory_names.get(port.memory, "mem")
        host_en = self._host_writes(target, layer, bank, port.memory.depth, name, half)
        hwr = self.write
        self.m.d.comb += [port.en.eq(pipe_en | host_en),
                          port.addr.eq(Mux(host_en, hwr.addr if half is None else hwr.addr >> 1,
                                           pipe_addr)),
                          port.data.eq(Mux(host_en, hwr.data, pipe_data))]
        self._check(~port.en | (port.addr < port.memory.depth), port, "written")

    def read_address(self, port, k_read: int, pipe_addr, host_addr):
        """Drive a memory's read port from a register beside it: loaded from the token in stage
        ``k_read − 1`` (``pipe_addr(token)``) when one is there, else from the host's request
        (``host_addr``), so that every memory sees a register instead of a mux tree fed by one
        wide fan-out.

        Every memory sees every token's and request's address, also those meant for another
        memory; the register takes only addresses inside this memory's depth and otherwise
        keeps its (in-range) word, so no memory is ever read outside its depth. With a depth
        of 2^n the register's n bits cannot leave it, and no comparison is built."""
        reg = Signal.like(port.addr, name=f"{port.addr.name}_r", reset_less=True)
        tk = self.tokens[k_read - 1]
        addr = Mux(tk.valid, pipe_addr(tk), host_addr)
        depth = port.memory.depth
        if depth & (depth - 1):
            with self.m.If(addr < depth):
                self.m.d.sync += reg.eq(addr)
        else:
            self.m.d.sync += reg.eq(addr)
        self.m.d.comb += port.addr.eq(reg)
        self._check(port.addr < depth, port, "read")

    def _check(self, holds, port, what: str):
        """With ``core.check_addresses`` (simulation only), an assertion checked on every clock
        edge that ``port`` is not {what} outside its memory's depth."""
        depth = port.memory.depth
        if self.core.check_addresses and depth & (depth - 1):
            name = self.core.memory_names.get(port.memory, "a memory")
            self.m.d.sync += Assert(holds, Format(f"memory {name} (depth {depth}) {what} at "
                                                  "address {}", port.addr))

    def respond(self, groups):
        """The read response from the registered memory words: ``groups`` is a list of
        (target, layer or None, {select value: word register}, by_layer[, half]) — the select is
        the bank (the words of one memory kind and layer, one per lane), or the layer for a
        group with layer None selected by it (biases); ``half`` (two rows per token): the
        group answers addresses whose low bit is ``half``. Two registered steps, both ORs of gated words:
        each lane's word (its groups' words gated by one-hot hit flags of the lane's own, the
        flags loaded a cycle after the request was taken: ``read_sel``, ``read_step[0]``), then
        the OR across the lanes and the by-layer groups into one register that ``read_data``
        takes.

        Why so (timing, ECP5): a switch on the request's target and layer, five LUTs deep, set
        the 8-lane core's fmax; a select register per group driving a P-way mux over words spread
        across the chip set the 16-lane core's at placer seed 1 (96.64 MHz, 6 ns of routing from
        the select to the group's word). Now a hit flag sits beside the words it gates, the
        lane's word is registered beside the lane, and only an OR of registers crosses the chip.
        A request for no group (a write-only target, a layer or lane that does not exist) reads
        0."""
        m, rd_sel, rd_step = self.m, self.read_sel, self.read_step
        read_data = self.core.read_data
        lanes, words = {}, []
        for n, (tgt, k, regs, by_layer, *half) in enumerate(groups):
            mine = rd_sel.target == tgt
            if k is not None:
                mine = mine & (rd_sel.layer == k)
            if half and half[0] is not None:
                mine = mine & (rd_sel.addr[0] == half[0])
            key = rd_sel.layer if by_layer else rd_sel.bank
            for sel, reg in regs.items():
                hit = Signal(name=f"resp_hit{n}_{sel}", reset_less=True)
                with m.If(rd_step[0]):
                    m.d.sync += hit.eq(mine & (key == sel))
                gated = Mux(hit, reg, 0).as_signed()
                if by_layer:
                    words.append(gated)
                else:
                    lanes.setdefault(sel, []).append(gated)
        step = []
        for p, gated in sorted(lanes.items()):
            v = Signal(signed(HOST_DATA_WIDTH), name=f"resp_lane{p}", reset_less=True)
            m.d.sync += v.eq(_or_all(gated))
            step.append(v)
        if words:
            v = Signal(signed(HOST_DATA_WIDTH), name="resp_by_layer", reset_less=True)
            m.d.sync += v.eq(_or_all(words))
            step.append(v)
        resp = Signal(signed(HOST_DATA_WIDTH), name="resp", reset_less=True)
        m.d.sync += resp.eq(_or_all(step))
        with m.If(rd_step[-1]):
            m.d.sync += [read_data.payload.eq(resp), read_data.valid.eq(1)]


def _or_all(values):
    """The bitwise OR of ``values`` (a balanced tree)."""
    while len(values) > 1:
        values = [values[i] | values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]
