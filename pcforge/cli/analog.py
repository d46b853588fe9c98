"""``pcforge analog``: the analog co-design commands (Monte Carlo sweeps of the digits network
on a crossbar substrate)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import click
from rich.table import Table

from ..model.files import atomic_write
from .common import (FORCE_OPTION, executor_options, console, errors, load_weights, output_folder, progress,
                     write_json)

__all__ = ["analog"]


@click.group(short_help="Analog crossbar co-design: Monte Carlo sweeps.")
def analog():
    """Analog substrate: continuous-time PC on crossbars with device non-idealities."""


def _markdown(res: dict) -> str:
    s = res["settings"]
    lines = [
        "# Analog sweep — digits on a crossbar substrate", "",
        f"Spec `{res['spec_digest']}` (sizes {res['sizes']}, T = {res['iterations']}, "
        f"γ = {res['gamma']}); {res['test_samples']} test digits; float accuracy "
        f"**{100 * res['float_test_accuracy']:.2f} %**. {s['seeds']} Monte Carlo chips per "
        f"point; (a) float-trained weights programmed onto the chip, (b) the same chip after "
        f"{s['finetune_epochs']} epoch(s) of PC learning on the substrate (batch "
        f"{s['finetune_batch']}, rate {s['finetune_lr']}). Mean and 95 % confidence interval "
        f"of the mean. {res['points']} points on {res['jobs']} processes in {res['wall_s']} s.",
        ""]
    for name, pts in res["series"].items():
        lines += [f"## {name}", "", "| level | (a) programmed | (b) learned on substrate | b − a |",
                  "|---|---|---|---|"]
        for p in pts:
            a, b = p["programmed"], p["learned"]
            lv = "ideal" if p["level"] is None else p["level"]
            lines.append(
                f"| {lv} | {100 * a['mean']:.2f} % [{100 * a['ci95_low']:.1f}, "
                f"{100 * a['ci95_high']:.1f}] | {100 * b['mean']:.2f} % "
                f"[{100 * b['ci95_low']:.1f}, {100 * b['ci95_high']:.1f}] | "
                f"{100 * (b['mean'] - a['mean']):+.2f} |")
        lines.append("")
    return "\n".join(lines)


@analog.command("sweep", short_help="Accuracy against each analog non-ideality and drift.")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Output folder: results.json, results.md, nonidealities.png, drift.png.")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), default=None,
              help="Spec TOML (default: the digits default, trained here in float).")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), default=None,
              help="Float weights .npz for --spec (default: train them here).")
@click.option("--seeds", type=click.IntRange(min=1), default=10, show_default=True,
              help="Monte Carlo chips per point.")
@click.option("--jobs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Worker processes (0: every local core).")
@click.option("--only", multiple=True,
              help="Sweep only these non-idealities (repeat); 'drift' for the drift series.")
@click.option("--finetune-epochs", type=click.IntRange(min=0), default=1, show_default=True,
              help="Epochs of PC learning on the substrate in arm (b).")
@click.option("--quick", is_flag=True,
              help="A smaller sweep: 3 chips, 3 levels each, 180 test and 480 training digits.")
@executor_options("local")
@FORCE_OPTION
def sweep_cmd(out, spec_path, weights_path, seeds, jobs, only, finetune_epochs, quick, executor,
              scheduler, force):
    """Monte Carlo accuracy of the digits network against each non-ideality and against drift
    time: float-trained weights programmed (a) versus PC learning on the noisy substrate (b)."""
    from ..model.analog.config import NONIDEALITIES
    from ..model.analog.plots import plot_sweep
    from ..model.analog.sweep import DRIFT_TIMES, SweepSettings, run_sweep
    from ..model.data import load_digits_split
    from ..model.presets import digits_spec
    from ..model.spec import PCSpec
    from ..model.train import train_float

    output_folder(out, ("results.json", "results.md"), force)
    with errors():
        if (spec_path is None) != (weights_path is None):
            raise click.UsageError("give --spec and --weights together, or neither (then the "
                                   "digits default is trained in float here)")
        unknown = set(only) - set(NONIDEALITIES) - {"drift"}
        if unknown:
            raise click.UsageError(f"--only {sorted(unknown)}: unknown; choose from "
                                   f"{sorted(NONIDEALITIES)} or drift")
        levels = {k: v for k, v in NONIDEALITIES.items() if not only or k in only}
        drift_times = DRIFT_TIMES if not only or "drift" in only else ()
        settings = SweepSettings(seeds=seeds, levels=levels, drift_times=drift_times,
                                 jobs=jobs, finetune_epochs=finetune_epochs,
                                 executor="dask" if scheduler else executor,
                                 scheduler=scheduler)
        if quick:
            settings.seeds = min(seeds, 3)
            settings.levels = {k: (v[0], v[2], v[4]) for k, v in levels.items()}
            settings.drift_times = tuple(t for t in drift_times if t in (0.0, 86400.0,
                                                                         3.1536e7))
            settings.test_limit, settings.finetune_limit = 180, 480
        try:
            settings.check()
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        if spec_path:
            spec = PCSpec.load(spec_path)
            weights = load_weights(weights_path, spec)
            trained = False
        else:
            spec = digits_spec()
            with progress("float PC training (digits default)") as cb:
                net, _ = train_float(spec, load_digits_split(), progress=cb)
            weights, trained = net.weights, True
        n_points = (sum(len(v) for v in settings.levels.values())
                    + 2 * len(settings.drift_times)) * settings.seeds
        console.print(f"[bold]analog sweep[/]: {n_points} points "
                      f"({len(settings.levels)} non-idealities, "
                      f"{len(settings.drift_times)} drift times × 2, {settings.seeds} chips each)")
        try:
            with progress("Monte Carlo points") as cb:
                res = run_sweep(spec, weights, settings, progress=cb)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out, prefix=".plots-") as tmp:
            pngs = plot_sweep(res, Path(tmp))
            for p in pngs:
                shutil.move(str(p), out / p.name)
        if trained:
            spec.save(out / "spec.toml")
            weights.save(out / "weights.npz", spec)
        md = atomic_write(out / "results.md", _markdown(res))
        write_json(out / "results.json", res)

        t = Table(title=f"digits accuracy on the analog substrate (float "
                        f"{100 * res['float_test_accuracy']:.2f} %, mean of "
                        f"{settings.seeds} chips)")
        for col in ("series", "level", "(a) programmed", "(b) learned", "b − a"):
            t.add_column(col, justify="right")
        for name, pts in res["series"].items():
            for p in pts:
                a, b = p["programmed"]["mean"], p["learned"]["mean"]
                lv = "ideal" if p["level"] is None else f"{p['level']:g}"
                t.add_row(name, lv, f"{100 * a:.2f} %", f"{100 * b:.2f} %",
                          f"{100 * (b - a):+.2f}")
        console.print(t)
        console.print(f"wrote {out / 'results.json'}, {md}, "
                      + ", ".join(str(out / p.name) for p in pngs)
                      + f" ({res['wall_s']} s on {res['jobs']} processes)")
