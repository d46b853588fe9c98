"""``pcforge complete``: digits completed from a part — per-node clamps on every model and the
hardware (:mod:`pcforge.sim.complete`)."""
from __future__ import annotations

import click
from rich.table import Table

from .common import FORCE_OPTION, SIMULATOR_OPTION, console, errors, output_folder, progress
from .generate import train_or_load

__all__ = ["complete_cmd"]


@click.command("complete", short_help="Digits completed from a half: float, fixed, hardware.")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Output folder: completed.png, complete.json, complete.md (and spec.toml, "
                   "weights.npz when it trains).")
@FORCE_OPTION
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), default=None,
              help="A generative spec with the image layer in network.node_clamp and a "
                   "'completion' mask (default: the shipped completion preset).")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), default=None,
              help="Its trained weights (default: train the preset first, a few seconds).")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True,
              help="Epochs when training the preset (Adam, cosine decay).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the training and of the random halves.")
@click.option("--unsupervised", is_flag=True,
              help="Train the preset from the images alone (only the image clamped; the "
                   "label layer a free latent that never sees a label).")
@click.option("--lanes", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True,
              help="Test images per way of hiding run on the hardware (the models run all "
                   "360).")
@SIMULATOR_OPTION
def complete_cmd(out, force, spec_path, weights_path, epochs, seed, unsupervised, lanes, limit,
                 simulator):
    """Hide the top half, the bottom half or a random half of each test digit and relax the
    hidden pixels free with the known ones pinned (per-node clamps), in FloatPCN, FixedPCN and
    the hardware (the emitted Verilog, checked bit for bit against FixedPCN). With no
    --spec/--weights it trains the shipped completion preset (10-16-64, label → hidden →
    image, trained like `pcforge generate`'s) first."""
    from ..model.completion import completion_digits_spec
    from ..model.data import load_digits_split
    from ..model.spec import PCSpec
    from ..sim.complete import COMPLETE_OUTPUTS, completion_report
    trains = weights_path is None
    if trains and spec_path:
        raise click.UsageError("--spec without --weights: give both, or neither to train the "
                               "shipped completion preset")
    if unsupervised and not trains:
        raise click.UsageError("--unsupervised trains the preset: drop --spec/--weights")
    out_dir = output_folder(out, COMPLETE_OUTPUTS + (("spec.toml", "weights.npz") if trains
                                                     else ()), force)
    with errors():
        data = load_digits_split()
        spec = PCSpec.load(spec_path) if spec_path else completion_digits_spec()
        weights = train_or_load(spec, data, out_dir, weights_path, epochs=epochs, seed=seed,
                                what="completion", unsupervised=unsupervised)
        trained = None if not trains else ("unsupervised (images only)" if unsupervised
                                           else "with labels")
        with progress(f"completion: models, then the hardware ({simulator})") as cb:
            rep = completion_report(spec, weights, out_dir, lanes=lanes, simulator=simulator,
                                    limit=limit, seed=seed, trained=trained, progress=cb)
    t = Table(title="completion: RMSE over the hidden pixels (pixels 0–1)")
    for col in ("hidden", "FloatPCN", "FixedPCN", "hardware", "mean image",
                "class mean (true label)", "hardware = FixedPCN"):
        t.add_column(col, justify="right")
    bad = 0
    for kind, k in rep["hide"].items():
        r, b = k["rmse_hidden"], k["rmse_baselines"]
        t.add_row(kind, f"{r['FloatPCN']:.4f}", f"{r['FixedPCN']:.4f}",
                  f"{k['rmse_hidden_on_hardware_samples']['hardware']:.4f}",
                  f"{b['mean image']:.4f}", f"{b['class mean (true label)']:.4f}",
                  f"{k['hardware_bit_exact']}/{k['hardware_samples']}")
        bad += k["hardware_samples"] - k["hardware_bit_exact"]
    console.print(t)
    console.print(f"wrote {out_dir / 'completed.png'}, {out_dir / 'complete.md'}")
    if bad:
        raise click.ClickException(f"{bad} runs differ between hardware and FixedPCN; see "
                                   f"{out_dir / 'complete.json'}")
