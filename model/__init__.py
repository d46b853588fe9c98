"""The golden models of pcforge: the spec, the float64 reference and the bit-exact fixed-point
model of the hardware datapath, plus data, training and estimates."""
from .qformat import QFormat, FixedConst
from .spec import PCSpec, Formats, SpecError
from .float_pcn import FloatPCN
from .fixed_pcn import FixedPCN
from .weights import Weights, WeightsError

__all__ = ["QFormat", "FixedConst", "PCSpec", "Formats", "SpecError", "FloatPCN", "FixedPCN",
           "Weights", "WeightsError"]
