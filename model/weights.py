"""``Weights``: the float64 parameters W_1..W_L, b_1..b_L of a network, checked against a spec.

Stored as ``.npz`` with arrays ``W1..WL``, ``b1..bL`` and the spec's ``spec_digest``, ``sizes``
and ``activations``, checked on load: weights are refused under a spec of other sizes or other
activations (the same numbers would mean another function). Other spec fields (formats, rates,
T, the stop) may differ: the float weights are quantised for the spec they are used with.
Shapes: ``W_l`` is ``(n_l, n_{l-1})``, ``b_l`` is ``(n_l,)``.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .files import atomic_write
from .spec import PCSpec

__all__ = ["Weights", "WeightsError"]


class WeightsError(ValueError):
    """Weights that do not fit the spec, or a malformed weights file."""


@dataclass
class Weights:
    W: list      # W[l-1] is W_l, float64 (n_l, n_{l-1})
    b: list      # b[l-1] is b_l, float64 (n_l,)
    #: the digest of the spec the weights were saved under ("" when not read from a file)
    trained_under: str = field(default="", compare=False)

    def check(self, spec: PCSpec) -> "Weights":
        """Raise :class:`WeightsError` naming the first array whose shape does not match."""
        if len(self.W) != spec.L or len(self.b) != spec.L:
            raise WeightsError(f"weights have {len(self.W)} weight and {len(self.b)} bias arrays;"
                               f" spec '{spec.name}' with sizes {list(spec.sizes)} needs {spec.L}"
                               " of each")
        for l in range(1, spec.L + 1):
            W, b = np.asarray(self.W[l - 1]), np.asarray(self.b[l - 1])
            if W.shape != spec.weight_shape(l):
                raise WeightsError(f"W{l} has shape {W.shape}; spec sizes {list(spec.sizes)} "
                                   f"need {spec.weight_shape(l)} (n_{l}, n_{l - 1})")
            if b.shape != (spec.sizes[l],):
                raise WeightsError(f"b{l} has shape {b.shape}; spec needs ({spec.sizes[l]},)")
            if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
                raise WeightsError(f"W{l} or b{l} holds NaN or infinite values")
        return self

    @classmethod
    def init(cls, spec: PCSpec, rng: np.random.Generator, scheme: str = "linear") -> "Weights":
        """Random initial weights.

        ``linear`` (default): W and b uniform in ±1/√n_{l-1}, PyTorch's ``nn.Linear`` default,
        which the public PC libraries inherit; ``he``: W He-uniform (±√(6/n_{l-1})), b = 0.
        """
        if scheme not in ("linear", "he"):
            raise ValueError(f"unknown init scheme {scheme!r}; use linear or he")
        W, b = [], []
        for l in range(1, spec.L + 1):
            n_out, n_in = spec.weight_shape(l)
            k = 1.0 / np.sqrt(n_in) if scheme == "linear" else np.sqrt(6.0 / n_in)
            W.append(rng.uniform(-k, k, size=(n_out, n_in)))
            b.append(rng.uniform(-k, k, size=n_out) if scheme == "linear" else np.zeros(n_out))
        return cls(W, b)

    def copy(self) -> "Weights":
        return Weights([w.copy() for w in self.W], [v.copy() for v in self.b])

    def save(self, path, spec: PCSpec) -> Path:
        """Write ``.npz`` atomically (a temporary file renamed into place)."""
        self.check(spec)
        arrays = {f"W{l}": np.asarray(self.W[l - 1], np.float64) for l in range(1, spec.L + 1)}
        arrays |= {f"b{l}": np.asarray(self.b[l - 1], np.float64) for l in range(1, spec.L + 1)}
        arrays["sizes"] = np.array(spec.sizes)
        arrays["spec_digest"] = np.array(spec.digest)
        arrays["activations"] = np.array(spec.activations)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return atomic_write(path, buf.getvalue())

    @classmethod
    def load(cls, path, spec: PCSpec) -> "Weights":
        """Read weights and check them against ``spec`` (shapes, finite values)."""
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"weights file {path} does not exist; train one with "
                               "`pcforge train --out DIR`")
        size = path.stat().st_size
        if size == 0:
            raise WeightsError(f"weights file {path} is empty (0 bytes): an interrupted write? "
                               "Train again with `pcforge train --out DIR`")
        if not zipfile.is_zipfile(path):
            head = path.read_bytes()[:6]
            kind = ("a single .npy array, not an .npz archive" if head.startswith(b"\x93NUMPY")
                    else f"not an .npz archive ({size} bytes starting {head!r})")
            raise WeightsError(f"{path} is {kind}; pcforge weights are the .npz file "
                               "`pcforge train` writes (W1..WL, b1..bL, sizes, spec_digest)")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise WeightsError(f"{path} is not a readable .npz weights file: {exc}") from None
        if "sizes" in data and tuple(int(v) for v in data["sizes"]) != tuple(spec.sizes):
            raise WeightsError(f"{path} holds weights for sizes {list(map(int, data['sizes']))}, "
                               f"but the spec has sizes {list(spec.sizes)}; pass the spec the "
                               "weights were trained with")
        if "activations" in data and tuple(map(str, data["activations"])) != spec.activations:
            theirs = str(data["spec_digest"]) if "spec_digest" in data else "unknown"
            raise WeightsError(
                f"{path} was trained under spec {theirs} with activations "
                f"{list(map(str, data['activations']))}; the spec given ({spec.digest}) has "
                f"activations {list(spec.activations)}, so the same weights would compute "
                "another function. Pass the spec saved beside the weights (spec.toml), or train "
                "for this spec (`pcforge train --spec S --out DIR`)")
        W, b = [], []
        for l in range(1, spec.L + 1):
            for key, out in ((f"W{l}", W), (f"b{l}", b)):
                if key not in data:
                    raise WeightsError(f"{path} has no array '{key}' (found "
                                       f"{', '.join(sorted(data))}); spec needs W1..W{spec.L}, "
                                       f"b1..b{spec.L}")
                out.append(np.asarray(data[key], dtype=np.float64))
        try:
            w = cls(W, b).check(spec)
        except WeightsError as exc:
            raise WeightsError(f"{path}: {exc}") from None
        w.trained_under = str(data["spec_digest"]) if "spec_digest" in data else ""
        return w
