"""The schedule (pcforge.model.arch.schedule): conditions, the two ways of counting a run, and the
hazard waits — exact in both directions: with the smallest waits one run needs the simulated
core is still bit-exact, with one of them a cycle shorter it reads a stale value."""
from dataclasses import replace

import numpy as np
import pytest

from pcforge.hdl.core import PCCore
from pcforge.model import FixedConst, FixedPCN, Formats, PCSpec, QFormat
from pcforge.model.arch.cycles import cycle_report
from pcforge.model.randspec import random_clamped, random_spec
from pcforge.model.arch.geometry import CoreGeometry
from pcforge.model.arch.schedule import (FALSE, FINAL, FIRST, LEARN, TRUE, Env, M, can_learn,
                                         pred_by_columns, schedule)
from pcforge.sim.amaranth_sim import run_core


def test_conditions_fold_constants_and_evaluate():
    assert (M(0) & FALSE) is FALSE and (M(0) | TRUE) is TRUE
    assert (TRUE & M(1)) is not TRUE and (~~M(1)).op == "m"
    c = (M(0) & ~FIRST) | (FINAL & LEARN)
    env = Env(mask=(True, False), it=1, T=3, learn=False)
    assert c.eval(env) is True
    assert c.eval(env._replace(it=0)) is False
    assert c.eval(env._replace(it=3, learn=True, mask=(False, False))) is True
    assert (M(0) & FALSE).value({}) is False            # a constant stays a Python bool


@pytest.mark.parametrize("seed", range(12))
def test_cycle_model_and_schedule_walk_agree(seed):
    """cycle_report and the schedule's own walk count the same cycles for every mask and learn
    flag."""
    rng = np.random.default_rng(900 + seed)
    spec = random_spec(rng, iterations=(1, 5))
    lanes = int(rng.integers(1, 9))
    # two rows per token where the core has them (an even lane count, the synchronous
    # schedule, no incremental learning)
    rows = 2 if (lanes % 2 == 0 and spec.schedule == "synchronous"
                 and spec.learning != "incremental") else 1
    for r in sorted({1, rows}):
        sch = schedule(spec, lanes, r)
        for mask, learn in sch.scenarios():
            total = cycle_report(spec, lanes, mask, learn=learn, rows=r).total
            assert total == sch._walk(mask, learn, drain=False)[0]


def _exactness_case(sizes, acts, lanes):
    """A network whose state keeps moving (training mask: the target is clamped, so the errors
    are not zero as they are from a feed-forward start in inference) with formats wide enough
    that a stale operand shows in the result instead of rounding away."""
    spec = PCSpec(sizes=sizes, activations=acts, iterations=4,
                  formats=Formats(x=QFormat(18, 8), e=QFormat(18, 8), w=QFormat(12, 8),
                                  b=QFormat(12, 8)), gamma=FixedConst(1, 2))
    rng = np.random.default_rng(1)
    W = [rng.integers(-200, 201, size=spec.weight_shape(l)) for l in range(1, spec.n_layers)]
    b = [rng.integers(-300, 301, size=spec.sizes[l]) for l in range(1, spec.n_layers)]
    mask = spec.mask("training")
    return spec, lanes, W, b, mask, [random_clamped(spec, mask, rng) for _ in range(2)]


def _bit_exact(spec, lanes, W, b, mask, samples, sch, rows=1):
    """Run the samples without pausing (a pause drains the pipeline and would hide a hazard
    across iterations) and compare the final x and e with FixedPCN."""
    core = PCCore(spec, lanes, rows=rows)
    core.schedule = sch
    runs = run_core(core, W, b, [{k: v[0] for k, v in s.items()} for s in samples], mask,
                    trace=False)
    net = FixedPCN(spec, W, b)
    refs = [net.relax(s, mask) for s in samples]
    return all(np.array_equal(r.x[k], f.x[k][0]) and np.array_equal(r.e[k], f.e[k][0])
               for f, r in zip(refs, runs) for k in range(spec.n_layers))


@pytest.mark.parametrize("sizes,acts,lanes", [
    ((7, 9, 5), ("identity", "identity"), 3),
    ((10, 12, 8, 6), ("identity", "relu", "identity"), 4),
    ((6, 13, 7), ("relu", "identity"), 2),
    ((40, 3, 2), ("identity", "relu"), 2)])
def test_waits_are_exact(sizes, acts, lanes):
    """With the smallest waits this run needs the core is bit-exact; with any one of them a
    cycle shorter some job reads a location in the very cycle its last write lands (the
    memories are not transparent), gets the old word, and the result differs. The first three
    networks' prediction sweeps go by columns, the last one's row by row (rows of 20 tokens;
    rows of 2 tokens in a 2-row layer)."""
    spec, lanes, W, b, mask, samples = _exactness_case(sizes, acts, lanes)
    by_col = [pred_by_columns(CoreGeometry(spec, lanes), l) for l in range(1, spec.L + 1)]
    assert all(by_col) if sizes[0] < 40 else not any(by_col)
    _assert_waits_exact(spec, lanes, W, b, mask, samples, rows=1, min_waits=3)


def _assert_waits_exact(spec, lanes, W, b, mask, samples, rows, min_waits):
    """The run's smallest waits are bit-exact, and each of them a cycle shorter is not."""
    sch = schedule(spec, lanes, rows).for_run(mask)
    assert _bit_exact(spec, lanes, W, b, mask, samples, sch, rows), \
        "the smallest waits broke it"
    used = sorted({(v.slot, v.alt) for v in sch.visits(mask)
                   if v.job is not None and sch.waits[v.slot][v.alt] > 0})
    assert len(used) >= min_waits, "this run has too few hazard waits to shorten"
    missed = []
    for slot, alt in used:
        waits = [list(w) for w in sch.waits]
        waits[slot][alt] -= 1
        short = replace(sch, waits=tuple(tuple(w) for w in waits))
        if _bit_exact(spec, lanes, W, b, mask, samples, short, rows):
            missed.append(sch.slots[slot].kind + str(sch.slots[slot].layer))
    assert not missed, f"shortened waits of {missed} went unnoticed"


