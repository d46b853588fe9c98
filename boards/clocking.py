"""PLL settings (the arithmetic of Project IceStorm's ``icepll`` and Project Trellis's
``ecppll``) and the PLL primitives that make the core's clock from a board's oscillator.

Both functions return the best reachable output frequency (MHz) and the primitive's
parameters; the frequency the design is then constrained to (and timed at) is that achieved
one, never the requested one.
"""
from __future__ import annotations

from typing import NamedTuple

from amaranth import ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib.cdc import ResetSynchronizer

__all__ = ["PLLSetting", "ice40_pll", "ecp5_pll", "PLLClock"]


class PLLSetting(NamedTuple):
    f_out_mhz: float
    params: dict


def ice40_pll(f_in_mhz: float, f_out_mhz: float) -> PLLSetting:
    """SB_PLL40 in SIMPLE feedback: f_out = f_in (DIVF+1) / ((DIVR+1) 2^DIVQ), with the PFD at
    10–133 MHz and the VCO at 533–1066 MHz (iCE40 sysCLOCK guide, as ``icepll`` checks)."""
    best = None
    for divr in range(16):
        pfd = f_in_mhz / (divr + 1)
        if not 10 <= pfd <= 133:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not 533 <= vco <= 1066:
                continue
            for divq in range(1, 7):
                f = vco / (1 << divq)
                if best is None or abs(f - f_out_mhz) < abs(best[0] - f_out_mhz) - 1e-9:
                    best = (f, divr, divf, divq, pfd)
    if best is None:
        raise ValueError(f"no iCE40 PLL setting from {f_in_mhz} MHz")
    f, divr, divf, divq, pfd = best
    filter_range = next(i for i, hi in enumerate((17, 26, 44, 66, 101, 1e9), start=1)
                        if pfd < hi)
    return PLLSetting(f, {"p_FEEDBACK_PATH": "SIMPLE", "p_DIVR": divr, "p_DIVF": divf,
                          "p_DIVQ": divq, "p_FILTER_RANGE": filter_range})


def ecp5_pll(f_in_mhz: float, f_out_mhz: float) -> PLLSetting:
    """EHXPLLL with CLKOP feedback: f_out = f_in · CLKFB_DIV / CLKI_DIV, the VCO
    (f_out · CLKOP_DIV) at 400–800 MHz and the PFD at ≥ 3.125 MHz (as ``ecppll`` checks)."""
    best = None
    for clki in range(1, 129):
        pfd = f_in_mhz / clki
        if pfd < 3.125 or pfd > 400:
            continue
        for clkfb in range(1, 81):
            f = pfd * clkfb
            if f > 400:
                break
            for clkop in range(1, 129):
                if 400 <= f * clkop <= 800:
                    if best is None or abs(f - f_out_mhz) < abs(best[0] - f_out_mhz) - 1e-9:
                        best = (f, clki, clkfb, clkop)
                    break
    if best is None:
        raise ValueError(f"no ECP5 PLL setting from {f_in_mhz} MHz")
    f, clki, clkfb, clkop = best
    return PLLSetting(f, {
        "p_PLLRST_ENA": "DISABLED", "p_INTFB_WAKE": "DISABLED", "p_STDBY_ENABLE": "DISABLED",
        "p_DPHASE_SOURCE": "DISABLED", "p_OUTDIVIDER_MUXA": "DIVA", "p_CLKOP_ENABLE": "ENABLED",
        "p_CLKI_DIV": clki, "p_CLKFB_DIV": clkfb, "p_CLKOP_DIV": clkop,
        "p_CLKOP_CPHASE": clkop - 1, "p_CLKOP_FPHASE": 0, "p_FEEDBK_PATH": "CLKOP"})


class PLLClock(Elaboratable):
    """Drives the ``sync`` domain (which the parent defines: Amaranth 0.6 wants a domain
    defined in the design's top or above its users) from the board oscillator through the
    family's PLL, held in reset until the PLL locks (reset released synchronously). nextpnr derives the PLL output's
    timing constraint from the oscillator's (the board resource's ``Clock``) and the PLL
    parameters, so the design is timed at exactly the frequency the PLL makes."""

    def __init__(self, family: str, setting: PLLSetting):
        if family not in ("ice40", "ecp5"):
            raise ValueError(f"family {family!r}")
        self.family, self.setting = family, setting

    def elaborate(self, platform):
        m = Module()
        lock = Signal()
        clk_out = Signal()                      # the PLL output (a constraint needs a Signal)
        m.d.comb += ClockSignal("sync").eq(clk_out)
        clk = platform.request(platform.default_clk, dir="-")
        if self.family == "ice40":
            m.submodules.pll = Instance(
                "SB_PLL40_PAD", **self.setting.params,
                i_PACKAGEPIN=clk.io, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=clk_out, o_LOCK=lock)
        else:
            m.submodules.pll = Instance(
                "EHXPLLL", **self.setting.params,
                i_CLKI=clk.io, i_CLKFB=clk_out, i_RST=0, i_STDBY=0,
                i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
                i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
                o_CLKOP=clk_out, o_LOCK=lock)
        m.submodules.reset_sync = ResetSynchronizer(~lock, domain="sync")
        return m
