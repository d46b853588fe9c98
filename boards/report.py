"""What a bitstream build costs, as people read it: the one resource table (estimate beside the
post-route use) that ``report.md``, the command line and the benchmarks print.
"""
from __future__ import annotations

__all__ = ["RESOURCES", "resource_rows", "report_markdown"]

#: The resources a report counts, in the order it prints them.
RESOURCES = ("LUT", "FF", "DSP", "BRAM")


def resource_rows(rep: dict) -> list[tuple[str, str, str, str, str]]:
    """One row per resource of a build report: (resource — nextpnr cell, estimate, used,
    available, use as a percentage)."""
    u = rep["utilization"]
    keys = RESOURCES + (("SPRAM",) if "SPRAM" in u else ())
    return [(f"{k} — {u[k]['cell']}", str(rep["estimate"].get(k, 0)), str(u[k]["used"]),
             str(u[k]["available"]), f"{u[k]['used'] / max(1, u[k]['available']):.1%}")
            for k in keys]


def report_markdown(r: dict) -> str:
    """``report.md`` of a build report (:func:`pcforge.boards.build.build_board`)."""
    lines = [f"# pcforge build: {r['spec']['name']} on {r['board']} ({r['device']})", "",
             f"- bitstream: `{r['bitstream']}` ({r['bitstream_bytes']} bytes)",
             f"- clock: {r['clock_mhz']:.3f} MHz (PLL from {r['osc_mhz']} MHz; requested "
             f"{r['requested_clock_mhz']} MHz); post-route fmax **{r['fmax_mhz']:.2f} MHz**, "
             f"timing {'met' if r['timing_met'] else '**NOT met**'}",
             f"- {r['lanes']} MAC lane(s); {r['cycles_per_inference']} cycles per inference "
             f"(T = {r['spec']['iterations']}) = {r['inferences_per_s']:.0f} inferences/s at "
             f"the clock; {r['lane_limit_fraction']:.1%} of the lane limit"
             + (f"; with the exact stop as few as {r['cycles_per_inference_fewest']} cycles "
                f"({r['clock_mhz'] * 1e6 / r['cycles_per_inference_fewest']:.0f} inferences/s)"
                if r.get("stop") == "exact" else ""),
             *([f"- weights of connection(s) {', '.join(map(str, r['spram_weights']))} in "
                f"SPRAM (no initial contents: the host loads them over the link); the core "
                f"does not learn"] if r.get("spram_weights") else []),
             f"- host link: UART {r['baud']} baud (divisor {r['uart_divisor']}), "
             f"design id {r['design_id']:08x}",
             f"- built in {r['build_s']:.1f} s with "
             f"{', '.join(f'{k} {v}' for k, v in r['toolchain'].items())}",
             "", "| resource | estimate | used (post-route) | available | use |",
             "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in resource_rows(r)]
    return "\n".join(lines) + "\n"
