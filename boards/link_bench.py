"""The host link under a fuzzer: :class:`HostLink` in front of a :class:`PCCore` (a board's logic
without the UART) as Verilog, Verilated with a compiled harness (``link_harness.cpp``) that
takes byte streams from a host process and returns what happened — which bytes the link took
and when, every byte it sent back, and every word of every memory. Many thousands of streams
cost seconds, so a property-based test (``tests/test_link_fuzz.py``) can feed it garbage,
flipped bits, truncations, replays and frames sent over each other's answers, and check every
answer and every memory against a model of the protocol.
"""
from __future__ import annotations

import fcntl
import os
import struct
import subprocess
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..hdl.core import PCCore
from ..hdl.emit import write_verilog
from ..model.spec import PCSpec
from ..sim.native_sim import build_harness
from ..sim.toolchain import cache_root, generator_hash, verilator_version
from .link import HostLink
from .system import boards_hash

__all__ = ["LinkBench", "LinkHarness", "StreamResult", "BENCH_TOP", "UNTIL_IDLE"]

BENCH_TOP = "pcforge_link_bench"
HARNESS_SOURCE = Path(__file__).with_name("link_harness.cpp")
#: a gap (idle cycles before a byte) that lasts until the link has answered and is idle
UNTIL_IDLE = 0xFFFF_FFFF


class LinkBench(wiring.Component):
    """``HostLink`` + ``PCCore`` with the link's byte streams (``rx``, ``tx``) and its testbench
    status (``receiving``, ``idle``) as ports."""

    def __init__(self, spec: PCSpec, lanes: int, *, design_id: int, timeout_cycles: int):
        self.core = PCCore(spec, lanes)
        self.link = HostLink(self.core, design_id=design_id, timeout_cycles=timeout_cycles)
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
                          "receiving": Out(1), "idle": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core
        m.submodules.link = self.link
        wiring.connect(m, wiring.flipped(self.rx), self.link.rx)
        wiring.connect(m, self.link.tx, wiring.flipped(self.tx))
        m.d.comb += [self.receiving.eq(self.link.receiving), self.idle.eq(self.link.idle)]
        return m


def core_memories(core: PCCore) -> list:
    """(name, depth, width, (target, layer, bank)) of every memory of ``core`` in dump order:
    x then e per layer and lane, W per connection and lane, b per connection, the prediction
    cache per lane (target 4, layer None)."""
    F, L, P = core.spec.formats, core.spec.L, core.lanes
    out = []
    for k in range(L + 1):
        out += [(f"x{k}_lane{p}", core.x_mem[k][p].depth, F.x.width, (0, k, p))
                for p in range(P)]
    for k in range(1, L + 1):
        out += [(f"e{k}_lane{p}", core.e_mem[k][p].depth, F.e.width, (1, k, p))
                for p in range(P)]
    for k in range(1, L + 1):
        out += [(f"w{k}_lane{p}", core.w_mem[k][p].depth, core.w_mem[k][p].shape.width,
                 (2, k, p)) for p in range(P)]
    for k in range(1, L + 1):
        out.append((f"bias{k}", core.b_mem[k].depth, core.b_mem[k].shape.width, (3, k, 0)))
    out += [(f"cache_lane{p}", core.c_mem[p].depth, core.c_mem[p].shape.width, (4, None, p))
            for p in range(P)]
    return out


def memories_source(core: PCCore) -> str:
    """``memories.inc``: ``for_each_memory(top, f)`` over the Verilated model's memory arrays."""
    scope = f"{BENCH_TOP}__DOT__core__DOT__"
    lines = ["template <class F> static void for_each_memory(Top *top, F f) {",
             "    auto *r = top->rootp;"]
    for name, depth, width, _ in core_memories(core):
        lines.append(f"    f(r->{scope}{name}, {depth}, {width});")
    lines += ["}", ""]
    return "\n".join(lines)


@dataclass
class StreamResult:
    """What one stream did: ``taken[k]``/``at[k]`` — byte k was taken by the link, offered in
    cycle ``at[k]``; ``tx`` — (byte, cycle) of everything the link sent; ``hung`` — the link
    never became idle again; ``cycles`` — cycles the stream took."""

    taken: list
    at: list
    tx: list
    hung: bool
    cycles: int

    def responses(self) -> list:
        """The sent bytes cut into response frames (0x5A LEN SEQ STATUS payload CRC); a
        trailing incomplete frame is returned as it is."""
        data = bytes(b for b, _ in self.tx)
        out, k = [], 0
        while k < len(data):
            n = data[k + 1] + 5 if k + 1 < len(data) else 1
            out.append(data[k:k + n])
            k += n
        return out


