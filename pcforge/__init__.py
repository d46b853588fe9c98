"""pcforge: predictive coding networks to verified FPGA hardware.

The public facade re-exports the golden models; the subpackages are
``pcforge.model`` (spec, float and fixed-point models, training), ``pcforge.hdl`` (Amaranth
generators), ``pcforge.sim`` (cycle-accurate simulation) and ``pcforge.boards`` (bitstreams).
"""
from .model import (FixedConst, FixedPCN, FloatPCN, Formats, PCSpec, QFormat, SpecError,
                    Weights, WeightsError)

__version__ = "0.1.0"
__all__ = ["FixedConst", "FixedPCN", "FloatPCN", "Formats", "PCSpec", "QFormat", "SpecError",
           "Weights", "WeightsError", "__version__"]
