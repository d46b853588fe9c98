"""Host programs: a core's whole job — every host write, run, pause and read-back — as a flat
list of ops that the compiled harness (:mod:`pcforge.sim.native_sim`) replays with no Python
per beat, and the parser that turns its read-back words into per-sample results.

Ops (uint32 words; ``payload`` is the stream's Amaranth struct value as little-endian 32-bit
words): ``END``; ``WRITE payload`` (a ``host_write`` beat); ``READ payload`` (a ``host_read``
beat, then the ``read_data`` word is appended to the output); ``CONTROL payload``; ``WAIT
target`` (hold until ``paused`` or ``done``; append 1 and jump to ``target`` when done, else
append 0); ``JUMP target``; ``CYCLES`` (append the core's cycle counter); ``PEEK`` (append every
word of the weight and bias memories as they are, :func:`weight_memories` order, no cycle).

A sample is: write the clamped layers; CONTROL start; a loop ``WAIT exit; reads of the pause;
CONTROL resume; JUMP loop``; ``exit: CYCLES``; the final reads. The loop makes the program
independent of how many pauses a run makes (the parser counts the WAIT flags).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..hdl.core import PCCore
from ..hdl.protocol import (alpha_word, node_addresses, run_words, weight_addresses,
                            weight_words)

__all__ = ["OPS", "HostProgram", "pack", "program_for_job", "ProgramFile", "WeightDump",
           "weight_memories"]

OPS = {"END": 0, "WRITE": 1, "READ": 2, "CONTROL": 3, "WAIT": 4, "JUMP": 5, "CYCLES": 6,
       "PEEK": 7}
MAGIC, VERSION = 0x50484350, 1           # 'PCHP', format version


def pack(layout, fields: dict) -> int:
    """An Amaranth struct layout's bit vector from a dict of integer fields."""
    out = 0
    for name, f in layout:
        out |= (int(fields.get(name, 0)) & ((1 << f.width) - 1)) << f.offset
    return out


def weight_memories(core) -> list:
    """(Verilog name, depth) of ``core``'s weight and bias memories in the order PEEK appends
    them: per connection l the lanes' W memories, then the bias memory (with two rows per
    token: the even rows' halves, then the odd rows')."""
    out = []
    for l in range(1, core.spec.n_layers):
        out += [(f"w{l}_lane{p}", core.w_mem[l][p].depth) for p in range(core.lanes)]
        out.append((f"bias{l}", core.b_mem[l].depth))
        if core.rows == 2:
            out += [(f"w{l}_odd_lane{p}", core.w_mem_odd[l][p].depth)
                    for p in range(core.lanes)]
            out.append((f"bias{l}_odd", core.b_mem_odd[l].depth))
    return out


