"""The fast path (Verilator + pcforge's compiled host harness) against the cocotb testbench and
FixedPCN: the same jobs through both give identical results; the harness's host programs, its
stalls, its weight peek, its hang detection and its refusals."""
import numpy as np
import pytest

from pcforge.hdl.core import PCCore
from pcforge.model.randspec import random_clamped, random_int_weights, random_mask, random_spec
from pcforge.sim.host_program import HostProgram, PayloadPacker, ProgramFile, pack
from pcforge.sim.native_sim import HarnessError, NativeCore
from pcforge.sim.verilator_sim import VerilatorCore

pytestmark = pytest.mark.xdist_group("native")


def _cases(seed: int, n: int):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        spec = random_spec(rng, size=(2, 10), iterations=(1, 4))
        W, b = random_int_weights(spec, rng)
        mask = random_mask(spec, rng)
        samples = [{k: v[0] for k, v in random_clamped(spec, mask, rng).items()}
                   for _ in range(2)]
        cases.append(dict(spec=spec, lanes=int(rng.integers(1, 4)), W=W, b=b, mask=mask,
                          samples=samples, learn=PCCore.spec_learns(spec)))
    return cases


@pytest.fixture(scope="module")
def native_cases():
    cases = _cases(9100, 4)
    core = NativeCore(cores=[(c["spec"], c["lanes"]) for c in cases], fast_build=True).build()
    return cases, core


def _jobs(core, cases, **kw):
    return [core.job(k, c["W"], c["b"], c["samples"], c["mask"], seed=k, learn=c["learn"], **kw)
            for k, c in enumerate(cases)]


def test_native_and_cocotb_agree_on_the_same_jobs(native_cases):
    """One job list (random specs and masks, learning where the spec can, idle cycles and
    back-pressure on the streams) through cocotb + Verilator and through the harness: every x,
    e, cycle count and scoreboard verdict is identical, and both equal FixedPCN."""
    cases, native = native_cases
    cocotb = VerilatorCore(cores=[(c["spec"], c["lanes"]) for c in cases], fast_build=True)
    a = cocotb.run_jobs(_jobs(cocotb, cases, stall=0.25))
    b = native.run_jobs(_jobs(native, cases, stall=0.25))
    assert any(c["learn"] for c in cases)
    for k, (ra, rb) in enumerate(zip(a, b)):
        assert ra.mismatches == rb.mismatches == [[]] * len(cases[k]["samples"]), k
        assert (ra.x, ra.e, ra.cycles) == (rb.x, rb.e, rb.cycles), k
        assert np.allclose(ra.energy, rb.energy)


def test_stalls_change_the_timing_not_the_results(native_cases):
    cases, native = native_cases
    free = native.run_jobs(_jobs(native, cases, stall=0.0))
    busy = native.run_jobs(_jobs(native, cases, stall=0.5))
    assert busy[0].total_cycles > free[0].total_cycles
    for f, s in zip(free, busy):
        assert not any(f.mismatches) and not any(s.mismatches)
        assert (f.x, f.e, f.cycles) == (s.x, s.e, s.cycles)


def test_weight_peek_equals_stream_read_back(native_cases):
    """Weights read out of the memories (PEEK, no cycles) pass the same scoreboard as weights
    read through the host stream, in fewer simulated cycles."""
    cases, native = native_cases
    stream = native.run_jobs(_jobs(native, cases, check="stream"))
    peek = native.run_jobs(_jobs(native, cases, check="peek"))
    assert any(c["learn"] for c in cases)
    for s, p in zip(stream, peek):
        assert not any(s.mismatches) and not any(p.mismatches)
        assert (s.x, s.e, s.cycles) == (p.x, p.e, p.cycles)
    assert peek[0].total_cycles < stream[0].total_cycles


def test_scoreboard_catches_one_wrong_word(native_cases, monkeypatch):
    """The harness's read-backs are really compared: one flipped bit in the last word core 0
    read back (its last sample's final state or weights) is reported, and only there."""
    cases, native = native_cases
    decode = ProgramFile.decode_result

    def flipped(data, n):
        total, outs = decode(data, n)
        outs[0][-1] ^= 1
        return total, outs
    monkeypatch.setattr(ProgramFile, "decode_result", staticmethod(flipped))
    runs = native.run_jobs(_jobs(native, cases))
    assert runs[0].mismatches[-1] and not any(runs[0].mismatches[:-1])
    assert not any(m for r in runs[1:] for m in r.mismatches)


def test_harness_names_a_hang():
    """A core waiting for a run that was never started fails the run with the op named."""
    spec = random_spec(np.random.default_rng(1), n_layers=(2, 2), size=(2, 3))
    core = NativeCore(spec, 1, fast_build=True, max_op_cycles=500).build()
    prog = HostProgram(PCCore(spec, 1))
    prog.wait()
    prog.end()
    import subprocess
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "p.bin"
        f.write_bytes(ProgramFile.encode([(prog, 0.0, 0)]))
        r = subprocess.run([str(core.binary), str(f), str(Path(tmp) / "r.bin"), "500"],
                           capture_output=True, text=True)
    assert r.returncode == 3 and "WAIT" in r.stderr and "500 cycles" in r.stderr
    with pytest.raises(ValueError, match="jobs for"):
        core.run_jobs([])
    assert issubclass(HarnessError, RuntimeError)


def test_payload_packer_equals_the_scalar_pack():
    """The vectorised packer writes the same bits as the per-beat ``pack`` for random field
    values, including layouts wider than 64 bits."""
    from amaranth.lib import data
    rng = np.random.default_rng(3)
    for widths in ([3, 2, 1, 7, 32], [3, 4, 8, 16, 32], [32, 32, 5], [1]):
        layout = data.StructLayout({f"f{i}": w for i, w in enumerate(widths)})
        fields = {f"f{i}": rng.integers(-(1 << 31), 1 << 31, size=50)
                  for i in range(len(widths))}
        words = PayloadPacker(layout).words(fields)
        for n in range(50):
            want = pack(layout, {k: int(v[n]) for k, v in fields.items()})
            got = sum(int(w) << (32 * i) for i, w in enumerate(words[n]))
            assert got == want
