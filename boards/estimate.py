"""Resource estimates before synthesis, and the refusal of a design that cannot fit a board.

* **DSP** — exact by construction: each lane has :func:`~pcforge.model.arch.cycles.multipliers_per_lane`
  multipliers of W (the W format) by f(x) (the X format), each as many hard multipliers as its
  operand widths need (iCE40 SB_MAC16: 16×16; ECP5 MULT18X18D: 18×18).
* **BRAM** — exact by construction: every memory of the core (from
  :class:`~pcforge.hdl.core.PCCore` itself) plus the host link's 256-byte frame buffer, each the
  cheapest tiling of the family's block-RAM configurations; memories of at most
  ``logic_ram_bits`` bits are flip-flops instead, and on the ECP5 memories that Yosys's cost
  model builds cheaper from DPR16X4 cells are distributed RAM (:func:`_lutram_cheaper`;
  measured: 9 DP16KD for the 8-lane digits core, all of them the weight banks and the frame
  buffer; 146 for 784-128-10 on 8 lanes, whose 98-word x_0 banks are block RAM).
* **SPRAM** (iCE40UP) — exact: the weight memories :func:`spram_plan` moves there when the
  EBRs cannot hold everything, 16 K × 16 bits each.
* **LUT, FF** — rough: a per-lane cost fitted to ``synth_ice40 -dsp`` of the digits core at 1,
  2, 4 and 8 lanes (yosys 0.70: ~1 130 LUT and ~1 445 FF per lane at a 42-bit accumulator,
  ~940 LUT and ~1 150 FF of controller and pipeline control), ~400 LUT and ~250 FF of UART
  link, scaled by the accumulator width, plus the flip-flop memories. On the iCE40 "LUT"
  counts logic cells (one LUT4 + one FF each): LUTs + ¾ of the FFs, fitted to nextpnr's
  placement of the digits core at 1 lane (4 604 estimated, 4 621 placed). It tells a design
  that fits from one that is several times too big; the post-route numbers in the build
  report are the real ones.
"""
from __future__ import annotations

from math import ceil

from amaranth import Shape

from ..hdl.core import PCCore
from ..model.arch.cycles import multipliers_per_lane
from ..model.spec import PCSpec, SpecError
from .profiles import BoardProfile

__all__ = ["estimate", "check_fits", "DoesNotFit", "spram_plan"]

#: fitted constants (see the module docstring)
LUT_BASE, LUT_PER_LANE, LUT_LINK, LUT_PER_LOGIC_BIT = 940, 1130, 400, 0.55
LUT_PER_LUTRAM = 2          # an ECP5 DPR16X4 occupies two LUT4 sites
FF_BASE, FF_PER_LANE, FF_LINK = 1150, 1445, 250
FIT_ACC_WIDTH = 42
#: A lane of two rows per token against one of one row (its second multiplier's operand and
#: product registers, the odd row's adder tree, learning unit and broadcast words): a first
#: estimate; ``docs/boards.md`` ("Two rows per token") has what the 16 × 2 ULX3S build used.
ROWS2_LANE_SCALE = 1.3
ICE40_FF_CELL_SHARE = 0.75  # iCE40 logic cells ≈ LUTs + this share of the FFs (fitted)


class DoesNotFit(SpecError):
    """The design needs more of a resource than the board's FPGA has."""


#: Yosys's memory_libmap costs (share/lattice/*.txt): a DP16KD 128, a DPR16X4 4
BRAM_COST, LUTRAM_CELL_COST = 128, 4
#: what a memory deeper than one DPR16X4 adds per data bit and extra 16 words (its read
#: multiplexer), fitted to Yosys's choices: 80 × 16 bits distributed, 98 × 16 block RAM
LUTRAM_MUX_COST = 0.5


def _lutram_cheaper(width: int, depth: int, configs) -> bool:
    """Whether Yosys builds a width × depth memory from DPR16X4 cells rather than DP16KDs:
    the distributed cells' cost against that of the blocks the memory needs (``configs``: the
    block's width × depth shapes) — a 42-bit word needs two DP16KDs side by side (the row
    accumulator: 64 × 42 bits distributed at 8 lanes)."""
    n = ceil(depth / 16)
    cost = LUTRAM_CELL_COST * ceil(width / 4) * n + LUTRAM_MUX_COST * width * (n - 1)
    return cost < BRAM_COST * _blocks(width, depth, configs)


def _blocks(width: int, depth: int, configs) -> int:
    return min(ceil(width / w) * ceil(depth / d) for w, d in configs)


def _spram_blocks(width: int, depth: int, board: BoardProfile) -> int:
    w, d = board.spram_shape
    return ceil(width / w) * ceil(depth / d)


def spram_plan(spec: PCSpec, lanes: int, board: BoardProfile, rows: int = 1) -> tuple:
    """The connections whose weight memories go to the board's single-port RAMs (iCE40UP
    SPRAM): none while block RAM holds everything; else the largest weight memories first, as
    long as the SPRAMs hold them, until block RAM holds the rest. A core with any cannot learn
    on the chip (:class:`~pcforge.hdl.core.PCCore` ``spram_weights``)."""
    if not board.spram_shape or rows == 2:           # two rows per token: no SPRAM weights
        return ()
    plan = ()
    core = PCCore.interface(spec, lanes)
    F = spec.formats
    order = sorted(range(1, spec.L + 1), key=lambda l: -core.w_mem[l][0].depth)
    used = 0
    for l in order:
        if estimate(spec, lanes, board, spram=plan)["BRAM"] <= board.available["BRAM"]:
            break
        need = lanes * _spram_blocks(F.w_store.width, core.w_mem[l][0].depth, board)
        if used + need > board.available["SPRAM"]:
            break
        plan, used = tuple(sorted(plan + (l,))), used + need
    return plan


