"""The ``pcforge`` command line: one entry point over model, hardware, simulation and boards."""
from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

console = Console(stderr=False)

ACTS = click.Choice(["identity", "relu", "hardtanh", "tanh"])


@contextmanager
def _errors():
    """Turn pcforge's input errors into one clear line and a non-zero exit, no traceback."""
    from .model import SpecError, WeightsError
    from .sim.tools import ToolMissing
    try:
        yield
    except (SpecError, WeightsError, FileNotFoundError, FileExistsError, ToolMissing) as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _progress(label: str):
    """A rich progress bar; yields a ``progress(done, total, info)`` callback."""
    cols = [TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*cols, console=console, transient=False) as prog:
        task = prog.add_task(label, total=1.0, info="")

        def cb(done, total, info):
            txt = "  ".join(f"{k} {v:.4g}" for k, v in info.items())
            prog.update(task, completed=done / total, info=txt)
        yield cb


def _write_json(path: Path, obj: dict):
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _spec_from_options(spec_path, hidden, activation, iterations, learning, w_guard=0):
    from .model.spec import PCSpec
    from .model.train import digits_spec
    if spec_path:
        spec = PCSpec.load(spec_path)
        if spec.sizes[0] != 64 or spec.sizes[-1] != 10:
            raise click.ClickException(
                f"{spec_path}: the digits data set needs 64 inputs and 10 outputs, "
                f"the spec has sizes {list(spec.sizes)}")
        return spec
    changes = {}
    if iterations:
        changes["iterations"] = iterations
    if learning:
        changes["learning"] = learning
    return digits_spec(hidden=tuple(hidden), activation=activation, w_guard=w_guard, **changes)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pcforge")
def main():
    """pcforge: predictive coding networks to verified FPGA hardware.

    The golden models (float64 and bit-exact fixed point), training on the built-in digits data
    set, and (as they land) Verilog generation, cycle-accurate simulation and bitstreams.
    """


