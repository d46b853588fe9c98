"""``HostLink``: the board side of the UART host protocol (:mod:`pcforge.boards.frame`), in
front of a :class:`~pcforge.hdl.core.PCCore`.

It receives a request frame byte by byte into a 256-byte frame buffer, checking CRC-8 on the way
and the gap between bytes (``timeout_cycles``); only a frame whose CRC, sequence number, length
and arguments are all right is executed — a corrupted, truncated or out-of-sequence frame
changes nothing in the core and is answered with its error status, after which the link is
ready for the next frame. Words move to and from the core through the core's own host streams
(``host_write``, ``host_read``/``read_data``, ``control``), exactly as the cocotb and Amaranth
testbenches drive them. With ``batch``, BATCH runs many samples per frame from the frame
buffer, back to back, with no host traffic between them.
"""
from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..hdl.core import PCCore
from .frame import (ADDRESS_BYTES, BATCH_ARGMAX, BATCH_COMPACT, MAX_WORDS, REQUEST_SYNC,
                    RESPONSE_SYNC, STATUS_PAYLOAD, BatchFormat, Command, Status)

__all__ = ["HostLink", "crc8_step"]

#: The link's states in which a byte on ``rx`` is taken (elsewhere it is dropped).
_RECEIVING = ("IDLE", "RX_LEN", "RX_SEQ", "RX_CMD", "RX_PAYLOAD", "RX_CRC")


def crc8_step(crc, byte):
    """CRC-8/SMBUS of one more byte as combinational logic: CRC is linear over GF(2), so each
    output bit is the XOR of the input bits (of crc ^ byte) whose unit vectors set it."""
    from .frame import crc8
    c = crc ^ byte
    columns = [crc8(bytes([1 << i])) for i in range(8)]       # the image of each input bit
    bits = []
    for j in range(8):
        taps = [c[i] for i in range(8) if (columns[i] >> j) & 1]
        acc = taps[0]
        for t in taps[1:]:
            acc = acc ^ t
        bits.append(acc)
    return Cat(*bits)


