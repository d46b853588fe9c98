"""The host protocol's words (:mod:`pcforge.hdl.protocol`) against a naive statement of the
memory layout (``docs/hardware.md``): node j of layer k in lane j mod P at address j div P;
W_l[i, j] in lane j mod P at address i·⌈n_{l−1}/P⌉ + j div P; b_l[i] at address i. Every word
lands inside its memory, no two words share a place, read-back order is the load order, and the
bitstream's weight images hold the very words the host would write."""
from __future__ import annotations

from math import ceil

import numpy as np
import pytest

from pcforge.hdl.core import PCCore
from pcforge.hdl.protocol import (TARGET, node_addresses, node_words, weight_addresses,
                                  weight_words)
from pcforge.model.arch.geometry import CoreGeometry
from pcforge.model.randspec import random_int_weights, random_spec


def naive_place(spec, P, kind, layer, i, j=None):
    if kind in ("x", "e"):
        return i % P, i // P
    if kind == "w":
        return j % P, i * ceil(spec.sizes[layer - 1] / P) + j // P
    return 0, i                                                       # bias


@pytest.mark.parametrize("seed", range(20))
def test_words_follow_the_layout_and_fit_the_memories(seed):
    rng = np.random.default_rng(8200 + seed)
    spec = random_spec(rng)
    P = int(rng.integers(1, 9))
    g = CoreGeometry(spec, P)
    core = PCCore(spec, P)
    W, b = random_int_weights(spec, rng)
    words = weight_words(g, W, b)
    places = set()
    for l in range(1, spec.L + 1):
        n, m = spec.sizes[l], spec.sizes[l - 1]
        mine = [w for w in words if w.layer == l]
        assert len(mine) == n * m + n
        for w in mine:
            places.add((w.target, w.layer, w.bank if w.target == TARGET["w"] else 0, w.addr))
        ws = [w for w in mine if w.target == TARGET["w"]]
        for k, w in enumerate(ws):                                    # row-major W_l
            i, j = divmod(k, m)
            assert (w.bank, w.addr) == naive_place(spec, P, "w", l, i, j)
            assert w.data == W[l - 1][i, j]
            assert w.addr < core.w_mem[l][w.bank].depth
        bs = [w for w in mine if w.target == TARGET["b"]]
        assert [(w.addr, w.data) for w in bs] == [(i, b[l - 1][i]) for i in range(n)]
        assert all(w.addr < core.b_mem[l].depth for w in bs)
        # reading back asks for the same places in the same order
        assert [w._replace(data=0) for w in mine] == weight_addresses(g, l)
    assert len(places) == len(words)                          # no two words share a place
    for k in range(spec.n_layers):
        x = rng.integers(-5, 5, spec.sizes[k])
        nw = node_words(g, k, x)
        assert [(w.bank, w.addr, w.data) for w in nw] == [
            (*naive_place(spec, P, "x", k, j), x[j]) for j in range(spec.sizes[k])]
        assert all(w.addr < core.x_mem[k][w.bank].depth for w in nw)
        assert [w._replace(data=0) for w in nw] == node_addresses(g, "x", k)
    # the bitstream's initial memory contents are the host's words
    w_img, b_img = PCCore.weight_images(g, (W, b))
    for w in words:
        img = w_img[0][w.layer][w.bank] if w.target == TARGET["w"] else b_img[0][w.layer]
        assert img[w.addr] == w.data


@pytest.mark.parametrize("seed", range(8))
def test_two_rows_per_token_words_land_in_their_halves(seed):
    """Two rows per token: every host word names its own place — (lane, half, word) of a
    weight, (half, word) of a bias — inside its memory, and the bitstream's initial contents
    of each half are the words the host would write there."""
    rng = np.random.default_rng(8300 + seed)
    spec = random_spec(rng, schedules=("synchronous",)).replace(learning="after_relaxation")
    P = 2 * int(rng.integers(1, 5))
    core = PCCore(spec, P, rows=2)
    g = core.geometry
    W, b = random_int_weights(spec, rng)
    w_img, b_img = PCCore.weight_images(g, (W, b))
    places = set()
    for w in weight_words(g, W, b):
        if w.target == TARGET["w"]:
            mem, word = core.weight_memory(w.layer, w.bank, w.addr)
            half = mem is core.w_mem_odd[w.layer][w.bank]
            assert mem in (core.w_mem[w.layer][w.bank], core.w_mem_odd[w.layer][w.bank])
            assert w_img[half][w.layer][w.bank][word] == w.data
        else:
            mem, word = core.bias_memory(w.layer, w.addr)
            half = mem is core.b_mem_odd[w.layer]
            assert b_img[half][w.layer][word] == w.data
        assert word < mem.depth
        places.add((id(mem), word))
    assert len(places) == sum(spec.sizes[l] * (spec.sizes[l - 1] + 1)
                              for l in range(1, spec.n_layers))


def test_node_words_refuse_the_wrong_length():
    spec = random_spec(np.random.default_rng(3))
    g = CoreGeometry(spec, 2)
    with pytest.raises(ValueError, match=f"layer 0 has {spec.sizes[0]} nodes"):
        node_words(g, 0, np.zeros(spec.sizes[0] + 1))


def test_target_codes_are_the_cores():
    from pcforge.hdl.host_port import Target
    assert TARGET == {t.name.lower(): t.value for t in Target}
