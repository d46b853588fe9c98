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

**Rows per token** (``rows`` = R, 1 or 2): with R = 2 every sweep over a weight memory takes
two rows at once — each lane has two multipliers, the weights of even rows and of odd rows
sit in two memories per lane (the *halves*), read at one address: W_l[i, j] at
``(i div 2) · ceil(n_{l−1} / P) + j div P`` of half ``i mod 2``; the biases likewise, b_l[i]
at ``i div 2`` of half ``i mod 2``. With P even, rows 2q and 2q + 1 end in lanes of the same
parity as their own, so a lane's node unit always takes the sum of its own half. The host
addresses a weight (a bias) as ``2 · address + half`` (``weight_location``; a bias keeps its
row index i as its address), so the drivers need not know.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from ..spec import PCSpec, SpecError

__all__ = ["CoreGeometry", "MAX_LANES", "ROWS_PER_TOKEN"]

#: The largest lane count the generator builds.
MAX_LANES = 256
#: The rows a token may take (multipliers per lane in weight sweeps).
ROWS_PER_TOKEN = (1, 2)


@dataclass(frozen=True)
class CoreGeometry:
    """Where values live in a core of ``lanes`` MAC lanes built for ``spec``."""

    spec: PCSpec
    lanes: int
    rows: int = 1

    def __post_init__(self):
        if not isinstance(self.lanes, int) or isinstance(self.lanes, bool) \
                or not 1 <= self.lanes <= MAX_LANES:
            raise SpecError(f"lanes = {self.lanes!r}: the core needs 1..{MAX_LANES} MAC lanes")
        if self.rows not in ROWS_PER_TOKEN:
            raise SpecError(f"rows = {self.rows!r}: a token takes 1 or 2 rows")
        if self.rows == 2 and self.lanes % 2:
            raise SpecError(f"rows = 2 with lanes = {self.lanes}: two rows per token need an "
                            "even lane count (rows 2q and 2q + 1 must end in lanes of their "
                            "own parity); use an even --lanes or rows = 1")

    # ---- banking ------------------------------------------------------------------------
    def depth(self, layer: int) -> int:
        """Words per lane of layer ``layer``'s node banks: ceil(n_l / P)."""
        return ceil(self.spec.sizes[layer] / self.lanes)

    def node_location(self, layer: int, j: int) -> tuple[int, int]:
        """(lane, address) of node j of layer ``layer``."""
        return j % self.lanes, j // self.lanes

    def row_groups(self, l: int) -> int:
        """Rows of connection l a sweep visits as one: ceil(n_l / R) (R = ``rows``)."""
        return -(-self.spec.sizes[l] // self.rows)

    def weight_depth(self, l: int) -> int:
        """Words per lane (and half) of connection l's weight memory:
        ceil(n_l / R) · ceil(n_{l−1} / P)."""
        return self.row_groups(l) * self.depth(l - 1)

    def weight_location(self, l: int, i: int, j: int) -> tuple[int, int]:
        """(lane, host address) of W_l[i, j]: the word's address, and with R = 2 the word's
        address · 2 + its half (i mod 2)."""
        word = (i // self.rows) * self.depth(l - 1) + j // self.lanes
        return j % self.lanes, word * self.rows + i % self.rows

    def bias_depth(self, l: int) -> int:
        """Words of each half of connection l's bias memory: ceil(n_l / R)."""
        return self.row_groups(l)

    # ---- work per sweep -----------------------------------------------------------------
    def pred_tokens(self, l: int) -> int:
        """Tokens of a sweep of connection l's weights (prediction, feedback, learning):
        ceil(n_l / R) · ceil(n_{l−1} / P)."""
        return self.row_groups(l) * self.depth(l - 1)

    #: a column sweep (feedback) visits the same weights in the other order
    feedback_tokens = pred_tokens

    def node_tokens(self, layer: int) -> int:
        """Tokens of a lane-parallel pass over layer ``layer``: ceil(n_l / P)."""
        return self.depth(layer)