def _train_options(f):
    opts = [
        click.option("--spec", "spec_path", type=click.Path(dir_okay=False),
                     help="A spec TOML (default: the built-in digits spec)."),
        click.option("--hidden", type=int, multiple=True, default=(64,), show_default=True,
                     help="Hidden layer size; repeat for more layers."),
        click.option("--activation", type=ACTS, default="relu", show_default=True,
                     help="Activation of the hidden layers."),
        click.option("--iterations", "-T", type=int, default=None,
                     help="Relaxation iterations T (default: the spec's, 20)."),
        click.option("--learning", type=click.Choice(["after_relaxation", "incremental"]),
                     default=None, help="Learning schedule (default: the spec's)."),
        click.option("--w-guard", type=int, default=0, show_default=True,
                     help="Weight guard bits: extra fraction bits kept in the weight memories "
                          "so that sub-LSB updates accumulate (formats.w_guard)."),
        click.option("--trainer", type=click.Choice(["float", "fixed"]), default="float",
                     show_default=True,
                     help="float: FloatPCN, batched, Adam/SGD. fixed: FixedPCN, one sample at "
                          "a time with the hardware's SGD rule (α from the spec)."),
        click.option("--epochs", type=int, default=None,
                     help="Epochs (default: 50 float, 10 fixed)."),
        click.option("--batch", type=int, default=32, show_default=True,
                     help="Batch size (float trainer)."),
        click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam",
                     show_default=True, help="Float trainer's optimizer."),
        click.option("--lr", type=float, default=3e-3, show_default=True,
                     help="Float trainer's (initial) learning rate."),
        click.option("--schedule", type=click.Choice(["cosine", "constant"]), default="cosine",
                     show_default=True, help="Float trainer's learning-rate schedule."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--mlp/--no-mlp", default=True, show_default=True,
                     help="Also train scikit-learn's MLPClassifier of the same shape."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _train(out, spec_path, hidden, activation, iterations, learning, trainer, epochs, batch,
           optimizer, lr, schedule, seed, mlp, w_guard=0):
    from .model.data import load_digits_split
    from .model.fixed_pcn import FixedPCN
    from .model.float_pcn import FloatPCN
    from .model.train import accuracy_fixed, accuracy_float, mlp_baseline, train_fixed, train_float

    out = Path(out)
    spec = _spec_from_options(spec_path, hidden, activation, iterations, learning, w_guard)
    data = load_digits_split()
    console.print(f"[bold]spec[/] {spec.name}: sizes {list(spec.sizes)}, activations "
                  f"{list(spec.activations)}, T = {spec.iterations}, γ = {spec.gamma}, "
                  f"α = {spec.alpha}, digest {spec.digest}")
    console.print(f"[bold]data[/] digits: {len(data.x_train)} train / {len(data.x_test)} test")
    metrics = {"spec_digest": spec.digest, "seed": seed, "trainer": trainer,
               "train_samples": len(data.x_train), "test_samples": len(data.x_test)}
    if trainer == "float":
        epochs = epochs or 50
        with _progress(f"float PC ({optimizer})") as cb:
            net, hist = train_float(spec, data, epochs=epochs, batch=batch, optimizer=optimizer,
                                    lr=lr, schedule=schedule, seed=seed, progress=cb)
        weights = net.weights
        fixed = FixedPCN.from_float(spec, weights)
        metrics.update(optimizer=optimizer, lr=lr, schedule=schedule, batch=batch)
    else:
        epochs = epochs or 10
        with _progress("fixed-point PC (hardware SGD)") as cb:
            fixed, hist = train_fixed(spec, data, epochs=epochs, seed=seed, progress=cb)
        weights = fixed.to_float_weights()
        net = FloatPCN(spec, weights)
        metrics["fixed_trained_test_accuracy"] = hist.test_accuracy[-1]
    metrics.update(epochs=epochs, train_wall_s=round(hist.wall_s, 3),
                   learning=learning or spec.learning,
                   test_accuracy_per_epoch=hist.test_accuracy,
                   train_energy_per_epoch=hist.train_energy)
    metrics["float_test_accuracy"] = accuracy_float(net, data.x_test, data.y_test)
    metrics["fixed_test_accuracy"] = accuracy_fixed(fixed, data.x_test, data.y_test)
    metrics["fixed_saturation"] = fixed.sat.as_dict()
    if mlp:
        with console.status("training the MLPClassifier bar"):
            metrics["mlp_test_accuracy"] = mlp_baseline(data, hidden=spec.sizes[1:-1],
                                                        activation=_mlp_act(spec), seed=seed)
    # everything is computed: only now write the outputs (each atomically)
    out.mkdir(parents=True, exist_ok=True)
    spec.save(out / "spec.toml")
    weights.save(out / "weights.npz", spec)
    _write_json(out / "metrics.json", metrics)
    t = Table(title=f"digits test accuracy ({len(data.x_test)} samples)")
    t.add_column("model")
    t.add_column("accuracy", justify="right")
    t.add_row("FloatPCN (float64)", f"{metrics['float_test_accuracy']:.2%}")
    t.add_row(f"FixedPCN ({spec.formats.x.width}-bit x)", f"{metrics['fixed_test_accuracy']:.2%}")
    if "mlp_test_accuracy" in metrics:
        t.add_row("MLPClassifier (bar)", f"{metrics['mlp_test_accuracy']:.2%}")
    console.print(t)
    console.print(f"wrote {out / 'spec.toml'}, {out / 'weights.npz'}, {out / 'metrics.json'}")
    return metrics


def _mlp_act(spec):
    a = spec.activations[-1]
    return {"relu": "relu", "tanh": "tanh", "identity": "identity"}.get(a, "relu")


@main.command()
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Output folder for spec.toml, weights.npz, metrics.json.")
@click.option("--on", "where", type=click.Choice(["model", "hardware"]), default="model",
              show_default=True,
              help="model: the numpy models (--trainer). hardware: the emitted core learns on "
                   "chip, cycle-accurate under cocotb + Verilator, every weight checked against "
                   "FixedPCN after every update.")
@click.option("--lanes", type=int, default=8, show_default=True,
              help="MAC lanes of the core (--on hardware).")
@click.option("--limit", type=int, default=None,
              help="--on hardware: training samples per epoch (default: all 1437).")
@click.option("--test-limit", type=int, default=None,
              help="--on hardware: evaluate on the first N test digits (default: all 360).")
@_train_options
def train(out, where, lanes, limit, test_limit, **kw):
    """Train a PC network on the built-in digits data set: in float or fixed point, or on the
    hardware itself."""
    with _errors():
        if where == "hardware":
            _train_on_hardware(out, lanes, limit, test_limit, **kw)
        else:
            _train(out, **kw)


def _train_on_hardware(out, lanes, limit, test_limit, spec_path, hidden, activation,
                       iterations, learning, epochs, seed, w_guard=0, **_ignored):
    from .model.data import load_digits_split
    from .sim.hw_train import HardwareMismatch, train_on_hardware

    out = Path(out)
    spec = _spec_from_options(spec_path, hidden, activation, iterations, learning, w_guard)
    from .hdl.core import PCCore
    try:
        PCCore.check_learns(spec)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    epochs = epochs or 6
    console.print(f"[bold]training on the hardware[/]: spec {spec.digest} (sizes "
                  f"{list(spec.sizes)}, learning {spec.learning}), {lanes} lanes, {epochs} "
                  f"epochs, building the Verilator model (cached)")
    try:
        with _progress("on-chip learning (Verilator)") as cb:
            weights, metrics = train_on_hardware(spec, load_digits_split(), epochs=epochs,
                                                 limit=limit, lanes=lanes, seed=seed,
                                                 test_limit=test_limit, progress=cb)
    except HardwareMismatch as exc:
        raise click.ClickException(f"the hardware stopped agreeing with FixedPCN: {exc}")
    out.mkdir(parents=True, exist_ok=True)
    spec.save(out / "spec.toml")
    weights.save(out / "weights.npz", spec)
    _write_json(out / "metrics.json", metrics)
    t = Table(title=f"digits test accuracy after {metrics['samples']} training samples on "
                    f"chip ({metrics['learning']}; {metrics['test_samples']} test digits)")
    t.add_column("trained and evaluated")
    t.add_column("accuracy", justify="right")
    t.add_row("on the hardware (Verilator)", f"{metrics['hw_test_accuracy']:.2%}")
    t.add_row("FixedPCN, same samples", f"{metrics['fixed_test_accuracy']:.2%}")
    t.add_row("FloatPCN, same samples (SGD, α)", f"{metrics['float_test_accuracy']:.2%}")
    console.print(t)
    console.print(f"every weight and bias equal to FixedPCN after all "
                  f"{metrics['updates_checked']} samples' updates; "
                  f"{metrics['cycles_per_training_sample']}"
                  f" cycles per training sample (model {metrics['cycle_model_per_training_sample']}"
                  f"); wrote {out / 'metrics.json'}, {out / 'weights.npz'}, {out / 'spec.toml'}")


@main.command()
@click.option("--out", type=click.Path(file_okay=False), default="runs/digits",
              show_default=True, help="Output folder for every artefact of the chain.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=int, default=50, show_default=True)
@click.option("--lanes", type=int, default=8, show_default=True,
              help="MAC lanes of the generated core.")
@click.option("--limit", type=int, default=None,
              help="Compare only the first N test digits on the hardware (default: all).")
@click.option("--board", type=click.Choice(["icebreaker", "ulx3s", "none"]),
              default="icebreaker", show_default=True,
              help="End the chain with this board's bitstream (holding the trained weights).")
def run(out, seed, epochs, lanes, limit, board):
    """The main job on the default: train float PC on digits, quantise (bit-exact fixed point
    beside float and the MLP bar), emit the core's Verilog, run it cycle-accurately (cocotb +
    Verilator) on the digits test set against FixedPCN and FloatPCN, report and plot, and
    build the iCEBreaker bitstream with its report (model → Verilog → compare → bitstream)."""
    from .hdl.emit import emit
    from .model import PCSpec, Weights
    with _errors():
        _train(out, None, (64,), "relu", None, None, "float", epochs, 32, "adam", 3e-3, "cosine",
               seed, True)
        out = Path(out)
        spec = PCSpec.load(out / "spec.toml")
        weights = Weights.load(out / "weights.npz", spec)
        with console.status(f"emitting the core's Verilog ({lanes} lanes)"):
            res = emit(spec, lanes, out / "hdl")
        console.print(f"Verilog: {res.verilog} (manifest {res.manifest})")
        _compare(spec, weights, out / "compare", lanes, limit)
        bit = ""
        if board != "none":
            from .board_cli import print_report
            from .boards.build import BuildFailed, build_board
            from .model import FixedPCN
            fx = FixedPCN.from_float(spec, weights)
            try:
                rep = build_board(board, spec, out / "board", weights=(fx.W, fx.b),
                                  log=console.print)
            except BuildFailed as exc:
                raise click.ClickException(str(exc)) from None
            print_report(console, rep, out / "board")
            bit = (f"; {board} bitstream {out}/board/{rep['bitstream']} and its report "
                   f"{out}/board/report.md")
        console.print(f"[bold]artefacts[/bold]: model {out}/weights.npz, metrics "
                      f"{out}/metrics.json; Verilog {res.verilog}; comparison "
                      f"{out}/compare/report.md and plots (energy, error_hist, scatter, "
                      f"profile){bit}")


@main.command()
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), required=True)
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), required=True)
@click.option("--input", "input_path", type=click.Path(dir_okay=False), default=None,
              help=".npy or .csv with one sample per row (default: the digits test set).")
