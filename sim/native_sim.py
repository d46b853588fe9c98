"""The fast path: the emitted Verilog, Verilated and linked with pcforge's compiled host harness
(``native_harness.cpp``), which replays each core's whole job as a host program
(:mod:`pcforge.sim.host_program`) and returns every read-back word in one file — no Python and no
VPI per clock or per beat. The read-backs are then scored against FixedPCN by the same
:class:`~pcforge.sim.scoreboard.Scoreboard` as the cocotb testbench, so both paths check the
same words (every x and e at every pause, the final state, every weight after every update).

``NativeCore`` takes the cores and jobs of :class:`~pcforge.sim.verilator_sim.VerilatorCore`
and returns the same :class:`~pcforge.sim.verilator_sim.HardwareRun` results. cocotb stays the
framework of the protocol-level tests; the harness supports their random idle cycles and
back-pressure too (xorshift64*, seeded per core), so a test runs one job list through both.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..hdl.core import PCCore
from ..hdl.emit import TOP_NAME
from ..model.files import atomic_write, private_folder
from .host_program import ProgramFile, program_for_job, weight_memories
from .scoreboard import Scoreboard, energy_of
from .toolchain import ToolMissing, cache_root, verilator_env, verilator_version
from .verilator_sim import MAKE_PCH_FIX, SPLIT, SPLIT_FAST, HardwareRun, VerilatorCore

__all__ = ["NativeCore", "NativeReadback", "HarnessError", "build_harness"]

HARNESS_SOURCE = Path(__file__).with_name("native_harness.cpp")

#: Stream ports a core's harness driver binds (suffix after the core's prefix).
_PORTS = {
    "write_payload": "host_write__payload", "read_payload": "host_read__payload",
    "control_payload": "control__payload",
    "write_valid": "host_write__valid", "read_valid": "host_read__valid",
    "control_valid": "control__valid", "data_ready": "read_data__ready",
    "write_ready": "host_write__ready", "read_ready": "host_read__ready",
    "control_ready": "control__ready", "data_valid": "read_data__valid",
    "paused": "paused", "done": "done", "data_payload": "read_data__payload", "cycles": "cycles",
}


def harness_hash() -> str:
    """8 hex digits over the harness source and its port binder (a changed harness rebuilds)."""
    h = hashlib.sha256(HARNESS_SOURCE.read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:8]


@dataclass
class NativeReadback:
    """What one harness run read back: per job, per sample, the parsed words
    (:func:`~pcforge.sim.host_program.program_for_job`'s parser), the harness's cycle count and
    the wall time of the run."""

    samples: list
    total_cycles: int
    sim_s: float


class HarnessError(RuntimeError):
    """The harness failed or a core hung (an op did not complete within its cycle budget)."""


def _cxx_name(port: str) -> str:
    """Verilator's C++ member name of a Verilog port: it escapes every ``__`` as ``___05F``."""
    return port.replace("__", "___05F")


def ports_source(prefixes: list, cores: list | None = None) -> str:
    """``ports.inc``: ``bind_ports(top)`` returning one CorePorts per core (port prefix each);
    with ``cores`` (PCCore each) their weight memories are bound for PEEK (the Verilated
    model's members: ``pcforge_core__DOT__[coreK__DOT__]w1_lane0``...)."""
    lines = [f'#include "V{TOP_NAME}___024root.h"',
             f"static std::vector<CorePorts> bind_ports({'V' + TOP_NAME} *top) {{",
             f"    std::vector<CorePorts> v({len(prefixes)});"]
    for k, pre in enumerate(prefixes):
        if cores is not None:
            scope = f"{TOP_NAME}__DOT__" + ("" if not pre else f"core{k}__DOT__")
            lines.append(f"    v[{k}].peek_weights = [top](std::vector<int64_t> &out) {{")
            lines.append("        auto *r = top->rootp;")
            for name, depth in weight_memories(cores[k]):
                lines.append(f"        for (int a = 0; a < {depth}; ++a) "
                             f"out.push_back(int64_t(r->{scope}{name}[a]));")
            lines.append("    };")
        for field, port in _PORTS.items():
            m = _cxx_name(pre + port)
            if field in ("write_payload", "read_payload", "control_payload"):
                lines.append(f"    v[{k}].{field} = [top](const uint32_t *w, int n) "
                             f"{{ put(top->{m}, w, n); }};")
            else:
                lines.append(f"    v[{k}].{field} = &top->{m};")
    lines += ["    return v;", "}", ""]
    return "\n".join(lines)


def _runtime_objects(obj: Path, make: list, opt: str, env: dict, top: str):
    """Put Verilator's runtime objects (verilated.o, ...: the same for every model built with
    the same flags) into ``obj``: compiled once per Verilator version and optimisation level
    into the cache, then copied (newer than their sources, so make takes them as made)."""
    names = []
    for line in (obj / f"V{top}_classes.mk").read_text().split("\n"):
        t = line.strip().rstrip("\\").strip()
        if t.startswith("verilated"):
            names.append(t + ".o")
    store = cache_root() / "verilator" / f"runtime-{verilator_version()}{opt}"
    store.mkdir(parents=True, exist_ok=True)
    with open(store / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = [n for n in names if not (store / n).exists()]
        if missing:
            r = subprocess.run(make + missing, capture_output=True, text=True, env=env)
            if r.returncode != 0:
                raise ToolMissing(f"compiling Verilator's runtime failed:\n"
                                  f"{(r.stdout + r.stderr)[-3000:]}")
            for n in missing:
                shutil.copy(obj / n, store / f".{n}.tmp")
                os.replace(store / f".{n}.tmp", store / n)
        for n in names:
            if not (obj / n).exists():
                shutil.copy(store / n, obj / n)


def build_harness(vfile: Path, top: str, harness: Path, generated: dict, obj: Path, *,
                  binary: str, fast: bool, make_jobs: int) -> Path:
    """Verilate ``vfile`` (top module ``top``) with the C++ ``harness`` (the files it includes,
    ``generated`` — file name → text — are written beside it) and compile them into
    ``obj``/``binary`` (-O0 when ``fast``, else -O2). Everything is built in a temporary folder
    that replaces ``obj`` only when complete: a failed build leaves nothing behind and is
    reported with its log's tail."""
    env = verilator_env()
    if shutil.which("make", path=env["PATH"]) is None:
        raise ToolMissing("building a Verilator harness needs make (e.g. apt install make)")
    tmp = private_folder(obj.parent, prefix="obj-")         # sweeps killed builds
    try:
        src = tmp / "src"
        src.mkdir()
        shutil.copy(harness, src / "harness.cpp")
        for name, text in generated.items():
            atomic_write(src / name, text)
        opt = "-O0" if fast else "-O2"
        cmd = ["verilator", "--cc", "--exe", "-Wno-fatal", "--top-module", top,
               "--x-assign", "fast", "--x-initial", "fast", *(SPLIT_FAST if fast else SPLIT),
               "-Mdir", str(tmp), "-CFLAGS", f"-I{src}", "-o", binary, str(vfile),
               str(src / "harness.cpp")]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise ToolMissing(f"Verilating {vfile} failed:\n{(r.stdout + r.stderr)[-3000:]}")
        # no precompiled header is used (MAKE_PCH_FIX): mark it made instead of making it
        for kind in ("fast", "slow"):
            (tmp / f"V{top}__pch.h.{kind}.gch").touch()
        make = ["make", "-C", str(tmp), "-f", f"V{top}.mk", f"-j{make_jobs}", MAKE_PCH_FIX,
                f"OPT_FAST={opt}", f"OPT_SLOW={opt}", f"OPT_GLOBAL={opt}"]
        _runtime_objects(tmp, make, opt, env, top)
        r = subprocess.run(make + [binary], capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise ToolMissing(f"building the harness {harness.name} for {vfile} failed; log "
                              f"tail:\n{(r.stdout + r.stderr)[-3000:]}")
        shutil.rmtree(obj, ignore_errors=True)
        os.replace(tmp, obj)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return obj / binary


class NativeCore(VerilatorCore):
    """The cores of :class:`VerilatorCore`, run by the compiled harness. ``fast_build``
    compiles at -O0 (for many small random cores built once and run briefly); otherwise -O2.
    ``max_op_cycles``: a core that spends longer in one op (a run that never ends, a stream
    that never moves) fails the run with :class:`HarnessError` naming the core and the op.
    ``make_jobs``: parallel compilers of the build (default: one per CPU)."""

    def __init__(self, *args, max_op_cycles: int = 20_000_000, make_jobs: int | None = None,
                 **kw):
        kw.setdefault("simulator", "verilator")
        super().__init__(*args, **kw)
        if self.waves:
            raise ValueError("the native harness writes no waveforms; use VerilatorCore "
                             "(cocotb) with waves for a trace")
        self.dir = self.dir.with_name(f"{self.dir.name}-native{harness_hash()}")
        self.max_op_cycles = int(max_op_cycles)
        self.make_jobs = int(make_jobs or os.cpu_count() or 2)
        self.binary = self.dir / "obj" / "pcforge_harness"

    def build(self) -> "NativeCore":
        """Emit (if needed), Verilate and compile the harness (if not built yet). A failed
        build leaves nothing behind and is reported with its log's tail."""
        t0 = time.perf_counter()
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".build.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self.binary.exists():
                self._build_locked()
        self.build_s = time.perf_counter() - t0
        return self

    def _build_locked(self):
        vfile = self.dir / "hdl" / f"{TOP_NAME}.v"
        if not vfile.exists():
            self._emit(vfile)
        prefixes = [self.prefix(k) for k in range(len(self.cores))]
        cores = [PCCore.interface(s, p, **self.core_options) for s, p in self.cores]
        build_harness(vfile, TOP_NAME, HARNESS_SOURCE,
                      {"ports.inc": ports_source(prefixes, cores)}, self.dir / "obj",
                      binary=self.binary.name, fast=self.fast_build, make_jobs=self.make_jobs)

    def run_jobs(self, jobs: list, *, waves: str | None = None) -> list:
        """Run one job per core (all cores concurrently); returns a :class:`HardwareRun` each,
        scored against FixedPCN."""
        if waves:
            raise ValueError("the native harness writes no waveforms")
        raw = self.simulate(jobs)
        return self.score(jobs, raw)

    def simulate(self, jobs: list) -> "NativeReadback":
        """Run one job per core through the harness; returns what was read back, not yet
        scored (:meth:`score`) — so that a caller may simulate the next jobs while it scores
        these."""
        if not self.binary.exists():
            self.build()
        t0 = time.perf_counter()
        built = [program_for_job(job) for job in jobs]
        if len(built) != len(self.cores):
            raise ValueError(f"{len(built)} jobs for {len(self.cores)} cores")
        with tempfile.TemporaryDirectory(prefix="pcforge-native-") as tmp:
            prog_file, res_file = Path(tmp) / "program.bin", Path(tmp) / "result.bin"
            prog_file.write_bytes(ProgramFile.encode(
                [(p, job["stall"], job["seed"]) for (p, _), job in zip(built, jobs)]))
            r = subprocess.run([str(self.binary), str(prog_file), str(res_file),
                                str(self.max_op_cycles)], capture_output=True, text=True)
            if r.returncode != 0:
                raise HarnessError(f"the native harness failed (exit {r.returncode}): "
                                   f"{(r.stderr or r.stdout).strip()[-2000:]}")
            total, outs = ProgramFile.decode_result(res_file.read_bytes(), len(jobs))
        samples = [parse(out) for (_, parse), out in zip(built, outs)]
        return NativeReadback(samples=samples, total_cycles=total,
                              sim_s=time.perf_counter() - t0)

    def score(self, jobs: list, raw: "NativeReadback") -> list:
        """:class:`HardwareRun` per job: the read-backs of :meth:`simulate` checked word for
        word by a :class:`~pcforge.sim.scoreboard.Scoreboard` each (its FixedPCN, advanced
        through the job, is ``run.model``)."""
        runs = [self._score(job, samples) for job, samples in zip(jobs, raw.samples)]
        for run in runs:
            run.total_cycles, run.wall_s, run.build_s = raw.total_cycles, raw.sim_s, self.build_s
        return runs

    @staticmethod
    def _score(job: dict, samples: list) -> HardwareRun:
        board = Scoreboard(job)
        fe = board.spec.formats.e.frac
        res = HardwareRun(x=[], e=[], cycles=[], mismatches=[], total_cycles=0, wall_s=0.0,
                          build_s=0.0, energy=[], model=board.model)
        if len(samples) != len(job["samples"]):
            raise HarnessError(f"{len(samples)} samples read back for {len(job['samples'])}")
        for (ref, row, after), sw in zip(board.expect_all(job["samples"]), samples):
            bad = []
            for t, (xs, es, conns) in enumerate(sw.pauses):
                if t < len(ref.trace_e):
                    bad += board.check_pause(ref, t, xs, es, conns, row)
            bad += board.check_final(ref, sw.xs, sw.es, len(sw.pauses), sw.conns, row, after,
                                     cycles=sw.cycles)
            res.x.append([v.tolist() for v in sw.xs])
            res.e.append([v.tolist() for v in sw.es])
            res.cycles.append(sw.cycles)
            res.mismatches.append(bad)
            res.energy.append([energy_of(es, fe) for _, es, _ in sw.pauses]
                              + [energy_of(sw.es, fe)])
        return res
