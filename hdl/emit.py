"""Verilog and a manifest from a spec: what ``pcforge hdl`` writes.

``emit(spec, lanes, out_dir)`` elaborates :class:`~pcforge.hdl.core.PCCore`, converts it with
Amaranth's bundled Yosys (``AMARANTH_USE_YOSYS=builtin``, set here, so no system Yosys is
needed) and writes, only once everything has been generated and each file atomically:

* ``pcforge_core.v`` — the core (same spec and lanes → byte-identical file);
* ``manifest.json`` — ports (name, direction, width), memories (kind, layer, lane, depth,
  width), the geometry, parameters, spec digest, pipeline depth, the exact cycle counts of every
  named clamp mask, and the Verilog's SHA-256;
* ``spec.toml`` — the spec it was generated from.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..model.arch.cycles import cycle_report, multipliers_per_lane
from ..model.arch.schedule import PIPELINE_DEPTH
from ..model.files import atomic_write, atomic_write_json
from ..model.spec import PCSpec
from .core import PCCore
from .dsp import simulation_models
from .protocol import TARGET

__all__ = ["emit", "verilog_text", "convert_verilog", "write_verilog", "simulation_verilog",
           "manifest", "EmitResult", "TOP_NAME"]

TOP_NAME = "pcforge_core"
#: the files :func:`emit` writes into its folder
OUTPUTS = (f"{TOP_NAME}.v", "manifest.json", "spec.toml")


@dataclass
class EmitResult:
    verilog: Path
    manifest: Path
    spec: Path
    info: dict


def convert_verilog(component, name: str) -> str:
    """The Verilog of an Amaranth component, converted by Amaranth's bundled Yosys (no system
    Yosys needed; ``AMARANTH_USE_YOSYS=builtin`` is set here), without source locations (the
    same design gives a byte-identical file)."""
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    from amaranth.back import verilog
    return verilog.convert(component, name=name, emit_src=False)


def write_verilog(component, name: str, path) -> Path:
    """:func:`convert_verilog` written to ``path`` atomically (parallel emitters of the same
    file never see each other's half-written text)."""
    return atomic_write(path, convert_verilog(component, name))


def simulation_verilog(component, name: str, hard_multipliers=None) -> str:
    """What a simulator reads: :func:`convert_verilog` followed by the simulation models of the
    vendor primitives the design instantiates (``PCCore``'s ``hard_multipliers``; none
    without) — one text, so that a file written from it never lacks them."""
    return convert_verilog(component, name) + simulation_models(hard_multipliers)


def verilog_text(spec: PCSpec, lanes: int, **core_options) -> tuple[str, PCCore]:
    """(Verilog source, the elaborated-from ``PCCore(spec, lanes, **core_options)``)."""
    core = PCCore(spec, lanes, **core_options)
    return convert_verilog(core, TOP_NAME), core


def _ports(core) -> list:
    from amaranth.hdl import Value
    from amaranth.lib.wiring import Flow
    out = []
    for path, member, value in core.signature.flatten(core):
        out.append({"name": "__".join(str(p) for p in path),
                    "direction": "input" if member.flow == Flow.In else "output",
                    "width": Value.cast(value).shape().width})
    return out


def manifest(spec: PCSpec, lanes: int, core, verilog: str) -> dict:
    """The manifest describing a generated core (see the module docstring)."""
    g = core.geometry
    F = spec.formats
    mems = []
    for p, mem in enumerate(core.c_mem):
        mems.append({"kind": "cache", "layer": None, "lane": p, "depth": mem.depth,
                     "width": mem.shape.width, "layer_offsets": core.c_base[1:]})
    w_tables = [("w", core.w_mem)] + ([("w_odd", core.w_mem_odd)] if core.rows == 2 else [])
    for kind, table in [("x", core.x_mem), ("e", core.e_mem)] + w_tables:
        for k, banks in enumerate(table):
            for p, mem in enumerate(banks or []):
                mems.append({"kind": kind, "layer": k, "lane": p, "depth": mem.depth,
                             "width": mem.shape.width})
    for kind, table in [("b", core.b_mem)] + ([("b_odd", core.b_mem_odd)]
                                               if core.rows == 2 else []):
        for k, mem in enumerate(table):
            if mem is not None:
                mems.append({"kind": kind, "layer": k, "lane": None, "depth": mem.depth,
                             "width": mem.shape.width})
    weight_bank = ("W_l[i, j]: lane j % lanes, address i * ceil(n_{l-1} / lanes) + j // lanes"
                   if core.rows == 1 else
                   "W_l[i, j]: lane j % lanes, memory w (i even) or w_odd (i odd), word "
                   "(i // 2) * ceil(n_{l-1} / lanes) + j // lanes; host address 2 * word + "
                   "i % 2; b_l[i]: memory b or b_odd by i % 2, word i // 2, host address i")
    return {
        "top": TOP_NAME,
        "verilog": f"{TOP_NAME}.v",
        "verilog_sha256": hashlib.sha256(verilog.encode()).hexdigest(),
        "spec_digest": spec.digest,
        "spec_name": spec.name,
        "lanes": lanes,
        "rows": core.rows,
        "multipliers": lanes * multipliers_per_lane(spec, core.rows),
        "pipeline_depth": PIPELINE_DEPTH,
        "parameters": {"sizes": list(spec.sizes), "activations": list(spec.activations),
                       "iterations": spec.iterations, "init": spec.init,
                       "formats": F.to_dict(), "gamma": spec.gamma.to_dict(),
                       "acc_width": core.acc_width},
        "geometry": {"node_bank": "node j of layer k: lane j % lanes, address j // lanes",
                     "weight_bank": weight_bank,
                     "depths": [g.depth(k) for k in range(spec.n_layers)]},
        # the targets this core has (pin: network.node_clamp; alpha: rates.alpha_runtime)
        "host_targets": {k: v for k, v in TARGET.items()
                         if (k != "pin" or spec.node_clamp) and (k != "alpha"
                                                                 or spec.alpha_runtime)},
        "ports": _ports(core),
        "memories": mems,
        "estimated_cycles": {name: cycle_report(spec, lanes, mask, rows=core.rows).as_dict()
                             for name, mask in sorted(spec.clamp.items())},
    }


def emit(spec: PCSpec, lanes: int, out_dir, *, simulation: bool = False,
         **core_options) -> EmitResult:
    """Generate everything in memory, then write the three files (see the module docstring);
    ``core_options``: keyword options of :class:`PCCore`. ``simulation``: the Verilog file
    also holds the vendor primitives' simulation models (:func:`simulation_verilog`; the
    manifest describes the design without them)."""
    text, core = verilog_text(spec, lanes, **core_options)
    info = manifest(spec, lanes, core, text)
    if simulation:
        text += simulation_models(core_options.get("hard_multipliers"))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a directory; choose another path")
    out.mkdir(parents=True, exist_ok=True)
    vpath, mpath, spath = (out / name for name in OUTPUTS)
    atomic_write(vpath, text)
    atomic_write(spath, spec.to_toml())
    atomic_write_json(mpath, info, sort_keys=True)
    return EmitResult(vpath, mpath, spath, info)
