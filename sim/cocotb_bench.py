"""The cocotb 2 testbench of the emitted core (run by :class:`pcforge.sim.VerilatorCore`).

Drivers and monitors bind to the core's streams by signal-name prefix (``host_write__valid``,
``__ready``, ``__payload``), as cocotbext-axi does; payloads are packed with the offsets of the
core's own Amaranth struct layouts. The scoreboard runs FixedPCN on the same job and compares,
read back through the host stream, every x and e after every iteration (``trace``) and the final
state, sample by sample. Random idle cycles on the sources and back-pressure on ``read_data``
come from the job's seed. The job and result are JSON files named by ``PCFORGE_JOB`` and
``PCFORGE_RESULT``.
"""
from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from pcforge.hdl.core import PCCore
from pcforge.hdl.protocol import (alpha_word, node_addresses, run_words, weight_addresses,
                                  weight_words)
from pcforge.sim.host_program import WeightDump, pack, weight_memories
from pcforge.sim.scoreboard import Scoreboard, energy_of


class StreamSource:
    """Drives ``<prefix>__valid`` / ``__payload``; a beat moves when ``__ready`` is high."""

    def __init__(self, dut, prefix: str, layout, rng, idle: float):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.layout, self.rng, self.idle = layout, rng, idle
        self.valid.value = 0
        self.payload.value = 0          # driven from the start (a 4-state simulator: no Z)

    async def send(self, fields: dict):
        while self.idle and self.rng.random() < self.idle:        # random idle cycles
            await FallingEdge(self.clk)
        self.payload.value = pack(self.layout, fields)
        self.valid.value = 1
        while True:
            await ReadOnly()
            accepted = bool(self.ready.value)
            await FallingEdge(self.clk)
            if accepted:
                break
        self.valid.value = 0


class StreamSink:
    """Takes beats from ``<prefix>__valid`` / ``__payload``, with random back-pressure."""

    def __init__(self, dut, prefix: str, rng, backpressure: float):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.rng, self.bp = rng, backpressure
        self.ready.value = 0

    async def receive(self) -> int:
        while True:
            rdy = not (self.bp and self.rng.random() < self.bp)
            self.ready.value = int(rdy)
            await ReadOnly()
            got = rdy and bool(self.valid.value)
            value = self.payload.value.to_signed() if got else None
            await FallingEdge(self.clk)
            if got:
                self.ready.value = 0
                return value


class CoreDriver:
    """The host side of the core: load, start, pause/resume, read back (the same words as
    :mod:`pcforge.hdl.protocol`)."""

    def __init__(self, dut, core: PCCore, rng, stall: float, prefix: str = ""):
        self.dut, self.core = dut, core
        self.write = StreamSource(dut, f"{prefix}host_write", core.host_layout, rng, stall)
        self.read_req = StreamSource(dut, f"{prefix}host_read", core.read_layout, rng, stall)
        self.read_data = StreamSink(dut, f"{prefix}read_data", rng, stall)
        self.control = StreamSource(dut, f"{prefix}control", core.control_layout, rng, stall)
        self.paused = getattr(dut, f"{prefix}paused")
        self.done = getattr(dut, f"{prefix}done")
        self.cycles = getattr(dut, f"{prefix}cycles")

    async def write_words(self, words):
        for w in words:
            await self.write.send(w._asdict())

    async def read_words(self, words) -> list:
        out = []
        for w in words:
            await self.read_req.send(w._asdict())
            out.append(await self.read_data.receive())
        return out

    async def read_layer(self, kind: str, layer: int) -> np.ndarray:
        if kind == "e" and layer == 0:
            return np.zeros(self.core.spec.sizes[0], dtype=np.int64)
        return np.array(await self.read_words(node_addresses(self.core.geometry, kind, layer)),
                        dtype=np.int64)

    async def read_state(self):
        L = self.core.spec.L
        xs = [await self.read_layer("x", k) for k in range(L + 1)]
        es = [await self.read_layer("e", k) for k in range(L + 1)]
        return xs, es