class HostLink(wiring.Component):
    """Frames on ``rx``/``tx`` (8-bit streams from/to a UART) ↔ the ``core``'s host interface.
    ``receiving`` and ``idle`` are status for testbenches (see :meth:`elaborate`).

    ``design_id`` (32 bits) is reported by STATUS so that a host can tell which network a board
    holds; ``timeout_cycles`` is the longest gap between two bytes of one frame; ``batch``:
    with the BATCH command."""

    def __init__(self, core: PCCore, *, design_id: int, timeout_cycles: int,
                 batch: bool = True):
        if core.spec.n_layers > 8:
            raise ValueError(f"{core.spec.n_layers} layers: the host link's RUN mask is one "
                             "byte (at most 8 layers)")
        self.core = core
        self.design_id = int(design_id) & 0xFFFF_FFFF
        #: with the BATCH command (~450 iCE40 logic cells; without it BATCH is BAD_COMMAND)
        self.batch = bool(batch)
        if timeout_cycles < 16:
            raise ValueError(f"timeout_cycles = {timeout_cycles}: give at least a few byte "
                             "times of the UART")
        self.timeout_cycles = int(timeout_cycles)
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
                          "error": Out(1), "receiving": Out(1), "idle": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.frame = buf = memory.Memory(shape=8, depth=256, init=[])
        wr = buf.write_port()
        rd = buf.read_port()
        r = _LinkRegisters(self.timeout_cycles, self.core)
        r.wr, r.rd = wr, rd                     # the frame buffer's ports
        # every byte read from the frame buffer is registered once more before any logic (a
        # block RAM's output register: ~6 ns clock-to-output, and placement may put the
        # buffer far from the link when the core's memories fill the chip — 784-128-10 on
        # the ECP5: 80.8 MHz); the readers wait a cycle for it (states *_FETCH)
        r.buf_q = Signal(8, name="buf_q")
        m.d.sync += r.buf_q.eq(rd.data)
        m.d.comb += self.rx.ready.eq(1)              # bytes outside a frame are dropped
        status_word = self._status_word(m, r)
        r.depth = self._depth_of(m, r.hdr[0], r.hdr[1])
        # the core's busy/paused (decodes of its controller's state) a cycle late, from the
        # controller's own flip-flops: used straight, synthesis shared the decode's LUTs
        # between the controller and the link, and placement stretched the controller's own
        # paths across the chip (ECP5: 81.6 MHz); registered here, it still did (94.5 MHz at 8
        # lanes). A cycle late is exact enough: a frame takes far longer to arrive than a cycle.
        m.d.comb += [r.core_busy.eq(self.core.busy_reg), r.core_paused.eq(self.core.paused_reg)]
        self._drive_control(m, r)
        self._drive_host_access(m, r)
        with m.FSM() as fsm:
            self._receive(m, r)
            self._verify(m, r)
            self._execute(m, r)
            self._write(m, r)
            if self.batch:
                self._batch(m, r)
            self._respond(m, r, status_word)
        # for testbenches (a board leaves them unconnected): a byte offered now is taken (no
        # frame, or one being received), and no frame is in progress or being answered
        m.d.comb += [self.receiving.eq(Cat(fsm.ongoing(s) for s in _RECEIVING).any()),
                     self.idle.eq(fsm.ongoing("IDLE"))]
        return m

    # ---- helpers shared by the states -------------------------------------------------
    def _status_word(self, m, r: "_LinkRegisters"):
        """STATUS's payload word ``widx``: flags (busy, paused, done, two rows per token),
        iteration, expected sequence number, lanes; the cycle counter; the design id."""
        core = self.core
        iteration = Signal(8)
        # iteration and done a cycle late from flip-flops here, like busy/paused: read straight,
        # placement pulled the controller's iteration register beside the link and its enable
        # crossed the chip twice (ECP5 8 lanes: 83.82 MHz; registered: 107.46 MHz)
        done = Signal()
        m.d.sync += [iteration.eq(core.iteration), done.eq(core.done)]
        status_words = [
            Cat(r.core_busy, r.core_paused, done, Const(core.rows == 2, 1), Const(0, 4),
                iteration, r.expected, Const(core.lanes, 8)),
            core.cycles, Const(self.design_id, 32)]
        status_word = Signal(32)
        with m.Switch(r.widx):
            for i, w in enumerate(status_words):
                with m.Case(i):
                    m.d.comb += status_word.eq(w)
        return status_word

    def _drive_control(self, m, r: "_LinkRegisters"):
        """The core's control beat, from registers (ctl_valid is set only on entering
        CONTROL)."""
        c = self.core.control
        m.d.comb += [c.valid.eq(r.ctl_valid), c.payload.resume.eq(r.ctl_resume),
                     c.payload.pause.eq(r.ctl_pause), c.payload.learn.eq(r.ctl_learn),
                     c.payload.mask.eq(r.ctl_mask)]

    def _drive_host_access(self, m, r: "_LinkRegisters"):
        """The core's host_write and host_read payloads, from registers in every state (only
        ``valid`` depends on the state): decoded from the state, the read address's mux fed
        the core's address-range compare and was the ECP5's critical path (95.5 MHz)."""
        hw, hr = self.core.host_write, self.core.host_read
        for p in (hw.payload, hr.payload):
            m.d.comb += [p.target.as_value().eq(r.io_target), p.layer.eq(r.io_layer),
                         p.bank.eq(r.io_bank), p.addr.eq(r.cur_addr)]
        m.d.comb += hw.payload.data.eq(r.word)

    def _respond_with(self, m, r, code, length=0, src=0):
        """Answer the frame with status ``code`` and ``length`` payload bytes from ``src`` (0:
        registers, 1: core reads)."""
        m.d.sync += [r.status.eq(code), r.resp_len.eq(length), r.source.eq(src), r.sent.eq(0),
                     r.widx.eq(0), r.bidx.eq(0)]
        m.next = "TX_SYNC"

    def _receive_byte(self, m, r, next_state, store):
        """A byte of the frame: add it to the CRC, store it, restart the gap timer; a gap
        longer than ``timeout_cycles`` ends the frame as TRUNCATED."""
        rx = self.rx
        with m.If(rx.valid):
            m.d.sync += [r.crc.eq(crc8_step(r.crc, rx.payload)),
                         r.timer.eq(self.timeout_cycles)]
            m.d.sync += store
            m.next = next_state
        with m.Elif(r.timer == 0):
            self._respond_with(m, r, Status.TRUNCATED)
        with m.Else():
            m.d.sync += r.timer.eq(r.timer - 1)

    def _send(self, m, r, byte, next_state, add_crc=True):
        """Offer ``byte`` on ``tx``; when taken, add it to the CRC and go to ``next_state``."""
        tx = self.tx
        m.d.comb += [tx.valid.eq(1), tx.payload.eq(byte)]
        with m.If(tx.ready):
            if add_crc:
                m.d.sync += r.crc.eq(crc8_step(r.crc, byte))
            m.next = next_state

    # ---- the states -----------------------------------------------------------------------
    def _receive(self, m, r: "_LinkRegisters"):
        """IDLE → RX_LEN → RX_SEQ → RX_CMD → RX_PAYLOAD: a request frame into the buffer (and
        its first bytes, the address header, into ``hdr``)."""
        rx = self.rx
        got = rx.valid
        with m.State("IDLE"):
            with m.If(got & (rx.payload == REQUEST_SYNC)):
                m.d.sync += [r.crc.eq(0), r.timer.eq(self.timeout_cycles), r.count.eq(0),
                             r.seq.eq(0)]
                m.next = "RX_LEN"
        with m.State("RX_LEN"):
            self._receive_byte(m, r, "RX_SEQ", [r.n_len.eq(rx.payload)])
        with m.State("RX_SEQ"):
            self._receive_byte(m, r, "RX_CMD", [r.seq.eq(rx.payload)])
        with m.State("RX_CMD"):
            self._receive_byte(m, r, "RX_PAYLOAD", [r.cmd.eq(rx.payload)])
            with m.If(got & (r.n_len == 0)):
                m.next = "RX_CRC"
        with m.State("RX_PAYLOAD"):
            m.d.comb += [r.wr.addr.eq(r.count), r.wr.data.eq(rx.payload), r.wr.en.eq(got)]
            self._receive_byte(m, r, "RX_PAYLOAD", [r.count.eq(r.count + 1)])
            for i, h in enumerate(r.hdr):
                with m.If(got & (r.count == i)):
                    m.d.sync += h.eq(rx.payload)
            with m.If(got & (r.count + 1 == r.n_len)):
                m.next = "RX_CRC"

    def _verify(self, m, r: "_LinkRegisters"):
        """RX_CRC → VERIFY → CHECK: the CRC and sequence verdicts registered in RX_CRC and acted
        on in VERIFY (timing: the CRC's XOR tree and the compare stay out of the response
        registers' enables); CHECK registers what EXECUTE decides on (the length and the
        arguments of the command), so that decision is a few LUTs deep."""
        core, spec = self.core, self.core.spec
        L, P = spec.L, core.lanes
        rx = self.rx
        hdr = r.hdr
        target, layer, bank = hdr[0], hdr[1], hdr[2]
        n_len = r.n_len
        node_target = target == 0
        writable = target <= 3
        if spec.node_clamp:                     # pin words (target 5): per-node clamps
            node_target = node_target | (target == 5)
            writable = writable | (target == 5)
        if spec.alpha_runtime:                  # the α register (target 6, layer 0, addr 0)
            node_target = node_target | (target == 6)
            writable = writable | (target == 6)
        layer_ok = Mux(node_target, layer <= L, (layer >= 1) & (layer <= L))
        bank_ok = (bank < P) | (target == 3)
        with m.State("RX_CRC"):
            with m.If(rx.valid):
                m.d.sync += [r.crc_ok.eq(r.crc == rx.payload), r.seq_ok.eq(r.seq == r.expected)]
                m.next = "VERIFY"
            with m.Elif(r.timer == 0):
                self._respond_with(m, r, Status.TRUNCATED)
            with m.Else():
                m.d.sync += r.timer.eq(r.timer - 1)
        with m.State("VERIFY"):
            with m.If(~r.crc_ok):
                self._respond_with(m, r, Status.BAD_CHECKSUM)
            with m.Elif(~r.seq_ok):
                self._respond_with(m, r, Status.BAD_SEQUENCE, 1)
            with m.Else():
                m.d.sync += r.expected.eq(r.expected + 1)
                m.next = "CHECK"
        # every word of a WRITE or READ inside the memory (the core's address fields are only
        # as wide as its deepest memory: a farther address would alias a near one). Registered
        # every cycle, in two steps (the memory's depth, then the compares): the header and the
        # length are stable from RX_CRC on (≥ 1 cycle), then VERIFY (1 cycle), so both are
        # current in CHECK (timing: the depth mux and the two carry chains in one cycle with
        # the arguments' verdict were the ECP5's critical path at 16 lanes, 92.35 MHz)
        depth = Signal.like(r.depth, name="depth_q")
        write_fits, read_fits = Signal(), Signal()
        n = hdr[ADDRESS_BYTES]
        m.d.sync += [depth.eq(r.depth),
                     write_fits.eq(r.addr + ((n_len - ADDRESS_BYTES) >> 2) <= depth),
                     read_fits.eq(r.addr + n <= depth)]
        with m.State("CHECK"):
            mask, flags = hdr[0], hdr[1]
            with m.Switch(r.cmd):
                with m.Case(Command.STATUS, Command.RESUME):
                    m.d.sync += [r.len_ok.eq(n_len == 0), r.arg_ok.eq(1)]
                with m.Case(Command.WRITE):
                    m.d.sync += [r.len_ok.eq((n_len >= ADDRESS_BYTES + 4)
                                             & (n_len[:2] == ADDRESS_BYTES % 4)),
                                 r.arg_ok.eq(writable & layer_ok & bank_ok & write_fits)]
                with m.Case(Command.READ):
                    m.d.sync += [r.len_ok.eq(n_len == ADDRESS_BYTES + 1),
                                 r.arg_ok.eq((target <= 4) & layer_ok & bank_ok & (n != 0)
                                             & (n <= MAX_WORDS) & read_fits)]
                if self.batch:
                    with m.Case(Command.BATCH):
                        self._check_batch(m, r, n_len, hdr[0])
                with m.Case(Command.RUN):
                    m.d.sync += [r.len_ok.eq(n_len == 2),
                                 r.arg_ok.eq(~(mask[spec.n_layers:].any() | flags[2:].any()
                                               | (flags[0] & (not core.learns))))]
                with m.Default():
                    m.d.sync += [r.len_ok.eq(1), r.arg_ok.eq(1)]
            m.d.sync += [r.io_target.eq(hdr[0]), r.io_layer.eq(hdr[1]), r.io_bank.eq(hdr[2])]
            m.d.sync += [r.busy_now.eq(r.core_busy), r.paused_now.eq(r.core_paused),
                         r.n_words.eq((n_len - ADDRESS_BYTES) >> 2), r.ptr.eq(ADDRESS_BYTES),
                         r.cur_addr.eq(r.addr),
                         r.ctl_resume.eq(r.cmd == Command.RESUME), r.ctl_pause.eq(flags[1]),
                         r.ctl_learn.eq(flags[0]), r.ctl_mask.eq(mask)]
            m.next = "EXECUTE"

    def _check_batch(self, m, r, n_len, flags):
        """BATCH's verdicts and response length from the request's length and mode: a table of
        the lengths each mode takes (:class:`~pcforge.boards.frame.BatchFormat`)."""
        sizes = self.core.spec.sizes
        m.d.sync += [r.len_ok.eq(0), r.arg_ok.eq(0), r.batch_len.eq(0)]
        with m.Switch(flags[:2]):
            for mode in range(4):
                fmt = BatchFormat(sizes[0], sizes[-1], argmax=bool(mode & BATCH_ARGMAX),
                                  compact=bool(mode & BATCH_COMPACT))
                usable = fmt.max_samples
                with m.Case(mode):
                    with m.Switch(n_len):
                        for k in range(1, 256):
                            n = 1 + k * fmt.sample_bytes
                            if n > 255:
                                break
                            with m.Case(n):
                                fits = k <= usable         # (0: a mode it cannot take)
                                m.d.sync += [r.len_ok.eq(1),
                                             r.arg_ok.eq(int(fits) & ~flags[2:4].any()),
                                             r.batch_len.eq(fmt.response_bytes(k) if fits
                                                            else 0)]

    def _depth_of(self, m, target, layer):
        """Words in the memory a WRITE/READ header names (target, layer; the banks of a layer
        are equally deep), 0 for no memory."""
        core, L = self.core, self.core.spec.L
        depths = {0: {k: core.x_mem[k][0].depth for k in range(L + 1)},
                  1: {k: core.e_mem[k][0].depth for k in range(1, L + 1)},
                  2: {k: core.w_mem[k][0].depth * core.rows for k in range(1, L + 1)},
                  3: {k: core.b_mem[k].depth * core.rows for k in range(1, L + 1)},
                  4: {k: core.geometry.depth(k) for k in range(1, L + 1)}}
        if core.pin_mem:                        # layers without pins: depth 0, nothing fits
            depths[5] = {k: mems[0].depth for k, mems in core.pin_mem.items()}
        if core.spec.alpha_runtime:             # one word
            depths[6] = {0: 1}
        depth = Signal(range(max(d for t in depths.values() for d in t.values()) + 1))
        with m.Switch(target):
            for t, per_layer in depths.items():
                with m.Case(t):
                    with m.Switch(layer):
                        for k, d in per_layer.items():
                            with m.Case(k):
                                m.d.comb += depth.eq(d)
        return depth

    def _execute(self, m, r: "_LinkRegisters"):
        """EXECUTE, and RUN/RESUME's CONTROL → C_DONE: a valid frame's command, or its error
        status (BAD_LENGTH, BAD_ARGUMENT, BUSY, BAD_COMMAND); the control beat is driven from
        registers (:meth:`_drive_control`)."""
        hdr = r.hdr
        with m.State("EXECUTE"):
            running_now = r.busy_now & ~r.paused_now
            with m.If(~r.len_ok):
                self._respond_with(m, r, Status.BAD_LENGTH)
            with m.Elif(~r.arg_ok):
                self._respond_with(m, r, Status.BAD_ARGUMENT)
            with m.Else():
                with m.Switch(r.cmd):
                    with m.Case(Command.STATUS):
                        self._respond_with(m, r, Status.OK, STATUS_PAYLOAD)
                    with m.Case(Command.WRITE):
                        with m.If(running_now):
                            self._respond_with(m, r, Status.BUSY)
                        with m.Else():
                            m.d.sync += [r.widx.eq(0), r.bidx.eq(0)]
                            m.next = "W_ADDR"
                    with m.Case(Command.READ):
                        with m.If(running_now):
                            self._respond_with(m, r, Status.BUSY)
                        with m.Else():
                            m.d.sync += r.n_words.eq(hdr[ADDRESS_BYTES])
                            self._respond_with(m, r, Status.OK,
                                               (hdr[ADDRESS_BYTES] << 2)[:8], 1)
                    with m.Case(Command.RUN):
                        with m.If(r.busy_now):
                            self._respond_with(m, r, Status.BUSY)
                        with m.Else():
                            m.d.sync += r.ctl_valid.eq(1)
                            m.next = "CONTROL"
                    if self.batch:
                        with m.Case(Command.BATCH):
                            with m.If(r.busy_now):
                                self._respond_with(m, r, Status.BUSY)
                            with m.Else():
                                m.d.sync += [r.ptr.eq(1), r.res_ptr.eq(0), r.cycle_sum.eq(0),
                                             r.node.eq(0), r.io_target.eq(0),
                                             r.io_layer.eq(0), r.io_bank.eq(0),
                                             r.cur_addr.eq(0), r.bidx.eq(0)]
                                m.next = "B_ADDR"
                    with m.Case(Command.RESUME):
                        with m.If(~r.paused_now):
                            self._respond_with(m, r, Status.BUSY)
                        with m.Else():
                            m.d.sync += r.ctl_valid.eq(1)
                            m.next = "CONTROL"
                    with m.Default():
                        self._respond_with(m, r, Status.BAD_COMMAND)
        with m.State("CONTROL"):
            with m.If(self.core.control.ready):
                m.d.sync += r.ctl_valid.eq(0)
                m.next = "C_DONE"
        with m.State("C_DONE"):
            self._respond_with(m, r, Status.OK)

    @staticmethod
    def _fetch(m, r: "_LinkRegisters", name: str, addr, then: str):
        """States ``{name}_ADDR`` (the frame buffer's address) and ``{name}_FETCH`` (its byte
        into ``buf_q``), then ``then``, which reads ``buf_q``."""
        with m.State(f"{name}_ADDR"):
            m.d.comb += r.rd.addr.eq(addr)
            m.next = f"{name}_FETCH"
        with m.State(f"{name}_FETCH"):
            m.next = then

    def _write(self, m, r: "_LinkRegisters"):
        """WRITE: W_ADDR → W_FETCH → W_BYTE (×4) → W_PUSH per word — each 4-byte word assembled from the
        frame buffer, then one ``host_write`` beat — and W_DONE (a state of its own: the core's
        ready stays off the response registers' enables)."""
        self._fetch(m, r, "W", r.ptr, "W_BYTE")
        with m.State("W_BYTE"):
            m.d.sync += [r.word.eq(Cat(r.word[8:], r.buf_q)), r.ptr.eq(r.ptr + 1),
                         r.bidx.eq(r.bidx + 1), r.w_last.eq(r.widx + 1 == r.n_words)]
            m.next = "W_ADDR"
            with m.If(r.bidx == 3):
                m.next = "W_PUSH"
        with m.State("W_PUSH"):
            hw = self.core.host_write
            m.d.comb += hw.valid.eq(1)
            with m.If(hw.ready):
                m.d.sync += [r.widx.eq(r.widx + 1), r.cur_addr.eq(r.cur_addr + 1)]
                with m.If(r.w_last):
                    m.next = "W_DONE"
                with m.Else():
                    m.next = "W_ADDR"
        with m.State("W_DONE"):
            self._respond_with(m, r, Status.OK)

    def _batch(self, m, r: "_LinkRegisters"):
        """BATCH, per sample: B_ADDR → B_FETCH → B_BYTE → B_VALUE (1 or 2 bytes) → B_PUSH per input node (x_0 into
        the core through ``host_write``), B_RUN (the inference mask) → B_STARTED → B_WAIT (the
        run), B_RD → B_RDW → B_CMP per output node (``host_read``; argmax kept on the way, or each x
        written to the frame buffer by B_WLO/B_WHI), B_END (the argmax byte, the cycles); then
        the response from the frame buffer (``source`` 2). ``ptr`` walks the samples, ``res_ptr``
        the results, which overwrite samples already run."""
        core, spec = self.core, self.core.spec
        P, L = core.lanes, spec.L
        n_in, n_out = spec.sizes[0], spec.sizes[L]
        flags = r.hdr[0]
        argmax, compact, shift = flags[0], flags[1], flags[4:8]

        def next_node():
            """On to the next node: node j is in lane j mod P at address j div P."""
            wrap = r.io_bank == P - 1
            m.d.sync += [r.node.eq(r.node + 1), r.io_bank.eq(Mux(wrap, 0, r.io_bank + 1)),
                         r.cur_addr.eq(r.cur_addr + wrap)]

        self._fetch(m, r, "B", r.ptr, "B_BYTE")
        with m.State("B_BYTE"):
            m.d.sync += [r.byte.eq(r.buf_q), r.ptr.eq(r.ptr + 1)]
            m.next = "B_VALUE"
        with m.State("B_VALUE"):
            byte = r.byte
            with m.If(compact):
                m.d.sync += r.word.eq(byte.as_signed() << shift)
                m.next = "B_PUSH"
            with m.Elif(r.bidx == 0):
                m.d.sync += [r.word[:8].eq(byte), r.bidx.eq(1)]
                m.next = "B_ADDR"
            with m.Else():
                m.d.sync += [r.word[8:].eq(byte.as_signed()), r.bidx.eq(0)]
                m.next = "B_PUSH"
        with m.State("B_PUSH"):
            hw = core.host_write
            m.d.comb += hw.valid.eq(1)
            with m.If(hw.ready):
                next_node()
                with m.If(r.node == n_in - 1):
                    m.d.sync += [r.ctl_valid.eq(1), r.ctl_resume.eq(0), r.ctl_pause.eq(0),
                                 r.ctl_learn.eq(0), r.ctl_mask.eq(1)]
                    m.next = "B_RUN"
                with m.Else():
                    m.next = "B_ADDR"
        with m.State("B_RUN"):
            with m.If(core.control.ready):
                m.d.sync += r.ctl_valid.eq(0)
                m.next = "B_STARTED"
        with m.State("B_STARTED"):              # busy, as the link sees it, three cycles late
            with m.If(r.core_busy):
                m.next = "B_WAIT"
        with m.State("B_WAIT"):
            with m.If(~r.core_busy):
                m.d.sync += [r.node.eq(0), r.io_layer.eq(L), r.io_bank.eq(0),
                             r.cur_addr.eq(0)]
                m.next = "B_RD"
        with m.State("B_RD"):
            hr = core.host_read
            m.d.comb += hr.valid.eq(1)
            with m.If(hr.ready):
                m.next = "B_RDW"
        with m.State("B_RDW"):
            rdd = core.read_data
            m.d.comb += rdd.ready.eq(1)
            with m.If(rdd.valid):
                m.d.sync += r.word.eq(rdd.payload)
                m.next = "B_CMP"
        with m.State("B_CMP"):
            # the argmax compare on the word registered here, not on the core's read_data
            # register across the chip (timing: ECP5 16 lanes, that route plus the compare's
            # carry chain into best_idx's enable: 95.39 MHz); one cycle per output node
            value = r.word[:len(r.best)].as_signed()    # x's width: compare that
            with m.If((r.node == 0) | (value > r.best)):
                m.d.sync += [r.best.eq(value), r.best_idx.eq(r.node)]
            next_node()
            with m.If(~argmax):
                m.next = "B_WLO"
            with m.Elif(r.node == n_out - 1):
                m.next = "B_END"
            with m.Else():
                m.next = "B_RD"
        with m.State("B_WLO"):
            m.d.comb += [r.wr.addr.eq(r.res_ptr), r.wr.data.eq(r.word[:8]), r.wr.en.eq(1)]
            m.d.sync += r.res_ptr.eq(r.res_ptr + 1)
            m.next = "B_WHI"
        with m.State("B_WHI"):
            m.d.comb += [r.wr.addr.eq(r.res_ptr), r.wr.data.eq(r.word[8:16]), r.wr.en.eq(1)]
            m.d.sync += r.res_ptr.eq(r.res_ptr + 1)
            with m.If(r.node == n_out):
                m.next = "B_END"
            with m.Else():
                m.next = "B_RD"
        with m.State("B_END"):
            with m.If(argmax):
                m.d.comb += [r.wr.addr.eq(r.res_ptr), r.wr.data.eq(r.best_idx), r.wr.en.eq(1)]
                m.d.sync += r.res_ptr.eq(r.res_ptr + 1)
            m.d.sync += [r.cycle_sum.eq(r.cycle_sum + core.cycles), r.node.eq(0),
                         r.io_layer.eq(0), r.io_bank.eq(0), r.cur_addr.eq(0)]
            with m.If(r.ptr == r.n_len):
                self._respond_with(m, r, Status.OK, r.batch_len, 2)
            with m.Else():
                m.next = "B_ADDR"

    def _respond(self, m, r: "_LinkRegisters", status_word):
        """The response frame: TX_SYNC, TX_LEN, TX_SEQ, TX_STATUS, then the payload (TX_NEXT /
        TX_BYTE from registers, R_REQ / R_WAIT reading the core word by word), then TX_CRC."""
        tx = self.tx
        with m.State("TX_SYNC"):
            m.d.sync += r.crc.eq(0)
            self._send(m, r, RESPONSE_SYNC, "TX_LEN", add_crc=False)
        with m.State("TX_LEN"):
            self._send(m, r, r.resp_len, "TX_SEQ")
        with m.State("TX_SEQ"):
            self._send(m, r, r.seq, "TX_STATUS")
        with m.State("TX_STATUS"):
            self._send(m, r, r.status, "TX_NEXT")
            with m.If(tx.ready & (r.status == Status.BAD_SEQUENCE)):
                m.d.sync += r.word.eq(r.expected)
        with m.State("TX_NEXT"):
            with m.If(r.sent == r.resp_len):
                m.next = "TX_CRC"
            with m.Elif((r.source == 2) & (r.sent < r.res_ptr)):
                m.next = "B_TX_ADDR"            # a BATCH result byte from the frame buffer
            with m.Elif((r.bidx == 0) & (r.status != Status.BAD_SEQUENCE)):
                with m.If(r.source == 1):
                    m.next = "R_REQ"
                with m.Elif(r.source == 2):
                    m.d.sync += r.word.eq(r.cycle_sum)
                    m.next = "TX_BYTE"
                with m.Else():
                    m.d.sync += [r.word.eq(status_word), r.widx.eq(r.widx + 1)]
                    m.next = "TX_BYTE"
            with m.Else():
                m.next = "TX_BYTE"
        self._fetch(m, r, "B_TX", r.sent, "B_TX_DATA")
        with m.State("B_TX_DATA"):
            # one byte; bidx wraps to 0 as it is sent, so the cycle sum follows as a word
            m.d.sync += [r.word.eq(r.buf_q), r.bidx.eq(3)]
            m.next = "TX_BYTE"
        with m.State("TX_BYTE"):
            self._send(m, r, r.word[:8], "TX_NEXT")
            with m.If(tx.ready):
                m.d.sync += [r.word.eq(r.word >> 8), r.sent.eq(r.sent + 1),
                             r.bidx.eq(r.bidx + 1)]
        with m.State("R_REQ"):
            hr = self.core.host_read
            m.d.comb += hr.valid.eq(1)
            with m.If(hr.ready):
                m.next = "R_WAIT"
        with m.State("R_WAIT"):
            rdd = self.core.read_data
            m.d.comb += rdd.ready.eq(1)
            with m.If(rdd.valid):
                m.d.sync += [r.word.eq(rdd.payload), r.widx.eq(r.widx + 1),
                             r.cur_addr.eq(r.cur_addr + 1)]
                m.next = "TX_BYTE"
        with m.State("TX_CRC"):
            self._send(m, r, r.crc, "IDLE", add_crc=False)
            with m.If(tx.ready):
                m.d.sync += self.error.eq(r.status != Status.OK)


