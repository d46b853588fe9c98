"""What every ``pcforge`` command shares: the console, input errors as one clear line, progress
bars, JSON output, the spec from options, input files, and the choices that the model and the
boards define (never repeated here as literals)."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import click
from click.core import ParameterSource
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


#: options that shape the network: given together with --spec they are refused, not ignored
_SPEC_SHAPING = ("hidden", "activation", "iterations", "learning", "w_guard", "stop")


def spec_from_options(spec_path, hidden, activation, iterations, learning, w_guard=0,
                      stop=None) -> PCSpec:
    """The spec a digits command works on: ``--spec`` (checked against the data set's shape),
    else the built-in digits default with the options' changes."""
    if spec_path:
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            given = [f"--{name.replace('_', '-')}" for name in _SPEC_SHAPING
                     if name in ctx.params and ctx.get_parameter_source(name) in
                     (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)]
            if given:
                raise click.UsageError(
                    f"{' and '.join(given)} would change the network, but --spec {spec_path} "
                    "already defines it: edit the spec file (or drop --spec to start from the "
                    "built-in digits default with these options)")
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


def load_input(path: Path, n: int, x_format=None, strict: bool = False) -> np.ndarray:
    """Samples from a ``.npy`` or ``.csv`` file (one per row) for an input layer of ``n``: a
    numeric 1-D (one sample) or 2-D array of finite numbers, or a clear error. With ``x_format``
    (the spec's X format) values outside its range — they would saturate when quantised — are
    counted: a warning, or with ``strict`` an error."""
    if not path.is_file():
        raise click.ClickException(f"input file {path} does not exist")
    try:
        x = (np.load(path, allow_pickle=False) if path.suffix == ".npy"
             else np.loadtxt(path, delimiter=",", ndmin=2))
    except (ValueError, OSError, EOFError) as exc:
        raise click.ClickException(f"{path} is not a readable .npy/.csv array: {exc}") from None
    if not isinstance(x, np.ndarray):
        raise click.ClickException(f"{path} holds several arrays (an .npz archive?); give one "
                                   ".npy array or a .csv file, one sample per row")
    if x.dtype.kind not in "biuf":
        raise click.ClickException(f"{path} holds {x.dtype} values, not numbers: give one "
                                   f"sample of {n} numbers per row")
    if x.ndim > 2:
        raise click.ClickException(f"{path} is a {x.ndim}-D array {x.shape}; give one sample "
                                   f"per row (2-D: samples × {n}), e.g. x.reshape(len(x), -1)")
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if x.size == 0:
        raise click.ClickException(f"{path} holds no samples (shape {x.shape}); give at least "
                                   f"one row of {n} values")
    if x.shape[1] != n:
        raise click.ClickException(f"{path} has {x.shape[1]} values per sample; the spec's input "
                                   f"layer has {n}")
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise click.ClickException(f"{path} holds {int(bad.sum())} NaN or infinite values (in "
                                   f"samples {', '.join(map(str, rows[:5]))}"
                                   f"{' …' if len(rows) > 5 else ''}); give finite inputs")
    if x_format is not None:
        lo, hi = x_format.min_value, x_format.max_value
        out = (x < lo) | (x > hi)
        if out.any():
            fate = "wrap around" if x_format.overflow == "wrap" else "saturate"
            msg = (f"{int(out.sum())} of {x.size} input values in {path} are outside the x "
                   f"format's range [{lo:g}, {hi:g}] and {fate} when quantised (the digits "
                   f"inputs are pixels scaled to 0–1; found {x.min():g} … {x.max():g})")
            if strict:
                raise click.ClickException(msg + "; scale the inputs, or drop --strict")
            console.print(f"[yellow]warning:[/] {msg}; --strict refuses such inputs")
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
