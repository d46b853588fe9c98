"""Models of the UART host protocol (:mod:`pcforge.boards.frame`) for the link's tests.

``LinkModel``: what the link must answer to a frame and what the memories then hold.
``StreamModel``: the byte level — which frames a stream of taken bytes (with the cycles they
arrived in) makes, truncations by the inter-byte timeout included — checked against the
responses a link sent, frame by frame (:meth:`StreamModel.check`).
"""
from __future__ import annotations

from dataclasses import dataclass

from pcforge.boards.frame import (ADDRESS_BYTES, MAX_WORDS, REQUEST_SYNC, RESPONSE_SYNC,
                                  STATUS_PAYLOAD, BatchFormat, Command, Status, crc8,
                                  parse_words)


class LinkModel:
    """What the link must answer, and what the memories must then hold."""

    def __init__(self, core, design_id: int):
        self.core, self.spec, self.P = core, core.spec, core.lanes
        self.design_id = design_id
        self.expected = 0
        self.mem = {}                                  # (target, layer, bank, addr) -> value
        self.last_cycles = 0

    def width(self, target):
        F = self.spec.formats
        return {0: F.x.width, 1: F.e.width, 2: F.w_store.width, 3: F.b.width}[target]

    def depth(self, target, layer, bank):
        c = self.core
        return {0: lambda: c.x_mem[layer][bank].depth, 1: lambda: c.e_mem[layer][bank].depth,
                2: lambda: c.w_mem[layer][bank].depth, 3: lambda: c.b_mem[layer].depth,
                4: lambda: c.geometry.depth(layer)}[target]()

    def read(self, key):
        return self.mem.get(key if key[0] != 3 else (3, key[1], 0, key[3]), 0)

    def write(self, key, v):
        w = self.width(key[0])
        v &= (1 << w) - 1
        self.mem[key if key[0] != 3 else (3, key[1], 0, key[3])] = v - ((v >> (w - 1)) << w)

    def batch_format(self, flags: int) -> BatchFormat:
        return BatchFormat(self.spec.sizes[0], self.spec.sizes[-1], argmax=bool(flags & 1),
                           compact=bool(flags & 2))

    def answer(self, seq, status, payload=b""):
        body = bytes([len(payload), seq, int(status)]) + payload
        return bytes([RESPONSE_SYNC]) + body + bytes([crc8(body)])


@dataclass
class Frame:
    """A request as the link received it: complete (with its CRC byte) or truncated."""

    length: int
    seq: int
    cmd: int
    payload: bytes
    crc: int | None = None          # None: the frame was truncated (inter-byte timeout)

    @property
    def truncated(self) -> bool:
        return self.crc is None

    @property
    def crc_ok(self) -> bool:
        return crc8(bytes([self.length, self.seq, self.cmd]) + self.payload) == self.crc


def frames_of(taken: list, timeout: int) -> list:
    """The frames a link receives from the bytes it took — (byte, cycle) pairs: bytes before a
    0xA5 are ignored; a frame whose next byte comes more than ``timeout`` + 1 cycles after the
    previous one (or never) is truncated there."""
    out, state, fr, last = [], "idle", None, None
    for byte, cycle in taken:
        if state != "idle" and cycle - last > timeout + 1:
            out.append(fr)                           # truncated: answered, then idle
            state = "idle"
        last = cycle
        if state == "idle":
            if byte == REQUEST_SYNC:
                fr, state = Frame(length=0, seq=0, cmd=0, payload=b""), "len"
        elif state == "len":
            fr.length, state = byte, "seq"
        elif state == "seq":
            fr.seq, state = byte, "cmd"
        elif state == "cmd":
            fr.cmd, state = byte, ("payload" if fr.length else "crc")
        elif state == "payload":
            fr.payload += bytes([byte])
            if len(fr.payload) == fr.length:
                state = "crc"
        else:
            fr.crc = byte
            out.append(fr)
            state = "idle"
    if state != "idle":
        out.append(fr)
    return out


