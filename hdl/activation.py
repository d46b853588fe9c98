"""``ActivationUnit``: f(x) and f'(x) for every activation a spec uses, selected at run time.

One unit sits in every MAC lane. Its input is a value node x (signed, ``X.width`` bits, ``X.frac``
fraction bits) and the index of the layer it belongs to; its outputs are f(x) in the X format
and f'(x) as an integer with X's fraction bits (1.0 = 2**X.frac), exactly as
:func:`pcforge.model.activations.fixed_activation` computes them:

* identity, relu, hardtanh: comparisons and clips (exact);
* tanh: two ROMs (tanh and 1 − tanh²) holding the integers of
  :func:`pcforge.model.activations.tanh_table`, addressed by ``(clip(x, lo, hi) − lo) >> shift``.

Latency: 1 cycle for every kind (the ROMs' registered read; the piecewise-linear kinds are
registered to match). ``layer`` must be presented with ``x``; the output mux uses ``layer_out``,
the same index one cycle later (the pipeline carries it).
"""
from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..model.activations import tanh_table
from ..model.spec import PCSpec

__all__ = ["ActivationUnit"]


class ActivationUnit(wiring.Component):
    """Ports: ``x`` (In, signed X.width), ``layer_out`` (In, which layer's f applies to the value
    presented one cycle earlier), ``f`` / ``d`` (Out, signed X.width). Latency 1 cycle."""

    def __init__(self, spec: PCSpec):
        self.spec = spec
        self.kinds = sorted(set(spec.activations))
        X = spec.formats.x
        super().__init__({"x": In(signed(X.width)),
                          "layer_out": In(range(max(spec.L, 2))),
                          "f": Out(signed(X.width)), "d": Out(signed(X.width))})

    def elaborate(self, platform):
        m = Module()
        X = self.spec.formats.x
        one = 1 << X.frac
        x = self.x
        outs = {}
        for kind in self.kinds:
            f = Signal(signed(X.width), name=f"{kind}_f")
            d = Signal(signed(X.width), name=f"{kind}_d")
            if kind == "identity":
                m.d.sync += [f.eq(x), d.eq(one)]
            elif kind == "relu":
                m.d.sync += [f.eq(Mux(x > 0, x, 0)), d.eq(Mux(x > 0, one, 0))]
            elif kind == "hardtanh":
                m.d.sync += [f.eq(Mux(x > one, one, Mux(x < -one, -one, x))),
                             d.eq(Mux((x > -one) & (x < one), one, 0))]
            elif kind == "tanh":
                tab = tanh_table(X, self.spec.table_bits)
                m.submodules.tanh_f = rom_f = memory.Memory(
                    shape=signed(X.width), depth=tab.entries, init=[int(v) for v in tab.f])
                m.submodules.tanh_d = rom_d = memory.Memory(
                    shape=signed(X.width), depth=tab.entries, init=[int(v) for v in tab.d])
                clipped = Mux(x < tab.lo, tab.lo, Mux(x > tab.hi, tab.hi, x))
                addr = ((clipped - tab.lo) >> tab.shift)[:max(1, (tab.entries - 1).bit_length())]
                for rom, out in ((rom_f, f), (rom_d, d)):
                    rd = rom.read_port()
                    m.d.comb += [rd.addr.eq(addr), out.eq(rd.data)]
            else:                                           # pragma: no cover - spec validates
                raise ValueError(f"no hardware for activation {kind!r}")
            outs[kind] = (f, d)
        with m.Switch(self.layer_out):
            for l, kind in enumerate(self.spec.activations):
                with m.Case(l):
                    m.d.comb += [self.f.eq(outs[kind][0]), self.d.eq(outs[kind][1])]
        return m