async def run_core_job(dut, job: dict) -> dict:
    """Drive one core of the model through its job; returns its results."""
    board = Scoreboard(job)
    spec, mask, trace = board.spec, board.mask, board.trace
    W = [np.array(w, dtype=np.int64) for w in job["W"]]
    b = [np.array(v, dtype=np.int64) for v in job["b"]]
    rng = np.random.default_rng(job["seed"])
    core = PCCore.interface(spec, job["lanes"], rows=job.get("rows", 1))  # layouts, geometry
    drv = CoreDriver(dut, core, rng, job["stall"], job["prefix"])
    mask_bits = sum(1 << k for k, v in enumerate(mask) if v)
    await drv.write_words(weight_words(core.geometry, W, b))
    result = {"x": [], "e": [], "cycles": [], "mismatches": [], "energy": []}
    peek = WeightPeek(dut, job["prefix"], core) if job.get("check") == "peek" else None
    fe = spec.formats.e.frac
    conn_layers = range(1, spec.n_layers)
    for s, pins, alpha in zip(job["samples"], board.pins, board.alphas):
        clamped = board.clamped(s)
        words = [alpha_word(core.geometry, alpha)] if alpha is not None else []
        await drv.write_words(words + run_words(core.geometry, mask, clamped, pins))
        ref = board.expect(clamped, pins, alpha)
        bad, energy = [], []
        await drv.control.send({"resume": 0, "pause": int(trace), "mask": mask_bits,
                                "learn": int(board.learn)})
        t = 0
        while True:
            if not (drv.paused.value or drv.done.value):
                await First(RisingEdge(drv.paused), RisingEdge(drv.done))
                await FallingEdge(dut.clk)
            if drv.done.value:
                break
            xs, es = await drv.read_state()                 # paused after iteration t
            energy.append(energy_of(es, fe))
            conns = ([await _read_conn(drv, core, l) for l in conn_layers]
                     if board.incremental else None)
            bad += board.check_pause(ref, t, xs, es, conns)
            t += 1
            await drv.control.send({"resume": 1, "pause": 1, "mask": mask_bits,
                                    "learn": int(board.learn)})
            await FallingEdge(dut.clk)
        cycles = int(drv.cycles.value)
        xs, es = await drv.read_state()
        conns = None
        if board.learn:               # every weight and bias after the sample's learning
            conns = (peek.read_all() if peek is not None
                     else [await _read_conn(drv, core, l) for l in conn_layers])
        bad += board.check_final(ref, xs, es, t, conns, cycles=cycles)
        result["x"].append([v.tolist() for v in xs])
        result["e"].append([v.tolist() for v in es])
        result["cycles"].append(cycles)
        result["mismatches"].append(bad)
        result["energy"].append(energy + [energy_of(es, fe)])
    return result


async def _read_conn(drv, core, l: int) -> np.ndarray:
    """W_l (row-major) then b_l, read back through the host stream."""
    return np.array(await drv.read_words(weight_addresses(core.geometry, l)), dtype=np.int64)


class WeightPeek:
    """Reads every W_l (row-major) and b_l straight out of the simulated memories (Verilator is
    built with public signals): no clock cycles and no Python per word beyond one GPI call —
    ~30× faster than the host stream, for long training runs. Element handles are looked up
    once, in the order of the native harness's PEEK (:class:`WeightDump`)."""

    def __init__(self, dut, prefix: str, core):
        self.dump = WeightDump(core)
        self.handles = [getattr(dut, f"{prefix}{name}")[a]._handle
                        for name, depth in weight_memories(core) for a in range(depth)]

    def read_all(self) -> list:
        return self.dump.conns([h.get_signal_val_long() for h in self.handles])


@cocotb.test()
async def relax_against_fixed_model(dut):
    jobs = json.loads(open(os.environ["PCFORGE_JOB"]).read())["cores"]
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    tasks = [cocotb.start_soon(run_core_job(dut, job)) for job in jobs]
    results = [await task for task in tasks]
    out = {"cores": results, "total_cycles": int(get_sim_time("ns") // 10)}
    with open(os.environ["PCFORGE_RESULT"], "w") as f:
        json.dump(out, f)