@click.option("--model", type=click.Choice(["float", "fixed", "both"]), default="both",
              show_default=True)
@click.option("--mode", default="inference", show_default=True,
              help="Clamp mode from the spec's [clamp] table.")
@click.option("--limit", type=int, default=None, help="Only the first N samples.")
def infer(spec_path, weights_path, input_path, model, mode, limit):
    """Run inference (relaxation with the input clamped) in float and/or fixed point."""
    from .model import FixedPCN, FloatPCN, PCSpec, Weights
    from .model.data import load_digits_split
    with _errors():
        spec = PCSpec.load(spec_path)
        weights = Weights.load(weights_path, spec)
        labels = None
        if input_path:
            x = _load_input(Path(input_path), spec.sizes[0])
        else:
            d = load_digits_split()
            x, labels = d.x_test, d.y_test
        if limit:
            x = x[:limit]
            labels = labels[:limit] if labels is not None else None
        t = Table(title=f"inference ({len(x)} samples, mode {mode})")
        t.add_column("model")
        t.add_column("predicted classes (first 20)")
        if labels is not None:
            t.add_column("accuracy", justify="right")
        rows = []
        if model in ("float", "both"):
            out = FloatPCN(spec, weights).infer(x, mode=mode)
            rows.append(("float", out))
        if model in ("fixed", "both"):
            net = FixedPCN.from_float(spec, weights)
            res = net.infer(net.quantize(x), mode=mode)
            rows.append(("fixed", spec.formats.x.to_float(res.output)))
        for name, out in rows:
            pred = np.argmax(out, axis=1)
            cells = [name, " ".join(map(str, pred[:20]))]
            if labels is not None:
                cells.append(f"{np.mean(pred == labels):.2%}")
            t.add_row(*cells)
        console.print(t)
        if len(rows) == 2:
            diff = np.abs(rows[0][1] - rows[1][1])
            console.print(f"output |float − fixed|: max {diff.max():.3g}, mean {diff.mean():.3g};"
                          f" argmax agreement {np.mean(rows[0][1].argmax(1) == rows[1][1].argmax(1)):.2%}")


