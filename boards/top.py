"""``BoardTop``: a board's whole design — the PLL clock and reset (:mod:`.clocking`), the
:class:`~pcforge.boards.system.PCSystem` (core + UART host link) on the board's UART pins, and
the status LEDs (iCEBreaker: green = a run in progress, red = the last response was an error;
ULX3S: LED 0 and LED 1 likewise, LED 7 = alive, blinking at ~1.5 Hz).
"""
from __future__ import annotations

from amaranth import ClockDomain, Elaboratable, Module, Signal

from ..model.spec import SpecError
from .clocking import PLLClock, ecp5_pll, ice40_pll
from .profiles import BoardProfile, hard_multipliers
from .system import PCSystem

__all__ = ["BoardTop", "core_clock", "link_timing", "CLOCK_TOLERANCE"]

#: How far the PLL's output may be from the requested clock (a fraction of it); further is refused.
CLOCK_TOLERANCE = 0.01


def link_timing(clock_mhz: float, baud: int) -> tuple:
    """(UART divisor in clock cycles, inter-byte timeout in cycles: 10 ms)."""
    divisor = int(round(clock_mhz * 1e6 / baud))
    return divisor, int(clock_mhz * 1e6 * 0.010)


def core_clock(board: BoardProfile, clock_mhz: float | None = None):
    """The PLL that makes the core clock of ``board`` (``clock_mhz`` requested; default the
    board's), refused with the fix named when the PLL cannot reach it or the UART's baud rate
    does not divide it closely enough; its ``f_out_mhz`` is the clock the core runs at."""
    pll = ice40_pll if board.family == "ice40" else ecp5_pll
    requested = board.clock_mhz if clock_mhz is None else float(clock_mhz)
    if not requested > 0:
        raise SpecError(f"clock {requested} MHz: give a core clock above 0 MHz "
                        f"(the {board.name}'s default is {board.clock_mhz:g} MHz)")
    made = pll(board.osc_mhz, requested)
    if abs(made.f_out_mhz / requested - 1) > CLOCK_TOLERANCE:
        raise SpecError(
            f"clock {requested:g} MHz: the {board.device}'s PLL cannot make it from the "
            f"{board.osc_mhz:g} MHz oscillator (the nearest it makes is "
            f"{made.f_out_mhz:.3f} MHz); choose a clock the PLL reaches, e.g. the "
            f"{board.name}'s default {board.clock_mhz:g} MHz")
    divisor, _ = link_timing(made.f_out_mhz, board.baud)
    baud_actual = made.f_out_mhz * 1e6 / divisor
    if abs(baud_actual / board.baud - 1) > 0.02:
        raise SpecError(f"a {made.f_out_mhz:.3f} MHz clock makes {board.baud} baud only "
                        f"within {abs(baud_actual / board.baud - 1):.1%}; choose a "
                        "clock that is a multiple of the baud rate")
    return made


class BoardTop(Elaboratable):
    def __init__(self, board: BoardProfile, spec, lanes: int, *, clock_mhz: float | None = None,
                 weights=None, spram_weights: tuple = (), rows: int = 1):
        self.board = board
        self.pll = core_clock(board, clock_mhz)
        self.clock_mhz = self.pll.f_out_mhz
        self.divisor, self.timeout_cycles = link_timing(self.clock_mhz, board.baud)
        self.baud_actual = self.clock_mhz * 1e6 / self.divisor
        self.system = PCSystem(spec, lanes, divisor=self.divisor,
                               timeout_cycles=self.timeout_cycles, weights=weights,
                               logic_ram_bits=board.logic_ram_bits,
                               pow2_depth_above=board.pow2_depth_above,
                               spram_weights=spram_weights, link_batch=board.link_batch,
                               hard_multipliers=hard_multipliers(board, lanes), rows=rows)
        self.spram_weights = tuple(spram_weights)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.submodules.clocking = PLLClock(self.board.family, self.pll)
        m.submodules.system = sysm = self.system
        uart = platform.request("uart", 0)
        m.d.comb += [sysm.rx.eq(uart.rx.i), uart.tx.o.eq(sysm.tx)]
        # the LEDs are driven through two flip-flops: a LED pin's buffer is far from the core,
        # and the logic in front of a LED's flip-flop is shared with the controller's (the
        # busy decode): with one flip-flop that LUT was placed by the pin and the controller's
        # own feedback path routed out to it and back (ECP5: 85.8 MHz with none, 97.3 with
        # one). The first flip-flop stays by the core; only it feeds the pin's.
        busy_r, err_r = Signal(), Signal()
        m.d.sync += [busy_r.eq(sysm.busy), err_r.eq(sysm.error)]
        if self.board.family == "ice40":
            busy, err = platform.request("led_g", 0), platform.request("led_r", 0)
            m.d.sync += [busy.o.eq(busy_r), err.o.eq(err_r)]
        else:
            busy, err, alive = (platform.request("led", i) for i in (0, 1, 7))
            counter = Signal(26)
            m.d.sync += counter.eq(counter + 1)
            m.d.sync += [busy.o.eq(busy_r), err.o.eq(err_r)]
            m.d.comb += alive.o.eq(counter[-1])
        return m
