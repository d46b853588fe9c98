"""What every ``pcforge`` command shares: the console, input errors as one clear line, progress
bars, JSON output, the spec from options, input files, and the choices that the model and the
boards define (never repeated here as literals)."""
from __future__ import annotations

import os
import tempfile
import threading
import time
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

__all__ = ["console", "errors", "status", "progress", "write_json", "FORCE_OPTION", "ROWS_OPTION",
           "load_weights",
           "executor_options",
           "output_folder", "output_file", "spec_from_options", "load_input",
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


#: seconds between the "still running" lines of a long step in a plain (non-terminal) log
HEARTBEAT_S = 15.0


def _plain() -> bool:
    """True when the console is not a terminal (a log file, CI, a pipe): rich's live
    spinners and bars print nothing there until the end, so plain lines are printed instead."""
    return not console.is_terminal


@contextmanager
def status(label: str):
    """A step without a known length (a Verilator build, place-and-route): a spinner on a
    terminal; in a plain log a start line, a "still running" line every :data:`HEARTBEAT_S`
    seconds and an end line with the time taken."""
    t0 = time.perf_counter()
    if not _plain():
        with console.status(label):
            yield
        return
    console.print(f"{label} ...")
    done = threading.Event()

    def beat():
        while not done.wait(HEARTBEAT_S):
            console.print(f"  {label}: still running ({time.perf_counter() - t0:.0f} s)")
    th = threading.Thread(target=beat, daemon=True)
    th.start()
    try:
        yield
    finally:
        done.set()
        th.join()
    console.print(f"{label}: done in {time.perf_counter() - t0:.1f} s")


@contextmanager
def progress(label: str):
    """A progress bar; yields a ``progress(done, total, info)`` callback. In a plain log it
    prints a line per tenth of the job, and a "still running" line when a step between two
    calls is long (e.g. the first run's Verilator build)."""
    if _plain():
        yield from _plain_progress(label)
        return
    cols = [TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*cols, console=console, transient=False) as prog:
        task = prog.add_task(label, total=1.0, info="")

        def cb(done, total, info):
            txt = "  ".join(f"{k} {v:.4g}" for k, v in info.items())
            prog.update(task, completed=done / total, info=txt)
        yield cb


def _plain_progress(label: str):
    t0 = time.perf_counter()
    state = {"tenth": -1, "last": t0, "frac": 0.0}
    lock = threading.Lock()
    done = threading.Event()
    console.print(f"{label} ...")

    def line(frac, info=""):
        el = time.perf_counter() - t0
        left = f", ~{el / frac - el:.0f} s left" if 0 < frac < 1 else ""
        console.print(f"  {label}: {frac:6.1%} ({el:.0f} s{left}){info}")

    def cb(done_, total, info):
        frac = done_ / total if total else 1.0
        txt = "".join(f"  {k} {v:.4g}" for k, v in info.items())
        with lock:
            state["frac"] = frac
            state["last"] = time.perf_counter()
            if int(frac * 10) > state["tenth"]:
                state["tenth"] = int(frac * 10)
                line(frac, txt)

    def beat():
        while not done.wait(HEARTBEAT_S / 3):
            with lock:
                if time.perf_counter() - state["last"] >= HEARTBEAT_S:
                    state["last"] = time.perf_counter()
                    line(state["frac"], "  still running")
    th = threading.Thread(target=beat, daemon=True)
    th.start()
    try:
        yield cb
    finally:
        done.set()
        th.join()
    console.print(f"{label}: done in {time.perf_counter() - t0:.1f} s")


ROWS_OPTION = click.option(
    "--rows", type=click.Choice(["1", "2"]), default="1", show_default=True,
    callback=lambda ctx, param, v: int(v),
    help="Rows per token: 2 gives each lane a second multiplier and halves every weight "
         "sweep (an even --lanes; the synchronous schedule, no incremental learning).")

FORCE_OPTION = click.option(
    "--force", is_flag=True, default=False,
    help="Overwrite the outputs of an earlier run in --out (kept otherwise).")


def _writable(path: Path, what: str):
    """Refuse ``path`` (a folder to be written, existing or not) unless a file can be created
    there: probed for real in its nearest existing folder, so a read-only file system, a
    missing permission or a file in the way is found before any work, not after it."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise click.ClickException(f"{what} {path}: {probe} is a file, not a folder; choose "
                                   "another path")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pcforge-probe-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise click.ClickException(f"{what} {path} is not writable ({exc.strerror or exc} in "
                                   f"{probe}); choose a folder you can write") from None


def output_folder(out, products, force: bool, option: str = "--out") -> Path:
    """Check an output folder before any work: writable (see :func:`_writable`), and holding
    none of ``products`` (the names this command writes there) from an earlier run unless
    ``force``. Nothing is created here: a command that fails leaves no empty folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise click.ClickException(f"{option} {out} is a file; give a folder")
    _writable(out, option)
    found = [p for p in products if (out / p).exists()]
    if found and not force:
        raise click.ClickException(
            f"{option} {out} already holds {', '.join(found)} from an earlier run; pass --force "
            "to overwrite them, or choose another folder")
    return out


def output_file(path, force: bool, option: str = "--out") -> Path:
    """As :func:`output_folder` for a command that writes one file."""
    path = Path(path)
    if path.is_dir():
        raise click.ClickException(f"{option} {path} is a folder; give a file name")
    _writable(path.parent, option)
    if path.exists() and not force:
        raise click.ClickException(f"{option} {path} exists; pass --force to overwrite it, or "
                                   "choose another name")
    return path


def write_json(path: Path, obj: dict):
    """A command's JSON output (sorted keys), written atomically."""
    atomic_write_json(path, obj, sort_keys=True)


#: options that shape the network: given together with --spec they are refused, not ignored
_SPEC_SHAPING = ("hidden", "activation", "iterations", "learning", "w_guard", "stop")


def executor_options(default: str):
    """--executor and --scheduler, the same for every sweep (explore, verify, analog sweep)."""
    from ..model.executor import EXECUTORS

    def deco(f):
        f = click.option("--scheduler", default=None,
                         help="An existing Dask scheduler, e.g. tcp://10.0.0.5:8786 (implies "
                              "--executor dask; docs/explore.md).")(f)
        return click.option("--executor", type=click.Choice(EXECUTORS), default=default,
                            show_default=True,
                            help="serial: here, in order; local: a process pool; dask: a "
                                 "Dask LocalCluster here, or --scheduler.")(f)
    return deco


def load_weights(path, spec: PCSpec):
    """:meth:`Weights.load`, saying so when the weights were saved under another spec (same
    sizes and activations, other formats, rates or T): they are re-quantised for this one."""
    from ..model.weights import Weights
    w = Weights.load(path, spec)
    if w.trained_under and w.trained_under != spec.digest:
        console.print(f"note: {path} was saved under spec {w.trained_under}; this spec is "
                      f"{spec.digest} (same sizes and activations): the float weights are "
                      "re-quantised to its formats. To use the original, pass the spec.toml "
                      "saved beside the weights")
    return w


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


def load_input(path: Path, n: int | None, x_format=None, strict: bool = False,
               layer: int = 0) -> np.ndarray:
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
    if n is not None and x.shape[1] != n:
        which = "input layer" if layer == 0 else f"layer {layer}"
        raise click.ClickException(f"{path} has {x.shape[1]} values per sample; the spec's "
                                   f"{which} has {n}")
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


def _clamp_files(ctx, param, value):
    out = {}
    for item in value:
        layer, sep, path = item.partition("=")
        if not sep or not layer.strip().isdigit() or not path:
            raise click.BadParameter(f"{item!r}: give LAYER=FILE, e.g. 2=labels.npy")
        if int(layer) in out:
            raise click.BadParameter(f"layer {layer} is given twice")
        out[int(layer)] = Path(path)
    return out


def clamped_values(spec, mask_name: str, input_path, clamp_files: dict, x_format, strict,
                   pin_files: dict | None = None):
    """{layer: float values (samples, n_l)} for every layer the mask clamps and every layer
    with pinned nodes: layer 0 from ``--input`` (default: the digits test set, with its
    labels), the others from ``--clamp``; ``--pin LAYER=FILE`` (0/1 per node, one row per
    sample or one row for all) clamps nodes of a free layer one by one. A clear error for a
    clamped layer without values, values for a free layer, wrong lengths, different sample
    counts, or pins the spec cannot hold. Returns (clamped, labels or None, pins: {layer:
    bools (samples, n_l)})."""
    from ..model.spec import SpecError
    mask = spec.mask(mask_name)
    clamped, labels = {}, None
    if 0 in clamp_files:
        raise click.UsageError("give the input layer's values with --input, not --clamp 0=…")
    pins = {}
    for l, path in sorted((pin_files or {}).items()):
        if l >= spec.n_layers:
            raise click.UsageError(f"--pin {l}=…: the network has layers 0..{spec.L}")
        bits = load_input(path, spec.sizes[l], None, True, layer=l)
        if not np.isin(bits, (0, 1)).all():
            raise click.UsageError(f"--pin {l}={path}: give 0 or 1 per node (1 = held)")
        try:
            pins[l] = spec.pins(mask_name, {l: bits.astype(bool)})[l]
        except SpecError as exc:
            raise click.UsageError(f"--pin {l}={path}: {exc}") from None
    pins.update({l: np.atleast_2d(v) for l, v in spec.pins(mask_name).items() if l not in pins})
    if mask[0] or 0 in pins:
        if input_path:
            clamped[0] = load_input(Path(input_path), spec.sizes[0], x_format, strict)
        else:
            from ..model.data import load_digits_split
            d = load_digits_split()
            clamped[0], labels = d.x_test, d.y_test
    elif input_path:
        raise click.UsageError(f"--input: the input layer is free under mask '{mask_name}' "
                               "(it is relaxed, not given); drop --input or choose a mask that "
                               "clamps layer 0")
    for l, path in sorted(clamp_files.items()):
        if l >= spec.n_layers:
            raise click.UsageError(f"--clamp {l}=…: the network has layers 0..{spec.L}")
        if not mask[l] and l not in pins:
            raise click.UsageError(f"--clamp {l}={path}: layer {l} is free under mask "
                                   f"'{mask_name}' {list(mask)}; its values are relaxed, not "
                                   "given (choose a mask that clamps it, or hold some of its "
                                   f"nodes with --pin {l}=FILE)")
        clamped[l] = load_input(path, spec.sizes[l], x_format, strict, layer=l)
    missing = [l for l in range(spec.n_layers) if (mask[l] or l in pins) and l not in clamped]
    if missing:
        l = missing[0]
        how = f"clamped by mask '{mask_name}' {list(mask)}" if mask[l] else "pinned (--pin)"
        raise click.UsageError(f"layer {l} is {how} but no values were given: pass "
                               f"{'--input FILE' if l == 0 else f'--clamp {l}=FILE'} (a "
                               f".npy/.csv of {spec.sizes[l]} values per sample)")
    counts = {l: len(v) for l, v in clamped.items()}
    counts.update({f"pins {l}": len(v) for l, v in pins.items() if len(v) > 1})
    if len(set(counts.values())) > 1:
        raise click.UsageError(f"the clamped layers have different sample counts {counts}: give "
                               "one row per sample in every file")
    n = len(next(iter(clamped.values())))
    pins = {l: np.broadcast_to(v, (n, spec.sizes[l])).copy() for l, v in pins.items()}
    return clamped, labels, pins


def clamp_options(f):
    """``--mask NAME`` (alias ``--mode``), ``--clamp LAYER=FILE`` and ``--pin LAYER=FILE``
    (repeatable): which layers (and nodes) are held and the values of those other than the
    input (see :func:`clamped_values`)."""
    f = click.option("--pin", "pin_files", multiple=True, callback=_clamp_files,
                     metavar="LAYER=FILE",
                     help="Per-node clamp of a free layer: 0/1 per node (1 = held at its "
                          "--clamp value), one row per sample or one for all; the layer must "
                          "be in the spec's network.node_clamp.")(f)
    f = click.option("--clamp", "clamp_files", multiple=True, callback=_clamp_files,
                     metavar="LAYER=FILE",
                     help="Values of another clamped layer (one row per sample), e.g. "
                          "2=labels.npy; repeat for several layers.")(f)
    return click.option("--mask", "--mode", "mode", default="inference", show_default=True,
                        help="Clamp mask from the spec's [clamp] table (inference, training, "
                             "generation, …).")(f)


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
        with status(f"{board} bitstream"):
            rep = build_board(board, spec, out, log=console.print, **kw)
    except BuildFailed as exc:
        raise click.ClickException(str(exc)) from None
    print_build_report(rep, Path(out))
    return rep
