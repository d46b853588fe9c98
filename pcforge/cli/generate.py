"""``pcforge generate``: digits from the generative (Rao–Ballard) network on every model and
the hardware (:mod:`pcforge.sim.generate`)."""
from __future__ import annotations


import click
import numpy as np
from rich.table import Table

from .common import (BOARD, FORCE_OPTION, SIMULATOR_OPTION, console, errors, load_weights,
                     output_folder, progress, status)

__all__ = ["generate_cmd", "train_or_load"]


def train_or_load(spec, data, out_dir, weights_path, *, epochs: int, seed: int, what: str,
                  unsupervised: bool = False):
    """The weights of a generative command: ``weights_path`` loaded, or (None) the preset
    ``spec`` trained in float (label and image clamped; ``unsupervised``: the image alone)
    and saved with its spec into ``out_dir`` (spec.toml, weights.npz)."""
    from ..model.train import train_float
    if weights_path is not None:
        return load_weights(weights_path, spec)
    how = ", from the images alone" if unsupervised else ""
    with progress(f"training the {what} preset {list(spec.sizes)} (float{how})") as cb:
        net, _ = train_float(spec, data, epochs=epochs, seed=seed, generative=True,
                             unsupervised=unsupervised, progress=cb)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.save(out_dir / "spec.toml")
    net.weights.save(out_dir / "weights.npz", spec)
    return net.weights


@click.command("generate", short_help="Digits from the generative network: float, fixed, hardware.")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Output folder: generated.png, generate.json, generate.md (and spec.toml, "
                   "weights.npz when it trains).")
@FORCE_OPTION
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), default=None,
              help="A generative spec (label → … → image; default: the shipped preset).")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), default=None,
              help="Its trained weights (default: train the preset first, a few seconds).")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True,
              help="Epochs when training the preset (Adam, cosine decay).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--lanes", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Classify only the first N test images on the hardware (default: all 360).")
@click.option("--discriminative/--no-discriminative", default=True, show_default=True,
              help="Train the discriminative digits network (float, same seed) to report its "
                   "accuracy beside classification by inference.")
@click.option("--port", default=None,
              help="Also generate on a board programmed with this spec (its serial port).")
@click.option("--board", type=BOARD, default="ulx3s", show_default=True,
              help="The board at --port.")
@SIMULATOR_OPTION
def generate_cmd(out, force, spec_path, weights_path, epochs, seed, lanes, limit, discriminative,
                 port, board, simulator):
    """Generate one digit per class from the generative (Rao–Ballard) network — label clamped,
    image relaxed — in FloatPCN, FixedPCN and the hardware (the emitted Verilog, checked bit
    for bit against FixedPCN), and classify the test set by inference in the same network
    (image clamped, label relaxed). With no --spec/--weights it trains the shipped preset
    (10-64-64, label → hidden → image) first."""
    from ..model.data import load_digits_split
    from ..model.generative import check_generative
    from ..model.presets import digits_spec, generative_digits_spec
    from ..model.spec import PCSpec
    from ..model.train import accuracy_float, train_float
    from ..sim.generate import GENERATE_OUTPUTS, generate_report
    trains = weights_path is None
    if trains and spec_path:
        raise click.UsageError("--spec without --weights: give both, or neither to train the "
                               "shipped generative preset")
    out_dir = output_folder(out, GENERATE_OUTPUTS + (("spec.toml", "weights.npz") if trains
                                                     else ()), force)
    with errors():
        data = load_digits_split()
        spec = PCSpec.load(spec_path) if spec_path else generative_digits_spec()
        check_generative(spec, data)
        weights = train_or_load(spec, data, out_dir, weights_path, epochs=epochs, seed=seed,
                                what="generative")
        disc = None
        if discriminative:
            with progress("training the discriminative digits network (float)") as cb:
                dnet, _ = train_float(digits_spec(), data, seed=seed, progress=cb)
            disc = accuracy_float(dnet, data.x_test, data.y_test)
        board_images = _on_board(port, board, spec, weights, lanes) if port else None
        with progress(f"hardware ({simulator}): generation, then classification") as cb:
            rep = generate_report(spec, weights, out_dir, lanes=lanes, simulator=simulator,
                                  limit=limit, discriminative_accuracy=disc,
                                  board_images=board_images, board_name=port and board,
                                  progress=cb)
    t = Table(title="generated digits: correlation with the class mean (min / mean)")
    t.add_column("model")
    t.add_column("min", justify="right")
    t.add_column("mean", justify="right")
    for k in rep["correlation_min"]:
        t.add_row(k, f"{rep['correlation_min'][k]:.3f}", f"{rep['correlation_mean'][k]:.3f}")
    console.print(t)
    acc = rep["classification_accuracy"]
    line = (f"classification by inference: FloatPCN {acc['FloatPCN']:.2%}, FixedPCN "
            f"{acc['FixedPCN']:.2%}, hardware {acc['hardware']:.2%} "
            f"({rep['classification_hardware_samples']} images)")
    if disc is not None:
        line += f"; the discriminative network {disc:.2%}"
    console.print(line)
    console.print(f"hardware = FixedPCN bit for bit: generation {rep['generation_bit_exact']}/"
                  f"{rep['generation_samples']}, classification "
                  f"{rep['classification_bit_exact']}/{rep['classification_hardware_samples']}; "
                  f"wrote {out_dir / 'generated.png'}, {out_dir / 'generate.md'}")
    bad = (rep["generation_samples"] - rep["generation_bit_exact"]
           + rep["classification_hardware_samples"] - rep["classification_bit_exact"])
    if bad:
        raise click.ClickException(f"{bad} runs differ between hardware and FixedPCN; see "
                                   f"{out_dir / 'generate.json'}")


def _on_board(port, board, spec, weights, lanes):
    """Generate one image per class on a board through ``PCLink`` (weights loaded over the
    link), each checked against FixedPCN; the image layer's x words (classes, pixels)."""
    from ..model.fixed_pcn import FixedPCN
    from ..model.generative import GENERATE_MASK, label_inputs
    from .devices import connect
    link, spec, lanes = connect(port, board, None, lanes, None, 2.0, spec=spec)
    fx = FixedPCN.from_float(spec, weights)
    with status(f"loading the weights into the {board} over the link"):
        link.load_weights(fx.W, fx.b)
    lq = fx.quantize(label_inputs(spec.sizes[0]), 0)
    ref = fx.relax({0: lq}, GENERATE_MASK)
    images = []
    for c, v in enumerate(lq):
        r = link.infer({0: v}, GENERATE_MASK)
        if not all(np.array_equal(r["x"][k], ref.x[k][c]) for k in range(spec.n_layers)):
            raise click.ClickException(f"the {board} generated class {c} differently from "
                                       "FixedPCN")
        images.append(r["x"][-1])
    return np.array(images)
