"""``HostLink`` in front of a real ``PCCore``, in the Amaranth simulator at the byte-stream level
(no UART), against a small Python model of the protocol (:mod:`pcforge.boards.frame`): random
sequences of good frames (STATUS, WRITE, READ, RUN) and bad ones (a flipped bit, a wrong
checksum, an old sequence number, an unknown command, a bad length, a bad argument, a frame
that stops, a WRITE while running). Every response must be the model's, byte for byte, and
after each sequence every memory must hold what the model's valid writes put there."""
from __future__ import annotations

import dataclasses
import numpy as np
import pytest
from amaranth import Module
from amaranth.sim import Simulator

from pcforge.boards.frame import (MAX_WORDS, RESPONSE_SYNC, Command, Status,
                                  address_header, crc8, encode_request, parse_words,
                                  words_payload)
from pcforge.boards.link import HostLink
from pcforge.hdl.core import PCCore
from pcforge.model.arch.cycles import cycle_report
from pcforge.model.randspec import random_spec

TIMEOUT = 40


class LinkModel:
    """What the link must answer, and what the memories must then hold."""

    def __init__(self, core: PCCore, design_id: int):
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
                2: lambda: c.w_mem[layer][bank].depth, 3: lambda: c.b_mem[layer].depth}[target]()

    def read(self, key):
        return self.mem.get(key if key[0] != 3 else (3, key[1], 0, key[3]), 0)

    def write(self, key, v):
        w = self.width(key[0])
        v &= (1 << w) - 1
        self.mem[key if key[0] != 3 else (3, key[1], 0, key[3])] = v - ((v >> (w - 1)) << w)

    def answer(self, seq, status, payload=b""):
        body = bytes([len(payload), seq, int(status)]) + payload
        return bytes([RESPONSE_SYNC]) + body + bytes([crc8(body)])


def frames(rng, model: LinkModel, n: int):
    """A random sequence of (request bytes, kind) for the model to answer."""
    spec, P = model.spec, model.P
    out = []
    for _ in range(n):
        kind = rng.choice(["status", "write", "write", "read", "read", "flip", "crc", "seq",
                           "cmd", "length", "argument", "truncated"])
        target = int(rng.choice([0, 2, 3]))
        layer = int(rng.integers(0, spec.L + 1)) if target == 0 else int(rng.integers(1, spec.L + 1))
        bank = 0 if target == 3 else int(rng.integers(0, P))
        depth = model.depth(target, layer, bank)
        addr = int(rng.integers(0, depth))
        count = int(rng.integers(1, min(MAX_WORDS, depth - addr) + 1))
        out.append((kind, target, layer, bank, addr, count,
                    [int(v) for v in rng.integers(-2**31, 2**31, count)]))
    return out


