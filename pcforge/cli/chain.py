"""``pcforge run``: the main job on the built-in default, model → Verilog → compare → bitstream."""
from __future__ import annotations

from pathlib import Path

import click

from ..boards.profiles import BOARDS
from .common import FORCE_OPTION, build_and_report, console, errors, output_folder, status
from .hardware import compare_and_report
from .models import TRAIN_OUTPUTS, train_models

__all__ = ["run"]


@click.command(short_help="The whole chain on digits: train → Verilog → compare → bitstream.")
@click.option("--out", type=click.Path(file_okay=False), default="runs/digits",
              show_default=True, help="Output folder for every artefact of the chain.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--lanes", type=click.IntRange(min=1), default=8, show_default=True,
              help="MAC lanes of the generated core.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Compare only the first N test digits on the hardware (default: all).")
@click.option("--board", type=click.Choice([*sorted(BOARDS), "none"]),
              default="icebreaker", show_default=True,
              help="End the chain with this board's bitstream (holding the trained weights).")
@FORCE_OPTION
def run(out, seed, epochs, lanes, limit, board, force):
    """The main job on the default: train float PC on digits, quantise (bit-exact fixed point
    beside float and the MLP bar), emit the core's Verilog, run it cycle-accurately (cocotb +
    Verilator) on the digits test set against FixedPCN and FloatPCN, report and plot, and
    build the iCEBreaker bitstream with its report (model → Verilog → compare → bitstream)."""
    from ..hdl.emit import emit
    from ..model.fixed_pcn import FixedPCN
    from ..model.spec import PCSpec
    from ..model.weights import Weights
    output_folder(out, (*TRAIN_OUTPUTS, "hdl", "compare", "board"), force)
    with errors():
        train_models(out, None, (64,), "relu", None, None, "float", epochs, 32, "adam", 3e-3,
                     "cosine", seed, True)
        out = Path(out)
        spec = PCSpec.load(out / "spec.toml")
        weights = Weights.load(out / "weights.npz", spec)
        with status(f"emitting the core's Verilog ({lanes} lanes)"):
            res = emit(spec, lanes, out / "hdl")
        console.print(f"Verilog: {res.verilog} (manifest {res.manifest})")
        compare_and_report(spec, weights, out / "compare", lanes, limit)
        bit = ""
        if board != "none":
            fx = FixedPCN.from_float(spec, weights)
            rep = build_and_report(board, spec, out / "board", weights=(fx.W, fx.b))
            bit = (f"; {board} bitstream {out}/board/{rep['bitstream']} and its report "
                   f"{out}/board/report.md")
        console.print(f"[bold]artefacts[/bold]: model {out}/weights.npz, metrics "
                      f"{out}/metrics.json; Verilog {res.verilog}; comparison "
                      f"{out}/compare/report.md and plots (energy, error_hist, scatter, "
                      f"profile){bit}")
