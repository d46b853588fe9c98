"""What every benchmark script shares: its command line (``--out`` defaults to
``benchmarks/results/<name>.json``) and writing its JSON results atomically."""
from __future__ import annotations

import argparse
from pathlib import Path

from pcforge.model.files import atomic_write_json

RESULTS = Path(__file__).parent / "results"


def bench_parser(doc: str, name: str) -> argparse.ArgumentParser:
    """An argument parser described by the script's docstring, with ``--out``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", default=str(RESULTS / f"{name}.json"),
                    help="where the JSON results go (default: %(default)s)")
    return ap


def write_results(path, obj) -> Path:
    """The results as indented JSON, written atomically (the folder is created)."""
    return atomic_write_json(Path(path), obj)