def _load_input(path: Path, n: int) -> np.ndarray:
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


@main.command("spec")
@click.option("--out", type=click.Path(dir_okay=False), required=True)
@click.option("--hidden", type=int, multiple=True, default=(64,), show_default=True)
@click.option("--activation", type=ACTS, default="relu", show_default=True)
@click.option("--iterations", "-T", type=int, default=None)
@click.option("--learning", type=click.Choice(["after_relaxation", "incremental"]), default=None)
@click.option("--w-guard", type=int, default=0, show_default=True,
              help="Weight guard bits kept in the weight memories (formats.w_guard).")
def spec_cmd(out, hidden, activation, iterations, learning, w_guard):
    """Write the built-in digits spec (with changes) as TOML, to edit by hand."""
    with _errors():
        spec = _spec_from_options(None, hidden, activation, iterations, learning, w_guard)
        spec.save(out)
        console.print(f"wrote {out} (digest {spec.digest})")


@main.command("sim")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), required=True)
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), required=True)
@click.option("--input", "input_path", type=click.Path(dir_okay=False), default=None,
              help=".npy or .csv, one sample per row (default: the first digits test sample).")
@click.option("--lanes", type=int, default=8, show_default=True)
@click.option("--limit", type=int, default=4, show_default=True,
              help="At most this many samples.")
@click.option("--waves", type=click.Path(dir_okay=False), default=None,
              help="Write a waveform of the run here (.vcd; .fst needs the lz4 headers).")
