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
from .explore import explore_cmd
from .complete import complete_cmd
from .generate import generate_cmd
from .hardware import compare_cmd, hdl_cmd, sim_cmd, verify_cmd
from .models import infer, spec_cmd, train

__all__ = ["main", "entry"]


class _NewcomerOrder(click.Group):
    """Lists the commands in the order they were added (a newcomer's order), not by name."""

    def list_commands(self, ctx):
        return list(self.commands)


@click.group(cls=_NewcomerOrder, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pcforge")
def main():
    """pcforge: predictive coding networks to verified FPGA hardware.

    \b
    In the order a newcomer uses them:
      1. run              the whole chain on the shipped digits set, once
      2. train | import   a network: trained here, or an ONNX MLP from elsewhere
      3. infer            float and bit-exact fixed-point answers on inputs
      4. hdl, sim         the core's Verilog; a few inputs through it
      5. compare, verify  hardware vs models on the test set; on many random nets
      6. explore          which configuration: accuracy vs latency vs resources
         generate         the other PC modes: digits from the generative network
         complete         ... and digits completed from a half (per-node clamps)
      7. build            a bitstream for the iCEBreaker or the ULX3S
      8. flash, board     program a board; drive it from the host
    export (ONNX), spec (a TOML to edit) and analog (crossbar sweeps) go alongside.
    Every command says more with -h.
    """


for command in (run, train, import_cmd, infer, hdl_cmd, sim_cmd, compare_cmd, verify_cmd,
                explore_cmd, generate_cmd, complete_cmd, build, flash_cmd, board_group, export_cmd, spec_cmd, analog):
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
