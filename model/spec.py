"""``PCSpec``: the single source of truth for a predictive coding network and its datapath.

Every size, activation, fixed-point format, rate, iteration count and clamp mask that the float
model, the fixed-point model, the hardware generator and the boards use is read from one
``PCSpec``. It validates itself on construction and raises :class:`SpecError` naming the field,
the bad value and the fix. It is saved as TOML (:meth:`PCSpec.save`, :meth:`PCSpec.load`) and
has a stable :attr:`PCSpec.digest` over its canonical content.

Indexing: layers ``0..L`` with sizes ``sizes[0..L]``; connection ``l`` (1 ≤ l ≤ L) predicts layer
``l`` from layer ``l-1`` with weights ``W_l`` of shape ``(sizes[l], sizes[l-1])`` and bias ``b_l``.
``activations[l]`` (0 ≤ l < L) is the f applied to ``x_l`` when it predicts layer ``l+1``.
"""
from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import tomli_w

from .activations import ACTIVATIONS, MAX_TABLE_BITS, activation_bound
from .files import atomic_write
from .qformat import MAX_DATAPATH_BITS, FixedConst, QFormat

__all__ = ["SpecError", "Formats", "PCSpec", "DatapathBits", "INITS", "LEARNING_RULES",
           "SCHEDULES", "STOPS", "MAX_LAYER_SIZE", "SPEC_FORMAT_VERSION"]

SPEC_FORMAT_VERSION = 1
INITS = ("feedforward", "zero")
LEARNING_RULES = ("after_relaxation", "incremental")
SCHEDULES = ("synchronous", "delayed_feedback")
STOPS = ("none", "exact")
MAX_LAYER_SIZE = 4096
MAX_ITERATIONS = 100_000
MAX_STORAGE_WIDTH = 32
MAX_ACC_FRAC = 48


class SpecError(ValueError):
    """An inconsistent or unbuildable spec. The message names the field and the fix."""


def _bits(magnitude: int) -> int:
    """Signed bits needed to hold every integer in ``[-magnitude, magnitude]``."""
    return int(magnitude).bit_length() + 1


@dataclass(frozen=True)
class Formats:
    """The fixed-point formats of the datapath.

    x    value nodes x_l and activations f(x_l)                      (storage, per node)
    e    error nodes e_l and the feedback ε_l = round(W_{l+1}ᵀ e_{l+1}) (storage, per node)
    w    weights W_l                                                   (local weight memories)
    b    biases b_l
    acc  the multiply-accumulate register: exact sums of products, never rounded or overflowed
         (validated); its ``frac`` must be ≥ max(x.frac, e.frac) + w.frac and ≥ b.frac.
         ``None`` (the default) lets :class:`PCSpec` choose the narrowest exact accumulator.
    w_guard  guard bits of the weights (default 0): the weight memories keep ``w_guard`` more
         fraction bits than ``w`` (storage format :attr:`w_store`), so that learning updates
         smaller than w's LSB accumulate instead of rounding away; the multipliers use the
         top ``w.width`` bits (floor: W_store >> w_guard), so their width does not change.
    """

    x: QFormat = QFormat(16, 10)
    e: QFormat = QFormat(16, 12)
    w: QFormat = QFormat(16, 12)
    b: QFormat = QFormat(16, 12)
    acc: QFormat | None = None
    w_guard: int = 0

    @property
    def w_store(self) -> QFormat:
        """The weight memories' format: ``w`` with ``w_guard`` more fraction bits."""
        w, g = self.w, self.w_guard
        return w if not g else QFormat(w.width + g, w.frac + g, w.rounding, w.overflow)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k).to_dict() for k in ("x", "e", "w", "b", "acc")}
        if self.w_guard:                 # absent when 0: older specs keep their digests
            d["w_guard"] = self.w_guard
        return d


@dataclass(frozen=True)
class DatapathBits:
    """Worst-case signed bit counts of the datapath intermediates (for checks and the HDL)."""

    pred_acc: tuple       # per connection l=1..L: x<<s − (Σ W f(x) + b), in acc frac
    feedback_acc: tuple   # per connection l=1..L: Σ_k W_l[k, i] e_l[k], in acc frac
    update: int           # γ · (f'(x) ε − e·2^x.frac) before rounding
    weight_update: int    # α · e · f(x) before rounding
    bias_update: int      # α · e before rounding


