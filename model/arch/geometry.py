"""``CoreGeometry``: where every value lives in the generated core and how long each sweep is.

The one place for the banking of :class:`pcforge.hdl.PCCore` (``lanes`` = P MAC lanes, shared by
all connections); the generator, the host drivers, the schedule and the cycle model read it.

* node j of layer l (x_l, e_l, the cached prediction of connection l) lives in lane
  ``j mod P`` at address ``j div P``; each lane's bank of layer l is ``ceil(n_l / P)`` deep;
* weight W_l[i, j] lives in lane ``j mod P`` of connection l's weight memory at address
  ``i · ceil(n_{l-1} / P) + j div P`` — the lanes split the *source* (column) index, so a
  prediction row is P products per cycle summed by an adder tree, and a feedback column sum is
  lane-local;
* bias b_l[i] lives in connection l's bias memory at address i.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from ..spec import PCSpec, SpecError

__all__ = ["CoreGeometry", "MAX_LANES"]

#: The largest lane count the generator builds.
MAX_LANES = 256


@dataclass(frozen=True)
class CoreGeometry:
    """Where values live in a core of ``lanes`` MAC lanes built for ``spec``."""

    spec: PCSpec
    lanes: int

    def __post_init__(self):
        if not isinstance(self.lanes, int) or isinstance(self.lanes, bool) \
                or not 1 <= self.lanes <= MAX_LANES:
            raise SpecError(f"lanes = {self.lanes!r}: the core needs 1..{MAX_LANES} MAC lanes")

    # ---- banking ------------------------------------------------------------------------
    def depth(self, layer: int) -> int:
        """Words per lane of layer ``layer``'s node banks: ceil(n_l / P)."""
        return ceil(self.spec.sizes[layer] / self.lanes)

    def node_location(self, layer: int, j: int) -> tuple[int, int]:
        """(lane, address) of node j of layer ``layer``."""
        return j % self.lanes, j // self.lanes

    def weight_depth(self, l: int) -> int:
        """Words per lane of connection l's weight memory: n_l · ceil(n_{l−1} / P)."""
        return self.spec.sizes[l] * self.depth(l - 1)

    def weight_location(self, l: int, i: int, j: int) -> tuple[int, int]:
        """(lane, address) of W_l[i, j]."""
        return j % self.lanes, i * self.depth(l - 1) + j // self.lanes

    # ---- work per sweep -----------------------------------------------------------------
    def pred_tokens(self, l: int) -> int:
        """Tokens of a row sweep of connection l (prediction, learning): n_l · ceil(n_{l−1}/P)."""
        return self.spec.sizes[l] * self.depth(l - 1)

    #: a column sweep (feedback) visits the same weights in the other order
    feedback_tokens = pred_tokens

    def node_tokens(self, layer: int) -> int:
        """Tokens of a lane-parallel pass over layer ``layer``: ceil(n_l / P)."""
        return self.depth(layer)
