"""``benchmarks/bench_lane_cost.py`` attributes the core's flip-flops to the registers the
generator makes: its counts follow the pipeline's own definition of what rides down to where."""
import sys
from pathlib import Path

from pcforge.model.arch.schedule import STAGES
from pcforge.model.presets import digits_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_lane_cost as blc  # noqa: E402


def test_lane_cost_counts_the_carried_operands_per_lane():
    """Per lane, the error word is registered at the operand select stage and carried to the
    node unit's difference stage (one E-wide register per stage, ``el_{lane}_s{stage}``): the
    benchmark's count at 1 and 3 lanes says exactly that, the multiplier's registers scale with
    lanes, and the total grows by the sum of the per-register slopes."""
    spec = digits_spec(hidden=(16,))
    one, three = blc.register_bits(spec, 1), blc.register_bits(spec, 3)
    e_bits = spec.formats.e.width * (STAGES["diff"] - STAGES["sel"] + 1)
    assert one["el_#_s#"] == e_bits and three["el_#_s#"] == 3 * e_bits
    assert three["prod_#_#"] == 3 * one["prod_#_#"] > 0
    per_lane = {n: (three[n] - one[n]) / 2 for n in set(one) | set(three)}
    assert sum(three.values()) - sum(one.values()) == 2 * sum(per_lane.values())
    assert sum(per_lane.values()) > 1000           # the lane's registers, not a rounding error
