"""cocotb 2 bench of the simulated board (run by :class:`pcforge.boards.simulated.SimBoard`).

The host side is :class:`pcforge.boards.host.PCLink` — the driver of real boards — running in a
``cocotb.bridge`` thread; its transport here is :class:`SimUARTTransport`, a bit-level UART
model on the top's ``rx``/``tx`` lines (``write`` and ``read`` are ``cocotb.resume`` calls, so
the driver's blocking calls advance simulated time). The job (``$PCFORGE_JOB``) says what to
do; everything the board answered goes to ``$PCFORGE_RESULT`` for the test to compare with
FixedPCN.
"""
from __future__ import annotations

import json
import os
from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, FallingEdge, Timer
from cocotb.utils import get_sim_time

from pcforge.boards.frame import (Command, LinkError, address_header, encode_request,
                                  words_payload)
from pcforge.boards.host import PCLink
from pcforge.model.spec import PCSpec

PERIOD_NS = 10


class SimUARTTransport:
    """A UART at ``divisor`` clock cycles per bit on ``dut.rx`` (host → board) and ``dut.tx``
    (board → host); a reader waits at most ``timeout_bits`` bit times for each byte."""

    def __init__(self, dut, divisor: int, timeout_bits: int = 4000):
        self.dut, self.bit_ns = dut, divisor * PERIOD_NS
        self.timeout_bits = timeout_bits
        self.received = deque()
        self.bytes_sent = 0
        dut.rx.value = 1
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        tx = self.dut.tx
        while True:
            await FallingEdge(tx)
            await Timer(self.bit_ns // 2, unit="ns")
            if int(tx.value):
                continue                                  # a glitch
            byte = 0
            for i in range(8):
                await Timer(self.bit_ns, unit="ns")
                byte |= int(tx.value) << i
            await Timer(self.bit_ns, unit="ns")
            if int(tx.value):
                self.received.append(byte)

    async def _write(self, data: bytes):
        for byte in data:
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                self.dut.rx.value = bit
                await Timer(self.bit_ns, unit="ns")
            self.bytes_sent += 1

    async def _read(self, n: int) -> bytes:
        waited = 0
        while len(self.received) < n:
            if waited > self.timeout_bits:
                raise LinkError(f"the board sent {len(self.received)} of {n} bytes in "
                                f"{self.timeout_bits} bit times")
            await Timer(self.bit_ns * 4, unit="ns")
            waited += 4
        return bytes(self.received.popleft() for _ in range(n))

    async def _now(self) -> int:
        return int(get_sim_time("ns") // PERIOD_NS)

    def cycles(self) -> int:
        """The simulated clock cycles so far."""
        return resume(self._now)()

    async def _idle(self, bits: int):
        await Timer(self.bit_ns * bits, unit="ns")

    def write(self, data: bytes):
        resume(self._write)(bytes(data))

    def read(self, n: int) -> bytes:
        return resume(self._read)(n)

    def discard_input(self):
        resume(self._idle)(40)
        self.received.clear()

    def idle(self, bits: int):
        resume(self._idle)(bits)


def _raw(link: PCLink, frame: bytes) -> list:
    """Send raw bytes and return the response as [status, seq, payload list]."""
    link.transport.write(frame)
    status, seq, data = link._response()
    return [int(status), seq, list(data)]


def bad_input(link: PCLink, job: dict) -> dict:
    """Every kind of bad frame, each answered with its error status; nothing is executed."""
    t = link.transport
    out = {}
    good = encode_request(link.seq, Command.WRITE,
                          address_header(2, 1, 0, 0) + words_payload([12345]))
    flipped = bytearray(good)
    flipped[7] ^= 0x10                                           # a data bit flipped in flight
    out["corrupted"] = _raw(link, bytes(flipped))
    wrong = bytearray(good)
    wrong[-1] ^= 0xFF
    out["wrong_checksum"] = _raw(link, bytes(wrong))
    t.write(good[:6])                                            # the line goes quiet
    status, seq, data = link._response()
    out["truncated"] = [int(status), seq, list(data)]
    out["out_of_sequence"] = _raw(link, encode_request(link.seq + 5, Command.STATUS))
    out["expected_seq"] = link.seq
    out["bad_command"] = _raw(link, encode_request(link.seq, 0x7E))
    link.seq = (link.seq + 1) & 0xFF
    out["bad_length"] = _raw(link, encode_request(link.seq, Command.STATUS, b"\x00"))
    link.seq = (link.seq + 1) & 0xFF
    out["bad_argument"] = _raw(link, encode_request(
        link.seq, Command.READ, address_header(2, 1, link.lanes, 0) + bytes([1])))
    link.seq = (link.seq + 1) & 0xFF
    mask = job["mask"]
    link.run(mask)                                                # a RUN while running
    out["busy"] = _raw(link, encode_request(link.seq, Command.RUN, bytes([1, 0])))
    link.seq = (link.seq + 1) & 0xFF
    link.wait()
    out["status_after"] = dict(link.status())
    return out


def session(link: PCLink, job: dict) -> dict:
    spec = link.spec
    res = {"design": dict(link.check_design())}
    if job.get("W") is not None:
        link.load_weights([np.array(w) for w in job["W"]], [np.array(v) for v in job["b"]])
    W, b = link.read_weights()
    res["weights"] = {"W": [w.tolist() for w in W], "b": [v.tolist() for v in b]}
    if job.get("bad_input"):
        res["bad_input"] = bad_input(link, job)
        W, b = link.read_weights()
        res["weights_after_bad_input"] = {"W": [w.tolist() for w in W],
                                          "b": [v.tolist() for v in b]}
    runs = []
    t0 = link.transport.cycles()
    for s in job["samples"]:
        r = link.infer({int(k): np.array(v) for k, v in s.items()}, job["mask"])
        r["e"] = [link.read_e(k).tolist() for k in range(1, spec.n_layers)]
        r["x"] = [v.tolist() for v in r["x"]]
        runs.append(r)
    res["runs"] = runs
    res["runs_link_cycles"] = link.transport.cycles() - t0
    if job.get("classify"):
        # one sample at a time without BATCH (WRITE, RUN, STATUS until done, READ)
        t0 = link.transport.cycles()
        out = [link.classify(np.array(x)) for x in job["classify"]]
        res["classify"] = {"results": [o[0] for o in out], "core_cycles": sum(o[1] for o in out),
                           "link_cycles": link.transport.cycles() - t0}
    for batch in job.get("batches", []):
        # BATCH requests: samples run back to back in the board, results compact; the
        # end-to-end rate is the simulated clock cycles from the first byte to the last
        t0, f0 = link.transport.cycles(), link.frames
        try:
            r = link.infer_batch(np.array(batch["inputs"]), argmax=batch["argmax"])
        except LinkError as e:
            res.setdefault("batch", []).append({"error": str(e)})
            continue
        res.setdefault("batch", []).append(
            {"results": r["results"].tolist(), "core_cycles": r["cycles"],
             "link_cycles": link.transport.cycles() - t0, "frames": link.frames - f0,
             "bytes": r["bytes"]})
    res["frames"] = link.frames
    res["bytes_sent"] = link.transport.bytes_sent
    return res


async def start_board(dut) -> tuple:
    """Read the job, start the clock, reset the board top and attach the UART model; returns
    (job, transport) — the start of every board bench."""
    with open(os.environ["PCFORGE_JOB"]) as f:
        job = json.load(f)
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    transport = SimUARTTransport(dut, job["divisor"])
    await ClockCycles(dut.clk, 4)
    return job, transport


@cocotb.test()
async def board_over_uart(dut):
    job, transport = await start_board(dut)
    link = PCLink(transport, PCSpec.from_dict(job["spec"]), job["lanes"], job.get("rows", 1))
    res = await bridge(session)(link, job)
    res["total_cycles"] = int(get_sim_time("ns") // PERIOD_NS)
    with open(os.environ["PCFORGE_RESULT"], "w") as f:
        json.dump(res, f)