class StreamModel(LinkModel):
    """:class:`LinkModel` at the byte level, over a whole stream. What depends on the core's
    run state (BUSY, STATUS's flags, x/e/cache after a run, W/b after a learning run) is
    accepted either way and then followed as the link answered."""

    def __init__(self, core, design_id: int, timeout: int):
        super().__init__(core, design_id)
        self.timeout = timeout
        self.ran = False             # a RUN was accepted: x, e, the cache are the core's now
        self.learned = False         # ... with learning: W and b too
        self.applied_writes = 0

    def known(self, target: int) -> bool:
        return not (self.ran if target in (0, 1, 4) else self.learned)

    def check(self, frames: list, responses: list) -> list:
        """Problems (strings) of the link's ``responses`` to ``frames``; the model follows."""
        bad = []
        if len(responses) != len(frames):
            bad.append(f"{len(frames)} frames, {len(responses)} responses")
        for k, (fr, got) in enumerate(zip(frames, responses)):
            bad += [f"frame {k} ({fr}): {p}; got {got.hex()}" for p in self._one(fr, got)]
            if bad:
                break
        return bad

    def _one(self, fr: Frame, got: bytes) -> list:
        if len(got) < 5 or got[0] != RESPONSE_SYNC or len(got) != got[1] + 5:
            return ["not a response frame"]
        if crc8(got[1:-1]) != got[-1]:
            return ["bad response CRC"]
        seq, status, pay = got[2], got[3], got[4:-1]
        if fr.truncated:
            return self._expect(got, self.answer(fr.seq, Status.TRUNCATED))
        if not fr.crc_ok:
            return self._expect(got, self.answer(fr.seq, Status.BAD_CHECKSUM))
        if fr.seq != self.expected:
            return self._expect(got, self.answer(fr.seq, Status.BAD_SEQUENCE,
                                                 bytes([self.expected])))
        self.expected = (self.expected + 1) & 0xFF
        verdict = self._verdict(fr)
        if verdict is not None:
            return self._expect(got, self.answer(fr.seq, verdict))
        if seq != fr.seq:
            return [f"sequence {seq}, not {fr.seq}"]
        cmd = fr.cmd
        if cmd == Command.STATUS:
            if status != Status.OK or len(pay) != STATUS_PAYLOAD:
                return ["STATUS not answered OK with its payload"]
            lanes_ok = pay[2] == self.expected and pay[3] == self.P
            did = parse_words(pay[8:12])[0] & 0xFFFF_FFFF
            idle = self.ran or (pay[0] == 0 and pay[1] == 0 and parse_words(pay[4:8])[0] == 0)
            return [] if lanes_ok and did == self.design_id and idle else ["STATUS payload"]
        if cmd == Command.RESUME and not self.ran:          # nothing is paused
            return [] if status == Status.BUSY and not pay else ["RESUME before a RUN not BUSY"]
        # the rest may be refused while the core runs (BUSY) — never before any RUN
        if status == Status.BUSY and self.ran and not pay:
            return []
        if status != Status.OK:
            return [f"status {status}, not OK"]
        if cmd in (Command.WRITE, Command.READ):
            target, layer, bank = fr.payload[:3]
            addr = fr.payload[3] | fr.payload[4] << 8
        if cmd == Command.WRITE:
            words = parse_words(fr.payload[ADDRESS_BYTES:])
            for i, v in enumerate(words):
                self.write((target, layer, bank, addr + i), v)
            self.applied_writes += 1
            return [] if not pay else ["WRITE answered with a payload"]
        if cmd == Command.READ:
            count = fr.payload[ADDRESS_BYTES]
            if len(pay) != 4 * count:
                return [f"READ of {count} words answered with {len(pay)} bytes"]
            if not self.known(target):
                return []
            want = [self.read((target, layer, bank if target != 3 else 0, addr + i))
                    for i in range(count)]
            return [] if parse_words(pay) == want else [f"READ words, model {want}"]
        if cmd == Command.BATCH:
            # the results depend on the core's run (checked against FixedPCN elsewhere); here
            # their length, and x_0 is the core's now
            self.ran = True
            fmt = self.batch_format(fr.payload[0])
            k = fmt.samples_in(fr.length)
            return [] if len(pay) == fmt.response_bytes(k) else \
                [f"BATCH of {k} answered with {len(pay)} bytes"]
        if cmd == Command.RUN:
            self.ran = True
            self.learned |= bool(fr.payload[1] & 1)
        return [] if not pay else ["RUN/RESUME answered with a payload"]

    def _verdict(self, fr: Frame):
        """BAD_LENGTH / BAD_ARGUMENT / BAD_COMMAND of an in-sequence frame, or None."""
        n, p, L, P = fr.length, fr.payload, self.spec.L, self.P
        cmd = fr.cmd
        if cmd in (Command.STATUS, Command.RESUME):
            return None if n == 0 else Status.BAD_LENGTH
        if cmd == Command.RUN:
            if n != 2:
                return Status.BAD_LENGTH
            mask, flags = p[0], p[1]
            ok = (mask >> self.spec.n_layers) == 0 and (flags >> 2) == 0 and \
                not (flags & 1 and not self.core.learns)
            return None if ok else Status.BAD_ARGUMENT
        if cmd == Command.BATCH:
            if n == 0:
                return Status.BAD_LENGTH
            fmt = self.batch_format(p[0])
            k = fmt.samples_in(n)
            if k == 0:
                return Status.BAD_LENGTH
            ok = p[0] & 0x0C == 0 and k <= fmt.max_samples
            return None if ok else Status.BAD_ARGUMENT
        if cmd not in (Command.WRITE, Command.READ):
            return Status.BAD_COMMAND
        if cmd == Command.WRITE and not (n >= ADDRESS_BYTES + 4 and n % 4 == ADDRESS_BYTES % 4):
            return Status.BAD_LENGTH
        if cmd == Command.READ and n != ADDRESS_BYTES + 1:
            return Status.BAD_LENGTH
        target, layer, bank = p[:3]
        addr = p[3] | p[4] << 8
        layer_ok = layer <= L if target == 0 else 1 <= layer <= L
        bank_ok = bank < P or target == 3
        if cmd == Command.WRITE:
            count = (n - ADDRESS_BYTES) >> 2
            ok = target <= 3 and layer_ok and bank_ok
        else:
            count = p[ADDRESS_BYTES]
            ok = target <= 4 and layer_ok and bank_ok and 1 <= count <= MAX_WORDS
        ok = ok and addr + count <= self.depth(target, layer, min(bank, P - 1))
        return None if ok else Status.BAD_ARGUMENT

    @staticmethod
    def _expect(got: bytes, want: bytes) -> list:
        return [] if got == want else [f"model {want.hex()}"]