@pytest.mark.parametrize("sizes,acts,lanes", [
    ((9, 11, 9), ("identity", "relu"), 2),
    ((12, 7, 10, 6), ("relu", "identity", "identity"), 4),
    ((40, 7, 3), ("identity", "relu"), 2)])
def test_waits_are_exact_with_two_rows_per_token(sizes, acts, lanes):
    """The same with two rows per token (odd row counts: the last pair's odd row does not
    exist): the hazard walk's read and write order of pairs is the core's — the smallest waits
    are bit-exact, any one a cycle shorter is caught. The first two networks' prediction
    sweeps go by columns where their pairs are ≥ 4, the last one's row by row."""
    spec, lanes, W, b, mask, samples = _exactness_case(sizes, acts, lanes)
    g = CoreGeometry(spec, lanes, 2)
    by_col = [pred_by_columns(g, l) for l in range(1, spec.L + 1)]
    assert any(by_col) if sizes[0] < 40 else not any(by_col)
    _assert_waits_exact(spec, lanes, W, b, mask, samples, rows=2, min_waits=2)


def test_two_rows_per_token_geometry_and_refusals():
    """Two rows per token: every weight has its own (lane, host address), the address's low bit
    its row's parity and its word inside the half's depth; every weight sweep takes half the
    tokens (rounded up); the cycle model counts two multipliers per lane. Refused with the fix
    named: an odd lane count, the one-sweep schedule, incremental learning, SPRAM weights."""
    from pcforge.model import SpecError
    spec = random_spec(np.random.default_rng(3), n_layers=(3, 3), size=(5, 13),
                       schedules=("synchronous",)).replace(learning="after_relaxation")
    for lanes in (2, 4, 6):
        g1, g2 = CoreGeometry(spec, lanes), CoreGeometry(spec, lanes, 2)
        for l in range(1, spec.L + 1):
            n, m = spec.sizes[l], spec.sizes[l - 1]
            seen = {g2.weight_location(l, i, j) for i in range(n) for j in range(m)}
            assert len(seen) == n * m
            for i in range(n):
                for j in range(m):
                    p, a = g2.weight_location(l, i, j)
                    assert p == g1.weight_location(l, i, j)[0] and a & 1 == i & 1
                    assert a >> 1 < g2.weight_depth(l)
            assert g2.pred_tokens(l) == -(-n // 2) * g1.depth(l - 1)
            assert 2 * g2.pred_tokens(l) - g1.pred_tokens(l) in (0, g1.depth(l - 1))
        r1 = cycle_report(spec, lanes, "training", learn=True)
        r2 = cycle_report(spec, lanes, "training", learn=True, rows=2)
        assert r2.total < r1.total and r2.useful_macs == r1.useful_macs
        assert r2.as_dict()["multipliers"] == 2 * lanes
    with pytest.raises(SpecError, match="even lane count"):
        schedule(spec, 3, 2)
    with pytest.raises(SpecError, match="delayed_feedback"):
        schedule(spec.replace(schedule="delayed_feedback"), 2, 2)
    with pytest.raises(SpecError, match="incremental"):
        PCCore(spec.replace(learning="incremental"), 2, rows=2)
    with pytest.raises(SpecError, match="SPRAM"):
        PCCore(spec, 2, rows=2, spram_weights=(1,))
    with pytest.raises(SpecError, match="1 or 2 rows"):
        CoreGeometry(spec, 2, 3)


def test_every_spec_gets_waits_for_every_mask():
    spec = random_spec(np.random.default_rng(7), n_layers=(4, 4))
    sch = schedule(spec, 3)
    assert len(list(sch.scenarios())) == 2 ** spec.n_layers * (2 if can_learn(spec) else 1)
    assert len(sch.waits) == len(sch.slots)
    assert all(len(w) == max(1, len(s.alts)) for w, s in zip(sch.waits, sch.slots))


def test_prediction_sweeps_by_columns_do_not_wait_for_the_feedback_sweep(monkeypatch):
    """Digits at 16 lanes, training: taken by columns, the next iteration's prediction sweep of
    W_2 starts without waiting for the feedback sweep that updated x_1; row by row it waits
    (it reads x_1's last chunk in its first row), and every run is longer."""
    from pcforge.model.arch import schedule as schedule_module
    from pcforge.model.presets import digits_spec
    spec = digits_spec()

    def pred_waits_and_total():
        schedule_module._schedule.cache_clear()
        sch = schedule(spec, 16)
        waits = {sch.waits[v.slot][v.alt] for v in sch.visits(spec.mask("training"), True)
                 if v.job is not None and v.job.op == "pred" and v.job.layer == 2 and v.it >= 1}
        return waits, cycle_report(spec, 16, "training", learn=True).total

    try:
        by_col = pred_waits_and_total()
        monkeypatch.setattr(schedule_module, "pred_by_columns", lambda g, l: False)
        by_row = pred_waits_and_total()
    finally:
        monkeypatch.undo()
        schedule_module._schedule.cache_clear()
    assert by_col[0] == {0} and min(by_row[0]) > 0, (by_col, by_row)
    assert by_col[1] < by_row[1], (by_col, by_row)
