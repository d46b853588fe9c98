"""``SlotController`` on its own, in the Amaranth simulator, against a deliberately naive Python
model of the token stream it must issue (like Amaranth's ``test_lib_fifo.py``): for random specs,
lane counts, clamp masks and learn flags, every token's fields and issue cycle, the iteration
counter, pausing, and the final cycle count (= the cycle model's)."""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from pcforge.hdl.controller import NodeOp, Op, SlotController
from pcforge.model.arch.cycles import cycle_report
from pcforge.model.arch.schedule import (FINAL_DRAIN_CYCLES, SETTLE_CYCLES, TOKEN_BROADCAST,
                                         _Profile, can_learn, counts_changes,
                                         pred_by_columns, schedule)
from pcforge.model.fixed_pcn import stop_iterations
from pcforge.model.randspec import random_mask, random_spec

_OPS = {"pred": Op.PRED, "fb": Op.FB, "node": Op.NODE, "fused": Op.FUSED, "learn": Op.LEARN}
_NOPS = {"err": NodeOp.ERR, "ff": NodeOp.FF, "zero": NodeOp.ZERO, "upd": NodeOp.UPD}


def _job_tokens(job, g, it, learns, incremental, delayed):
    """The tokens of one job, field by field, as the controller must issue them."""
    spec, P = g.spec, g.lanes
    C, n = g.depth(job.lane_layer), spec.sizes[job.layer]
    nsrc = spec.sizes[job.lane_layer]
    c_base = sum(g.depth(k) for k in range(1, job.node_layer))
    op = _OPS[job.op]
    c_bits = max(1, (max(2, sum(g.depth(k) for k in range(1, spec.L + 1))) - 1).bit_length())

    def lane_mask(c):
        return sum(1 << p for p in range(P) if c * P + p < nsrc)

    def token(c, i, **kw):
        t = dict(op=op.value, nop=_NOPS[job.nop].value, layer=job.layer,
                 lane_layer=job.lane_layer, node_layer=job.node_layer, c=c, row=i,
                 i_bank=i % P, i_addr=i // P, lane_mask=lane_mask(c), node_mask=0,
                 node_addr=0, we_e=int(job.we_e), we_x=int(job.we_x), we_c=int(job.we_c),
                 fuse=int(job.fuse), mul_e=int(job.op in ("fb", "learn")),
                 mul_f=int(job.op == "learn"))
        t.update(kw)
        if learns:
            fb_learn = job.op == "fb" and incremental and bool(job.learns)
            t["learn_w"] = int(job.op == "learn" or fb_learn)
            t["learn_b"] = int((job.op == "learn" or fb_learn) and c == 0)
        if delayed:
            t.update(fb_on=int(it != 0), bubble=t.get("bubble", 0), row_end=t.get("row_end", 0))
        if job.op != "fused":
            # truncated to the field (it holds every cache word; node layer 0 has no cache, its
            # passes' addresses may run past it and are never used)
            t["cache_addr"] = (c_base + t["node_addr"]) % (1 << c_bits)
        else:
            t["cache_addr"] = 0
        return t

    out = []
    if job.op in ("pred", "learn"):
        # a prediction sweep by columns: chunk c of every row, then chunk c + 1
        by_col = job.op == "pred" and pred_by_columns(g, job.layer)
        order = ([(i, c) for c in range(C) for i in range(n)] if by_col else
                 [(i, c) for i in range(n) for c in range(C)])
        for i, c in order:
            last = c == C - 1
            kw = dict(w_addr=i * C + c, first=int(c == 0), last=int(last))
            if job.op == "pred":
                kw.update(node_addr=i // P, node_mask=(1 << (i % P)) if last else 0)
            out.append(token(c, i, **kw))
    elif job.op == "fb":
        for c in range(C):
            for i in range(n):
                last = i == n - 1
                out.append(token(c, i, w_addr=i * C + c, first=int(i == 0), last=int(last),
                                 node_addr=c, node_mask=lane_mask(c) if last else 0))
    elif job.op == "node":
        for c in range(C):
            out.append(token(c, 0, w_addr=0, first=1, last=1, node_addr=c,
                             node_mask=lane_mask(c)))
    else:                                                           # fused + bubble
        for i in range(n):
            for c in range(C):
                row_end = c == C - 1 and i != n - 1
                col_end = i == n - 1
                out.append(token(
                    c, i, w_addr=i * C + c, first=int(c == 0), last=int(row_end),
                    row_end=int(row_end),
                    nop=(NodeOp.ERR if row_end else NodeOp.UPD).value,
                    node_layer=job.layer if row_end else job.lane_layer,
                    node_addr=i // P if row_end else c,
                    node_mask=(1 << (i % P)) if row_end else (lane_mask(c) if col_end else 0),
                    we_e=int(row_end and bool(job.we_e)),
                    we_x=int(bool(job.we_x)) if row_end else int(col_end)))
        # the bubble's weight address is the counter one past the sweep, truncated to the
        # token's field (its lanes are masked off, so the word it reads is never used)
        w_bits = max(1, (max(g.weight_depth(l) for l in range(1, spec.L + 1)) - 1).bit_length())
        out.append(token(C - 1, n - 1, w_addr=(n * C) % (1 << w_bits), first=0, last=1, row_end=1, bubble=1,
                         lane_mask=0, nop=NodeOp.ERR.value, node_layer=job.layer,
                         node_addr=(n - 1) // P, node_mask=1 << ((n - 1) % P),
                         we_e=int(bool(job.we_e)), we_x=int(bool(job.we_x))))
    return out


def iterations_run(sch, mask, learn, plan):
    """The iterations a run makes when iteration t's x writes change a word iff ``plan[t]``
    (an iteration that writes no x changes nothing): T, or fewer with the exact stop."""
    spec = sch.spec
    T = spec.iterations
    if spec.stop != "exact" or (learn and spec.learning == "incremental"):
        return T
    writes = [False] * T
    for v in sch.visits(mask, learn):
        if v.job is not None and counts_changes(v.job, spec.L) and v.it < T \
                and _Profile(v.job, sch.geometry).x_last is not None:
            writes[v.it] = True
    changed = [[bool(p and w)] for p, w in zip(plan, writes)]
    return int(stop_iterations(changed, T, spec.schedule)[0])


def model_tokens(sch, mask, learn, runs=None):
    """[(working cycle at which the token is in the issue register — TOKEN_BROADCAST cycles
    after the controller's issue decision — fields)], total cycles;
    ``runs``: the iterations the run makes (default T)."""
    g, spec = sch.geometry, sch.spec
    learns = can_learn(spec)
    incremental = spec.learning == "incremental" and spec.schedule == "synchronous"
    delayed = spec.schedule == "delayed_feedback"
    t, out = SETTLE_CYCLES, []
    last = -FINAL_DRAIN_CYCLES                  # the cycle of the last token's issue decision
    for v in sch.visits(mask, learn, its=range(spec.iterations if runs is None else runs)):
        if v.job is None:
            # the end waits until FINAL_DRAIN_CYCLES after the last token: its writes landed
            t += 1 + sch.waits[v.slot][0] \
                + (max(0, FINAL_DRAIN_CYCLES - (t - last)) if sch.slots[v.slot].kind == "end"
                   else SETTLE_CYCLES)
            continue
        t += 1 + sch.waits[v.slot][v.alt]
        for tok in _job_tokens(v.job, g, v.it, learns, incremental, delayed):
            t += 1
            out.append((t + TOKEN_BROADCAST, tok))
        last = t
    return out, t


def run_controller(sch, mask, learn, pause, plan=()):
    """Drive the controller alone; returns the tokens seen (working cycle, fields), the final
    cycle counter, the iterations seen at each pause, and whether host_ok held when idle.
    With the exact stop, ``x_changed`` is pulsed for a token that writes x in iteration t when
    ``plan[t]`` (as the node units would, earlier than they can: the flags' lag is the core's)."""
    dut = SlotController(sch, can_learn(sch.spec))
    seen, pauses, flags = [], [], {}
    stops = sch.spec.stop == "exact"

    async def bench(ctx):
        await ctx.tick()
        await ctx.tick()
        flags["host_ok_idle"] = ctx.get(dut.host_ok)
        ctx.set(dut.control.payload.mask, sum(1 << k for k, c in enumerate(mask) if c))
        ctx.set(dut.control.payload.learn, int(learn))
        ctx.set(dut.control.payload.pause, int(pause))
        ctx.set(dut.control.valid, 1)
        await ctx.tick().until(dut.control.ready)
        ctx.set(dut.control.valid, 0)
        flags["host_ok_running"] = 1
        for _ in range(200_000):
            await ctx.tick()
            if ctx.get(dut.busy) and not ctx.get(dut.paused):
                flags["host_ok_running"] &= int(not ctx.get(dut.host_ok))
            bits = ctx.get(Value.cast(dut.token))
            tok = {name: (bits >> f.offset) & ((1 << f.width) - 1) for name, f in dut.layout}
            if stops:
                # the token's own iteration: the counter may already have moved on (a
                # marker right behind the iteration's last token), the token's parity not
                it = ctx.get(dut.iteration)
                it -= (it - tok["par"]) % 2
                hit = tok["valid"] and tok["we_x"] and 0 <= it < len(plan) and plan[it] \
                    and (tok["nop"] in (NodeOp.ERR.value, NodeOp.UPD.value)
                         or (tok["nop"] == NodeOp.FF.value and tok["we_e"]
                             and tok["node_layer"] == sch.spec.L))
                ctx.set(dut.x_changed, (1 << tok["par"]) if hit else 0)
            if tok.pop("valid"):
                seen.append((ctx.get(dut.cycles), tok))
            if ctx.get(dut.paused):
                pauses.append(ctx.get(dut.iteration))
                for _ in range(3):
                    await ctx.tick()
                ctx.set(dut.control.payload.resume, 1)
                ctx.set(dut.control.valid, 1)
                await ctx.tick().until(dut.control.ready)
                ctx.set(dut.control.valid, 0)
                ctx.set(dut.control.payload.resume, 0)
            if ctx.get(dut.done):
                break
        flags["cycles"] = ctx.get(dut.cycles)
        flags["iteration"] = ctx.get(dut.iteration)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen, pauses, flags


CASES = list(range(14))


def controller_case(seed):
    """Random spec, lanes, schedule, mask, learn flag and stop-flag plan of case ``seed``."""
    rng = np.random.default_rng(7000 + seed)
    spec = random_spec(rng, size=(1, 9), iterations=(1, 4))
    lanes = int(rng.integers(1, 5))
    sch = schedule(spec, lanes)
    mask = random_mask(spec, rng)
    learn = can_learn(spec) and bool(rng.integers(0, 2))
    plan = [bool(v) for v in rng.random(spec.iterations) < 0.6]
    return spec, lanes, sch, mask, learn, plan


@pytest.mark.parametrize("seed", CASES)
def test_controller_issues_the_models_tokens_at_the_models_cycles(seed):
    spec, lanes, sch, mask, learn, plan = controller_case(seed)
    pause = bool(seed % 3 == 0)
    runs = iterations_run(sch, mask, learn, plan)
    want, total = model_tokens(sch, mask, learn, runs)
    seen, pauses, flags = run_controller(sch, mask, learn, pause, plan)
    ctx = (f"seed {7000 + seed}: {spec.schedule}/{spec.learning}/stop {spec.stop}, lanes "
           f"{lanes}, mask {mask}, plan {plan}")
    assert len(seen) == len(want), ctx
    for k, ((cy, got), (t, exp)) in enumerate(zip(seen, want)):
        diff = {f: (got[f], exp[f]) for f in exp if got[f] != exp[f]}
        assert cy == t and not diff, f"{ctx}: token {k} at cycle {cy} (model {t}): {diff}"
    assert flags["cycles"] == total == cycle_report(spec, lanes, mask, learn=learn,
                                                    iterations=runs).total, ctx
    assert flags["iteration"] == spec.iterations, ctx
    assert flags["host_ok_idle"] == 1 and flags["host_ok_running"] == 1, ctx
    if pause:
        # the pause after the stop shows it = T: the final pass comes next
        assert pauses == list(range(1, runs)) + [spec.iterations], ctx


def test_random_controller_cases_stop_early():
    """Some cases above end their relaxation with the exact stop, in both schedules."""
    seen = set()
    for seed in CASES:
        spec, _, sch, mask, learn, plan = controller_case(seed)
        if iterations_run(sch, mask, learn, plan) < spec.iterations:
            seen.add(spec.schedule)
    assert seen == {"synchronous", "delayed_feedback"}


def test_the_model_sees_a_wrong_token():
    """The comparison can fail: a token stream with one field changed is caught."""
    rng = np.random.default_rng(7000)
    spec = random_spec(rng, size=(1, 9), iterations=(1, 4))
    sch = schedule(spec, 2)
    mask = random_mask(spec, rng)
    want, _ = model_tokens(sch, mask, False)
    seen, _, _ = run_controller(sch, mask, False, False)
    assert [g for _, g in seen] == [e for _, e in want]
    seen[len(seen) // 2][1]["w_addr"] += 1
    assert [g for _, g in seen] != [e for _, e in want]
