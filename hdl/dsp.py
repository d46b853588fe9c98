"""Hard multipliers with their own pipeline registers: the ECP5's ``MULT18X18D``.

Yosys maps a ``*`` to a ``MULT18X18D`` with every register bypassed (its ECP5 flow absorbs no
flip-flops into the block), so a pipelined multiply ``P ← (A ← a) × (B ← b)`` keeps its
registers in the fabric: at 16 lanes nextpnr placed lane 15's operand and product registers
~29 rows from the block, and the route there and back (6.0 ns) around the multiplier's 3.9 ns
set the ECP5's fmax (95.56 MHz). :func:`ecp5_registered_multiply` instantiates the block with
its input registers A and B and its output register P clocked (``REG_INPUTA_CLK`` /
``REG_INPUTB_CLK`` / ``REG_OUTPUT_CLK`` = ``CLK0``, clock enable 1, no reset): the same two
cycles from operands to product as the fabric version, with nothing routed between the
registers and the multiplier.

Yosys has no simulation model of ``MULT18X18D``; :data:`MULT18X18D_MODEL` is ours (Verilog,
the subset of the block used here: signed or unsigned 18 × 18, each of the three registers
clocked by CLK0 or bypassed, CE0, synchronous RST0), written from Lattice's sysDSP usage
guide (FPGA-TN-02205, the MULT18X18D's register options). Simulations of a core built with
``hard_multipliers="ecp5"`` append it to the emitted Verilog (:func:`simulation_models`), and
``tests/test_verilator.py`` checks such a core bit for bit against FixedPCN; what no simulation
here can check is the silicon's own behaviour, which is the vendor's documented one.
"""
from __future__ import annotations

from amaranth import ClockSignal, Const, Instance, Signal, signed

__all__ = ["ecp5_registered_multiply", "fits_mult18", "MULT18X18D_MODEL", "simulation_models",
           "HARD_MULTIPLIERS", "MULT18_WIDTH"]

#: operand width of one ECP5 hard multiplier (signed)
MULT18_WIDTH = 18
#: the values of ``PCCore(hard_multipliers=...)``: None (a Verilog ``*``, synthesis chooses) or
#: ``"ecp5"`` (MULT18X18D with its registers, where both operands fit 18 bits)
HARD_MULTIPLIERS = (None, "ecp5")


def fits_mult18(a, b, width: int) -> bool:
    """``a × b`` into ``width`` bits fits one MULT18X18D (18 × 18 bits, 36-bit product)."""
    return max(len(a), len(b)) <= MULT18_WIDTH and width <= 2 * MULT18_WIDTH


def ecp5_registered_multiply(m, a, b, width: int, name: str) -> Signal:
    """``a × b`` (signed values of at most 18 bits each) through a ``MULT18X18D`` whose input
    and output registers are used: the product (signed, ``width`` ≤ 36 bits) appears two
    cycles after the operands."""
    if not fits_mult18(a, b, width):
        raise ValueError(f"{name}: a {len(a)} × {len(b)}-bit product does not fit one "
                         "MULT18X18D (18 × 18 bits)")
    sa = Signal(signed(MULT18_WIDTH), name=f"{name}a18")
    sb = Signal(signed(MULT18_WIDTH), name=f"{name}b18")
    p = Signal(2 * MULT18_WIDTH, name=f"{name}p36")
    m.d.comb += [sa.eq(a), sb.eq(b)]
    ports = {"i_CLK0": ClockSignal("sync"), "i_CE0": Const(1), "i_RST0": Const(0),
             "i_SIGNEDA": Const(1), "i_SIGNEDB": Const(1), "i_SOURCEA": Const(0),
             "i_SOURCEB": Const(0)}
    for k in range(1, 4):
        ports.update({f"i_CLK{k}": Const(0), f"i_CE{k}": Const(0), f"i_RST{k}": Const(0)})
    for i in range(MULT18_WIDTH):
        ports[f"i_A{i}"] = sa[i]
        ports[f"i_B{i}"] = sb[i]
        ports[f"i_C{i}"] = Const(0)
    for i in range(2 * MULT18_WIDTH):
        ports[f"o_P{i}"] = p[i]
    m.submodules[f"{name}dsp"] = Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
        p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
        p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
        p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
        p_GSR="DISABLED", p_RESETMODE="SYNC", p_SOURCEB_MODE="B_SHIFT",
        **ports)
    prod = Signal(signed(width), name=f"{name}prod")
    m.d.comb += prod.eq(p[:width].as_signed())
    return prod