def expected_and_request(model: LinkModel, item, rng):
    kind, target, layer, bank, addr, count, values = item
    seq = model.expected
    hdr = address_header(target, layer, bank, addr)
    if kind == "status":
        req = encode_request(seq, Command.STATUS)
        model.expected = (seq + 1) & 0xFF
        # flags, iteration, expected, lanes; cycles; design id (the run ended: done)
        flags = 4 if model.last_cycles else 0
        it = model.spec.iterations if model.last_cycles else 0
        pay = (bytes([flags, it, model.expected, model.P]) + words_payload(
            [model.last_cycles, model.design_id - (1 << 32) * (model.design_id >> 31)]))
        return req, model.answer(seq, Status.OK, pay)
    if kind in ("write", "flip", "crc"):
        req = encode_request(seq, Command.WRITE, hdr + words_payload(values))
        if kind == "flip":
            b = bytearray(req)
            # a bit of SEQ, CMD or the payload (a flipped LEN changes where the frame ends: the
            # board then answers while the rest is still arriving, which the bench would miss)
            b[int(rng.integers(2, len(b) - 1))] ^= 1 << int(rng.integers(0, 8))
            return bytes(b), model.answer(seq if b[2] == seq else b[2], Status.BAD_CHECKSUM)
        if kind == "crc":
            return req[:-1] + bytes([req[-1] ^ 0x5A]), model.answer(seq, Status.BAD_CHECKSUM)
        model.expected = (seq + 1) & 0xFF
        for k, v in enumerate(values):
            model.write((target, layer, bank, addr + k), v)
        return req, model.answer(seq, Status.OK)
    if kind == "read":
        req = encode_request(seq, Command.READ, hdr + bytes([count]))
        model.expected = (seq + 1) & 0xFF
        vals = [model.read((target, layer, bank, addr + k)) for k in range(count)]
        return req, model.answer(seq, Status.OK, words_payload(vals))
    if kind == "seq":
        old = (seq - 1 - int(rng.integers(0, 5))) & 0xFF
        return (encode_request(old, Command.STATUS),
                model.answer(old, Status.BAD_SEQUENCE, bytes([seq])))
    if kind == "truncated":
        req = encode_request(seq, Command.WRITE, hdr + words_payload(values))
        return req[:4 + int(rng.integers(0, 3))], model.answer(seq, Status.TRUNCATED)
    model.expected = (seq + 1) & 0xFF
    if kind == "cmd":
        return encode_request(seq, 0x40 + int(rng.integers(0, 64))), \
            model.answer(seq, Status.BAD_COMMAND)
    if kind == "length":
        return encode_request(seq, Command.STATUS, b"\x00"), model.answer(seq, Status.BAD_LENGTH)
    bad = address_header(target, layer, model.P if target != 3 else bank, addr)
    bad = bad if target != 3 else address_header(target, model.spec.L + 1, 0, addr)
    return (encode_request(seq, Command.READ, bad + bytes([1])),
            model.answer(seq, Status.BAD_ARGUMENT))


def run_link(core, link, requests, *, run_mask=None):
    """Send each request, collect each response (bytes); optionally RUN first and poll STATUS
    until done. Returns (responses, memory peek function results, the run's responses)."""
    m = Module()
    m.submodules.core = core
    m.submodules.link = link
    got, peeks, run_log = [], {}, []

    async def send(ctx, data):
        for byte in data:
            ctx.set(link.rx.payload, byte)
            ctx.set(link.rx.valid, 1)
            await ctx.tick()
        ctx.set(link.rx.valid, 0)

    async def response(ctx, limit=20000):
        buf = []
        for _ in range(limit):
            if ctx.get(link.tx.valid):
                buf.append(ctx.get(link.tx.payload))
                await ctx.tick()
                if len(buf) >= 5 and buf[0] == RESPONSE_SYNC and len(buf) == buf[1] + 5:
                    return bytes(buf)
            else:
                await ctx.tick()
        raise AssertionError(f"no complete response within {limit} cycles (got {buf})")

    async def bench(ctx):
        ctx.set(link.tx.ready, 1)
        await ctx.tick()
        if run_mask is not None:
            await send(ctx, encode_request(0, Command.RUN, bytes([run_mask, 0])))
            run_log.append(await response(ctx))
            busy = encode_request(1, Command.WRITE, address_header(2, 1, 0, 0)
                                  + words_payload([7]))
            await send(ctx, busy)
            run_log.append(await response(ctx))
            seq = 2
            while True:
                await send(ctx, encode_request(seq, Command.STATUS))
                r = await response(ctx)
                seq += 1
                if r[4] & 4:
                    run_log.append(r)
                    break
        for req in requests:
            await send(ctx, req)
            got.append(await response(ctx))
        spec, P = core.spec, core.lanes
        for l in range(1, spec.L + 1):
            for p in range(P):
                for a in range(core.w_mem[l][p].depth):
                    peeks[2, l, p, a] = ctx.get(core.w_mem[l][p].data[a])
            for a in range(core.b_mem[l].depth):
                peeks[3, l, 0, a] = ctx.get(core.b_mem[l].data[a])
        for k in range(spec.n_layers):
            for p in range(P):
                for a in range(core.x_mem[k][p].depth):
                    peeks[0, k, p, a] = ctx.get(core.x_mem[k][p].data[a])

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got, peeks, run_log


