"""The ways pcforge runs the emitted Verilog cycle-accurately, by name — one choice for the
command line (``--simulator``) and the library.

* ``native`` (default): Verilator with pcforge's compiled host harness — no Python per clock or
  per beat; millions of simulated cycles per second (:class:`~pcforge.sim.native_sim.NativeCore`).
* ``cocotb``: cocotb 2 + Verilator, the protocol-level testbench with drivers and monitors
  (waveforms: ``--waves``) (:class:`~pcforge.sim.verilator_sim.VerilatorCore`).
* ``icarus``: the cocotb testbench on Icarus Verilog (Debian's ``iverilog``), a second,
  independent 4-state simulator.

All three return the same :class:`~pcforge.sim.verilator_sim.HardwareRun` from the same jobs,
scored by the same :class:`~pcforge.sim.scoreboard.Scoreboard`.
"""
from __future__ import annotations

__all__ = ["SIMULATORS", "emitted_core"]

SIMULATORS = ("native", "cocotb", "icarus")


def emitted_core(spec=None, lanes=None, *, simulator: str = "native", **kw):
    """The emitted core(s) of ``spec``/``lanes`` (or ``cores=[...]``) under ``simulator``: a
    :class:`~pcforge.sim.verilator_sim.VerilatorCore` or its subclass
    :class:`~pcforge.sim.native_sim.NativeCore` (imported here: the command line's import of
    :data:`SIMULATORS` stays light)."""
    from .native_sim import NativeCore
    from .verilator_sim import VerilatorCore
    if simulator == "native":
        return NativeCore(spec, lanes, **kw)
    if simulator == "cocotb":
        return VerilatorCore(spec, lanes, simulator="verilator", **kw)
    if simulator == "icarus":
        return VerilatorCore(spec, lanes, simulator="icarus", **kw)
    raise ValueError(f"simulator {simulator!r}: use one of {', '.join(SIMULATORS)}")
