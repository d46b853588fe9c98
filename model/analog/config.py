"""``AnalogConfig``: every non-ideality of an analog crossbar substrate, in one documented place.

A layer's weights [W_l | b_l] are mapped onto a crossbar of differential PCM-like conductance
pairs (w ∝ g⁺ − g⁻, see :mod:`pcforge.model.analog.crossbar`), read in both directions: W f(x) for the
prediction and Wᵀ e for the feedback, each through a DAC, the array and an ADC. Conventions
follow IBM's aihwkit (``InferenceRPUConfig`` / ``IOParameters`` / ``PCMLikeNoiseModel`` /
``ConstantStepDevice``), so numbers are comparable with that literature:

Static, drawn once per programmed chip (``seed``):
  ``prog_noise``     scale of the PCM programming noise (1 = measured, :mod:`.pcm`)
  ``d2d_gain``       device-to-device variation: each device's read gain is
                     max(1 + d2d_gain·N(0, 1), 0), invisible to the programmer (open loop)
  ``stuck_off``      fraction of devices stuck at g = 0 (they neither read nor update)
Time (s after programming):
  ``t_inference``    evaluation time; ``drift`` scales the PCM drift exponents;
  ``read_noise``     scales the accumulated 1/f read noise at ``t_inference`` (frozen per
                     evaluation, as aihwkit does);
  ``drift_compensation``  global per-crossbar output scale α̂ from an all-ones read at
                     t_inference vs right after programming (Joshi et al. 2020).
Per read (every matrix-vector product, both directions):
  ``w_noise``        short-term weight noise, std relative to the crossbar's w_max (aihwkit
                     ``w_noise``, additive constant), exact in distribution via its output
                     variance σ² Σ_j u_j²
  ``out_noise``      Gaussian output noise, std in normalised output units (aihwkit
                     ``out_noise``)
  ``dac_bits``       input DAC: inputs are scaled by their max |u| per vector (aihwkit
                     ``NoiseManagementType.ABS_MAX``), quantised to 2^(bits−1) − 1 levels per
                     sign; ``None`` = ideal
  ``adc_bits``, ``adc_bound``  output ADC: normalised outputs clipped to ±adc_bound and
                     quantised to 2^(bits−1) − 1 levels per sign; ``None`` = ideal
Learning on the substrate (pulsed updates):
  ``dw_min``         weight change of one pulse, relative to w_max (0 = exact updates);
                     the pulse count is stochastically rounded (unbiased)
  ``up_down``        asymmetry: a pulse is dw_min·(1 + up_down) up, dw_min·(1 − up_down) down
  ``dw_min_std``     cycle-to-cycle variation of each pulse (relative std)
  Updates potentiate g⁺ (up) or g⁻ (down) only, as PCM's gradual SET does; a device at g_max
  saturates (no refresh is modelled). An updated device restarts its drift clock.
Mapping:
  ``headroom``       g_max represents headroom × max |[W | b]| of the layer at programming
                     (1 = aihwkit's inference mapping; more leaves room for learning to grow
                     weights, at the price of a smaller share of the conductance range).

``AnalogConfig()`` is the ideal substrate: with it, :class:`AnalogPCN` equals
:class:`FloatPCN` up to float64 rounding — as long as learning keeps every device below g_max
(the conductance range is physics, not a switch; :attr:`Crossbar.saturated` counts the
pulses it clipped).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

__all__ = ["AnalogConfig", "PRESETS", "preset", "NONIDEALITIES"]


@dataclass(frozen=True)
class AnalogConfig:
    prog_noise: float = 0.0
    d2d_gain: float = 0.0
    stuck_off: float = 0.0
    t_inference: float = 0.0
    drift: float = 0.0
    read_noise: float = 0.0
    drift_compensation: bool = False
    w_noise: float = 0.0
    out_noise: float = 0.0
    dac_bits: int | None = None
    adc_bits: int | None = None
    adc_bound: float = 12.0
    dw_min: float = 0.0
    up_down: float = 0.0
    dw_min_std: float = 0.0
    headroom: float = 1.0
    g_max: float = 25.0
    seed: int = 0

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("dac_bits", "adc_bits"):
                if v is not None and (not isinstance(v, int) or not 2 <= v <= 24):
                    raise ValueError(f"AnalogConfig.{f.name} = {v!r}: give an integer from 2 "
                                     f"to 24, or None for an ideal converter")
            elif f.name in ("drift_compensation",):
                if not isinstance(v, bool):
                    raise ValueError(f"AnalogConfig.{f.name} must be true or false, not {v!r}")
            elif f.name == "seed":
                if not isinstance(v, int):
                    raise ValueError(f"AnalogConfig.seed must be an integer, not {v!r}")
            elif not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"AnalogConfig.{f.name} = {v!r}: must be a number ≥ 0")
        if self.stuck_off > 1:
            raise ValueError(f"AnalogConfig.stuck_off = {self.stuck_off}: a fraction in [0, 1]")
        if self.up_down >= 1:
            raise ValueError(f"AnalogConfig.up_down = {self.up_down}: must be < 1 (a pulse "
                             f"of dw_min·(1 − up_down) down must stay positive)")
        if self.g_max <= 0 or self.adc_bound <= 0:
            raise ValueError("AnalogConfig.g_max and adc_bound must be > 0")
        if self.headroom < 1:
            raise ValueError(f"AnalogConfig.headroom = {self.headroom}: must be ≥ 1 (g_max "
                             f"must represent at least the largest weight)")

    @property
    def ideal(self) -> bool:
        """True when every non-ideality is off (time, seed and calibration do not matter)."""
        return (self.prog_noise == self.d2d_gain == self.stuck_off == self.drift
                == self.read_noise == self.w_noise == self.out_noise == self.dw_min
                == self.up_down == 0 and self.dac_bits is None and self.adc_bits is None)

    @property
    def exact_reads(self) -> bool:
        """True when a read is an exact product: no per-read noise and no converters."""
        return (not self.w_noise and not self.out_noise and self.dac_bits is None
                and self.adc_bits is None)

    def replace(self, **changes) -> "AnalogConfig":
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"AnalogConfig has no field(s) {sorted(unknown)}; fields: "
                             f"{[f.name for f in fields(self)]}")
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


#: named substrates. ``pcm`` is aihwkit's PCM inference model with its default periphery
#: (7-bit DAC, 9-bit ADC, out_noise 0.06, drift compensation); ``pcm_learning`` adds pulsed
#: updates of the size of aihwkit's ConstantStepDevice (dw_min 0.001 of a ±0.6 range, i.e.
#: ~0.0017 relative, 30 % cycle-to-cycle) with a 10 % up/down asymmetry.
PRESETS = {
    "ideal": AnalogConfig(),
    "pcm": AnalogConfig(prog_noise=1.0, drift=1.0, read_noise=1.0, drift_compensation=True,
                        out_noise=0.06, dac_bits=7, adc_bits=9),
    "pcm_learning": AnalogConfig(prog_noise=1.0, drift=1.0, read_noise=1.0,
                                 drift_compensation=True, out_noise=0.06, dac_bits=7,
                                 adc_bits=9, dw_min=0.0017, up_down=0.1, dw_min_std=0.3),
}


def preset(name: str, **changes) -> AnalogConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown analog preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name].replace(**changes)


#: the non-idealities a sweep varies one at a time: field → levels (the first is "off")
NONIDEALITIES = {
    "prog_noise": (0.0, 0.5, 1.0, 2.0, 4.0),
    "read_noise": (0.0, 1.0, 2.0, 4.0, 8.0),
    "d2d_gain": (0.0, 0.05, 0.1, 0.2, 0.4),
    "stuck_off": (0.0, 0.02, 0.05, 0.1, 0.2),
    "w_noise": (0.0, 0.02, 0.05, 0.1, 0.2),
    "out_noise": (0.0, 0.06, 0.2, 0.5, 1.0),
    "dac_bits": (None, 8, 6, 4, 3),
    "adc_bits": (None, 10, 8, 6, 4),
    "dw_min": (0.0, 0.002, 0.01, 0.03, 0.1),
    "up_down": (0.0, 0.2, 0.4, 0.6, 0.8),
}