#: Simulation model of the MULT18X18D subset used by :func:`ecp5_registered_multiply` (the
#: ports the Yosys blackbox declares that this design drives or reads).
MULT18X18D_MODEL = r"""
// pcforge: simulation model of the ECP5 MULT18X18D (the subset pcforge instantiates: each of
// the A, B and output registers clocked by CLK0 or bypassed, CE0, synchronous RST0; signed or
// unsigned 18 x 18). Not Lattice's model; see pcforge/hdl/dsp.py.
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off DECLFILENAME */
module MULT18X18D #(
    parameter REG_INPUTA_CLK = "NONE", parameter REG_INPUTA_CE = "CE0",
    parameter REG_INPUTA_RST = "RST0", parameter REG_INPUTB_CLK = "NONE",
    parameter REG_INPUTB_CE = "CE0", parameter REG_INPUTB_RST = "RST0",
    parameter REG_INPUTC_CLK = "NONE", parameter REG_PIPELINE_CLK = "NONE",
    parameter REG_OUTPUT_CLK = "NONE", parameter REG_OUTPUT_CE = "CE0",
    parameter REG_OUTPUT_RST = "RST0", parameter GSR = "ENABLED",
    parameter RESETMODE = "SYNC", parameter SOURCEB_MODE = "B_SHIFT"
) (
    input A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17,
    input B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17,
    input C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14, C15, C16, C17,
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input CLK0, CLK1, CLK2, CLK3, CE0, CE1, CE2, CE3, RST0, RST1, RST2, RST3,
    output P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17,
    output P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31, P32, P33,
    output P34, P35
);
    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
    reg [17:0] a_r = 18'd0, b_r = 18'd0;
    reg sa_r = 1'b0, sb_r = 1'b0;
    reg [35:0] p_r = 36'd0;
    always @(posedge CLK0) if (RST0) begin a_r <= 18'd0; sa_r <= 1'b0; end
                           else if (CE0) begin a_r <= a; sa_r <= SIGNEDA; end
    always @(posedge CLK0) if (RST0) begin b_r <= 18'd0; sb_r <= 1'b0; end
                           else if (CE0) begin b_r <= b; sb_r <= SIGNEDB; end
    wire [17:0] a_m = (REG_INPUTA_CLK == "NONE") ? a : a_r;
    wire [17:0] b_m = (REG_INPUTB_CLK == "NONE") ? b : b_r;
    wire sa_m = (REG_INPUTA_CLK == "NONE") ? SIGNEDA : sa_r;
    wire sb_m = (REG_INPUTB_CLK == "NONE") ? SIGNEDB : sb_r;
    wire [35:0] a_x = {{18{sa_m & a_m[17]}}, a_m};
    wire [35:0] b_x = {{18{sb_m & b_m[17]}}, b_m};
    wire [35:0] p_c = a_x * b_x;
    always @(posedge CLK0) if (RST0) p_r <= 36'd0; else if (CE0) p_r <= p_c;
    wire [35:0] p = (REG_OUTPUT_CLK == "NONE") ? p_c : p_r;
    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20,
            P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2,
            P1, P0} = p;
endmodule
/* verilator lint_on DECLFILENAME */
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on UNUSEDSIGNAL */
"""


def simulation_models(hard_multipliers) -> str:
    """Verilog to append to an emitted core for simulation: the models of the vendor
    primitives that ``PCCore(hard_multipliers=...)`` instantiates ('' for none)."""
    return MULT18X18D_MODEL if hard_multipliers == "ecp5" else ""
