"""``pcforge hdl``, ``sim`` and ``compare``: the core's Verilog and its cycle-accurate runs."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from rich.table import Table

from .common import (FORCE_OPTION, ROWS_OPTION, SIMULATOR_OPTION, clamp_options, clamped_values, console,
                     errors, executor_options, load_weights, output_folder, progress, status,
                     write_json)

__all__ = ["hdl_cmd", "sim_cmd", "compare_cmd", "compare_and_report", "verify_cmd",
           "COMPARE_OUTPUTS"]

#: what ``compare`` writes into its --out folder (beside its plots)
COMPARE_OUTPUTS = ("report.json", "report.md")


@click.command("hdl", short_help="The core's Verilog and manifest from a spec.")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), default=None,
              help="Spec TOML (default: the built-in digits spec).")
@click.option("--lanes", type=click.IntRange(min=1), default=8, show_default=True,
              help="MAC lanes P (the iCE40UP5K has 8 DSPs).")
@ROWS_OPTION
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Output folder: pcforge_core.v, manifest.json, spec.toml.")
@FORCE_OPTION
def hdl_cmd(spec_path, lanes, rows, out, force):
    """Generate the core's Verilog and manifest from a spec (Amaranth's bundled Yosys)."""
    from ..hdl.emit import OUTPUTS, emit
    from ..model.presets import digits_spec
    from ..model.spec import PCSpec
    output_folder(out, OUTPUTS, force)
    with errors():
        spec = PCSpec.load(spec_path) if spec_path else digits_spec()
        with status(f"elaborating and converting the core ({lanes} lanes, {rows} row(s) per "
                    "token)"):
            res = emit(spec, lanes, out, rows=rows)
        cyc = res.info["estimated_cycles"]
        table = Table(title=f"pcforge_core — spec {spec.digest}, {lanes} lanes × {rows} "
                            f"row(s) per token")
        for col in ("clamp mask", "cycles / inference", "per iteration", "MAC-lane utilisation"):
            table.add_column(col)
        for name, c in cyc.items():
            table.add_row(name, str(c["total"]), str(c["per_iteration"]),
                          f"{100 * c['utilisation']:.1f} %")
        console.print(table)
        console.print(f"wrote {res.verilog}, {res.manifest}, {res.spec}")


@click.command("sim", short_help="Run the Verilog cycle-accurately on a few inputs.")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), required=True)
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), required=True)
@click.option("--input", "input_path", type=click.Path(dir_okay=False), default=None,
              help=".npy or .csv, one sample per row, values in the x format's range (digits: "
                   "pixels scaled to 0–1); default: the first digits test sample.")
@clamp_options
@click.option("--lanes", type=click.IntRange(min=1), default=8, show_default=True)
@ROWS_OPTION
@click.option("--limit", type=click.IntRange(min=1), default=4, show_default=True,
              help="At most this many samples.")
@click.option("--waves", type=click.Path(dir_okay=False), default=None,
              help="Write a waveform of the run here (.vcd; .fst needs the lz4 headers); "
                   "runs under cocotb.")
@SIMULATOR_OPTION
def sim_cmd(spec_path, weights_path, input_path, mode, clamp_files, pin_files, lanes, rows,
            limit, waves, simulator):
    """Run the emitted Verilog cycle-accurately on inputs; print the read-out layer, cycles and
    agreement with FixedPCN (every x and e of every iteration). Any clamp mask: `--mask
    generation --clamp 2=labels.npy` relaxes the input layer from clamped labels."""
    from ..model.fixed_pcn import FixedPCN
    from ..model.spec import PCSpec
    from ..sim.simulators import emitted_core
    with errors():
        spec = PCSpec.load(spec_path)
        weights = load_weights(weights_path, spec)
        mask = spec.mask(mode)
        if all(mask):
            raise click.UsageError(f"mask '{mode}' clamps every layer: nothing to relax")
        clamped, _, pins = clamped_values(spec, mode, input_path, clamp_files, spec.formats.x,
                                          False, pin_files)
        if 0 in clamped and not input_path:
            clamped[0] = clamped[0][:1]          # the first digits test sample
        n = min(limit, *(len(v) for v in clamped.values()))
        fx = FixedPCN.from_float(spec, weights)
        cq = {k: fx.quantize(v[:n], k) for k, v in clamped.items()}
        ro = spec.readout(mask)
        if waves and Path(waves).suffix not in (".vcd", ".fst"):
            raise click.ClickException(f"--waves {waves}: name a .vcd or .fst file")
        if waves and simulator == "native":
            simulator = "cocotb"             # the native harness writes no waveforms
            console.print("--waves: running under cocotb + Verilator (the native harness "
                          "writes no waveforms)")
        kw = {"waves": Path(waves).suffix[1:]} if waves else {}
        core = emitted_core(spec, lanes, simulator=simulator,
                            core_options={"rows": rows} if rows != 1 else None, **kw)
        with status(f"building the {simulator} model (cached after the first time)"):
            core.build()
        with status(f"simulating {n} sample(s)"):
            run = core.run(fx.W, fx.b, [{k: v[i] for k, v in cq.items()} for i in range(n)],
                           mode, trace=True, check=False, waves=waves,
                           pins=[{k: v[i] for k, v in pins.items()} for i in range(n)])
        t = Table(title=f"cycle-accurate run ({simulator}, {lanes} lanes × {rows} row(s), mask "
                        f"{mode})")
        for col in ("sample", f"read-out x_{ro} (float)", "argmax", "cycles", "= FixedPCN"):
            t.add_column(col)
        for i in range(n):
            outv = spec.formats.x.to_float(np.array(run.x[i][ro]))
            t.add_row(str(i), " ".join(f"{v:.3f}" for v in outv[:10]), str(int(outv.argmax())),
                      str(run.cycles[i]),
                      "bit-exact, every iteration" if not run.mismatches[i]
                      else f"DIFFERS: {', '.join(run.mismatches[i][:4])}")
        console.print(t)
        console.print(f"build {run.build_s:.1f} s, simulation {run.wall_s:.1f} s"
                      + (f"; waves in {waves}" if waves else ""))
        if any(run.mismatches):
            raise click.ClickException("the hardware differs from FixedPCN (see above)")


@click.command("compare", short_help="Hardware vs FixedPCN vs FloatPCN on the test set.")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), required=True)
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), required=True)
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Output folder: report.json, report.md and the plots.")
@FORCE_OPTION
@click.option("--lanes", type=click.IntRange(min=1), default=8, show_default=True)
@ROWS_OPTION
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the first N test samples.")
@click.option("--input", "input_path", type=click.Path(dir_okay=False), default=None,
              help=".npy or .csv, one sample per row, for the input layer (default: the digits "
                   "test set, whose labels give the accuracy).")
@clamp_options
@SIMULATOR_OPTION
def compare_cmd(spec_path, weights_path, out, lanes, rows, limit, input_path, mode,
                clamp_files, pin_files, simulator, force):
    """Hardware (cycle-accurate Verilog) vs FixedPCN vs FloatPCN on the digits test set (or
    any clamp: --mask, --clamp, --input): report.json, report.md and plots in OUT."""
    from ..model.spec import PCSpec
    output_folder(out, COMPARE_OUTPUTS, force)
    with errors():
        spec = PCSpec.load(spec_path)
        weights = load_weights(weights_path, spec)
        mask = spec.mask(mode)
        if all(mask):
            raise click.UsageError(f"mask '{mode}' clamps every layer: nothing to relax")
        clamped, labels, pins = clamped_values(spec, mode, input_path, clamp_files,
                                               spec.formats.x, False, pin_files)
        if spec.readout(mask) != spec.L:
            labels = None
        compare_and_report(spec, weights, Path(out), lanes, limit, simulator, mask=mode,
                           clamped=clamped, labels=labels, pins=pins, rows=rows)


def compare_and_report(spec, weights, out: Path, lanes: int, limit,
                       simulator: str = "native", **kw) -> dict:
    """Run :func:`pcforge.sim.compare.compare` (``kw``: its mask, clamped values, labels) with
    a progress bar, print the accuracy table, and fail when any sample differs between
    hardware and FixedPCN."""
    from ..sim.compare import compare
    with progress("hardware vs models") as cb:
        rep = compare(spec, weights, out, lanes=lanes, limit=limit, simulator=simulator,
                      progress=cb, **kw)
    if rep["hw_test_accuracy"] is not None:
        t = Table(title=f"hardware vs FixedPCN vs FloatPCN ({rep['samples']} test digits)")
        for col in ("", "hardware", "FixedPCN", "FloatPCN"):
            t.add_column(col, justify="right")
        t.add_row("accuracy", f"{100 * rep['hw_test_accuracy']:.2f} %",
                  f"{100 * rep['fixed_test_accuracy']:.2f} %",
                  f"{100 * rep['float_test_accuracy']:.2f} %")
        console.print(t)
    else:
        worst = max(p["max_abs_hw_minus_float"] for p in rep["per_layer"])
        console.print(f"mask {rep['mask']}: read-out layer {rep['readout_layer']}; largest "
                      f"|hw − float| over the layers {worst:.3g}")
    console.print(f"bit-exact samples: {rep['bit_exact_samples']} / {rep['samples']}; cycles per "
                  f"inference {rep['cycles_per_inference']} (model {rep['cycle_model']}); "
                  f"report in {out / 'report.md'}")
    if rep["bit_exact_samples"] != rep["samples"]:
        raise click.ClickException(f"{rep['samples'] - rep['bit_exact_samples']} samples differ "
                                   f"between hardware and FixedPCN; see {out / 'report.json'}")
    return rep


@click.command("verify", short_help="Many random networks: hardware = model, bit for bit.")
@click.option("--specs", type=click.IntRange(min=1), default=200, show_default=True,
              help="Random networks to verify (each from its own seed).")
@click.option("--first-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the first network (a failure is replayed from its seed).")
@click.option("--group", type=click.IntRange(1, 64), default=12, show_default=True,
              help="Cores per Verilator build.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Write verify.json (counts, coverage, failures) here.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Parallel Verilator builds (default: every core).")
@ROWS_OPTION
@executor_options("local")
@FORCE_OPTION
def verify_cmd(specs, first_seed, group, out, workers, rows, executor, scheduler, force):
    """Verify many random networks through the emitted Verilog (Verilator, native harness):
    every x and e of every iteration, every weight after every update and every cycle count
    equal to FixedPCN and the cycle model — both schedules, both learning rules, named and
    random clamp masks, idle cycles and back-pressure on the host streams."""
    from ..sim.verify import verify_random_specs
    if out:
        output_folder(out, ("verify.json",), force)
    with errors():
        with progress(f"verifying {specs} random networks") as cb:
            rep = verify_random_specs(specs, first_seed=first_seed, group=group, progress=cb,
                                      executor="dask" if scheduler else executor,
                                      workers=workers, scheduler=scheduler, rows=rows)
        t = Table(title=f"{specs} random networks (seeds {first_seed}…{first_seed + specs - 1})"
                        f"{' of two rows per token' if rows == 2 else ''} through Verilator "
                        "vs FixedPCN")
        for col in ("passed", "failed", "samples", "words compared", "core cycles", "wall s"):
            t.add_column(col, justify="right")
        t.add_row(str(rep["passed"]), str(rep["failed"]), str(rep["samples"]),
                  str(rep["compared_words"]), str(rep["core_cycles"]), str(rep["wall_s"]))
        console.print(t)
        for k, v in rep["coverage"].items():
            console.print(f"  {k}: {v}")
        if out:
            write_json(Path(out) / "verify.json", rep)
            console.print(f"wrote {Path(out) / 'verify.json'}")
        if rep["failed"]:
            for f in rep["failures"][:10]:
                console.print(f"[red]seed {f['seed']}[/] sizes {f['sizes']} lanes {f['lanes']}: "
                              f"{f['what'][:3]}")
            raise click.ClickException(f"{rep['failed']} of {specs} networks differ from "
                                       "FixedPCN (replay: pcforge verify --specs 1 "
                                       f"--first-seed SEED --rows {rows})")