def sim_cmd(spec_path, weights_path, input_path, lanes, limit, waves):
    """Run the emitted Verilog cycle-accurately (cocotb + Verilator) on inputs; print outputs,
    cycles and agreement with FixedPCN (every x and e of every iteration)."""
    from .model import FixedPCN, PCSpec, Weights
    from .model.data import load_digits_split
    from .sim.verilator_sim import VerilatorCore
    with _errors():
        spec = PCSpec.load(spec_path)
        weights = Weights.load(weights_path, spec)
        x = (_load_input(Path(input_path), spec.sizes[0]) if input_path
             else load_digits_split().x_test[:1])[:limit]
        fx = FixedPCN.from_float(spec, weights)
        xq = fx.quantize(x, 0)
        if waves and Path(waves).suffix not in (".vcd", ".fst"):
            raise click.ClickException(f"--waves {waves}: name a .vcd or .fst file")
        core = VerilatorCore(spec, lanes, waves=Path(waves).suffix[1:] if waves else False)
        with console.status("building the Verilator model (cached after the first time)"):
            core.build()
        with console.status(f"simulating {len(x)} sample(s)"):
            run = core.run(fx.W, fx.b, [{0: v} for v in xq], "inference", trace=True,
                           check=False, waves=waves)
        t = Table(title=f"cycle-accurate run (Verilator, {lanes} lanes)")
        for col in ("sample", "output x_L (float)", "argmax", "cycles", "= FixedPCN"):
            t.add_column(col)
        for i in range(len(x)):
            outv = spec.formats.x.to_float(np.array(run.x[i][-1]))
            t.add_row(str(i), " ".join(f"{v:.3f}" for v in outv[:10]), str(int(outv.argmax())),
                      str(run.cycles[i]),
                      "bit-exact, every iteration" if not run.mismatches[i]
                      else f"DIFFERS: {', '.join(run.mismatches[i][:4])}")
        console.print(t)
        console.print(f"build {run.build_s:.1f} s, simulation {run.wall_s:.1f} s"
                      + (f"; waves in {waves}" if waves else ""))
        if any(run.mismatches):
            raise click.ClickException("the hardware differs from FixedPCN (see above)")


@main.command("compare")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), required=True)
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), required=True)
@click.option("--out", type=click.Path(file_okay=False), required=True)
@click.option("--lanes", type=int, default=8, show_default=True)
@click.option("--limit", type=int, default=None, help="Only the first N test samples.")
def compare_cmd(spec_path, weights_path, out, lanes, limit):
    """Hardware (cycle-accurate Verilog) vs FixedPCN vs FloatPCN on the digits test set:
    report.json, report.md and plots in OUT."""
    from .model import PCSpec, Weights
    with _errors():
        spec = PCSpec.load(spec_path)
        weights = Weights.load(weights_path, spec)
        _compare(spec, weights, Path(out), lanes, limit)


def _compare(spec, weights, out: Path, lanes: int, limit):
    from .sim.compare import compare
    with _progress("hardware vs models") as cb:
        rep = compare(spec, weights, out, lanes=lanes, limit=limit, progress=cb)
    t = Table(title=f"hardware vs FixedPCN vs FloatPCN ({rep['samples']} test digits)")
    for col in ("", "hardware", "FixedPCN", "FloatPCN"):
        t.add_column(col, justify="right")
    t.add_row("accuracy", f"{100 * rep['hw_test_accuracy']:.2f} %",
              f"{100 * rep['fixed_test_accuracy']:.2f} %",
              f"{100 * rep['float_test_accuracy']:.2f} %")
    console.print(t)
    console.print(f"bit-exact samples: {rep['bit_exact_samples']} / {rep['samples']}; cycles per "
                  f"inference {rep['cycles_per_inference']} (model {rep['cycle_model']}); "
                  f"report in {out / 'report.md'}")
    if rep["bit_exact_samples"] != rep["samples"]:
        raise click.ClickException(f"{rep['samples'] - rep['bit_exact_samples']} samples differ "
                                   f"between hardware and FixedPCN; see {out / 'report.json'}")
    return rep


@main.command("hdl")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), default=None,
              help="Spec TOML (default: the built-in digits spec).")
@click.option("--lanes", type=int, default=8, show_default=True,
              help="MAC lanes P (the iCE40UP5K has 8 DSPs).")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Output folder: pcforge_core.v, manifest.json, spec.toml.")
def hdl_cmd(spec_path, lanes, out):
    """Generate the core's Verilog and manifest from a spec (Amaranth's bundled Yosys)."""
    from .hdl.emit import emit
    from .model.spec import PCSpec
    from .model.train import digits_spec
    with _errors():
        spec = PCSpec.load(spec_path) if spec_path else digits_spec()
        with console.status(f"elaborating and converting the core ({lanes} lanes)"):
            res = emit(spec, lanes, out)
        cyc = res.info["estimated_cycles"]
        table = Table(title=f"pcforge_core — spec {spec.digest}, {lanes} lanes")
        for col in ("clamp mask", "cycles / inference", "per iteration", "MAC-lane utilisation"):
            table.add_column(col)
        for name, c in cyc.items():
            table.add_row(name, str(c["total"]), str(c["per_iteration"]),
                          f"{100 * c['utilisation']:.1f} %")
        console.print(table)
        console.print(f"wrote {res.verilog}, {res.manifest}, {res.spec}")


from .analog_cli import analog  # noqa: E402  (registers `pcforge analog ...`)

main.add_command(analog)

from .board_cli import build as _build_cmd  # noqa: E402  (registers `pcforge build`)

main.add_command(_build_cmd)

if __name__ == "__main__":
    sys.exit(main())
