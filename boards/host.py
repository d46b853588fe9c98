"""``PCLink``: the host driver of a pcforge board. One class for both ends, as Glasgow pairs a
hardware and a simulation assembly: it speaks the framing of :mod:`pcforge.boards.frame` over a
*transport* — :class:`SerialTransport` (a real board on a serial port, via pyserial) or the
simulated board top's UART model (:mod:`pcforge.boards.simulated_bench`, cocotb + Verilator).

A transport has ``write(data: bytes)`` and ``read(n: int) -> bytes`` (which raises
:class:`~pcforge.boards.frame.LinkError` when the bytes do not come in time) and
``discard_input()``.
"""
from __future__ import annotations

import time
from itertools import groupby

import numpy as np

from ..hdl.protocol import (alpha_word, node_addresses, node_words, pin_words, run_words,
                            weight_addresses, weight_words)
from ..model.arch.geometry import CoreGeometry
from ..model.spec import PCSpec
from .frame import (BATCH_CYCLE_BYTES, MAX_WORDS, RESPONSE_SYNC, BatchFormat, Command,
                    LinkError, Status, address_header, crc8, encode_request, parse_words,
                    words_payload)
from .system import design_id

__all__ = ["PCLink", "SerialTransport", "BoardStatus"]


class SerialTransport:
    """A serial port (pyserial): ``port`` e.g. ``/dev/ttyUSB1`` (iCEBreaker: the FT2232H's
    second interface), ``baud`` the board's UART rate."""

    def __init__(self, port: str, baud: int, timeout_s: float = 1.0):
        try:
            import serial
        except ImportError:
            raise LinkError("pyserial is not installed: pip install pyserial") from None
        self.port = serial.Serial(port, baud, timeout=timeout_s)

    def write(self, data: bytes):
        self.port.write(data)

    def read(self, n: int) -> bytes:
        data = self.port.read(n)
        if len(data) != n:
            raise LinkError(f"the board sent {len(data)} of {n} bytes before the timeout")
        return data

    def discard_input(self):
        time.sleep(0.05)
        self.port.reset_input_buffer()

    def close(self):
        self.port.close()


class BoardStatus(dict):
    """STATUS as a dict: busy, paused, done, iteration, expected_seq, lanes, cycles,
    design_id."""


def _runs(words):
    """Group (target, layer, bank, addr, value) words into runs of consecutive addresses of one
    memory, at most MAX_WORDS long: [(target, layer, bank, addr0, [indices])]."""
    out = []
    key = lambda iw: (iw[1][0], iw[1][1], iw[1][2])          # noqa: E731
    for (tg, layer, bank), grp in groupby(sorted(enumerate(words), key=lambda iw: iw[1][:4]),
                                          key=key):
        run = []
        for i, w in grp:
            if run and (w[3] != words[run[-1]][3] + 1 or len(run) == MAX_WORDS):
                out.append((tg, layer, bank, words[run[0]][3], run))
                run = []
            run.append(i)
        if run:
            out.append((tg, layer, bank, words[run[0]][3], run))
    return out


