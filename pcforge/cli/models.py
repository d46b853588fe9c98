"""``pcforge train``, ``infer`` and ``spec``: the golden models on the digits data set."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from rich.table import Table

from ..model.train import ALPHA_SCHEDULES, LR_SCHEDULES
from .common import (ACTIVATION, FORCE_OPTION, LEARNING_RULE, POSITIVE_FLOAT, SIMULATOR_OPTION,
                     STOP_RULE, clamp_options, clamped_values, console, errors,
                     output_file, output_folder, progress, spec_from_options, write_json,
                     load_weights)

__all__ = ["train", "infer", "spec_cmd", "train_models", "TRAIN_OUTPUTS"]

#: what ``train`` writes into its --out folder
TRAIN_OUTPUTS = ("spec.toml", "weights.npz", "metrics.json")


def _train_options(f):
    opts = [
        click.option("--spec", "spec_path", type=click.Path(dir_okay=False),
                     help="A spec TOML (default: the built-in digits spec)."),
        click.option("--hidden", type=int, multiple=True, default=(64,), show_default=True,
                     help="Hidden layer size; repeat for more layers."),
        click.option("--activation", type=ACTIVATION, default="relu", show_default=True,
                     help="Activation of the hidden layers."),
        click.option("--iterations", "-T", type=click.IntRange(min=1), default=None,
                     help="Relaxation iterations T (default: the spec's, 20)."),
        click.option("--learning", type=LEARNING_RULE, default=None,
                     help="Learning rule (default: the spec's)."),
        click.option("--w-guard", type=int, default=0, show_default=True,
                     help="Weight guard bits: extra fraction bits kept in the weight memories "
                          "so that sub-LSB updates accumulate (formats.w_guard)."),
        click.option("--trainer", type=click.Choice(["float", "fixed"]), default="float",
                     show_default=True,
                     help="float: FloatPCN, batched, Adam/SGD. fixed: FixedPCN, one sample at "
                          "a time with the hardware's SGD rule (α from the spec)."),
        click.option("--epochs", type=click.IntRange(min=1), default=None,
                     help="Epochs (default: 50 float, 10 fixed)."),
        click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True,
                     help="Batch size (float trainer)."),
        click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam",
                     show_default=True, help="Float trainer's optimizer."),
        click.option("--lr", type=POSITIVE_FLOAT, default=3e-3, show_default=True,
                     help="Float trainer's (initial) learning rate."),
        click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES),
                     default="cosine", show_default=True,
                     help="Float trainer's learning-rate schedule over the epochs (not the "
                          "spec's relaxation schedule)."),
        click.option("--alpha-schedule", type=click.Choice(ALPHA_SCHEDULES), default="constant",
                     show_default=True,
                     help="The hardware's learning rate α over the epochs (--trainer fixed, "
                          "--on hardware): α becomes a run-time register of the core "
                          "(rates.alpha_runtime) that the host writes before each epoch, "
                          "starting at the spec's α."),
        click.option("--alpha-final", type=POSITIVE_FLOAT, default=None,
                     help="--alpha-schedule cosine: the last epoch's α (default: α/16)."),
        click.option("--alpha", "alpha0", type=POSITIVE_FLOAT, default=None,
                     help="The hardware's learning rate α (the first epoch's with "
                          "--alpha-schedule; default: the spec's, 2^-5), rounded to 12 "
                          "fraction bits (--trainer fixed, --on hardware)."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--mlp/--no-mlp", default=True, show_default=True,
                     help="Also train scikit-learn's MLPClassifier of the same shape."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _alpha_plan(spec, schedule: str, final, epochs: int, alpha0=None):
    """(spec, α mantissa per epoch or None) for ``--alpha`` and ``--alpha-schedule``: a
    schedule other than constant gives the spec an α register
    (:func:`~pcforge.model.train.with_alpha_register`)."""
    from ..model.qformat import FixedConst
    from ..model.spec import SpecError
    from ..model.train import alpha_schedule, with_alpha_register
    if alpha0 is not None:
        if alpha0 > 1 or alpha0 < 2 ** -12:
            raise click.UsageError(f"--alpha {alpha0:g}: give 2^-12 <= α <= 1")
        try:
            spec = spec.replace(alpha=FixedConst.from_float(alpha0, 12))
        except SpecError as exc:
            raise click.UsageError(f"--alpha {alpha0:g}: {exc}") from None
    if schedule == "constant":
        if final is not None:
            raise click.UsageError("--alpha-final goes with --alpha-schedule cosine")
        return spec, None
    if not spec.alpha_runtime:
        spec = with_alpha_register(spec)
    try:
        return spec, alpha_schedule(spec, schedule, epochs, final)
    except ValueError as exc:
        raise click.UsageError(f"--alpha-final: {exc}") from None


def train_models(out, spec_path, hidden, activation, iterations, learning, trainer, epochs,
                 batch, optimizer, lr, lr_schedule, seed, mlp, w_guard=0,
                 alpha_schedule="constant", alpha_final=None, alpha0=None) -> dict:
    """Train on digits in float or fixed point, evaluate both models (and the MLP bar), and
    write spec.toml, weights.npz and metrics.json into ``out``; returns the metrics."""
    from ..model.data import load_digits_split
    from ..model.fixed_pcn import FixedPCN
    from ..model.float_pcn import FloatPCN
    from ..model.train import (accuracy_fixed, accuracy_float, mlp_baseline, train_fixed,
                               train_float)

    out = Path(out)
    spec = spec_from_options(spec_path, hidden, activation, iterations, learning, w_guard)
    data = load_digits_split()
    console.print(f"[bold]spec[/] {spec.name}: sizes {list(spec.sizes)}, activations "
                  f"{list(spec.activations)}, T = {spec.iterations}, γ = {spec.gamma}, "
                  f"α = {spec.alpha}, digest {spec.digest}")
    console.print(f"[bold]data[/] digits: {len(data.x_train)} train / {len(data.x_test)} test")
    metrics = {"spec_digest": spec.digest, "seed": seed, "trainer": trainer,
               "train_samples": len(data.x_train), "test_samples": len(data.x_test)}
    if trainer == "float":
        if alpha_schedule != "constant" or alpha0 is not None:
            raise click.UsageError("--alpha/--alpha-schedule are the hardware's α (--trainer "
                                   "fixed or --on hardware); the float trainer has --lr and "
                                   "--lr-schedule")
        epochs = 50 if epochs is None else epochs
        with progress(f"float PC ({optimizer})") as cb:
            net, hist = train_float(spec, data, epochs=epochs, batch=batch, optimizer=optimizer,
                                    lr=lr, lr_schedule=lr_schedule, seed=seed, progress=cb)
        weights = net.weights
        fixed = FixedPCN.from_float(spec, weights)
        metrics.update(optimizer=optimizer, lr=lr, lr_schedule=lr_schedule, batch=batch)
    else:
        epochs = 10 if epochs is None else epochs
        spec, alphas = _alpha_plan(spec, alpha_schedule, alpha_final, epochs, alpha0)
        with progress("fixed-point PC (hardware SGD)") as cb:
            fixed, hist = train_fixed(spec, data, epochs=epochs, seed=seed, alpha=alphas,
                                      progress=cb)
        if alphas is not None:
            metrics["alpha_per_epoch"] = [spec.alpha_at(a).value for a in alphas]
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
        with progress("MLPClassifier bar (epochs, at most 500)") as cb:
            metrics["mlp_test_accuracy"] = mlp_baseline(data, hidden=spec.sizes[1:-1],
                                                        activation=_mlp_act(spec), seed=seed,
                                                        progress=cb)
    # everything is computed: only now write the outputs (each atomically)
    out.mkdir(parents=True, exist_ok=True)
    spec.save(out / "spec.toml")
    weights.save(out / "weights.npz", spec)
    write_json(out / "metrics.json", metrics)
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


@click.command(short_help="Train a PC network on digits (float, fixed point or on chip).")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Output folder for spec.toml, weights.npz, metrics.json.")
@click.option("--on", "where", type=click.Choice(["model", "hardware"]), default="model",
              show_default=True,
              help="model: the numpy models (--trainer). hardware: the emitted core learns on "
                   "chip, cycle-accurate (--simulator), every weight checked against FixedPCN "
                   "after every update.")
@click.option("--lanes", type=click.IntRange(min=1), default=8, show_default=True,
              help="MAC lanes of the core (--on hardware).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="--on hardware: training samples per epoch (default: all 1437).")
@click.option("--test-limit", type=click.IntRange(min=1), default=None,
              help="--on hardware: evaluate on the first N test digits (default: all 360).")
@SIMULATOR_OPTION
@FORCE_OPTION
@_train_options
def train(out, where, lanes, limit, test_limit, simulator, force, **kw):
    """Train a PC network on the built-in digits data set: in float or fixed point, or on the
    hardware itself."""
    output_folder(out, TRAIN_OUTPUTS, force)
    with errors():
        if where == "hardware":
            _train_on_hardware(out, lanes, limit, test_limit, simulator, **kw)
        else:
            train_models(out, **kw)


def _train_on_hardware(out, lanes, limit, test_limit, simulator, spec_path, hidden, activation,
                       iterations, learning, epochs, seed, w_guard=0, alpha_schedule="constant",
                       alpha_final=None, alpha0=None, **_ignored):
    from ..hdl.core import PCCore
    from ..model.data import load_digits_split
    from ..sim.hw_train import HardwareMismatch, train_on_hardware

    out = Path(out)
    spec = spec_from_options(spec_path, hidden, activation, iterations, learning, w_guard)
    try:
        PCCore.check_learns(spec)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    epochs = 6 if epochs is None else epochs
    spec, alphas = _alpha_plan(spec, alpha_schedule, alpha_final, epochs, alpha0)
    console.print(f"[bold]training on the hardware[/]: spec {spec.digest} (sizes "
                  f"{list(spec.sizes)}, learning {spec.learning}), {lanes} lanes, {epochs} "
                  f"epochs, building the Verilator model (cached)")
    try:
        with progress(f"on-chip learning ({simulator})") as cb:
            weights, metrics = train_on_hardware(spec, load_digits_split(), epochs=epochs,
                                                 limit=limit, lanes=lanes, seed=seed,
                                                 test_limit=test_limit, simulator=simulator,
                                                 alpha=alphas, progress=cb)
    except HardwareMismatch as exc:
        raise click.ClickException(f"the hardware stopped agreeing with FixedPCN: {exc}")
    out.mkdir(parents=True, exist_ok=True)
    spec.save(out / "spec.toml")
    weights.save(out / "weights.npz", spec)
    write_json(out / "metrics.json", metrics)
    t = Table(title=f"digits test accuracy after {metrics['samples']} training samples on "
                    f"chip ({metrics['learning']}; {metrics['test_samples']} test digits)")
    t.add_column("trained and evaluated")
    t.add_column("accuracy", justify="right")
    t.add_row("on the hardware (Verilator)", f"{metrics['hw_test_accuracy']:.2%}")
    t.add_row("FixedPCN, same samples", f"{metrics['fixed_test_accuracy']:.2%}")
    t.add_row("FloatPCN, same samples (SGD, α)", f"{metrics['float_test_accuracy']:.2%}")
    console.print(t)
    console.print("per epoch (FixedPCN = the hardware's weights): " + ", ".join(
        f"{a:.2%} (α {r:.4g})" for a, r in zip(metrics["fixed_test_accuracy_per_epoch"],
                                                 metrics["alpha_per_epoch"])))
    console.print(f"every weight and bias equal to FixedPCN after all "
                  f"{metrics['updates_checked']} samples' updates; "
                  f"{metrics['cycles_per_training_sample']} cycles per training sample "
                  f"(median; {metrics['cycles_per_training_sample_range'][0]}–"
                  f"{metrics['cycles_per_training_sample_range'][1]}, each equal to the cycle "
                  f"model's; {metrics['cycle_model_per_training_sample']} with all T "
                  f"iterations); wrote {out / 'metrics.json'}, {out / 'weights.npz'}, "
                  f"{out / 'spec.toml'}")


@click.command(short_help="Float and bit-exact fixed-point inference on inputs.")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), required=True)
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), required=True)
@click.option("--input", "input_path", type=click.Path(dir_okay=False), default=None,
              help=".npy or .csv with one sample per row, values in the x format's range (the "
                   "digits are pixels scaled to 0–1); default: the digits test set.")
@click.option("--strict", is_flag=True,
              help="Refuse inputs outside the x format's range (default: warn with the count).")
@click.option("--model", type=click.Choice(["float", "fixed", "both"]), default="both",
              show_default=True)
@clamp_options
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the first N samples.")
def infer(spec_path, weights_path, input_path, strict, model, mode, clamp_files, pin_files,
          limit):
    """Relax in float and/or bit-exact fixed point under a clamp mask: by default the input
    clamped (inference). The read-out is the output layer when it is free, else the lowest
    free layer (e.g. the image under `--mask generation --clamp 2=labels.npy`)."""
    from ..model.fixed_pcn import FixedPCN
    from ..model.float_pcn import FloatPCN
    from ..model.spec import PCSpec
    with errors():
        spec = PCSpec.load(spec_path)
        weights = load_weights(weights_path, spec)
        mask = spec.mask(mode)
        if all(mask):
            raise click.UsageError(f"mask '{mode}' clamps every layer: nothing to relax")
        clamped, labels, pins = clamped_values(spec, mode, input_path, clamp_files,
                                               spec.formats.x, strict, pin_files)
        if limit is not None:
            clamped = {l: v[:limit] for l, v in clamped.items()}
            pins = {l: v[:limit] for l, v in pins.items()}
            labels = labels[:limit] if labels is not None else None
        readout = spec.readout(mask)
        if readout != spec.L:
            labels = None
        n = len(next(iter(clamped.values())))
        t = Table(title=f"relaxation ({n} samples, mask {mode}, read-out layer {readout})")
        t.add_column("model")
        t.add_column("argmax of the read-out (first 20)")
        if labels is not None:
            t.add_column("accuracy", justify="right")
        rows = []
        if model in ("float", "both"):
            out = FloatPCN(spec, weights).relax(clamped, mode, pins=pins).x[readout]
            rows.append(("float", out))
        if model in ("fixed", "both"):
            net = FixedPCN.from_float(spec, weights)
            res = net.relax({l: net.quantize(v, l) for l, v in clamped.items()}, mode,
                            pins=pins)
            rows.append(("fixed", spec.formats.x.to_float(res.x[readout])))
        for name, out in rows:
            pred = np.argmax(out, axis=1)
            cells = [name, " ".join(map(str, pred[:20]))]
            if labels is not None:
                cells.append(f"{np.mean(pred == labels):.2%}")
            t.add_row(*cells)
        console.print(t)
        if len(rows) == 2:
            diff = np.abs(rows[0][1] - rows[1][1])
            agree = np.mean(rows[0][1].argmax(1) == rows[1][1].argmax(1))
            console.print(f"read-out |float − fixed|: max {diff.max():.3g}, mean "
                          f"{diff.mean():.3g}; argmax agreement {agree:.2%}")


@click.command("spec", short_help="Write the digits spec as TOML, to edit by hand.")
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="The TOML file to write.")
@click.option("--hidden", type=int, multiple=True, default=(64,), show_default=True)
@click.option("--activation", type=ACTIVATION, default="relu", show_default=True)
@click.option("--iterations", "-T", type=click.IntRange(min=1), default=None)
@click.option("--learning", type=LEARNING_RULE, default=None)
@click.option("--w-guard", type=int, default=0, show_default=True,
              help="Weight guard bits kept in the weight memories (formats.w_guard).")
@click.option("--stop", type=STOP_RULE, default=None,
              help="exact: end a run once its state repeats (bit-identical to all T "
                   "iterations; the default); none: always T iterations.")
@FORCE_OPTION
def spec_cmd(out, hidden, activation, iterations, learning, w_guard, stop, force):
    """Write the built-in digits spec (with changes) as TOML, to edit by hand."""
    output_file(out, force)
    with errors():
        spec = spec_from_options(None, hidden, activation, iterations, learning, w_guard, stop)
        spec.save(out)
        console.print(f"wrote {out} (digest {spec.digest})")
