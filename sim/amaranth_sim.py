"""Cycle-accurate runs of :class:`pcforge.hdl.PCCore` in Amaranth's own simulator.

The fast path for unit tests: the core is elaborated from the spec and driven through its host
streams (load weights and clamped values, start, pause after every iteration); after every
iteration the value and error node banks are read out of the simulated memories, so the
scoreboard sees x(t) and e(t) for every t, exactly as :meth:`FixedPCN.relax` traces them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.sim import Simulator

from ..hdl.core import PCCore
from ..hdl.protocol import alpha_word, run_words, weight_words

__all__ = ["CoreRun", "run_core"]


@dataclass
class CoreRun:
    """What a hardware run produced: final x(T) and e(T) per layer (int64 arrays, e[0] = 0),
    the traces x(t), t = 0..T and e(t), t = 0..T−1 (when traced), the ``cycles`` counter and any
    words read back through the host read stream; with learning the weights after the sample
    (``W``, ``b``) and, learning incrementally, (W, b) after every iteration's update
    (``trace_w``)."""

    x: list
    e: list
    cycles: int
    trace_x: list = field(default_factory=list)
    trace_e: list = field(default_factory=list)
    readback: list = field(default_factory=list)
    W: list = field(default_factory=list)
    b: list = field(default_factory=list)
    trace_w: list = field(default_factory=list)


def _peek_layer(ctx, core: PCCore, kind: str, layer: int) -> np.ndarray:
    g = core.geometry
    n = core.spec.sizes[layer]
    if kind == "e" and layer == 0:
        return np.zeros(n, dtype=np.int64)
    mems = core.x_mem if kind == "x" else core.e_mem
    out = np.zeros(n, dtype=np.int64)
    for j in range(n):
        p, a = g.node_location(layer, j)
        out[j] = ctx.get(mems[layer][p].data[a])
    return out


def _peek_weights(ctx, core: PCCore):
    """W_l and b_l as the memories hold them (after learning)."""
    g, spec = core.geometry, core.spec
    Ws, bs = [], []
    for l in range(1, spec.L + 1):
        n, m = spec.sizes[l], spec.sizes[l - 1]
        w = np.zeros((n, m), dtype=np.int64)
        for i in range(n):
            for j in range(m):
                mem, a = core.weight_memory(l, *g.weight_location(l, i, j))
                w[i, j] = ctx.get(mem.data[a])
        Ws.append(w)
        bs.append(np.array([ctx.get(mem.data[a]) for mem, a in
                            (core.bias_memory(l, i) for i in range(n))], dtype=np.int64))
    return Ws, bs


def run_core(core: PCCore, W: list, b: list, clamped, mask, *, trace: bool = True,
             read: list | None = None, vcd: str | None = None, learn: bool = False,
             check_addresses: bool = False, pins=None, alpha=None):
    """Load ``W``/``b`` into ``core`` once, then for each sample load the clamped layers' values,
    run one relaxation under ``mask`` and collect a :class:`CoreRun`.

    ``clamped``: one dict {layer: values} (returns one :class:`CoreRun`) or a list of them
    (returns a list); ``pins``: the per-node clamps of a sample ({layer: n_l bools}, the
    layer's values in its ``clamped`` dict) — one dict, or a list aligned with ``clamped``;
    ``alpha``: per sample the α register's mantissa written before it (``rates.alpha_runtime``).
    ``read`` lists :class:`HostWord` requests sent through ``host_read`` after
    each run (answers in ``CoreRun.readback``). ``learn`` asks the core to learn after every
    sample (``CoreRun.W``/``.b`` then hold the weights after it). ``check_addresses``: the core
    is elaborated with an assertion at every memory port that its address lies inside the
    memory's depth, checked by the simulator on every clock edge (an ``AssertionError`` naming
    the port, the depth and the address). A core can be simulated once
    (Amaranth elaborates its memories), so pass every sample in one call.
    """
    spec, g = core.spec, core.geometry
    if learn:
        PCCore.check_learns(spec)
    mask = spec.mask(mask)
    single = isinstance(clamped, dict)
    samples = [clamped] if single else list(clamped)
    pins = [pins] * len(samples) if pins is None or isinstance(pins, dict) else list(pins)
    mask_bits = sum(1 << k for k, v in enumerate(mask) if v)
    runs = []

    async def send(ctx, words):
        hw = core.host_write
        for w in words:
            ctx.set(hw.payload, {"target": w.target, "layer": w.layer, "bank": w.bank,
                                 "addr": w.addr, "data": w.data})
            ctx.set(hw.valid, 1)
            await ctx.tick().until(hw.ready)
        ctx.set(hw.valid, 0)

    async def control(ctx, resume):
        ctx.set(core.control.payload, {"resume": resume, "pause": int(trace), "mask": mask_bits,
                                       "learn": int(learn)})
        ctx.set(core.control.valid, 1)
        await ctx.tick().until(core.control.ready)
        ctx.set(core.control.valid, 0)

    async def bench(ctx):
        await send(ctx, weight_words(g, W, b))
        alphas = alpha if alpha is not None else [None] * len(samples)
        for sample, pin, al in zip(samples, pins, alphas):
            if al is not None:
                await send(ctx, [alpha_word(g, al)])
            await send(ctx, run_words(g, mask, {k: np.asarray(v).reshape(-1)
                                                for k, v in sample.items()},
                                      {k: np.asarray(v).reshape(-1) for k, v in
                                       spec.pins(mask, pin).items()}))
            await control(ctx, 0)
            tx, te, tw = [], [], []
            while True:
                await ctx.tick()
                if ctx.get(core.paused):
                    tx.append([_peek_layer(ctx, core, "x", k) for k in range(spec.L + 1)])
                    te.append([_peek_layer(ctx, core, "e", k) for k in range(spec.L + 1)])
                    if learn and core.learns_incremental:
                        tw.append(_peek_weights(ctx, core))
                    await control(ctx, 1)
                elif ctx.get(core.done) and not ctx.get(core.busy):
                    break
            run = CoreRun(x=[_peek_layer(ctx, core, "x", k) for k in range(spec.L + 1)],
                          e=[_peek_layer(ctx, core, "e", k) for k in range(spec.L + 1)],
                          cycles=ctx.get(core.cycles), trace_x=tx, trace_e=te, trace_w=tw)
            if learn:
                run.W, run.b = _peek_weights(ctx, core)
            for w in read or []:
                ctx.set(core.host_read.payload, {"target": w.target, "layer": w.layer,
                                                 "bank": w.bank, "addr": w.addr})
                ctx.set(core.host_read.valid, 1)
                await ctx.tick().until(core.host_read.ready)
                ctx.set(core.host_read.valid, 0)
                ctx.set(core.read_data.ready, 1)
                while not ctx.get(core.read_data.valid):
                    await ctx.tick()
                run.readback.append(int(ctx.get(core.read_data.payload)))
                await ctx.tick()
                ctx.set(core.read_data.ready, 0)
            runs.append(run)

    core.check_addresses = bool(check_addresses)      # read when the simulator elaborates
    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return runs[0] if single else runs


