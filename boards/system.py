"""``PCSystem``: the PC core with its UART host link — everything of a board design except the
clock and the pins. It is also the simulated board top (``rx``/``tx`` are the UART lines), so
the Verilog that cocotb drives through a UART model is the logic that goes into a bitstream.
"""
from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..hdl.core import PCCore
from ..model.spec import PCSpec
from ..sim.toolchain import source_hash
from .link import HostLink
from .uart import UARTReceiver, UARTTransmitter

__all__ = ["PCSystem", "design_id", "boards_hash"]


def design_id(spec: PCSpec) -> int:
    """The 32-bit id a board reports in STATUS: the first 8 hex digits of the spec digest."""
    return int(spec.digest[:8], 16)


def boards_hash() -> str:
    """:func:`~pcforge.sim.toolchain.source_hash` of pcforge.boards (the link, UART and top
    logic): a key part of every board build and board simulation."""
    import pcforge.boards
    return source_hash(pcforge.boards)


class PCSystem(wiring.Component):
    """Ports: ``rx`` (In, UART line from the host, idle high), ``tx`` (Out, UART line to the
    host), ``busy`` (a run is in progress), ``error`` (the last response was an error).

    ``divisor``: UART bit period in clock cycles; ``timeout_cycles``: the longest gap between two
    bytes of a frame; ``link_batch``: the link has the BATCH command;
    ``weights``/``logic_ram_bits``/``pow2_depth_above``/``spram_weights``/``hard_multipliers``/
    ``rows``: see :class:`~pcforge.hdl.core.PCCore`."""

    def __init__(self, spec: PCSpec, lanes: int, *, divisor: int, timeout_cycles: int,
                 weights=None, logic_ram_bits: int = 0, pow2_depth_above: int = 0,
                 spram_weights: tuple = (), link_batch: bool = True,
                 hard_multipliers: str | None = None, rows: int = 1):
        self.spec, self.lanes = spec, lanes
        self.divisor, self.timeout_cycles = divisor, timeout_cycles
        self.core = PCCore(spec, lanes, rows=rows, weights=weights,
                           logic_ram_bits=logic_ram_bits,
                           pow2_depth_above=pow2_depth_above, spram_weights=spram_weights,
                           hard_multipliers=hard_multipliers)
        self.link = HostLink(self.core, design_id=design_id(spec),
                             timeout_cycles=timeout_cycles, batch=link_batch)
        self.uart_rx = UARTReceiver(divisor)
        self.uart_tx = UARTTransmitter(divisor)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1),
                          "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core
        m.submodules.link = self.link
        m.submodules.uart_rx = self.uart_rx
        m.submodules.uart_tx = self.uart_tx
        wiring.connect(m, self.uart_rx.data, self.link.rx)
        wiring.connect(m, self.link.tx, self.uart_tx.data)
        m.d.comb += [self.uart_rx.rx.eq(self.rx), self.tx.eq(self.uart_tx.tx),
                     self.busy.eq(self.core.busy), self.error.eq(self.link.error)]
        return m
