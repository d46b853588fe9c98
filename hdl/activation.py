"""``ActivationUnit``: f(x) and f'(x) for every activation a spec uses, selected at run time.

One unit sits in every MAC lane. Its input is a value node x (signed, ``X.width`` bits, ``X.frac``
fraction bits) and the index of the layer it belongs to; its outputs are f(x) in the X format
and f'(x) as an integer with X's fraction bits (1.0 = 2**X.frac), exactly as
:func:`pcforge.model.activations.fixed_activation` computes them:

* identity, relu, hardtanh: comparisons and clips (exact), selected by ``layer`` and registered.
  The comparisons are made on ``x_by_layer[l]``, the word of every layer l that ``x`` is
  selected from (each lane's own registers), so the layer select reaches the output register
  through the value mux and one gate, not through a comparison after it (timing: at 16 lanes
  on the ECP5 the select's route from another lane plus a comparison after the mux was the
  critical path);
* tanh: two ROMs (tanh and 1 − tanh²) holding the integers of
  :func:`pcforge.model.activations.tanh_table`, addressed by ``(clip(x, lo, hi) − lo) >> shift``.

Latency: 1 cycle for every kind (the ROMs' registered read; the piecewise-linear kinds are
registered to match). ``layer`` must be presented with ``x`` and ``x`` must equal
``x_by_layer[layer]`` (for ``layer`` < L); a spec with tanh layers also
needs ``layer_out``, the same index one cycle later (the pipeline carries it), to pick the ROM
output for tanh layers.
"""
from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ..model.activations import tanh_table
from ..model.spec import PCSpec

__all__ = ["ActivationUnit"]


class ActivationUnit(wiring.Component):
    """Ports: ``x`` (In, signed X.width), ``x_by_layer`` (In, L words of signed X.width: the
    lane's word of each layer 0..L−1, ``x`` being the one of ``layer``), ``layer`` (In, whose f
    applies to ``x``), ``layer_out`` (In, ``layer`` one cycle later), ``f`` / ``d`` (Out, signed
    X.width). Latency 1 cycle."""

    def __init__(self, spec: PCSpec):
        self.spec = spec
        self.kinds = sorted(set(spec.activations))
        X = spec.formats.x
        super().__init__({"x": In(signed(X.width)),
                          "x_by_layer": In(data.ArrayLayout(signed(X.width), spec.L)),
                          "layer": In(range(max(spec.L, 2))),
                          "layer_out": In(range(max(spec.L, 2))),
                          "f": Out(signed(X.width)), "d": Out(signed(X.width))})

    def elaborate(self, platform):
        m = Module()
        X = self.spec.formats.x
        one = 1 << X.frac
        x = self.x
        acts = self.spec.activations
        # per kind: (f, f') from the selected word ``x`` and the conditions on ``xl``, the word
        # of the layer in question (the same number whenever that layer is selected)
        logic = {}
        for kind in self.kinds:
            if kind == "identity":
                logic[kind] = lambda xl: (x, one)
            elif kind == "relu":
                logic[kind] = lambda xl: (Mux(xl > 0, x, 0), Mux(xl > 0, one, 0))
            elif kind == "hardtanh":
                logic[kind] = lambda xl: (Mux(xl > one, one, Mux(xl < -one, -one, x)),
                                          Mux((xl > -one) & (xl < one), one, 0))
            elif kind != "tanh":                            # pragma: no cover - spec validates
                raise ValueError(f"no hardware for activation {kind!r}")
        f_reg = Signal(signed(X.width), reset_less=True)
        d_reg = Signal(signed(X.width), reset_less=True)
        if logic:
            with m.Switch(self.layer):
                for l, kind in enumerate(acts):
                    if kind in logic:
                        f_l, d_l = logic[kind](self.x_by_layer[l])
                        with m.Case(l):
                            m.d.sync += [f_reg.eq(f_l), d_reg.eq(d_l)]
        m.d.comb += [self.f.eq(f_reg), self.d.eq(d_reg)]
        if "tanh" in self.kinds:
            tab = tanh_table(X, self.spec.table_bits)
            m.submodules.tanh_f = rom_f = memory.Memory(
                shape=signed(X.width), depth=tab.entries, init=[int(v) for v in tab.f])
            m.submodules.tanh_d = rom_d = memory.Memory(
                shape=signed(X.width), depth=tab.entries, init=[int(v) for v in tab.d])
            clipped = Mux(x < tab.lo, tab.lo, Mux(x > tab.hi, tab.hi, x))
            addr = ((clipped - tab.lo) >> tab.shift)[:max(1, (tab.entries - 1).bit_length())]
            rd_f, rd_d = rom_f.read_port(), rom_d.read_port()
            m.d.comb += [rd_f.addr.eq(addr), rd_d.addr.eq(addr)]
            tanh_layers = [l for l, kind in enumerate(acts) if kind == "tanh"]
            with m.Switch(self.layer_out):
                with m.Case(*tanh_layers):
                    m.d.comb += [self.f.eq(rd_f.data), self.d.eq(rd_d.data)]
        return m
