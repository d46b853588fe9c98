"""The ``pcforge`` command line: one entry point over model, hardware, simulation and boards.

The group is here; each command family is a module of its own (:mod:`.models`: train, infer,
spec; :mod:`.hardware`: hdl, sim, compare, verify; :mod:`.boards`: build; :mod:`.analog`: analog sweep;
:mod:`.chain`: run), sharing :mod:`.common` (console, errors, progress, outputs, choices).
Command modules never import this one, so each imports on its own.
"""
from __future__ import annotations

import signal
import sys

import click

from .analog import analog
from .boards import build
from .chain import run
from .devices import board_group, flash_cmd
from .exchange import export_cmd, import_cmd
from .hardware import compare_cmd, hdl_cmd, sim_cmd, verify_cmd
from .models import infer, spec_cmd, train

__all__ = ["main", "entry"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pcforge")
def main():
    """pcforge: predictive coding networks to verified FPGA hardware.

    The golden models (float64 and bit-exact fixed point) and training on the built-in digits
    data set, the core's Verilog, cycle-accurate simulation against the models, and bitstreams
    for the iCEBreaker and the ULX3S.
    """


for command in (train, infer, spec_cmd, hdl_cmd, sim_cmd, compare_cmd, verify_cmd, build, run,
                analog, import_cmd, export_cmd, flash_cmd, board_group):
    main.add_command(command)


def _terminated(signum, frame):
    # unwind like Ctrl-C: every ``finally`` and ``except BaseException`` runs, so work folders
    # are removed and no output is left half-written; then exit as a terminated process does
    print(f"pcforge: terminated ({signal.Signals(signum).name}); partial work removed",
          file=sys.stderr, flush=True)
    raise SystemExit(128 + signum)


def entry():
    """The ``pcforge`` console script: :func:`main` with SIGTERM (``kill``, a job scheduler's
    time limit, a CI timeout) handled like Ctrl-C, so a killed build leaves nothing behind."""
    signal.signal(signal.SIGTERM, _terminated)
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:
        signal.signal(signal.SIGHUP, _terminated)          # the terminal closed
    main(prog_name="pcforge")
