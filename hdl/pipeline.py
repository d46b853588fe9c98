"""``TokenPipeline``: the core's token registers and the helpers that carry datapath values down
its stages.

A *token* (:func:`pcforge.hdl.controller.token_layout`) says what the work in a stage is: the
controller's issue register is stage 0, and every cycle each token moves one stage down, to
stage :data:`~pcforge.model.arch.schedule.PIPELINE_DEPTH` where the last write happens. A value
computed for the token in stage k is registered as ``stage(value, name, k + 1)`` to stay beside
it. Datapath registers are reset-less (a reset fanned out to thousands of flip-flops was the
ECP5's critical net); only the tokens' valid bits are cleared by reset.
"""
from __future__ import annotations

from amaranth import Mux, ResetSignal, Shape, Signal

from ..model.arch.schedule import PIPELINE_DEPTH

__all__ = ["TokenPipeline"]


class TokenPipeline:
    """The token registers of stages 1..PIPELINE_DEPTH behind ``issue`` (stage 0) in module
    ``m``; ``tokens[k]`` is the token in stage k. Latency: one cycle per stage."""

    def __init__(self, m, issue, layout):
        self.m = m
        t = [issue] + [Signal(layout, name=f"tok{k}", reset_less=True)
                       for k in range(1, PIPELINE_DEPTH + 1)]
        for k in range(1, PIPELINE_DEPTH + 1):
            m.d.sync += t[k].eq(t[k - 1])
            with m.If(ResetSignal("sync")):
                m.d.sync += t[k].valid.eq(0)
        self.tokens = t

    def stage(self, sig, name: str, k: int) -> Signal:
        """``sig`` registered into stage ``k`` (a reset-less register named ``{name}{k}``)."""
        reg = Signal(Shape.cast(sig.shape()), name=f"{name}{k}", reset_less=True)
        self.m.d.sync += reg.eq(sig)
        return reg

    def lane_field(self, field: str, k: int, lanes: int) -> list:
        """Token field ``field`` of stage ``k`` as one register per lane, each loaded from
        stage k − 1 gated by that lane's ``lane_mask`` bit (0 on a lane whose source node does
        not exist): the lanes' own copies, placed beside them, instead of one register fanned
        out across the chip (timing: at 16 lanes the lane-layer select's route was the ECP5's
        critical path). Yosys merges flip-flops with the same input: the gate keeps copies of
        lanes with different masks apart, but lanes whose mask bits are the same function of
        the layer share one copy (digits at 16 lanes: lanes 0–9 are active in every layer, so
        two copies remain; what follows a copy must tolerate a route across the lanes). A
        lane outside the mask reads 0, which is harmless only where the lane's work is masked
        anyway (its products, weight writes and node writes all are)."""
        tk = self.tokens[k - 1]
        src = getattr(tk, field)
        return [self.stage(Mux(tk.lane_mask[p], src, 0), f"{field}_{p}_s", k)
                for p in range(lanes)]

    def carry(self, sigs, name: str, k: int) -> list:
        """One value per lane registered into stage ``k`` (``{name}_{lane}_s{k}``)."""
        return [self.stage(s, f"{name}_{p}_s", k) for p, s in enumerate(sigs)]

    def chain(self, sig, name: str, k0: int, k1: int) -> dict:
        """``sig`` (valid at stage k0) registered down to stage k1; returns {k: value}."""
        out = {k0: sig}
        for k in range(k0 + 1, k1 + 1):
            out[k] = self.stage(out[k - 1], name, k)
        return out

    def chains(self, sigs, name: str, k0: int, k1: int) -> list:
        """:meth:`chain` of one value per lane."""
        return [self.chain(s, f"{name}_{p}_s", k0, k1) for p, s in enumerate(sigs)]