class PCLink:
    """Talks to a board built for ``spec`` with ``lanes`` lanes (and ``rows`` rows per token)
    over ``transport``."""

    def __init__(self, transport, spec: PCSpec, lanes: int, rows: int = 1):
        self.transport, self.spec, self.lanes, self.rows = transport, spec, lanes, rows
        self.geometry = CoreGeometry(spec, lanes, rows)
        self.seq = 0
        self.frames = 0

    # --- framing ----------------------------------------------------------------------
    def request(self, command: Command, payload: bytes = b"", *, resync: bool = True) -> bytes:
        """Send one request and return the response payload; an error status raises
        :class:`LinkError` (after a BAD_SEQUENCE the driver adopts the board's expected number
        and, with ``resync``, sends the request once more)."""
        self.transport.write(encode_request(self.seq, command, payload))
        self.frames += 1
        status, seq, data = self._response()
        if status == Status.BAD_SEQUENCE and resync and data:
            self.seq = data[0]
            return self.request(command, payload, resync=False)
        if status not in (Status.BAD_CHECKSUM, Status.BAD_SEQUENCE, Status.TRUNCATED):
            self.seq = (self.seq + 1) & 0xFF
        if status != Status.OK:
            raise LinkError(f"{Command(command).name}: the board answered {status.name}",
                            status)
        return data

    def _response(self):
        t = self.transport
        for _ in range(64):                   # skip anything before the response's sync byte
            if t.read(1)[0] == RESPONSE_SYNC:
                break
        else:
            raise LinkError("no response frame from the board (no sync byte)")
        head = t.read(3)
        n, seq, status = head
        data = t.read(n)
        crc = t.read(1)[0]
        if crc8(head + data) != crc:
            t.discard_input()
            raise LinkError("the board's response failed its CRC (a noisy line?)",
                            Status.BAD_CHECKSUM)
        return Status(status), seq, data

    # --- commands ---------------------------------------------------------------------
    def status(self) -> BoardStatus:
        d = self.request(Command.STATUS)
        flags, it, exp, lanes = d[0], d[1], d[2], d[3]
        cycles, ident = parse_words(d[4:12])
        return BoardStatus(busy=bool(flags & 1), paused=bool(flags & 2), done=bool(flags & 4),
                           iteration=it, expected_seq=exp, lanes=lanes,
                           rows=2 if flags & 8 else 1,
                           cycles=cycles & 0xFFFF_FFFF, design_id=ident & 0xFFFF_FFFF)

    def check_design(self) -> BoardStatus:
        """STATUS, and refuse a board that holds another network or lane count."""
        st = self.status()
        want = design_id(self.spec)
        if st["design_id"] != want or st["lanes"] != self.lanes or st["rows"] != self.rows:
            raise LinkError(f"the board holds design {st['design_id']:08x} with {st['lanes']} "
                            f"lanes × {st['rows']} row(s) per token; this driver is for "
                            f"{want:08x} ({self.spec.name}) with {self.lanes} × {self.rows}: "
                            "build and load the matching bitstream (or pass --rows)")
        return st

    def write_words(self, words):
        """``words``: (target, layer, bank, addr, value) in any order."""
        words = [tuple(int(v) for v in w) for w in words]
        for tg, layer, bank, a0, idx in _runs(words):
            self.request(Command.WRITE, address_header(tg, layer, bank, a0)
                         + words_payload(words[i][4] for i in idx))

    def read_words(self, addresses) -> list:
        """Values at (target, layer, bank, addr) addresses, in the given order."""
        addresses = [tuple(int(v) for v in a[:4]) + (0,) for a in addresses]
        out = [0] * len(addresses)
        for tg, layer, bank, a0, idx in _runs(addresses):
            vals = parse_words(self.request(
                Command.READ, address_header(tg, layer, bank, a0) + bytes([len(idx)])))
            for i, v in zip(idx, vals):
                out[i] = v
        return out

    def load_weights(self, W: list, b: list):
        """Every W_l and b_l (FixedPCN's integers)."""
        self.write_words(weight_words(self.geometry, W, b))

    def set_alpha(self, mantissa: int):
        """Write the α register (``rates.alpha_runtime``): the updates after this learn with
        α = mantissa·2^−alpha.frac."""
        self.write_words([alpha_word(self.geometry, mantissa)])

    def load_clamped(self, layer: int, values):
        """x of a clamped layer (integers in the X format)."""
        self.write_words(node_words(self.geometry, layer, values))

    def run(self, mask, *, learn: bool = False, pause: bool = False):
        bits = sum(1 << k for k, c in enumerate(self.spec.mask(mask)) if c)
        self.request(Command.RUN, bytes([bits, int(learn) | (int(pause) << 1)]))

    def resume(self):
        self.request(Command.RESUME)

    def wait(self, timeout_s: float = 10.0, poll=None) -> BoardStatus:
        """Poll STATUS until the run is done (or paused)."""
        t0 = time.monotonic()
        while True:
            st = self.status()
            if st["paused"] or (st["done"] and not st["busy"]):
                return st
            if time.monotonic() - t0 > timeout_s:
                raise LinkError(f"the run did not finish within {timeout_s} s: {dict(st)}")
            if poll:
                poll()

    def read_nodes(self, kind: str, layer: int) -> np.ndarray:
        return np.array(self.read_words(node_addresses(self.geometry, kind, layer)),
                        dtype=np.int64)

    def read_x(self, layer: int) -> np.ndarray:
        return self.read_nodes("x", layer)

    def read_e(self, layer: int) -> np.ndarray:
        return self.read_nodes("e", layer)

    def read_weights(self) -> tuple:
        """(W, b) as FixedPCN holds them."""
        W, b = [], []
        for l in range(1, self.spec.L + 1):
            n, m = self.spec.sizes[l], self.spec.sizes[l - 1]
            v = np.array(self.read_words(weight_addresses(self.geometry, l)), dtype=np.int64)
            W.append(v[:n * m].reshape(n, m))
            b.append(v[n * m:])
        return W, b

    def infer(self, clamped: dict, mask="inference", *, learn: bool = False,
              pins: dict | None = None) -> dict:
        """Load the clamped layers (and with per-node clamps ``pins`` — {layer: n_l bools},
        :meth:`PCSpec.pins` — the held nodes' layers and every pin bit), run, wait; x of every
        layer and the run's cycles."""
        pins = {k: np.asarray(v).reshape(-1) for k, v in self.spec.pins(mask, pins).items()}
        self.write_words(run_words(self.geometry, self.spec.mask(mask),
                                   {int(k): np.asarray(v).reshape(-1)
                                    for k, v in clamped.items()}, pins))
        self.run(mask, learn=learn)
        st = self.wait()
        return {"x": [self.read_x(k) for k in range(self.spec.n_layers)],
                "cycles": st["cycles"]}

    def classify(self, x0) -> tuple:
        """One sample without BATCH: x_0 written, RUN (inference mask), STATUS polled until
        done, the output layer read: (argmax, the run's cycles)."""
        self.load_clamped(0, x0)
        self.run("inference")
        st = self.wait()
        return int(np.argmax(self.read_x(self.spec.L))), st["cycles"]

    def batch_format(self, inputs, *, argmax: bool = True) -> tuple:
        """(:class:`BatchFormat`, shift) for BATCH requests of ``inputs`` (x_0 words): compact
        one-byte inputs when every value is a signed byte times 2^shift, else 2 bytes."""
        spec = self.spec
        shift = BatchFormat.compact_shift(inputs)
        fmt = BatchFormat(spec.sizes[0], spec.sizes[-1], argmax=argmax,
                          compact=shift is not None)
        if not argmax and spec.formats.x.width > 16:
            raise LinkError(f"BATCH returns the output layer's x as 16 bits; this core's x is "
                            f"{spec.formats.x.width} bits wide: ask for the argmax only, or "
                            "use infer()")
        if fmt.max_samples == 0:
            raise LinkError(
                f"BATCH cannot carry a sample of {spec.sizes[0]} inputs "
                f"({fmt.sample_bytes} bytes) with results of {fmt.result_bytes} bytes in one "
                f"frame of at most 255 bytes: use infer() (a frame per 62 words)")
        x = np.asarray(inputs)
        if shift is None and np.any((x < -2**15) | (x >= 2**15)):
            raise LinkError("BATCH carries inputs of at most 16 bits: use infer()")
        return fmt, shift or 0

    def infer_batch(self, inputs, *, argmax: bool = True) -> dict:
        """Classify ``inputs`` (x_0 words, (N, n_0)) with BATCH requests — as many samples per
        frame as fit, run back to back on the board: {"results": (N,) output indices (argmax)
        or (N, n_L) output x words, "cycles": the core's cycles over all of them, "frames":
        request frames sent, "bytes": bytes sent and received}. On a core with per-node clamps
        every pin is cleared first (BATCH runs the inference mask with the pins it finds)."""
        x = np.asarray(inputs, dtype=np.int64).reshape(-1, self.spec.sizes[0])
        fmt, shift = self.batch_format(x, argmax=argmax)
        if self.spec.node_clamp:                # BATCH keeps the pins: none left from before
            self.write_words([w for k in self.spec.node_clamp
                              for w in pin_words(self.geometry, k,
                                                 np.zeros(self.spec.sizes[k], bool))])
        k_max = fmt.max_samples
        results, cycles, frames0, sent = [], 0, self.frames, 0
        for lo in range(0, len(x), k_max):
            chunk = x[lo:lo + k_max]
            if fmt.compact:
                body = (chunk >> shift).astype(np.int8).tobytes()
            else:
                body = chunk.astype("<i2").tobytes()
            payload = bytes([fmt.flags(shift)]) + body
            try:
                data = self.request(Command.BATCH, payload)
            except LinkError as e:
                if e.status == Status.BAD_COMMAND:
                    raise LinkError("this board's link has no BATCH command (the iCEBreaker's "
                                    "logic cells are full): classify one sample at a time "
                                    "(classify(), pcforge board infer without --batch)",
                                    e.status) from None
                raise
            sent += len(payload) + 5 + len(data) + 5
            k = len(chunk)
            if len(data) != fmt.response_bytes(k):
                raise LinkError(f"BATCH of {k} samples answered with {len(data)} bytes, not "
                                f"{fmt.response_bytes(k)}")
            res = data[:k * fmt.result_bytes]
            if argmax:
                results.extend(res)
            else:
                words = np.frombuffer(res, dtype="<i2").astype(np.int64)
                results.extend(words.reshape(k, -1))
            cycles += int.from_bytes(data[-BATCH_CYCLE_BYTES:], "little")
        return {"results": np.array(results, dtype=np.int64), "cycles": cycles,
                "frames": self.frames - frames0, "bytes": sent}
