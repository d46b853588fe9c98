"""Files that every layer writes — specs, weights, Verilog, reports — are written atomically: the
content goes to a temporary file beside the target, which is renamed into place only when it is
complete, so a killed job never leaves a half-written file under the final name.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_json", "atomic_copy"]


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
