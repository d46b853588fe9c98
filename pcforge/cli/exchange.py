"""``pcforge import`` and ``pcforge export``: networks from and to other tools through ONNX."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from rich.table import Table

from .common import (FORCE_OPTION, console, errors, load_input, output_file, output_folder,
                     write_json, load_weights)

__all__ = ["import_cmd", "export_cmd", "IMPORT_OUTPUTS"]

#: what ``import`` writes into its --out folder
IMPORT_OUTPUTS = ("spec.toml", "weights.npz", "import.json")
#: inputs drawn in --input-range to check the import when no calibration set is given
PROBE_SAMPLES = 256


@click.command("import", short_help="A PC network from an ONNX MLP (spec + weights).")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Output folder: spec.toml, weights.npz, import.json.")
@click.option("--calibration", "calibration_path", type=click.Path(dir_okay=False),
              default=None,
              help="Inputs (.npy/.csv, one sample per row) whose feed-forward ranges choose the "
                   "value formats (default: an interval bound over --input-range).")
@click.option("--input-range", nargs=2, type=float, default=(0.0, 1.0), show_default=True,
              metavar="LOW HIGH",
              help="Range of every input value (for the interval bound and the check inputs).")
@click.option("--width", type=click.IntRange(4, 32), default=16, show_default=True,
              help="Bits of the x, e, w and b formats (the integer bits are chosen).")
@click.option("--iterations", "-T", type=click.IntRange(min=1), default=20, show_default=True,
              help="Relaxation iterations at most (the exact stop ends a run earlier).")
@click.option("--name", default=None, help="The spec's name (default: the file's stem).")
@FORCE_OPTION
def import_cmd(model, out, calibration_path, input_range, width, iterations, name, force):
    """A PC network from an ONNX MLP (Gemm/MatMul+Add with Relu, Tanh, Clip(-1, 1) or no
    activation): spec.toml + weights.npz, fixed-point formats chosen from the weights' ranges
    (and a calibration set), checked against onnx's reference evaluator."""
    from ..model.onnx_io import OnnxImportError, check_against_reference, import_onnx
    out = output_folder(out, IMPORT_OUTPUTS, force)
    lo, hi = input_range
    if not lo < hi:
        raise click.BadParameter(f"{lo:g} {hi:g}: give the low end first",
                                 param_hint="--input-range")
    with errors():
        calib = load_input(Path(calibration_path), None) if calibration_path else None
        try:
            net = import_onnx(model, name=name or Path(model).stem, width=width,
                              calibration=calib, input_range=(lo, hi), iterations=iterations)
            probe = (calib if calib is not None else np.random.default_rng(0).uniform(
                lo, hi, size=(PROBE_SAMPLES, net.spec.sizes[0])))
            check = check_against_reference(model, net.spec, net.weights, probe)
        except OnnxImportError as exc:
            raise click.ClickException(f"{model}: {exc}") from None
        tol = 1e-6 * max(1.0, check["output_max_abs"])
        if check["onnx_dtype"] == "float32":
            tol = 1e-5 * max(1.0, check["output_max_abs"])      # the graph rounds to float32
        if check["float_vs_onnx_max_abs"] > tol:
            raise click.ClickException(
                f"{model}: the imported network's output differs from onnx's reference "
                f"evaluator by {check['float_vs_onnx_max_abs']:.3g} (tolerance {tol:.3g}); the "
                "graph is not the chain it looks like — please report it with the file")
        net.spec.save(out / "spec.toml")
        net.weights.save(out / "weights.npz", net.spec)
        rep = net.report() | {"source": str(model), "check": check,
                              "check_inputs": ("calibration set" if calib is not None else
                                               f"{PROBE_SAMPLES} uniform in [{lo:g}, {hi:g}]")}
        write_json(out / "import.json", rep)
    t = Table(title=f"{model} → PC network {list(net.spec.sizes)}")
    for col in ("layer", "ONNX nodes", "W shape", "f before"):
        t.add_column(col)
    for lay in net.layers:
        t.add_row(str(lay["layer"]), " + ".join(lay["nodes"]), "×".join(map(str, lay["shape"])),
                  lay["activation_before"])
    console.print(t)
    f = Table(title="fixed-point formats")
    for col in ("format", "holds up to", "from"):
        f.add_column(col)
    for k, v in net.formats.items():
        f.add_row(f"{k} {v['format']}", f"{v['max_abs']:.4g}", v["source"])
    console.print(f)
    console.print(
        f"check on {rep['check_inputs']}: FloatPCN vs onnx reference max |Δ| "
        f"{check['float_vs_onnx_max_abs']:.3g} (outputs up to {check['output_max_abs']:.3g}); "
        f"FixedPCN vs FloatPCN max |Δ| {check['fixed_vs_float_max_abs']:.3g}, argmax agreement "
        f"{check['fixed_vs_float_argmax_agreement']:.2%}, {check['fixed_saturations']} "
        f"saturated values")
    console.print(f"wrote {out / 'spec.toml'}, {out / 'weights.npz'}, {out / 'import.json'}")


@click.command("export", short_help="A trained PC network's feed-forward pass as ONNX.")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), required=True)
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), required=True)
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True)
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32",
              show_default=True, help="Element type of the exported graph.")
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="The model file to write (e.g. net.onnx).")
@FORCE_OPTION
def export_cmd(spec_path, weights_path, fmt, dtype, out, force):
    """The feed-forward network of a trained PC net as ONNX (Gemm + Relu/Tanh/Clip), for other
    tools: what the PC network computes with its input clamped (float; true tanh)."""
    from ..model.onnx_io import OPSET, export_onnx
    from ..model.spec import PCSpec
    out = output_file(out, force)
    with errors():
        spec = PCSpec.load(spec_path)
        weights = load_weights(weights_path, spec)
        export_onnx(spec, weights, out, dtype=np.dtype(dtype).type)
    console.print(f"wrote {out} ({fmt}, opset {OPSET}, {dtype}; input "
                  f"'x' (batch, {spec.sizes[0]}), output 'y' (batch, {spec.sizes[-1]}))")
