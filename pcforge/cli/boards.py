"""``pcforge build``: a bitstream and its report for a board."""
from __future__ import annotations

from pathlib import Path

import click

from ..boards.profiles import BOARDS
from .common import (BOARD, FORCE_OPTION, POSITIVE_FLOAT, ROWS_OPTION, build_and_report, errors, load_weights,
                     output_folder)

__all__ = ["build", "BUILD_OUTPUTS"]

#: what ``build`` writes into its --out folder (beside the bitstream and nextpnr.log)
BUILD_OUTPUTS = ("report.json", "report.md")

_DEFAULTS = ", ".join(f"{b.name} {b.lanes}" for b in BOARDS.values())
_CLOCKS = ", ".join(f"{b.name} {b.clock_mhz:g}" for b in BOARDS.values())


@click.command("build", short_help="Bitstream + report (fmax, resources) for a board.")
@click.option("--board", type=BOARD, required=True)
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), default=None,
              help="Spec TOML (default: the built-in digits spec).")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), default=None,
              help="Trained weights (.npz) to hold in the bitstream (else loaded over UART).")
@click.option("--lanes", type=click.IntRange(min=1), default=None,
              help=f"MAC lanes (default: the board's: {_DEFAULTS}).")
@click.option("--clock", "clock_mhz", type=POSITIVE_FLOAT, default=None,
              help=f"Core clock in MHz (default: the board's: {_CLOCKS}).")
@ROWS_OPTION
@click.option("--ignore-estimate", is_flag=True,
              help="Build even when the pre-synthesis estimate says the design does not fit "
                   "(its LUT/FF counts are rough; nextpnr has the last word).")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Output folder: the bitstream, report.json, report.md, nextpnr.log.")
@FORCE_OPTION
def build(board, spec_path, weights_path, lanes, clock_mhz, rows, ignore_estimate, out, force):
    """Bitstream (Yosys + nextpnr from YoWASP wheels) + report.json/report.md: clock, post-route
    fmax and timing, LUT/FF/DSP/BRAM used, available and estimated. Cached by spec, lanes,
    clock, weights and toolchain version. A design that cannot fit is refused before
    synthesis, saying what to change."""
    from ..model.fixed_pcn import FixedPCN
    from ..model.presets import digits_spec
    from ..model.spec import PCSpec
    output_folder(out, BUILD_OUTPUTS, force)
    with errors():
        spec = PCSpec.load(spec_path) if spec_path else digits_spec()
        weights = None
        if weights_path:
            fx = FixedPCN.from_float(spec, load_weights(weights_path, spec))
            weights = (fx.W, fx.b)
        rep = build_and_report(board, spec, Path(out), weights=weights, lanes=lanes,
                               clock_mhz=clock_mhz, ignore_estimate=ignore_estimate, rows=rows)
        if not rep["timing_met"]:
            raise click.ClickException(
                f"timing not met: fmax {rep['fmax_mhz']:.2f} MHz < {rep['clock_mhz']:.3f} MHz; "
                "build again with a lower --clock (the report is written)")
