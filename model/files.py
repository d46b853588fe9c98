"""Files that every layer writes — specs, weights, Verilog, reports — are written atomically: the
content goes to a temporary file beside the target, which is renamed into place only when it is
complete, so a killed job never leaves a half-written file under the final name.

Work folders (a Verilator build, a place-and-route run) are made by :func:`private_folder`:
named after the host and process that own them, removed by their owner when it fails or is
interrupted, and swept by the next job when their owner died without cleaning up (``kill -9``,
a power cut), so a cache never collects half-built entries.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_json", "atomic_copy", "private_folder",
           "sweep_abandoned"]

#: the marker in a work folder's name: ``<prefix>partial-<host>-<pid>-<random>``
_PARTIAL = re.compile(r"partial-(?P<host>[^/]+)-(?P<pid>\d+)-[^-/]+$")


def _temporary(path: Path) -> Path:
    """A per-process temporary name beside ``path`` (parallel writers never share one)."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_write(path, content: str | bytes) -> Path:
    """Write ``content`` (text as UTF-8, or bytes) to ``path`` atomically; creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        if isinstance(content, bytes):
            tmp.write_bytes(content)
        else:
            tmp.write_text(content, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_json(path, obj, *, sort_keys: bool = False) -> Path:
    """``obj`` as indented JSON (with a final newline), written atomically."""
    return atomic_write(path, json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n")


def atomic_copy(src, dst) -> Path:
    """Copy the file ``src`` to ``dst`` atomically (metadata kept, as ``shutil.copy2``)."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(dst)
    try:
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:                 # another user's live process
        return True
    return True


def sweep_abandoned(parent) -> list[Path]:
    """Remove the work folders in ``parent`` whose owning process (on this host) is gone;
    returns what was removed. Folders of live processes and of other hosts (a shared cache)
    are left alone."""
    parent = Path(parent)
    removed = []
    if not parent.is_dir():
        return removed
    host = _host()
    for p in parent.iterdir():
        m = _PARTIAL.search(p.name)
        if m and m["host"] == host and not _alive(int(m["pid"])):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def private_folder(parent, prefix: str = "") -> Path:
    """A new, empty work folder in ``parent`` (created) owned by this process; first sweeps
    the folders that dead processes left there (:func:`sweep_abandoned`)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    sweep_abandoned(parent)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}partial-{_host()}-{os.getpid()}-",
                                 dir=parent))
