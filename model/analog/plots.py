"""Plots of an analog sweep's results dict: accuracy with 95 % confidence bands.

* ``nonidealities.png``: one panel per non-ideality, its levels on x (the first is "off"),
  programmed (a) and learned-on-substrate (b) accuracy, the float accuracy dashed;
* ``drift.png``: accuracy against time after programming, with and without global drift
  compensation, both arms.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["plot_sweep"]

_TIME_LABELS = {0.0: "0", 60.0: "1 min", 3600.0: "1 h", 86400.0: "1 day", 2.592e6: "1 month",
                3.1536e7: "1 year"}
_ARMS = (("programmed", "float-trained, programmed", "tab:red"),
         ("learned", "+ PC learning on the substrate", "tab:blue"))


def _label(name: str, lv) -> str:
    if lv is None:
        return "ideal"
    if name.endswith("_bits"):
        return f"{lv} b"
    return f"{lv:g}"


def _panel(ax, pts, labels, title, float_acc):
    xs = range(len(pts))
    for key, name, color in _ARMS:
        m = [100 * p[key]["mean"] for p in pts]
        lo = [100 * p[key]["ci95_low"] for p in pts]
        hi = [100 * p[key]["ci95_high"] for p in pts]
        ax.plot(xs, m, "o-", color=color, label=name, ms=3)
        ax.fill_between(xs, lo, hi, color=color, alpha=0.2, lw=0)
    ax.axhline(100 * float_acc, color="k", ls="--", lw=0.8)
    ax.set_xticks(list(xs), labels, fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_ylim(top=100.5)
    ax.grid(alpha=0.3)


def _finish(fig, title: str, path: Path, written: list):
    import matplotlib.pyplot as plt
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)


def plot_sweep(results: dict, out: Path) -> list[Path]:
    """Write the PNGs into ``out``; returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    fa = results["float_test_accuracy"]
    seeds = results["settings"]["seeds"]
    names = [n for n in results["series"] if not n.startswith("drift")]
    written = []
    if names:
        cols = min(5, len(names))
        rows = -(-len(names) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
        for ax, name in zip(axes.flat, names):
            pts = results["series"][name]
            _panel(ax, pts, [_label(name, p["level"]) for p in pts], name, fa)
        for ax in list(axes.flat)[len(names):]:
            ax.axis("off")
        axes[0][0].set_ylabel("test accuracy (%)")
        axes[0][0].legend(fontsize=7, loc="lower left")
        _finish(fig, f"digits accuracy per non-ideality (mean and 95 % CI over {seeds} chips; "
                     f"dashed: float {100 * fa:.2f} %)", out / "nonidealities.png", written)
    if "drift" in results["series"]:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for ax, (series, title) in zip(axes, (("drift", "with global drift compensation"),
                                              ("drift_uncompensated", "uncompensated"))):
            pts = results["series"].get(series, [])
            labels = [_TIME_LABELS.get(float(p["level"]), f"{p['level']:g} s") for p in pts]
            if pts:
                _panel(ax, pts, labels, title, fa)
            ax.set_xlabel("time after programming")
        axes[0].set_ylabel("test accuracy (%)")
        axes[0].legend(fontsize=7, loc="lower left")
        _finish(fig, f"PCM drift ({results['settings']['drift_preset']} preset), mean and 95 % "
                     f"CI over {seeds} chips; dashed: float {100 * fa:.2f} %",
                out / "drift.png", written)
    return written