def estimate(spec: PCSpec, lanes: int, board: BoardProfile, spram=None, rows: int = 1) -> dict:
    """{"LUT", "FF", "DSP", "BRAM", "SPRAM"} → estimated count, "memories": the block-RAM list
    (name, width, depth, blocks), "spram_weights": the connections whose weight memories are
    in SPRAM (``spram``, else :func:`spram_plan`'s). ``rows``: rows per token (2: a second
    multiplier and odd-row weight and bias halves per lane; the logic per lane is scaled by
    :data:`ROWS2_LANE_SCALE`)."""
    spram = spram_plan(spec, lanes, board, rows) if spram is None else tuple(spram)
    core = PCCore.interface(spec, lanes, rows=rows, pow2_depth_above=board.pow2_depth_above)
    w_tables = (("w", core.w_mem),) + ((("w_odd", core.w_mem_odd),) if rows == 2 else ())
    b_tables = (("bias", core.b_mem),) + ((("bias_odd", core.b_mem_odd),) if rows == 2 else ())
    mems = [("frame buffer", 8, 256)]
    for p, mem in enumerate(core.c_mem):
        mems.append((f"cache lane {p}", Shape.cast(mem.shape).width, mem.depth))
    n_spram = 0
    for kind, banks in (("x", core.x_mem), ("e", core.e_mem)) + w_tables:
        for k, row in enumerate(banks):
            for p, mem in enumerate(row or []):
                if kind == "w" and k in spram:
                    n_spram += _spram_blocks(Shape.cast(mem.shape).width, mem.depth, board)
                    continue
                mems.append((f"{kind}{k} lane {p}", Shape.cast(mem.shape).width, mem.depth))
    for name, table in b_tables:
        for k, mem in enumerate(table):
            if mem is not None:
                mems.append((f"{name}{k}", Shape.cast(mem.shape).width, mem.depth))
    for mem in (core.row_acc_mem, core.row_acc_mem_odd):   # by columns: rows' partial sums
        if mem is not None:
            mems.append(("row accumulator", Shape.cast(mem.shape).width, mem.depth))
    bram, logic_bits, lutram, listing = 0, 0, 0, []
    for name, width, depth in mems:
        if width * depth <= board.logic_ram_bits:
            logic_bits += width * depth
            listing.append((name, width, depth, 0))
        elif board.lutram and _lutram_cheaper(width, depth, board.bram_widths):   # DPR16X4s
            lutram += ceil(width / 4) * ceil(depth / 16)
            listing.append((name, width, depth, 0))
        else:
            n = _blocks(width, depth, board.bram_widths)
            bram += n
            listing.append((name, width, depth, n))
    F = spec.formats
    hard = 16 if board.family == "ice40" else 18
    per_mult = ceil(F.w.width / hard) * ceil(F.x.width / hard)
    dsp = lanes * multipliers_per_lane(spec, rows) * per_mult
    scale = core.acc_width / FIT_ACC_WIDTH * (ROWS2_LANE_SCALE if rows == 2 else 1)
    lut = (LUT_BASE + LUT_LINK + LUT_PER_LANE * lanes * scale + LUT_PER_LOGIC_BIT * logic_bits
           + LUT_PER_LUTRAM * lutram)
    ff = FF_BASE + FF_LINK + FF_PER_LANE * lanes * scale + logic_bits
    if board.family == "ice40":
        # an iCE40 logic cell is one LUT4 + one FF, and most of the core's pipeline registers
        # do not share a cell with a LUT (they carry words down the pipeline)
        lut = lut + ICE40_FF_CELL_SHARE * ff
    return {"LUT": int(round(lut)), "FF": int(round(ff)), "DSP": dsp, "BRAM": bram,
            "SPRAM": n_spram, "memories": listing, "spram_weights": spram}


def check_fits(spec: PCSpec, lanes: int, board: BoardProfile, rows: int = 1) -> dict:
    """The estimate, or :class:`DoesNotFit` naming every resource over the chip and what to
    change."""
    est = estimate(spec, lanes, board, rows=rows)
    over = [f"{k} ~{est[k]} of {board.available.get(k, 0)}"
            for k in ("LUT", "FF", "DSP", "BRAM", "SPRAM") if est[k] > board.available.get(k, 0)]
    if over:
        others = [n for n in ("icebreaker", "ulx3s") if n != board.name]
        fewer = (f"fewer lanes (--lanes {max(1, lanes // 2)})" if lanes > 1 else
                 "smaller layers (network.sizes)")
        raise DoesNotFit(
            f"{spec.name} with {lanes} lane{'s' if lanes > 1 else ''} does not fit the "
            f"{board.device} of the {board.name}: needs {', '.join(over)}. Use {fewer}, "
            f"narrower weights or accumulator (formats.w, formats.acc), or another board "
            f"(--board {others[0]})")
    return est
