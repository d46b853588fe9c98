"""The scoreboard of a hardware run: FixedPCN on the same job, compared word for word with what
the host read back — every x and e after every iteration when traced, the final state, the
core's cycle counter against the cycle model (for the iterations FixedPCN says the run makes:
fewer than T after an exact stop), and with learning every weight and bias after every update.

Both ways of running the emitted Verilog use it: the cocotb testbench
(:mod:`pcforge.sim.cocotb_bench`, protocol-level, with idle cycles and back-pressure) and the
compiled harness (:mod:`pcforge.sim.native_sim`, the fast path), so a mismatch is named the same
way by both. A *job* is the JSON-able dict of :meth:`pcforge.sim.verilator_sim.VerilatorCore.job`.
"""
from __future__ import annotations

import numpy as np

from ..model.arch.cycles import cycle_report
from ..model.fixed_pcn import FixedPCN
from ..model.spec import PCSpec

__all__ = ["Scoreboard", "energy_of"]


def energy_of(es, frac: int) -> float:
    """½ Σ ||e||² of read-back integer errors with ``frac`` fraction bits."""
    return float(sum(0.5 * np.sum(np.ldexp(np.asarray(v, dtype=np.float64), -frac) ** 2)
                     for v in es))


class Scoreboard:
    """FixedPCN (``job['model_spec']``, loaded with the job's weights) advanced sample by sample
    exactly as the core is; each ``check_*`` returns the names of the words that differ."""

    def __init__(self, job: dict):
        self.spec = PCSpec.from_dict(job["spec"])
        self.mask = tuple(job["mask"])
        self.trace = bool(job["trace"])
        self.learn = bool(job.get("learn"))
        self.incremental = self.learn and self.spec.learning == "incremental"
        W = [np.array(w, dtype=np.int64) for w in job["W"]]
        b = [np.array(v, dtype=np.int64) for v in job["b"]]
        self.model = FixedPCN(PCSpec.from_dict(job["model_spec"]), W, b)
        self.lanes = int(job["lanes"])
        self.rows = int(job.get("rows", 1))          # rows per token of the core
        #: per sample the per-node clamps {layer: bool array} (empty without any)
        self.pins = [{int(k): np.array(v, dtype=bool) for k, v in p.items()}
                     for p in job.get("pins") or [{} for _ in job["samples"]]]
        #: per sample the α register's mantissa written before it (``rates.alpha_runtime``),
        #: or None
        self.alphas = list(job.get("alpha") or [None] * len(job["samples"]))
        self._cycles = {}

    @staticmethod
    def clamped(sample: dict) -> dict:
        """A job sample ({"layer": [ints]}) as {layer: int64 array}."""
        return {int(k): np.array(v, dtype=np.int64) for k, v in sample.items()}

    def expect(self, clamped: dict, pins: dict | None = None, alpha: int | None = None):
        """Run the model on one sample (learning as the core does, with the α register at
        ``alpha`` when given); returns its FixedResult."""
        if alpha is not None:
            self.model.set_alpha(alpha)
        return self.model.relax({k: v[None, :] for k, v in clamped.items()}, self.mask,
                                trace=self.trace, pins=pins,
                                learning=self.spec.learning if self.learn else None)

    def weights(self) -> list:
        """The model's W_l (row-major) then b_l per connection, as the host reads them back."""
        return [np.concatenate([w.reshape(-1), b]) for w, b in zip(self.model.W, self.model.b)]

    def expect_all(self, samples: list) -> list:
        """(FixedResult, row, weights after the sample or None) for every job sample: without
        learning one batched run (the samples are independent), with learning one sample after
        another."""
        if self.learn:
            return [(self.expect(self.clamped(s), p, a), 0, self.weights())
                    for s, p, a in zip(samples, self.pins, self.alphas)]
        if not samples:
            return []
        cl = [self.clamped(s) for s in samples]
        batch = {k: np.stack([c[k] for c in cl]) for k in cl[0]}
        pins = {k: np.stack([p.get(k, np.zeros(self.spec.sizes[k], bool)) for p in self.pins])
                for k in {k for p in self.pins for k in p}}
        ref = self.model.relax(batch, self.mask, trace=self.trace, pins=pins)
        return [(ref, i, None) for i in range(len(samples))]

    def check_pause(self, ref, t: int, xs, es, conns=None, row: int = 0) -> list:
        """The state read back in the pause after iteration ``t`` (0-based): x(t+1), e(t) and,
        learning incrementally, every W_l/b_l (``conns[l-1]``: W_l row-major then b_l);
        ``row``: the sample's row in a batched ``ref``."""
        bad = []
        for k in range(self.spec.n_layers):
            if not np.array_equal(xs[k], ref.trace_x[t + 1][k][row]):
                bad.append(f"x_{k}(t={t + 1})")
            if not np.array_equal(es[k], ref.trace_e[t][k][row]):
                bad.append(f"e_{k}(t={t})")
        if conns is not None:
            m_W, m_b = ref.trace_w[t]
            for l, got in enumerate(conns, start=1):
                want = np.concatenate([m_W[l - 1].reshape(-1), m_b[l - 1]])
                if not np.array_equal(got, want):
                    bad.append(f"W_{l}/b_{l} after iteration {t}")
        return bad

    def expected_cycles(self, ref, row: int = 0) -> int:
        """The cycle model's count for the sample in ``row`` of ``ref`` (its iterations)."""
        n = int(ref.iterations[row])
        if n not in self._cycles:
            self._cycles[n] = cycle_report(self.spec, self.lanes, self.mask, learn=self.learn,
                                           iterations=n, rows=self.rows).total
        return self._cycles[n]

    def check_final(self, ref, xs, es, pauses: int, conns=None, row: int = 0,
                    after: list | None = None, cycles: int | None = None) -> list:
        """The final state, the number of pauses seen (one per iteration the model says the
        run makes), the core's ``cycles`` (when given) against the cycle model, and after
        learning every W_l/b_l (against ``after``, :meth:`weights` taken after the sample,
        default the model's now)."""
        bad = []
        for k in range(self.spec.n_layers):
            if not np.array_equal(xs[k], ref.x[k][row]):
                bad.append(f"final x_{k}")
            if not np.array_equal(es[k], ref.e[k][row]):
                bad.append(f"final e_{k}")
        n = int(ref.iterations[row])
        if self.trace and pauses != n:
            bad.append(f"{pauses} pauses for the model's {n} iterations (T = "
                       f"{self.spec.iterations})")
        if cycles is not None and cycles != self.expected_cycles(ref, row):
            bad.append(f"cycles {cycles}, the cycle model says {self.expected_cycles(ref, row)} "
                       f"({n} iterations)")
        if conns is not None:
            for l, (got, want) in enumerate(zip(conns, after or self.weights()), start=1):
                if not np.array_equal(got, want):
                    bad.append(f"W_{l}/b_{l} after learning")
        return bad
