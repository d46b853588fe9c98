"""``HostLink``: the board side of the UART host protocol (:mod:`pcforge.boards.frame`), in
front of a :class:`~pcforge.hdl.core.PCCore`.

It receives a request frame byte by byte into a 256-byte frame buffer, checking CRC-8 on the way
and the gap between bytes (``timeout_cycles``); only a frame whose CRC, sequence number, length
and arguments are all right is executed — a corrupted, truncated or out-of-sequence frame
changes nothing in the core and is answered with its error status, after which the link is
ready for the next frame. Words move to and from the core through the core's own host streams
(``host_write``, ``host_read``/``read_data``, ``control``), exactly as the cocotb and Amaranth
testbenches drive them.
"""
from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..hdl.core import PCCore
from .frame import (ADDRESS_BYTES, MAX_WORDS, REQUEST_SYNC, RESPONSE_SYNC, STATUS_PAYLOAD,
                    Command, Status)

__all__ = ["HostLink", "crc8_step"]


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

    ``design_id`` (32 bits) is reported by STATUS so that a host can tell which network a board
    holds; ``timeout_cycles`` is the longest gap between two bytes of one frame."""

    def __init__(self, core: PCCore, *, design_id: int, timeout_cycles: int):
        if core.spec.n_layers > 8:
            raise ValueError(f"{core.spec.n_layers} layers: the host link's RUN mask is one "
                             "byte (at most 8 layers)")
        self.core = core
        self.design_id = int(design_id) & 0xFFFF_FFFF
        if timeout_cycles < 16:
            raise ValueError(f"timeout_cycles = {timeout_cycles}: give at least a few byte "
                             "times of the UART")
        self.timeout_cycles = int(timeout_cycles)
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
                          "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        core, spec = self.core, self.core.spec
        L, P = spec.L, core.lanes
        m.submodules.frame = buf = memory.Memory(shape=8, depth=256, init=[])
        wr = buf.write_port()
        rd = buf.read_port()

        n_len, seq, cmd, crc = Signal(8), Signal(8), Signal(8), Signal(8)
        expected = Signal(8)
        count = Signal(8)                       # payload bytes received
        hdr = [Signal(8, name=f"hdr{i}") for i in range(ADDRESS_BYTES + 1)]
        timer = Signal(range(self.timeout_cycles + 1))
        status = Signal(8)
        resp_len = Signal(8)
        sent = Signal(8)
        word = Signal(32)
        widx = Signal(8)                        # data word index in WRITE / READ
        bidx = Signal(2)
        ptr = Signal(8)
        source = Signal(2)                      # payload source: 0 registers, 1 core READ

        target, layer, bank = hdr[0], hdr[1], hdr[2]
        addr = Cat(hdr[3], hdr[4])
        n_words = Signal(8)
        cur_addr = Signal(16)                   # addr + widx, kept as a register (timing)
        w_last = Signal()                       # the word being pushed is the last one
        len_ok, arg_ok = Signal(), Signal()     # CHECK's verdicts on the frame
        crc_ok, seq_ok = Signal(), Signal()     # RX_CRC's verdicts on the frame
        busy_now, paused_now = Signal(), Signal()
        ctl_valid, ctl_resume, ctl_pause, ctl_learn = (Signal() for _ in range(4))
        ctl_mask = Signal(8)

        rx = self.rx
        m.d.comb += rx.ready.eq(1)              # bytes outside a frame are dropped
        got = rx.valid

        layer_ok = Mux(target == 0, layer <= L, (layer >= 1) & (layer <= L))
        bank_ok = (bank < P) | (target == 3)

        iteration = Signal(8)
        m.d.comb += iteration.eq(core.iteration)
        status_words = [
            Cat(core.busy, core.paused, core.done, Const(0, 5), iteration, expected,
                Const(P, 8)),
            core.cycles, Const(self.design_id, 32)]
        status_word = Signal(32)
        with m.Switch(widx):
            for i, w in enumerate(status_words):
                with m.Case(i):
                    m.d.comb += status_word.eq(w)

        def respond(code, length=0, src=0):
            m.d.sync += [status.eq(code), resp_len.eq(length), source.eq(src), sent.eq(0),
                         widx.eq(0), bidx.eq(0)]
            m.next = "TX_SYNC"

        def receive(next_state, store):
            """A byte of the frame: add it to the CRC, store it, restart the gap timer."""
            with m.If(got):
                m.d.sync += [crc.eq(crc8_step(crc, rx.payload)), timer.eq(self.timeout_cycles)]
                m.d.sync += store
                m.next = next_state
            with m.Elif(timer == 0):
                respond(Status.TRUNCATED)
            with m.Else():
                m.d.sync += timer.eq(timer - 1)

        c = core.control                        # ctl_valid is set only on entering CONTROL
        m.d.comb += [c.valid.eq(ctl_valid), c.payload.resume.eq(ctl_resume),
                     c.payload.pause.eq(ctl_pause), c.payload.learn.eq(ctl_learn),
                     c.payload.mask.eq(ctl_mask)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(got & (rx.payload == REQUEST_SYNC)):
                    m.d.sync += [crc.eq(0), timer.eq(self.timeout_cycles), count.eq(0),
                                 seq.eq(0)]
                    m.next = "RX_LEN"
            with m.State("RX_LEN"):
                receive("RX_SEQ", [n_len.eq(rx.payload)])
            with m.State("RX_SEQ"):
                receive("RX_CMD", [seq.eq(rx.payload)])
            with m.State("RX_CMD"):
                receive("RX_PAYLOAD", [cmd.eq(rx.payload)])
                with m.If(got & (n_len == 0)):
                    m.next = "RX_CRC"
            with m.State("RX_PAYLOAD"):
                m.d.comb += [wr.addr.eq(count), wr.data.eq(rx.payload), wr.en.eq(got)]
                receive("RX_PAYLOAD", [count.eq(count + 1)])
                for i, h in enumerate(hdr):
                    with m.If(got & (count == i)):
                        m.d.sync += h.eq(rx.payload)
                with m.If(got & (count + 1 == n_len)):
                    m.next = "RX_CRC"
            with m.State("RX_CRC"):
                with m.If(got):
                    m.d.sync += [crc_ok.eq(crc == rx.payload), seq_ok.eq(seq == expected)]
                    m.next = "VERIFY"
                with m.Elif(timer == 0):
                    respond(Status.TRUNCATED)
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            # VERIFY acts on RX_CRC's registered verdicts (timing: the CRC's XOR tree and the
            # compare stay out of the response registers' enables)
            with m.State("VERIFY"):
                with m.If(~crc_ok):
                    respond(Status.BAD_CHECKSUM)
                with m.Elif(~seq_ok):
                    respond(Status.BAD_SEQUENCE, 1)
                with m.Else():
                    m.d.sync += expected.eq(expected + 1)
                    m.next = "CHECK"

            # CHECK registers what EXECUTE decides on (timing: the decision is a few LUTs
            # deep instead of the whole validation)
            with m.State("CHECK"):
                n = hdr[ADDRESS_BYTES]
                mask, flags = hdr[0], hdr[1]
                with m.Switch(cmd):
                    with m.Case(Command.STATUS, Command.RESUME):
                        m.d.sync += [len_ok.eq(n_len == 0), arg_ok.eq(1)]
                    with m.Case(Command.WRITE):
                        m.d.sync += [len_ok.eq((n_len >= ADDRESS_BYTES + 4)
                                               & (n_len[:2] == ADDRESS_BYTES % 4)),
                                     arg_ok.eq((target <= 3) & layer_ok & bank_ok)]
                    with m.Case(Command.READ):
                        m.d.sync += [len_ok.eq(n_len == ADDRESS_BYTES + 1),
                                     arg_ok.eq((target <= 4) & layer_ok & bank_ok & (n != 0)
                                               & (n <= MAX_WORDS))]
                    with m.Case(Command.RUN):
                        m.d.sync += [len_ok.eq(n_len == 2),
                                     arg_ok.eq(~(mask[spec.n_layers:].any() | flags[2:].any()
                                                 | (flags[0] & (not core.learns))))]
                    with m.Default():
                        m.d.sync += [len_ok.eq(1), arg_ok.eq(1)]
                m.d.sync += [busy_now.eq(core.busy), paused_now.eq(core.paused),
                             n_words.eq((n_len - ADDRESS_BYTES) >> 2), ptr.eq(ADDRESS_BYTES),
                             cur_addr.eq(addr),
                             ctl_resume.eq(cmd == Command.RESUME), ctl_pause.eq(flags[1]),
                             ctl_learn.eq(flags[0]), ctl_mask.eq(mask)]
                m.next = "EXECUTE"

            with m.State("EXECUTE"):
                running_now = busy_now & ~paused_now
                with m.If(~len_ok):
                    respond(Status.BAD_LENGTH)
                with m.Elif(~arg_ok):
                    respond(Status.BAD_ARGUMENT)
                with m.Else():
                    with m.Switch(cmd):
                        with m.Case(Command.STATUS):
                            respond(Status.OK, STATUS_PAYLOAD)
                        with m.Case(Command.WRITE):
                            with m.If(running_now):
                                respond(Status.BUSY)
                            with m.Else():
                                m.d.sync += [widx.eq(0), bidx.eq(0)]
                                m.next = "W_ADDR"
                        with m.Case(Command.READ):
                            with m.If(running_now):
                                respond(Status.BUSY)
                            with m.Else():
                                m.d.sync += n_words.eq(hdr[ADDRESS_BYTES])
                                respond(Status.OK, (hdr[ADDRESS_BYTES] << 2)[:8], 1)
                        with m.Case(Command.RUN):
                            with m.If(busy_now):
                                respond(Status.BUSY)
                            with m.Else():
                                m.d.sync += ctl_valid.eq(1)
                                m.next = "CONTROL"
                        with m.Case(Command.RESUME):
                            with m.If(~paused_now):
                                respond(Status.BUSY)
                            with m.Else():
                                m.d.sync += ctl_valid.eq(1)
                                m.next = "CONTROL"
                        with m.Default():
                            respond(Status.BAD_COMMAND)

            # RUN / RESUME: one control beat from registers
            # (the beat is driven outside the FSM: registers straight into the controller)
            with m.State("CONTROL"):
                with m.If(c.ready):
                    m.d.sync += ctl_valid.eq(0)
                    m.next = "C_DONE"
            with m.State("C_DONE"):
                respond(Status.OK)

            # WRITE: assemble each 4-byte word from the frame buffer, then one host_write beat
            with m.State("W_ADDR"):
                m.d.comb += rd.addr.eq(ptr)
                m.next = "W_BYTE"
            with m.State("W_BYTE"):
                m.d.sync += [word.eq(Cat(word[8:], rd.data)), ptr.eq(ptr + 1),
                             bidx.eq(bidx + 1), w_last.eq(widx + 1 == n_words)]
                m.next = "W_ADDR"
                with m.If(bidx == 3):
                    m.next = "W_PUSH"
            with m.State("W_PUSH"):
                hw = core.host_write
                m.d.comb += [hw.valid.eq(1), hw.payload.target.as_value().eq(target),
                             hw.payload.layer.eq(layer), hw.payload.bank.eq(bank),
                             hw.payload.addr.eq(cur_addr), hw.payload.data.eq(word)]
                with m.If(hw.ready):
                    m.d.sync += [widx.eq(widx + 1), cur_addr.eq(cur_addr + 1)]
                    with m.If(w_last):
                        m.next = "W_DONE"
                    with m.Else():
                        m.next = "W_ADDR"
            # (a state of its own: the core's ready stays off the response registers' enables)
            with m.State("W_DONE"):
                respond(Status.OK)

            # the response: header, payload (registers or core reads), CRC
            tx = self.tx
            def send(byte, next_state, add_crc=True):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(byte)]
                with m.If(tx.ready):
                    if add_crc:
                        m.d.sync += crc.eq(crc8_step(crc, byte))
                    m.next = next_state

            with m.State("TX_SYNC"):
                m.d.sync += crc.eq(0)
                send(RESPONSE_SYNC, "TX_LEN", add_crc=False)
            with m.State("TX_LEN"):
                send(resp_len, "TX_SEQ")
            with m.State("TX_SEQ"):
                send(seq, "TX_STATUS")
            with m.State("TX_STATUS"):
                send(status, "TX_NEXT")
                with m.If(tx.ready & (status == Status.BAD_SEQUENCE)):
                    m.d.sync += word.eq(expected)
            with m.State("TX_NEXT"):
                with m.If(sent == resp_len):
                    m.next = "TX_CRC"
                with m.Elif((bidx == 0) & (status != Status.BAD_SEQUENCE)):
                    with m.If(source == 1):
                        m.next = "R_REQ"
                    with m.Else():
                        m.d.sync += [word.eq(status_word), widx.eq(widx + 1)]
                        m.next = "TX_BYTE"
                with m.Else():
                    m.next = "TX_BYTE"
            with m.State("TX_BYTE"):
                send(word[:8], "TX_NEXT")
                with m.If(tx.ready):
                    m.d.sync += [word.eq(word >> 8), sent.eq(sent + 1), bidx.eq(bidx + 1)]
            with m.State("R_REQ"):
                hr = core.host_read
                m.d.comb += [hr.valid.eq(1), hr.payload.target.as_value().eq(target),
                             hr.payload.layer.eq(layer), hr.payload.bank.eq(bank),
                             hr.payload.addr.eq(cur_addr)]
                with m.If(hr.ready):
                    m.next = "R_WAIT"
            with m.State("R_WAIT"):
                rdd = core.read_data
                m.d.comb += rdd.ready.eq(1)
                with m.If(rdd.valid):
                    m.d.sync += [word.eq(rdd.payload), widx.eq(widx + 1),
                                 cur_addr.eq(cur_addr + 1)]
                    m.next = "TX_BYTE"
            with m.State("TX_CRC"):
                send(crc, "IDLE", add_crc=False)
                with m.If(tx.ready):
                    m.d.sync += self.error.eq(status != Status.OK)
        return m
