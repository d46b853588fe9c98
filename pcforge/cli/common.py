"""What every ``pcforge`` command shares: the console, input errors as one clear line, progress
bars, JSON output, the spec from options, input files, and the choices that the model and the
boards define (never repeated here as literals)."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..boards.profiles import BOARDS
from ..boards.report import resource_rows
from ..model.activations import ACTIVATIONS
from ..model.files import atomic_write_json
from ..model.presets import DIGITS_CLASSES, DIGITS_INPUTS, digits_spec
from ..model.spec import LEARNING_RULES, STOPS, PCSpec, SpecError
from ..model.weights import WeightsError
from ..sim.simulators import SIMULATORS
from ..sim.toolchain import ToolMissing

__all__ = ["console", "errors", "progress", "write_json", "spec_from_options", "load_input",
           "ACTIVATION", "LEARNING_RULE", "STOP_RULE", "BOARD", "SIMULATOR_OPTION", "build_and_report",
           "print_build_report"]

console = Console(stderr=False)

#: Option types whose choices come from where they are defined.
#: a number that must be above zero (a rate, a clock): 0 is refused, never read as "the default"
POSITIVE_FLOAT = click.FloatRange(min=0, min_open=True)
ACTIVATION = click.Choice(ACTIVATIONS)
LEARNING_RULE = click.Choice(LEARNING_RULES)
STOP_RULE = click.Choice(STOPS)
BOARD = click.Choice(sorted(BOARDS))
SIMULATOR_OPTION = click.option(
    "--simulator", type=click.Choice(SIMULATORS), default="native", show_default=True,
    help="native: Verilator + pcforge's compiled host harness (fast); cocotb: the cocotb "
         "testbench on Verilator; icarus: the cocotb testbench on Icarus Verilog.")


@contextmanager
def errors():
    """Turn pcforge's input errors into one clear line and a non-zero exit, no traceback."""
    try:
        yield
    except (SpecError, WeightsError, FileNotFoundError, FileExistsError, ToolMissing) as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def progress(label: str):
    """A rich progress bar; yields a ``progress(done, total, info)`` callback."""
    cols = [TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*cols, console=console, transient=False) as prog:
        task = prog.add_task(label, total=1.0, info="")

        def cb(done, total, info):
            txt = "  ".join(f"{k} {v:.4g}" for k, v in info.items())
            prog.update(task, completed=done / total, info=txt)
        yield cb


def write_json(path: Path, obj: dict):
    """A command's JSON output (sorted keys), written atomically."""
    atomic_write_json(path, obj, sort_keys=True)


def spec_from_options(spec_path, hidden, activation, iterations, learning, w_guard=0,
                      stop=None) -> PCSpec:
    """The spec a digits command works on: ``--spec`` (checked against the data set's shape),
    else the built-in digits default with the options' changes."""
    if spec_path:
        spec = PCSpec.load(spec_path)
        if spec.sizes[0] != DIGITS_INPUTS or spec.sizes[-1] != DIGITS_CLASSES:
            raise click.ClickException(
                f"{spec_path}: the digits data set needs {DIGITS_INPUTS} inputs and "
                f"{DIGITS_CLASSES} outputs, the spec has sizes {list(spec.sizes)}")
        return spec
    changes = {}
    if iterations is not None:
        changes["iterations"] = iterations
    if learning:
        changes["learning"] = learning
    if stop:
        changes["stop"] = stop
    return digits_spec(hidden=tuple(hidden), activation=activation, w_guard=w_guard, **changes)


def load_input(path: Path, n: int) -> np.ndarray:
    """Samples from a ``.npy`` or ``.csv`` file (one per row) for an input layer of ``n``."""
    if not path.is_file():
        raise click.ClickException(f"input file {path} does not exist")
    try:
        x = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError as exc:
        raise click.ClickException(f"{path} is not a readable .npy/.csv array: {exc}") from None
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if x.shape[1] != n:
        raise click.ClickException(f"{path} has {x.shape[1]} values per sample; the spec's input "
                                   f"layer has {n}")
    return x


def print_build_report(rep: dict, out: Path):
    """A build report as a resource table and a summary line."""
    t = Table(title=f"{rep['spec']['name']} on {rep['board']} ({rep['device']}), "
                    f"{rep['lanes']} lane(s)")
    for col in ("resource", "estimate", "used", "available", "use"):
        t.add_column(col)
    for row in resource_rows(rep):
        t.add_row(*row)
    console.print(t)
    console.print(
        f"clock {rep['clock_mhz']:.3f} MHz, post-route fmax {rep['fmax_mhz']:.2f} MHz, timing "
        f"{'met' if rep['timing_met'] else '[red]NOT met[/red]'}; "
        f"{rep['inferences_per_s']:.0f} inferences/s ({rep['lane_limit_fraction']:.1%} of the "
        f"lane limit)")
    console.print(f"bitstream {out / rep['bitstream']}; report {out / 'report.json'}, "
                  f"{out / 'report.md'}")


def build_and_report(board: str, spec: PCSpec, out: Path, **kw) -> dict:
    """:func:`~pcforge.boards.build.build_board` with its log on the console, a failed build as
    a clear error, and the report printed."""
    from ..boards.build import BuildFailed, build_board      # (amaranth: only when building)
    try:
        rep = build_board(board, spec, out, log=console.print, **kw)
    except BuildFailed as exc:
        raise click.ClickException(str(exc)) from None
    print_build_report(rep, Path(out))
    return rep
