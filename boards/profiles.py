"""The boards pcforge builds for: one :class:`BoardProfile` per board, the one place that states
its FPGA, oscillator, the clock pcforge asks of it, its default lane count and what the chip
holds (from the device data sheets, as nextpnr counts them).
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BoardProfile", "BOARDS", "board_profile", "hard_multipliers"]


@dataclass(frozen=True)
class BoardProfile:
    name: str
    family: str                 # "ice40" | "ecp5"
    device: str
    package: str
    osc_mhz: float              # the board oscillator
    clock_mhz: float            # the core clock pcforge requests (a PLL makes it)
    lanes: int                  # default MAC lanes for the digits-sized network
    baud: int                   # UART rate of the host link (see BOARDS)
    logic_ram_bits: int         # memories this small go to flip-flops, not block RAM
    available: dict = field(default_factory=dict)   # LUT, FF, DSP, BRAM on the chip
    bram_bits: int = 0          # bits of one block RAM
    bram_widths: tuple = ()     # (width, depth) configurations of one block RAM
    lutram: bool = False        # the family has distributed RAM (ECP5 DPR16X4: 16 × 4 bits)
    pow2_depth_above: int = 0   # deeper memories get a power-of-two depth (PCCore: timing)
    spram_shape: tuple = ()     # (width, depth) of one single-port "huge" RAM (iCE40UP SPRAM)
    hard_multipliers: str | None = None   # PCCore's hard_multipliers (pcforge.hdl.dsp) ...
    hard_multipliers_max_lanes: int = 0   # ... in builds of at most this many lanes
    routed_lanes_max: int = 0   # the most lanes whose build has routed here (0: not measured)
    link_batch: bool = True     # the host link has the BATCH command (HostLink batch=)
    bitstream_ext: str = ".bin"
    serial_hint: str = ""
    programmer_board: str = ""  # openFPGALoader's name for the board (-b)
    sram: bool = True           # the programmer can load the FPGA's SRAM (else: flash only)
    usb_hint: str = ""          # what the programmer looks for on USB

    def platform(self):
        """The amaranth-boards platform object."""
        if self.name == "icebreaker":
            from amaranth_boards.icebreaker import ICEBreakerPlatform
            return ICEBreakerPlatform()
        from amaranth_boards.ulx3s import ULX3S_85F_Platform
        return ULX3S_85F_Platform()


BOARDS = {
    "icebreaker": BoardProfile(
        name="icebreaker", family="ice40", device="iCE40UP5K", package="SG48",
        # the FT2232H's UART goes to 12 Mbaud; the link's receiver samples the middle of a bit
        # and takes at least 4 clock cycles per bit (6 Mbaud at 24 MHz): 3 Mbaud (8 cycles)
        # keeps a margin for the 2-flip-flop synchroniser's cycle of jitter
        osc_mhz=12.0, clock_mhz=24.0, lanes=1, baud=3_000_000, logic_ram_bits=0,
        available={"LUT": 5280, "FF": 5280, "DSP": 8, "BRAM": 30, "SPRAM": 4},
        bram_bits=4096, bram_widths=((16, 256), (8, 512), (4, 1024), (2, 2048)),
        spram_shape=(16, 16384),
        # BATCH takes ~450 logic cells: with it the 1-lane digits core needs 5 401 of 5 280
        link_batch=False,
        bitstream_ext=".bin",
        serial_hint="the FT2232H's second interface, e.g. /dev/ttyUSB1",
        # the iCE40 configures itself from the SPI flash the FT2232H writes: no SRAM mode
        programmer_board="ice40_generic", sram=False,
        usb_hint="the FT2232H (lsusb: 0403:6010 Future Technology Devices)"),
    "ulx3s": BoardProfile(
        name="ulx3s", family="ecp5", device="LFE5U-85F", package="CABGA381",
        # 3 Mbaud: the FT231X's highest rate (33 cycles a bit at 100 MHz: 1 % fast)
        osc_mhz=25.0, clock_mhz=100.0, lanes=8, baud=3_000_000, logic_ram_bits=0,
        available={"LUT": 83640, "FF": 83640, "DSP": 156, "BRAM": 208},
        bram_bits=18432,
        bram_widths=((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)),
        lutram=True, pow2_depth_above=1024, bitstream_ext=".bit",
        # the multipliers' pipeline registers inside the MULT18X18Ds (at 16 lanes the fabric
        # registers were placed ~29 rows from their multiplier: 95.56 MHz). Built and timed at
        # 8 and 16 lanes; at 32 Yosys 0.70 fails on the instances (an internal assertion in
        # ABC9's reintegration, "GetSize(conn.first) == GetSize(conn.second)"), so larger
        # builds leave the multiplies to synthesis as before (0.66 synthesises them; the
        # router does not finish at 32 lanes either way; at 22, 0.70 synthesises them, but
        # placement estimated 68 MHz: docs/boards.md)
        hard_multipliers="ecp5", hard_multipliers_max_lanes=16, routed_lanes_max=16,
        serial_hint="the FT231X, e.g. /dev/ttyUSB0",
        programmer_board="ulx3s", sram=True,
        usb_hint="the FT231X (lsusb: 0403:6015 Future Technology Devices)"),
}


def hard_multipliers(board: BoardProfile, lanes: int) -> str | None:
    """``PCCore``'s ``hard_multipliers`` for a ``lanes``-lane build on ``board``."""
    return board.hard_multipliers if lanes <= board.hard_multipliers_max_lanes else None


def lane_count_note(board: BoardProfile, lanes: int) -> str | None:
    """What a user should know before a build of ``lanes`` lanes on ``board`` that no build
    here has routed (None when some has, or nothing is measured)."""
    if not board.routed_lanes_max or lanes <= board.routed_lanes_max:
        return None
    return (f"note: no build of more than {board.routed_lanes_max} lanes has finished routing "
            f"for the {board.name} here (32 lanes: nextpnr's router still had arcs left after "
            "1 to 2.7 hours; docs/boards.md): expect hours, and timing not met")


def board_profile(name: str) -> BoardProfile:
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"board {name!r}: pcforge builds for "
                         f"{', '.join(sorted(BOARDS))}") from None
