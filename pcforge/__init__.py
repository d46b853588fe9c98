"""pcforge: predictive coding networks to verified FPGA hardware.

The public facade re-exports the golden models (for users; the package itself imports every name
from the module that defines it). The subpackages, in their one import direction
``pcforge.cli`` → ``pcforge.boards`` → ``pcforge.sim`` → ``pcforge.hdl`` → ``pcforge.model``:
``model`` (spec, float and fixed-point models, training; ``model.arch`` the core's geometry,
schedule and cycles; ``model.analog`` analog co-design), ``hdl`` (Amaranth generators), ``sim``
(cycle-accurate simulation and the toolchain), ``boards`` (bitstreams, host link, the simulated
board) and ``cli`` (the ``pcforge`` command). :func:`convert` (:mod:`pcforge.api`) is the
Python entry point: spec + weights or an ONNX MLP → a :class:`HardwareModel` that predicts
bit-exactly, traces, simulates the emitted Verilog and builds bitstreams.
"""
from .model import (FixedConst, FixedPCN, FloatPCN, Formats, PCSpec, QFormat, SpecError,
                    Weights, WeightsError)
from .api import HardwareModel, convert

__version__ = "0.1.0"
__all__ = ["FixedConst", "FixedPCN", "FloatPCN", "Formats", "PCSpec", "QFormat", "SpecError",
           "Weights", "WeightsError", "convert", "HardwareModel", "__version__"]