def _default_clamp(n_layers: int) -> dict:
    L = n_layers - 1
    return {
        "inference": tuple(l == 0 for l in range(L + 1)),
        "training": tuple(l in (0, L) for l in range(L + 1)),
        "generation": tuple(l == L for l in range(L + 1)),
    }


@dataclass(frozen=True)
class PCSpec:
    """A predictive coding network and its fixed-point datapath (see the module docstring).

    Parameters
    ----------
    sizes : layer sizes n_0..n_L (L ≥ 1), each 1..4096.
    activations : f per source layer 0..L-1, from ``identity``, ``relu``, ``hardtanh``, ``tanh``.
    iterations : relaxation iterations T per sample (≥ 1).
    formats : :class:`Formats`.
    gamma : inference rate γ (state step), an exact :class:`FixedConst`.
    alpha : learning rate α, an exact :class:`FixedConst`: the rate the core learns with (or
        with ``alpha_runtime``, the rate it starts with and the largest its register is sized
        for).
    alpha_runtime : α is a run-time register of the core (``rates.alpha_runtime``): α =
        m·2^−alpha.frac with m an integer ≥ 1 of :attr:`alpha_bits` bits the host writes
        between samples (a decay schedule driven by the host), reset to alpha.mantissa; the
        update multiplies by the register. Give alpha fraction bits to decay through (e.g.
        FixedConst(256, 13) = 1/32 decays in steps of 2^−13). Default: α is a constant of the
        generated core.
    clamp : named clamp masks; mask[l] is True when layer l is held fixed, False when it is
        free, or a list of n_l booleans: per-node clamping (node j held fixed where True, the
        others free; see :meth:`pins`). ``inference``, ``training`` and ``generation`` are always
        present (defaults: input; input and target; target only).
    node_clamp : the layers whose nodes may be clamped one by one (a completion's partly known
        image): the core gets a 1-bit *pin* memory per node of each (``docs/modes.md``).
        Layers with per-node entries in a named mask are added; default none.
    init : ``feedforward`` (free layers start at their prediction, computed layer by layer) or
        ``zero`` (free layers start at 0).
    learning : ``after_relaxation`` (T iterations, then one error pass and one weight update) or
        ``incremental`` (a weight update from the same errors at every iteration).
    schedule : ``synchronous``: every iteration computes all errors from the current state, then
        all feedback from those errors, then updates every free layer (two sweeps of each weight
        memory per iteration in hardware). ``delayed_feedback``: the feedback W_{l+1}ᵀ e_{l+1}
        uses the errors of the previous iteration (e(−1) = 0), so one sweep of each weight
        memory can feed both W f(x) and Wᵀ e; the errors e(t) themselves are as in
        ``synchronous``.
    table_bits : log2 entries of activation tables (tanh), 1..12.
    stop : ``none`` (every run makes T iterations) or ``exact``: a run stops relaxing once the
        state can no longer change — bit-identical to running all T iterations, so T becomes
        the maximum (see :func:`pcforge.model.fixed_pcn.stop_iterations` for the rule and why
        it is exact). Not while learning incrementally (the weights move every iteration).
    """

    sizes: tuple
    activations: tuple
    iterations: int = 20
    formats: Formats = field(default_factory=Formats)
    gamma: FixedConst = FixedConst(1, 3)
    alpha: FixedConst = FixedConst(1, 7)
    clamp: dict = None
    init: str = "feedforward"
    learning: str = "after_relaxation"
    schedule: str = "synchronous"
    table_bits: int = 8
    name: str = "pcn"
    stop: str = "none"
    node_clamp: tuple = ()
    alpha_runtime: bool = False

    def __post_init__(self):
        object.__setattr__(self, "sizes", tuple(self.sizes) if _is_seq(self.sizes) else self.sizes)
        object.__setattr__(self, "activations",
                           tuple(self.activations) if _is_seq(self.activations) else self.activations)
        self._validate_structure()
        clamp = dict(_default_clamp(len(self.sizes)))
        for k, v in (self.clamp or {}).items():
            if not _is_seq(v):
                raise SpecError(f"clamp.{k} = {v!r} must be a list of booleans, one per layer")
            clamp[k] = tuple(tuple(e) if _is_seq(e) else e for e in v)
        object.__setattr__(self, "clamp", clamp)
        self._validate_clamp()
        self._validate_node_clamp()
        if self.formats.acc is None:
            object.__setattr__(self, "formats", replace(self.formats, acc=self._narrowest_acc()))
        self._validate_formats()

    def _narrowest_acc(self) -> QFormat:
        F = self.formats
        frac = max(F.x.frac + F.w.frac, F.e.frac + F.w.frac, F.b.frac)
        bits = self.datapath_bits(acc_frac=frac)
        width = max(bits.pred_acc + bits.feedback_acc + (frac + 2,))
        if width > MAX_DATAPATH_BITS:
            raise SpecError(f"formats: the accumulator would need {width} bits (over "
                            f"{MAX_DATAPATH_BITS}); narrow x, e or w, or shrink the layers")
        return QFormat(width, frac, "floor", "saturate")

    # ---- structure ----------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        """Number of layers, L + 1."""
        return len(self.sizes)

    @property
    def L(self) -> int:
        """Index of the last layer (= number of connections)."""
        return len(self.sizes) - 1

    def weight_shape(self, l: int) -> tuple:
        """Shape of W_l, (n_l, n_{l-1}), for 1 ≤ l ≤ L."""
        return (self.sizes[l], self.sizes[l - 1])

    @property
    def n_weights(self) -> int:
        return sum(self.sizes[l] * self.sizes[l - 1] for l in range(1, self.n_layers))

    def mask(self, mode) -> tuple:
        """The layer clamp mask for a mode name, or a given mask checked for length: True for
        a layer held fixed whole; a layer clamped node by node (a list entry) is free here —
        its held nodes are :meth:`pins`."""
        if isinstance(mode, str):
            if mode not in self.clamp:
                raise SpecError(f"unknown clamp mode {mode!r}; the spec has "
                                f"{', '.join(sorted(self.clamp))} (add one under [clamp])")
            mode = self.clamp[mode]
        m = tuple(False if _is_seq(v) or isinstance(v, np.ndarray) else bool(v) for v in mode)
        if len(m) != self.n_layers:
            raise SpecError(f"clamp mask {list(m)} has {len(m)} entries; "
                            f"the network has {self.n_layers} layers")
        return m

    @property
    def alpha_bits(self) -> int:
        """Bits of the run-time α register (0: α is a constant of the core)."""
        return self.alpha.mantissa.bit_length() if self.alpha_runtime else 0

    def alpha_at(self, mantissa: int) -> FixedConst:
        """The run-time learning rate mantissa·2^−alpha.frac, checked against the register."""
        if not self.alpha_runtime:
            raise SpecError("this spec's α is a constant of the core; set rates.alpha_runtime "
                            "= true to write it at run time")
        m = int(mantissa)
        if m != mantissa or not 1 <= m < (1 << self.alpha_bits):
            raise SpecError(f"α mantissa {mantissa!r}: the α register takes integers "
                            f"1..{(1 << self.alpha_bits) - 1} (α = m·2^-{self.alpha.frac}, "
                            f"at most {((1 << self.alpha_bits) - 1) / 2 ** self.alpha.frac:g}); "
                            "give rates.alpha a larger mantissa for a larger range")
        return FixedConst(m, self.alpha.frac)

    def pins(self, mode, pins: dict | None = None) -> dict:
        """The per-node clamps of a run: {layer: bool array (n_l,) or (B, n_l)}, True where a
        node of that (free) layer is held at its given value. From the per-node entries of
        ``mode`` (a name or a mask) and ``pins`` ({layer: booleans}, e.g. a different half of
        each sample hidden); every such layer must be in :attr:`node_clamp` and free under
        ``mode``. Raises :class:`SpecError` naming the layer and the fix."""
        layer_mask = self.mask(mode)
        entries = self.clamp[mode] if isinstance(mode, str) else tuple(mode)
        out = {}
        for l, v in enumerate(entries):
            if _is_seq(v) or isinstance(v, np.ndarray):
                out[l] = v
        for l, v in (pins or {}).items():
            out[int(l)] = v
        res = {}
        for l, v in sorted(out.items()):
            if not 0 <= l < self.n_layers:
                raise SpecError(f"per-node clamp for layer {l}: the network has layers "
                                f"0..{self.L}")
            if l not in self.node_clamp:
                raise SpecError(f"layer {l} cannot be clamped node by node: the spec's "
                                f"network.node_clamp is {list(self.node_clamp)}; add {l} to it "
                                "(the core then holds a pin bit per node of that layer)")
            if layer_mask[l]:
                raise SpecError(f"layer {l} is clamped whole under this mask; per-node clamps "
                                "apply to a free layer (choose a mask that leaves it free)")
            a = np.asarray(v)
            if a.dtype != bool:
                if a.dtype.kind not in "iu" or not np.isin(a, (0, 1)).all():
                    raise SpecError(f"the per-node clamp of layer {l} must be booleans or 0/1")
                a = a.astype(bool)
            if a.ndim not in (1, 2) or a.shape[-1] != self.sizes[l]:
                raise SpecError(f"the per-node clamp of layer {l} has shape {a.shape}; give "
                                f"{self.sizes[l]} booleans per sample")
            res[l] = a
        return res

    def readout(self, mode) -> int:
        """The layer a run under ``mode`` is read out from: the output layer when it is free,
        else the lowest free layer (the image under ``generation``; the label of a generative
        network); the output layer when every layer is clamped."""
        m = self.mask(mode)
        if not m[self.L]:
            return self.L
        return next((k for k in range(self.n_layers) if not m[k]), self.L)

    def _validate_structure(self):
        s = self.sizes
        if not _is_seq(s) or len(s) < 2:
            raise SpecError(f"network.sizes = {s!r}: give at least two layer sizes, "
                            "e.g. [64, 64, 10]")
        for i, n in enumerate(s):
            if not _is_int(n) or not 1 <= n <= MAX_LAYER_SIZE:
                raise SpecError(f"network.sizes[{i}] = {n!r}: a layer size must be an integer "
                                f"in 1..{MAX_LAYER_SIZE}")
        a = self.activations
        if not _is_seq(a) or len(a) != len(s) - 1:
            raise SpecError(f"network.activations = {a!r}: give one activation per source layer "
                            f"0..L-1, i.e. {len(s) - 1} names for sizes {list(s)}")
        for i, name in enumerate(a):
            if name not in ACTIVATIONS:
                raise SpecError(f"network.activations[{i}] = {name!r} is unknown; "
                                f"use one of {', '.join(ACTIVATIONS)}")
        if not _is_int(self.iterations) or not 1 <= self.iterations <= MAX_ITERATIONS:
            raise SpecError(f"network.iterations = {self.iterations!r}: T must be an integer "
                            f"in 1..{MAX_ITERATIONS}")
        for fld, allowed in (("init", INITS), ("learning", LEARNING_RULES),
                             ("schedule", SCHEDULES), ("stop", STOPS)):
            if getattr(self, fld) not in allowed:
                raise SpecError(f"network.{fld} = {getattr(self, fld)!r} is unknown; "
                                f"use one of {', '.join(allowed)}")
        if not _is_int(self.table_bits) or not 1 <= self.table_bits <= MAX_TABLE_BITS:
            raise SpecError(f"network.table_bits = {self.table_bits!r}: an activation table may "
                            f"have 2..2**{MAX_TABLE_BITS} entries; set table_bits in "
                            f"1..{MAX_TABLE_BITS}")
        for fld in ("gamma", "alpha"):
            if not isinstance(getattr(self, fld), FixedConst):
                raise SpecError(f"rates.{fld} must be a FixedConst, not {getattr(self, fld)!r}")
        if self.gamma.value > 1:
            raise SpecError(f"rates.gamma = {self.gamma.value:g}: a state step larger than 1 "
                            "overshoots each node's own prediction (x - γe passes μ), and the "
                            "relaxation diverges or saturates; use 0 < gamma <= 1 (0.05-0.5 is "
                            "usual, the digits preset uses 0.125)")
        if self.alpha.value > 1:
            raise SpecError(f"rates.alpha = {self.alpha.value:g}: a learning rate larger than 1 "
                            "moves each weight past the value that cancels its error and "
                            "training diverges; use 0 < alpha <= 1 (0.001-0.1 is usual, the "
                            "digits preset uses 0.03125)")
        if not isinstance(self.formats, Formats):
            raise SpecError(f"formats must be a Formats, not {self.formats!r}")
        if not isinstance(self.alpha_runtime, bool):
            raise SpecError(f"rates.alpha_runtime = {self.alpha_runtime!r}: give true or false")

    def _validate_clamp(self):
        for k, m in self.clamp.items():
            ok = len(m) == self.n_layers and all(
                isinstance(v, bool) or (isinstance(v, tuple) and len(v) == self.sizes[l]
                                        and all(isinstance(b, bool) for b in v))
                for l, v in enumerate(m))
            if not ok:
                raise SpecError(f"clamp.{k} = {_short(m)}: give {self.n_layers} entries, one "
                                "per layer: true (held fixed), false (free) or a list of one "
                                "boolean per node of that layer (per-node clamping)")

    def _validate_node_clamp(self):
        nc = self.node_clamp
        if not _is_seq(nc) or not all(_is_int(v) and 0 <= v <= self.L for v in nc):
            raise SpecError(f"network.node_clamp = {nc!r}: give layer indices in 0..{self.L}")
        layers = set(nc) | {l for m in self.clamp.values() for l, v in enumerate(m)
                            if isinstance(v, tuple)}
        object.__setattr__(self, "node_clamp", tuple(sorted(layers)))

    def _validate_formats(self):
        F = self.formats
        x, e, w, b, acc = F.x, F.e, F.w, F.b, F.acc
        g = F.w_guard
        if not isinstance(g, int) or isinstance(g, bool) or not 0 <= g <= 16:
            raise SpecError(f"formats.w_guard = {g!r}: give 0..16 guard bits")
        if w.width + g > MAX_STORAGE_WIDTH:
            raise SpecError(f"formats.w_guard = {g}: the weight memories would be {w.width + g} "
                            f"bits wide (limit {MAX_STORAGE_WIDTH}); use fewer guard bits")
        for k in ("x", "e", "w", "b"):
            if getattr(F, k).width > MAX_STORAGE_WIDTH:
                raise SpecError(f"formats.{k}.width = {getattr(F, k).width}: node, weight and "
                                f"bias formats may be at most {MAX_STORAGE_WIDTH} bits wide")
        if acc.frac > MAX_ACC_FRAC:
            raise SpecError(f"formats.acc.frac = {acc.frac} is over {MAX_ACC_FRAC}; use fewer "
                            "fraction bits in x, e or w")
        if x.int_bits < 2:
            raise SpecError(f"formats.x = {x}: the x format must represent 1.0 (f'(x) = 1 is "
                            "stored in it); use width - frac >= 2")
        need_frac = max(x.frac, e.frac) + w.frac
        if acc.frac < need_frac or acc.frac < b.frac:
            raise SpecError(
                f"formats.acc.frac = {acc.frac} is below the product fraction bits "
                f"max(x.frac, e.frac) + w.frac = {need_frac} (or b.frac = {b.frac}); "
                f"set formats.acc.frac = {max(need_frac, b.frac)}")
        bits = self.datapath_bits()
        for l in range(1, self.n_layers):
            for kind, need in (("prediction", bits.pred_acc[l - 1]),
                               ("feedback", bits.feedback_acc[l - 1])):
                if need > acc.width:
                    raise SpecError(
                        f"formats.acc.width = {acc.width} is too narrow for the {kind} sum of "
                        f"connection {l} ({self.sizes[l - 1]}→{self.sizes[l]}), which can need "
                        f"{need} bits; set formats.acc.width >= {need} or narrow x/e/w")
        for what, need, fix in (
                ("state update γ·(f'(x)ε − e)", bits.update, "narrow formats.e or rates.gamma"),
                ("weight update α·e·f(x)", bits.weight_update, "narrow formats.e/x or rates.alpha"),
                ("bias update α·e", bits.bias_update, "narrow formats.e or rates.alpha")):
            if need > MAX_DATAPATH_BITS:
                raise SpecError(f"the {what} can need {need} bits, over the "
                                f"{MAX_DATAPATH_BITS}-bit datapath limit; {fix}")
        shift_w = e.frac + x.frac + self.alpha.frac - w.frac - g
        shift_b = e.frac + self.alpha.frac - b.frac
        if shift_w < 0 or shift_b < 0:
            raise SpecError(f"formats.w.frac + w_guard = {w.frac + g} / formats.b.frac = "
                            f"{b.frac} exceed the fraction bits of the learning product; add "
                            f"fraction bits to rates.alpha or formats.e (or fewer guard bits)")

    def datapath_bits(self, acc_frac: int | None = None) -> DatapathBits:
        """Worst-case bits of every wide intermediate, from the formats and sizes."""
        F = self.formats
        x, e, w, b = F.x, F.e, F.w, F.b
        acc = QFormat(MAX_DATAPATH_BITS, acc_frac) if acc_frac is not None else F.acc
        pred, fb = [], []
        for l in range(1, self.n_layers):
            a_max = activation_bound(self.activations[l - 1], x)
            mag = (((-x.min_int) << (acc.frac - x.frac))
                   + ((self.sizes[l - 1] * (-w.min_int) * a_max) << (acc.frac - x.frac - w.frac))
                   + ((-b.min_int) << (acc.frac - b.frac)))
            pred.append(_bits(mag))
            fb.append(_bits((self.sizes[l] * (-e.min_int) * (-w.min_int))
                            << (acc.frac - e.frac - w.frac)))
        one = 1 << x.frac
        upd = self.gamma.mantissa * ((-e.min_int) * one + ((-e.min_int) << x.frac))
        a_max = max(activation_bound(a, x) for a in self.activations)
        # the largest α mantissa: the register's when α is one
        am = (1 << self.alpha_bits) - 1 if self.alpha_runtime else self.alpha.mantissa
        wu = am * (-e.min_int) * a_max
        bu = am * (-e.min_int)
        # +1: the rounding constant added before the shift
        return DatapathBits(tuple(pred), tuple(fb), _bits(upd) + 1, _bits(wu) + 1, _bits(bu) + 1)

    # ---- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format_version": SPEC_FORMAT_VERSION,
            "name": self.name,
            "network": {
                "sizes": list(self.sizes),
                "activations": list(self.activations),
                "iterations": int(self.iterations),
                "init": self.init,
                "learning": self.learning,
                "schedule": self.schedule,
                "table_bits": int(self.table_bits),
                # omitted when "none": the digests of specs written before the stop existed
                **({"stop": self.stop} if self.stop != "none" else {}),
                **({"node_clamp": list(self.node_clamp)} if self.node_clamp else {}),
            },
            "formats": self.formats.to_dict(),
            "rates": {"gamma": self.gamma.to_dict(), "alpha": self.alpha.to_dict(),
                      **({"alpha_runtime": True} if self.alpha_runtime else {})},
            "clamp": {k: [list(e) if isinstance(e, tuple) else e for e in v]
                      for k, v in sorted(self.clamp.items())},
        }

    @property
    def digest(self) -> str:
        """A stable 16-hex-digit digest of the canonical spec (name excluded)."""
        d = self.to_dict()
        d.pop("name")
        blob = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def to_toml(self) -> str:
        head = (f"# pcforge spec '{self.name}' — digest {self.digest}\n"
                f"# gamma = {self.gamma.value:g}, alpha = {self.alpha.value:g}; "
                f"formats: x {self.formats.x}, e {self.formats.e}, w {self.formats.w}"
                f"{f' (+{self.formats.w_guard} guard bits)' if self.formats.w_guard else ''}, "
                f"b {self.formats.b}, acc {self.formats.acc}\n")
        return head + tomli_w.dumps(self.to_dict())

    def save(self, path) -> Path:
        """Write the spec as TOML (atomically: a temporary file renamed into place)."""
        path = Path(path)
        atomic_write(path, self.to_toml())
        return path

    @classmethod
    def from_dict(cls, d: dict) -> "PCSpec":
        d = dict(d)
        _check_keys("spec", d, {"format_version", "name", "network", "formats", "rates", "clamp"})
        ver = d.get("format_version", SPEC_FORMAT_VERSION)
        if ver != SPEC_FORMAT_VERSION:
            raise SpecError(f"format_version = {ver!r}: this pcforge reads version "
                            f"{SPEC_FORMAT_VERSION}; regenerate the spec")
        net = dict(d.get("network", {}))
        _check_keys("network", net, {"sizes", "activations", "iterations", "init", "learning",
                                     "schedule", "table_bits", "stop", "node_clamp"})
        for req in ("sizes", "activations"):
            if req not in net:
                raise SpecError(f"network.{req} is missing; add it under [network]")
        fmts = d.get("formats", {})
        _check_keys("formats", fmts, {"x", "e", "w", "b", "acc", "w_guard"})
        kw = {}
        if "w_guard" in fmts:
            g = fmts["w_guard"]
            if not _is_int(g):
                raise SpecError(f"formats.w_guard = {g!r} must be an integer (guard bits)")
            kw["w_guard"] = int(g)
        for k, v in fmts.items():
            if k == "w_guard":
                continue
            _check_keys(f"formats.{k}", v, {"width", "frac", "rounding", "overflow"})
            try:
                kw[k] = QFormat(**v)
            except (TypeError, ValueError) as exc:
                raise SpecError(f"formats.{k}: {exc}") from None
        rates = d.get("rates", {})
        _check_keys("rates", rates, {"gamma", "alpha", "alpha_runtime"})
        rkw = {}
        if "alpha_runtime" in rates:
            if not isinstance(rates["alpha_runtime"], bool):
                raise SpecError(f"rates.alpha_runtime = {rates['alpha_runtime']!r}: give true "
                                "or false")
            rkw["alpha_runtime"] = rates["alpha_runtime"]
        for k, v in rates.items():
            if k == "alpha_runtime":
                continue
            _check_keys(f"rates.{k}", v, {"mantissa", "frac"})
            try:
                rkw[k] = FixedConst(**v)
            except (TypeError, ValueError) as exc:
                raise SpecError(f"rates.{k}: {exc}") from None
        return cls(formats=Formats(**kw), clamp=d.get("clamp"), name=d.get("name", "pcn"),
                   **net, **rkw)

    @classmethod
    def load(cls, path) -> "PCSpec":
        """Read a spec TOML file; malformed files raise :class:`SpecError` naming the line."""
        path = Path(path)
        if not path.is_file():
            raise SpecError(f"spec file {path} does not exist; write one with "
                            "`pcforge train --out DIR` or PCSpec.save")
        try:
            d = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"{path} is not valid TOML: {exc}") from None
        try:
            return cls.from_dict(d)
        except SpecError as exc:
            raise SpecError(f"{path}: {exc}") from None

    def replace(self, **changes) -> "PCSpec":
        """A copy with fields changed (validated again)."""
        return replace(self, **changes)


def _is_seq(v) -> bool:
    return isinstance(v, (list, tuple))


def _short(m) -> str:
    """A clamp mask for a message (per-node entries shortened)."""
    return "[" + ", ".join(f"<{len(v)} booleans>" if _is_seq(v) else repr(v) for v in m) + "]"


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_keys(where: str, d, allowed: set):
    if not isinstance(d, dict):
        raise SpecError(f"{where} must be a table, not {d!r}")
    extra = set(d) - allowed
    if extra:
        raise SpecError(f"{where} has unknown key(s) {', '.join(sorted(extra))}; "
                        f"allowed: {', '.join(sorted(allowed))}")