class WeightDump:
    """Where W_l (row-major) and b_l lie in a dump of every word of ``core``'s weight and bias
    memories in :func:`weight_memories` order (the harness's PEEK; the cocotb testbench's
    memory handles), and their signed values from the dump's raw words."""

    def __init__(self, core):
        g, spec, F = core.geometry, core.spec, core.spec.formats
        base, self.length = {}, 0
        for name, depth in weight_memories(core):
            base[name] = self.length
            self.length += depth
        self.maps = []
        for l in range(1, spec.n_layers):
            n, m = spec.sizes[l], spec.sizes[l - 1]
            idx = np.empty(n * m + n, dtype=np.int64)
            for i in range(n):
                for j in range(m):
                    p, a = g.weight_location(l, i, j)
                    half = "_odd" if core.rows == 2 and a & 1 else ""
                    idx[i * m + j] = base[f"w{l}{half}_lane{p}"] + a // core.rows
            rows = np.arange(n)
            if core.rows == 2:
                idx[n * m:] = np.where(rows & 1, base.get(f"bias{l}_odd", 0) + rows // 2,
                                       base[f"bias{l}"] + rows // 2)
            else:
                idx[n * m:] = base[f"bias{l}"] + rows
            widths = np.array([F.w_store.width] * (n * m) + [F.b.width] * n, dtype=np.int64)
            self.maps.append((idx, widths))

    def conns(self, raw) -> list:
        """W_l row-major then b_l, per connection l = 1..L, from ``length`` raw words."""
        raw = np.asarray(raw, dtype=np.int64)
        out = []
        for idx, widths in self.maps:
            v = raw[idx] & ((np.int64(1) << widths) - 1)
            out.append(v - np.where(v >> (widths - 1), np.int64(1) << widths, 0))
        return out


class PayloadPacker:
    """Packs many beats of one struct layout at once: ``words(fields)`` takes a dict of equal
    length integer arrays (missing fields are 0) and returns an (n, words) uint32 array of the
    payloads as little-endian 32-bit words (any layout width; every field at most 32 bits)."""

    def __init__(self, layout):
        self.fields = [(name, f.offset, f.width) for name, f in layout]
        self.n_words = max(1, math.ceil(layout.size / 32))
        if any(w > 32 for _, _, w in self.fields):
            raise ValueError("payload fields wider than 32 bits are not supported")

    def words(self, fields: dict) -> np.ndarray:
        n = len(next(iter(fields.values())))
        out = np.zeros((n, self.n_words), dtype=np.uint64)
        for name, off, width in self.fields:
            if name not in fields:
                continue
            v = np.asarray(fields[name], dtype=np.int64).astype(np.uint64) & np.uint64(
                (1 << width) - 1)
            for k in range(off // 32, (off + width - 1) // 32 + 1):
                shift = off - 32 * k
                part = (v << np.uint64(shift)) if shift >= 0 else (v >> np.uint64(-shift))
                out[:, k] |= part & np.uint64(0xFFFFFFFF)
        return out.astype(np.uint32)


def _host_fields(words) -> dict:
    """HostWords as a dict of field arrays."""
    a = np.array([tuple(w) for w in words], dtype=np.int64).reshape(-1, 5)
    return {"target": a[:, 0], "layer": a[:, 1], "bank": a[:, 2], "addr": a[:, 3],
            "data": a[:, 4]}


class HostProgram:
    """The op list of one core (``PCCore`` for its layouts and geometry), built from numpy
    blocks: a block of beats costs no Python per beat."""

    def __init__(self, core: PCCore):
        self.core = core
        self.packers = {"write": PayloadPacker(core.host_layout),
                        "read": PayloadPacker(core.read_layout),
                        "control": PayloadPacker(core.control_layout)}
        self.nw = {k: p.n_words for k, p in self.packers.items()}
        self.blocks: list = []
        self.length = 0

    def _add(self, block):
        block = np.asarray(block, dtype=np.uint32).reshape(-1)
        self.blocks.append(block)
        self.length += len(block)

    def beats(self, kind: str, fields: dict) -> np.ndarray:
        """The ops of a block of ``kind`` beats ('write', 'read', 'control'), to :meth:`add`."""
        payload = self.packers[kind].words(fields)
        op = OPS[kind.upper()]
        return np.concatenate([np.full((len(payload), 1), op, np.uint32), payload], axis=1)

    def add(self, ops: np.ndarray):
        """Append ops made by :meth:`beats` (reusable: a read block is the same every pause)."""
        self._add(ops)

    def write(self, words):
        if len(words):
            self._add(self.beats("write", _host_fields(words)))

    def read(self, words):
        if len(words):
            f = _host_fields(words)
            del f["data"]
            self._add(self.beats("read", f))

    def control(self, **fields):
        self._add(self.beats("control", {k: [v] for k, v in fields.items()}))

    def here(self) -> int:
        return self.length

    def wait(self) -> int:
        """A WAIT whose exit target is patched later (:meth:`patch`); returns its position."""
        self._add([OPS["WAIT"], 0])
        return self.length - 2

    def patch(self, at: int, target: int):
        base = 0
        for blk in self.blocks:
            if base <= at < base + len(blk):
                blk[at - base + 1] = target
                return
            base += len(blk)
        raise IndexError(at)

    def jump(self, target: int):
        self._add([OPS["JUMP"], target])

    def cycles(self):
        self._add([OPS["CYCLES"]])

    def peek(self):
        self._add([OPS["PEEK"]])

    def end(self):
        self._add([OPS["END"]])

    @property
    def ops(self) -> np.ndarray:
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.uint32)


@dataclass
class SampleWords:
    """What the harness read back for one sample: per pause the x and e of every layer (and the
    weights when incremental), then the cycle counter, the final state and the weights after
    learning. Layers are int64 arrays; weights per connection W_l row-major then b_l."""

    pauses: list = field(default_factory=list)      # [(xs, es, conns or None)]
    cycles: int = 0
    xs: list = field(default_factory=list)
    es: list = field(default_factory=list)
    conns: list | None = None


class _Reads:
    """The read requests of a core and how to cut the read-back words into layers."""

    def __init__(self, core: PCCore, prog: HostProgram):
        g, spec = core.geometry, core.spec
        self.x = [node_addresses(g, "x", k) for k in range(spec.n_layers)]
        self.e = [[] if k == 0 else node_addresses(g, "e", k) for k in range(spec.n_layers)]
        self.w = [weight_addresses(g, l) for l in range(1, spec.n_layers)]
        self.sizes = spec.sizes

        def block(lists):
            f = _host_fields([w for words in lists for w in words])
            del f["data"]
            return prog.beats("read", f)
        self.state_ops = block(self.x + self.e)     # the same every pause: built once
        self.conn_ops = block(self.w)
        self.dump = WeightDump(core)                # where PEEK's words go

    def state(self, prog: HostProgram):
        prog.add(self.state_ops)

    def conns(self, prog: HostProgram):
        prog.add(self.conn_ops)

    def take_state(self, out: np.ndarray, at: int):
        xs, es = [], []
        for words in self.x:
            xs.append(out[at:at + len(words)].copy())
            at += len(words)
        for k, words in enumerate(self.e):
            es.append(out[at:at + len(words)].copy() if k else np.zeros(self.sizes[0], np.int64))
            at += len(words)
        return xs, es, at

    def take_peek(self, out: np.ndarray, at: int):
        return self.dump.conns(out[at:at + self.dump.length]), at + self.dump.length

    def take_conns(self, out: np.ndarray, at: int):
        conns = []
        for words in self.w:
            conns.append(out[at:at + len(words)].copy())
            at += len(words)
        return conns, at


def program_for_job(job: dict) -> tuple[HostProgram, callable]:
    """The host program of a job (:meth:`VerilatorCore.job`) and a parser of its output words
    into one :class:`SampleWords` per sample: the very traffic of the cocotb testbench (load
    the weights once; per sample the clamped layers, a run paused after every iteration when
    traced, every x and e at each pause, the weights at each pause when learning
    incrementally, the final state, the weights after learning)."""
    from ..model.spec import PCSpec
    spec = PCSpec.from_dict(job["spec"])
    core = PCCore.interface(spec, job["lanes"], rows=job.get("rows", 1))  # layouts, geometry
    g = core.geometry
    mask = tuple(job["mask"])
    trace, learn = bool(job["trace"]), bool(job.get("learn"))
    inc = learn and spec.learning == "incremental"
    peek = job.get("check") == "peek"
    bits = sum(1 << k for k, v in enumerate(mask) if v)
    prog = HostProgram(core)
    reads = _Reads(core, prog)
    prog.write(weight_words(g, [np.array(w) for w in job["W"]], [np.array(v) for v in job["b"]]))
    pins = job.get("pins") or [{} for _ in job["samples"]]
    alphas = job.get("alpha") or [None] * len(job["samples"])
    last_alpha = None
    for s, pn, al in zip(job["samples"], pins, alphas):
        if al is not None and al != last_alpha:
            prog.write([alpha_word(g, al)])
            last_alpha = al
        prog.write(run_words(g, mask, {int(k): np.array(v, dtype=np.int64) for k, v in s.items()},
                             {int(k): np.array(v, dtype=bool) for k, v in pn.items()}))
        prog.control(resume=0, pause=int(trace), mask=bits, learn=int(learn))
        loop = prog.wait()
        reads.state(prog)
        if inc:
            prog.peek() if peek else reads.conns(prog)
        prog.control(resume=1, pause=1, mask=bits, learn=int(learn))
        prog.jump(loop)
        prog.patch(loop, prog.here())
        prog.cycles()
        reads.state(prog)
        if learn:
            prog.peek() if peek else reads.conns(prog)
    prog.end()
    n_samples = len(job["samples"])

    def parse(out: np.ndarray) -> list:
        res, at = [], 0
        for _ in range(n_samples):
            sw = SampleWords()
            while True:
                flag = int(out[at])
                at += 1
                if flag == 1:
                    break
                xs, es, at = reads.take_state(out, at)
                conns = None
                if inc:
                    conns, at = (reads.take_peek if peek else reads.take_conns)(out, at)
                sw.pauses.append((xs, es, conns))
            sw.cycles = int(out[at])
            sw.xs, sw.es, at = reads.take_state(out, at + 1)
            if learn:
                sw.conns, at = (reads.take_peek if peek else reads.take_conns)(out, at)
            res.append(sw)
        if at != len(out):
            raise RuntimeError(f"the harness returned {len(out)} words, the program asks for "
                               f"{at}")
        return res
    return prog, parse


class ProgramFile:
    """The harness's input file for several cores' programs (stall probability and seed each)."""

    @staticmethod
    def encode(programs: list) -> bytes:
        """``programs``: [(HostProgram, stall probability 0..1, seed)]."""
        words, chunks = [MAGIC, VERSION, len(programs)], []
        for prog, stall, seed in programs:
            seed = int(seed) & 0xFFFFFFFFFFFFFFFF
            words += [seed & 0xFFFFFFFF, seed >> 32, min(65535, int(round(stall * 65536))),
                      prog.nw["write"], prog.nw["read"], prog.nw["control"]]
            ops = prog.ops
            words += [len(ops)]
            chunks.append(np.asarray(words, dtype="<u4").tobytes())
            chunks.append(np.asarray(ops, dtype="<u4").tobytes())
            words = []
        chunks.append(np.asarray(words, dtype="<u4").tobytes())
        return b"".join(chunks)

    @staticmethod
    def decode_result(data: bytes, n_cores: int) -> tuple[int, list]:
        """(total clock cycles, one int64 array of read-back words per core)."""
        a = np.frombuffer(data, dtype="<i8")
        total, at, outs = int(a[0]), 1, []
        for _ in range(n_cores):
            n = int(a[at])
            outs.append(a[at + 1:at + 1 + n].copy())
            at += 1 + n
        return total, outs
