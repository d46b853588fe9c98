"""``pcforge build``: a bitstream and its report for a board (registered by :mod:`pcforge.cli`)."""
from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table


def print_report(console, rep: dict, out: Path):
    u = rep["utilization"]
    t = Table(title=f"{rep['spec']['name']} on {rep['board']} ({rep['device']}), "
                    f"{rep['lanes']} lane(s)")
    for col in ("resource", "estimate", "used", "available", "use"):
        t.add_column(col)
    for k in ("LUT", "FF", "DSP", "BRAM"):
        t.add_row(f"{k} ({u[k]['cell']})", str(rep["estimate"][k]), str(u[k]["used"]),
                  str(u[k]["available"]), f"{u[k]['used'] / max(1, u[k]['available']):.1%}")
    console.print(t)
    console.print(
        f"clock {rep['clock_mhz']:.3f} MHz, post-route fmax {rep['fmax_mhz']:.2f} MHz, timing "
        f"{'met' if rep['timing_met'] else '[red]NOT met[/red]'}; "
        f"{rep['inferences_per_s']:.0f} inferences/s ({rep['lane_limit_fraction']:.1%} of the "
        f"lane limit)")
    console.print(f"bitstream {out / rep['bitstream']}; report {out / 'report.json'}, "
                  f"{out / 'report.md'}")


@click.command("build")
@click.option("--board", type=click.Choice(["icebreaker", "ulx3s"]), required=True)
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), default=None,
              help="Spec TOML (default: the built-in digits spec).")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), default=None,
              help="Trained weights (.npz) to hold in the bitstream (else loaded over UART).")
@click.option("--lanes", type=int, default=None,
              help="MAC lanes (default: the board's: iCEBreaker 1, ULX3S 8).")
@click.option("--clock", "clock_mhz", type=float, default=None,
              help="Core clock in MHz (default: the board's: iCEBreaker 24, ULX3S 60).")
@click.option("--out", type=click.Path(file_okay=False), required=True)
def build(board, spec_path, weights_path, lanes, clock_mhz, out):
    """Bitstream (Yosys + nextpnr from YoWASP wheels) + report.json/report.md: clock, post-route
    fmax and timing, LUT/FF/DSP/BRAM used, available and estimated. Cached by spec, lanes,
    clock, weights and toolchain version. A design that cannot fit is refused before
    synthesis, saying what to change."""
    from .boards.build import BuildFailed, build_board
    from .cli import _errors, console
    from .model import FixedPCN, PCSpec, Weights
    from .model.train import digits_spec
    with _errors():
        spec = PCSpec.load(spec_path) if spec_path else digits_spec()
        weights = None
        if weights_path:
            fx = FixedPCN.from_float(spec, Weights.load(weights_path, spec))
            weights = (fx.W, fx.b)
        try:
            rep = build_board(board, spec, out, weights=weights, lanes=lanes,
                              clock_mhz=clock_mhz, log=console.print)
        except BuildFailed as exc:
            raise click.ClickException(str(exc)) from None
        print_report(console, rep, Path(out))
        if not rep["timing_met"]:
            raise click.ClickException(
                f"timing not met: fmax {rep['fmax_mhz']:.2f} MHz < {rep['clock_mhz']:.3f} MHz; "
                "build again with a lower --clock (the report is written)")