@pytest.mark.parametrize("seed", range(4))
def test_link_answers_every_frame_like_the_model(seed):
    rng = np.random.default_rng(8300 + seed)
    spec = random_spec(rng, size=(1, 12), iterations=(1, 3), n_layers=(2, 4))
    P = int(rng.integers(1, 4))
    core = PCCore(spec, P)
    design_id = int(rng.integers(0, 2**32))
    link = HostLink(core, design_id=design_id, timeout_cycles=TIMEOUT)
    model = LinkModel(core, design_id)
    reqs, want = [], []
    for item in frames(rng, model, 40):
        req, ans = expected_and_request(model, item, rng)
        reqs.append(req)
        want.append(ans)
    got, peeks, _ = run_link(core, link, reqs)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"seed {8300 + seed}, frame {k} ({reqs[k].hex()}): got {g.hex()}, " \
                       f"model {w.hex()}"
    for key, v in peeks.items():
        assert v == model.read(key), f"seed {8300 + seed}: memory {key} holds {v}, " \
                                     f"model {model.read(key)}"


def test_run_status_and_busy_through_the_link():
    """RUN starts the core, a WRITE while it runs is answered BUSY and changes nothing, and
    STATUS reports done with the cycle model's cycle count."""
    rng = np.random.default_rng(8399)
    spec = random_spec(rng, size=(2, 8), iterations=(2, 3), n_layers=(3, 3))
    spec = dataclasses.replace(spec, stop="none")     # all T iterations: a known count
    core = PCCore(spec, 2)
    link = HostLink(core, design_id=0x1234_5678, timeout_cycles=TIMEOUT)
    mask = spec.mask("inference")
    bits = sum(1 << k for k, c in enumerate(mask) if c)
    _, peeks, log = run_link(core, link, [], run_mask=bits)
    run, busy, done = log
    assert run[3] == Status.OK and busy[3] == Status.BUSY
    assert peeks[2, 1, 0, 0] == 0                         # the BUSY write did not land
    flags, it = done[4], done[5]
    cycles = parse_words(done[8:12])[0]
    assert flags & 4 and not flags & 1 and it == spec.iterations
    assert cycles == cycle_report(spec, 2, mask).total
    assert parse_words(done[12:16])[0] == 0x1234_5678


def test_model_and_link_disagree_on_a_broken_model():
    """The comparison can fail: a model that forgets a write is caught by the memory check."""
    rng = np.random.default_rng(8300)
    spec = random_spec(rng, size=(1, 12), iterations=(1, 3), n_layers=(2, 4))
    core = PCCore(spec, 1)
    link = HostLink(core, design_id=1, timeout_cycles=TIMEOUT)
    model = LinkModel(core, 1)
    hdr = address_header(2, 1, 0, 0)
    req = encode_request(0, Command.WRITE, hdr + words_payload([99]))
    _, peeks, _ = run_link(core, link, [req])
    assert peeks[2, 1, 0, 0] == 99 != model.read((2, 1, 0, 0))


def test_a_link_built_without_batch_refuses_it():
    """A link built without BATCH (the iCEBreaker's: its logic cells are full) answers it
    BAD_COMMAND and runs nothing; with BATCH the same frame is answered OK."""
    from pcforge.boards.frame import BatchFormat
    rng = np.random.default_rng(8401)
    spec = random_spec(rng, size=(4, 8), iterations=(1, 2), n_layers=(2, 2))
    fmt = BatchFormat(spec.sizes[0], spec.sizes[-1], argmax=True, compact=True)
    req = encode_request(0, Command.BATCH, bytes([fmt.flags()]) + bytes(fmt.sample_bytes))
    for batch, status in ((False, Status.BAD_COMMAND), (True, Status.OK)):
        core = PCCore(spec, 1)
        link = HostLink(core, design_id=1, timeout_cycles=TIMEOUT, batch=batch)
        got, _, _ = run_link(core, link, [req])
        assert got[0][3] == status, (batch, got[0].hex())