class _LinkRegisters:
    """The link's registers: the frame being received (length, sequence number, command, CRC,
    the address header ``hdr``, bytes received, the gap timer), the verdicts, the response
    (status, length, bytes sent, the word being assembled or sent, its indices), the expected
    sequence number, the control beat, the core access (memory, lane, address) and BATCH's
    counters, sized for ``core``."""

    def __init__(self, timeout_cycles: int, core: PCCore):
        spec = core.spec
        n_len, seq, cmd, crc = Signal(8), Signal(8), Signal(8), Signal(8)
        expected = Signal(8)
        count = Signal(8)                       # payload bytes received
        hdr = [Signal(8, name=f"hdr{i}") for i in range(ADDRESS_BYTES + 1)]
        timer = Signal(range(timeout_cycles + 1))
        status = Signal(8)
        resp_len = Signal(8)
        sent = Signal(8)
        word = Signal(32)
        widx = Signal(8)                        # data word index in WRITE / READ
        bidx = Signal(2)
        ptr = Signal(8)
        source = Signal(2)                      # payload source: 0 registers, 1 core READ
        addr = Cat(hdr[3], hdr[4])
        n_words = Signal(8)
        cur_addr = Signal(16)                   # addr + widx, kept as a register (timing)
        w_last = Signal()                       # the word being pushed is the last one
        len_ok, arg_ok = Signal(), Signal()     # CHECK's verdicts on the frame
        crc_ok, seq_ok = Signal(), Signal()     # RX_CRC's verdicts on the frame
        busy_now, paused_now = Signal(), Signal()
        core_busy, core_paused = Signal(), Signal()   # the core's status, two cycles late
        ctl_valid, ctl_resume, ctl_pause, ctl_learn = (Signal() for _ in range(4))
        ctl_mask = Signal(8)
        # BATCH: the response's length (from CHECK), the node being written or read, its lane
        # and address, the next result byte in the frame buffer, the output layer's largest x
        # and its index so far, the cycles of the batch's runs together
        batch_len = Signal(8)
        byte = Signal(8)                        # a sample's byte from the frame buffer
        node = Signal(range(max(spec.sizes[0], spec.sizes[-1]) + 1))
        io_target, io_layer = Signal(8), Signal(8)   # the memory of the core access
        io_bank = Signal(range(max(2, core.lanes)))
        res_ptr = Signal(8)
        best = Signal(signed(spec.formats.x.width))
        best_idx = Signal(range(max(2, spec.sizes[-1])))
        cycle_sum = Signal(32)
        self.__dict__.update({k: v for k, v in locals().items()
                              if k not in ("self", "timeout_cycles", "core", "spec")})
