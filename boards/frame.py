"""The UART host link's framing: the one place that states it (the hardware link in
:mod:`pcforge.boards.link` and the host driver in :mod:`pcforge.boards.host` both use these
constants and functions). ``docs/boards.md`` ("The host link") describes it for people.

Every request is answered by exactly one response; the host sends the next request after the
response (bytes arriving while the link executes a command are dropped).

Request (host → board)::

    0xA5  LEN  SEQ  CMD  payload[LEN]  CRC

Response (board → host)::

    0x5A  LEN  SEQ  STATUS  payload[LEN]  CRC

``LEN`` is the payload length in bytes (0..255); ``SEQ`` the request's sequence number (the
board accepts only the number it expects — 0 after configuration, then +1 mod 256 for every
accepted request — and echoes it); ``CRC`` is CRC-8 (polynomial 0x07, initial value 0, no
reflection: CRC-8/SMBUS) over LEN, SEQ, CMD/STATUS and the payload. Multi-byte fields are little
endian; data words are 4 bytes, two's complement (the low bits of the target's format).

A frame that stops for longer than the board's inter-byte timeout is answered ``TRUNCATED``;
bytes before a 0xA5 are ignored. After an error the board is ready for the next frame at once.
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

__all__ = ["REQUEST_SYNC", "RESPONSE_SYNC", "Command", "Status", "crc8", "encode_request",
           "MAX_PAYLOAD", "MAX_WORDS", "ADDRESS_BYTES", "STATUS_PAYLOAD", "LinkError",
           "BatchFormat", "BATCH_ARGMAX", "BATCH_COMPACT", "BATCH_CYCLE_BYTES"]

REQUEST_SYNC = 0xA5
RESPONSE_SYNC = 0x5A
#: the largest payload of one frame (LEN is one byte)
MAX_PAYLOAD = 255
#: bytes of the address header of WRITE and READ: target, layer, bank, addr (u16)
ADDRESS_BYTES = 5
#: data words per WRITE or READ frame: (255 - 5) // 4
MAX_WORDS = (MAX_PAYLOAD - ADDRESS_BYTES) // 4
#: bytes of the STATUS response payload (see :class:`Command`)
STATUS_PAYLOAD = 12


class Command(enum.IntEnum):
    """Request commands and their payloads.

    * ``STATUS`` (no payload) → 12 bytes: flags (bit 0 busy, 1 paused, 2 done), iterations
      completed, the next expected sequence number, lanes; cycles of the last/current run
      (u32); design id (u32: the first 8 hex digits of the spec digest).
    * ``WRITE`` target, layer, bank, addr (u16), then k ≥ 1 data words → no payload. Writes
      addresses addr, addr + 1, … of one memory (``pcforge.hdl.protocol`` addressing; all
      inside it, else BAD_ARGUMENT and nothing is written). Targets:
      x 0, e 1, W 2, b 3 — loading weights and clamped values — and pin 5 (per-node clamp
      bits, 1 = the node holds its x; cores built with ``network.node_clamp`` layers only), α 6
      (layer 0, addr 0, one word: the α register's mantissa; ``rates.alpha_runtime`` only).
    * ``READ`` target, layer, bank, addr (u16), count (1..62) → count data words (targets as
      WRITE plus the prediction cache 4).
    * ``RUN`` mask, flags (bit 0 learn, bit 1 pause after every iteration) → no payload:
      starts relaxation (and learning) with that clamp mask; poll ``STATUS`` for done.
    * ``RESUME`` (no payload) → no payload: continues a paused run by one iteration.
    * ``BATCH`` flags, then k ≥ 1 samples of the input layer (layer 0) → k results, then the
      cycles of the k runs together (u32). Each sample is written into x_0 and run under the
      inference mask (layer 0 clamped; without learning, pins as last written), back to back
      in the link with no host traffic between them; the output layer is read after each run.
      Flags: bit 0 *argmax* (a result is one byte, the index of the output layer's largest x —
      the first on ties; else the output layer's x, 2 bytes each: the low 16 bits), bit 1
      *compact* (an input value is one signed byte v, x = v·2^shift; else 2 bytes, signed 16
      bits), bits 4–7 the shift; bits 2–3 must be 0. See :class:`BatchFormat` for which
      lengths and modes a core takes (else BAD_LENGTH / BAD_ARGUMENT); BUSY while the core
      runs or is paused.
    """
    STATUS = 0x00
    WRITE = 0x01
    READ = 0x02
    RUN = 0x03
    RESUME = 0x04
    BATCH = 0x05


#: BATCH flag bits (the shift of compact inputs is bits 4–7)
BATCH_ARGMAX, BATCH_COMPACT = 0x01, 0x02
#: bytes after a BATCH response's results: the cycles of its runs together (u32)
BATCH_CYCLE_BYTES = 4


@dataclass(frozen=True)
class BatchFormat:
    """The BATCH command for a core with ``n_inputs`` input nodes and ``n_outputs`` output
    nodes, in one mode (``argmax``, ``compact``): bytes per sample and per result, and which
    request lengths the link takes. The link's checks and the host driver both come from here.

    The results of sample i are written over the frame buffer's first bytes while the samples
    after it are still there, so a result may not be longer than a sample."""

    n_inputs: int
    n_outputs: int
    argmax: bool
    compact: bool

    @property
    def sample_bytes(self) -> int:
        return self.n_inputs * (1 if self.compact else 2)

    @property
    def result_bytes(self) -> int:
        return 1 if self.argmax else 2 * self.n_outputs

    def response_bytes(self, k: int) -> int:
        return k * self.result_bytes + BATCH_CYCLE_BYTES

    @property
    def max_samples(self) -> int:
        """Samples in one request (0: this mode cannot be used on this core)."""
        if self.result_bytes > self.sample_bytes:
            return 0
        k = (MAX_PAYLOAD - 1) // self.sample_bytes
        while k > 0 and self.response_bytes(k) > MAX_PAYLOAD:
            k -= 1
        return k

    def samples_in(self, length: int) -> int:
        """Samples in a request payload of ``length`` bytes, 0 if it is not 1 + k·sample_bytes
        (k ≥ 1): BAD_LENGTH."""
        body = length - 1
        if body < self.sample_bytes or body % self.sample_bytes:
            return 0
        return body // self.sample_bytes

    def flags(self, shift: int = 0) -> int:
        return (BATCH_ARGMAX if self.argmax else 0) | (BATCH_COMPACT if self.compact else 0) \
            | (shift << 4)

    @staticmethod
    def compact_shift(values) -> int | None:
        """The largest shift s (0..15) with every value = v·2^s for a signed byte v, or None
        when the values need 2 bytes."""
        import numpy as np
        v = np.asarray(values, dtype=np.int64)
        for s in range(15, -1, -1):
            q = v >> s
            if np.array_equal(q << s, v) and np.all((q >= -128) & (q <= 127)):
                return s
        return None


class Status(enum.IntEnum):
    """Response status codes."""
    OK = 0
    BAD_CHECKSUM = 1        # CRC mismatch (corrupted frame): nothing executed
    BAD_SEQUENCE = 2        # SEQ is not the expected one: payload = [expected SEQ]
    TRUNCATED = 3           # the frame stopped before its end (inter-byte timeout)
    BAD_COMMAND = 4         # unknown CMD
    BAD_LENGTH = 5          # LEN does not suit CMD
    BAD_ARGUMENT = 6        # target/layer/bank/count out of range
    BUSY = 7                # the core is running (WRITE/READ/RUN) or not paused (RESUME)


class LinkError(RuntimeError):
    """The board answered with an error status, or not at all."""

    def __init__(self, message: str, status: Status | None = None):
        super().__init__(message)
        self.status = status


def crc8(data: bytes, crc: int = 0) -> int:
    """CRC-8/SMBUS (poly 0x07, init 0, no reflection, no final xor) of ``data``."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def encode_request(seq: int, command: int, payload: bytes = b"") -> bytes:
    """One request frame."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes: a frame carries at most "
                         f"{MAX_PAYLOAD}")
    body = bytes([len(payload), seq & 0xFF, int(command)]) + bytes(payload)
    return bytes([REQUEST_SYNC]) + body + bytes([crc8(body)])


def address_header(target: int, layer: int, bank: int, addr: int) -> bytes:
    return struct.pack("<BBBH", target, layer, bank, addr)


def words_payload(values) -> bytes:
    """Data words (signed 32 bits, little endian)."""
    return b"".join(struct.pack("<i", int(v)) for v in values)


def parse_words(payload: bytes) -> list:
    return [v for (v,) in struct.iter_unpack("<i", payload)]