class LinkHarness:
    """The Verilated link bench of ``(spec, lanes)``, built once into the cache, running as one
    process that takes command after command (see ``link_harness.cpp``). Use as a context
    manager, or call :meth:`close`."""

    def __init__(self, spec: PCSpec, lanes: int, *, design_id: int, timeout_cycles: int):
        self.spec, self.lanes = spec, lanes
        self.design_id, self.timeout_cycles = design_id, timeout_cycles
        self.core = PCCore.interface(spec, lanes)
        self.memories = core_memories(self.core)
        key = (f"link-{spec.digest}-p{lanes}-t{timeout_cycles}-id{design_id:08x}-"
               f"pcforge{version('pcforge')}-{generator_hash()}-{boards_hash()}-"
               f"verilator{verilator_version()}")
        self.dir = cache_root() / "verilator" / key
        self.proc = None

    def build(self) -> "LinkHarness":
        binary = self.dir / "obj" / "pcforge_link_harness"
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".build.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not binary.exists():
                vfile = self.dir / "hdl" / f"{BENCH_TOP}.v"
                bench = LinkBench(self.spec, self.lanes, design_id=self.design_id,
                                  timeout_cycles=self.timeout_cycles)
                write_verilog(bench, BENCH_TOP, vfile)
                build_harness(vfile, BENCH_TOP, HARNESS_SOURCE,
                              {"memories.inc": memories_source(bench.core)}, self.dir / "obj",
                              binary=binary.name, fast=False, make_jobs=os.cpu_count() or 2)
        self.proc = subprocess.Popen([str(binary)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        return self

    def __enter__(self):
        return self.build() if self.proc is None else self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.proc is not None:
            try:
                self.proc.stdin.write(b"Q")
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            self.proc.wait(timeout=10)
            self.proc = None

    def _read(self, n: int) -> bytes:
        data = self.proc.stdout.read(n)
        if len(data) != n:
            raise RuntimeError(f"the link harness stopped (exit {self.proc.poll()})")
        return data

    def _ask(self, request: bytes, tag: bytes):
        self.proc.stdin.write(request)
        self.proc.stdin.flush()
        got = self._read(1)
        if got != tag:
            raise RuntimeError(f"the link harness answered {got!r} to {request[:1]!r}")

    def reset(self):
        """Reset the link and the core, and zero every memory."""
        self._ask(b"R", b"r")

    def stream(self, data: list, *, seed: int = 0, ready: float = 1.0, quiet: int | None = None,
               max_cycles: int = 2_000_000) -> StreamResult:
        """Offer ``data`` — (byte, idle cycles before it, or :data:`UNTIL_IDLE`) pairs — and
        run until the link has
        been idle for ``quiet`` cycles (default: its timeout + 8). ``ready``: the probability
        of tx.ready in a cycle."""
        quiet = self.timeout_cycles + 8 if quiet is None else quiet
        req = struct.pack("<cIQIII", b"S", len(data), seed & (2**64 - 1),
                          min(65536, int(ready * 65536)), quiet, max_cycles)
        req += b"".join(struct.pack("<BI", b, g) for b, g in data)
        self._ask(req, b"s")
        hung, cycles = struct.unpack("<BI", self._read(5))
        body = self._read(5 * len(data))
        taken, at = [], []
        for k in range(len(data)):
            t, c = struct.unpack_from("<BI", body, 5 * k)
            taken.append(bool(t))
            at.append(c)
        (m,) = struct.unpack("<I", self._read(4))
        txb = self._read(5 * m)
        tx = [struct.unpack_from("<BI", txb, 5 * k) for k in range(m)]
        return StreamResult(taken=taken, at=at, tx=tx, hung=bool(hung), cycles=cycles)

    def dump(self) -> dict:
        """Every memory's words: {(target, layer, bank): [int, ...]} (cache: layer None)."""
        self._ask(b"D", b"d")
        (n,) = struct.unpack("<I", self._read(4))
        words = struct.unpack(f"<{n}q", self._read(8 * n))
        out, at = {}, 0
        for _, depth, _, key in self.memories:
            out[key] = list(words[at:at + depth])
            at += depth
        return out
