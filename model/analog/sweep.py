"""Monte Carlo sweeps of digits accuracy on an analog substrate (``pcforge analog sweep``).

For every point (one non-ideality at one level with the others off, or the PCM substrate at
one drift time) and every Monte Carlo chip (``seed``) two arms run on the same chip:

(a) ``programmed``: weights trained in float, programmed onto the crossbars, evaluated on the
    digits test set (relaxation through the noisy reads);
(b) ``learned``: the same programmed chip, then PC learning on the substrate itself — the
    Hebbian rule after relaxation with input and label clamped, every read through the
    noisy arrays and every update as device pulses — for ``finetune_epochs`` over the
    training set (mini-batches of ``finetune_batch``, SGD rate ``finetune_lr``), evaluated
    again at the same time. If (b) beats (a), local learning compensates the non-ideality.

Points are independent: they run in a process pool over the local cores. The result is a
plain dict (``results.json``); :mod:`.analog_plots` draws it.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..data import load_digits_split, one_hot
from ..executor import Executor
from ..float_pcn import FloatPCN
from ..spec import PCSpec
from ..train import SGD, accuracy_float
from ..weights import Weights
from .config import NONIDEALITIES, AnalogConfig, preset
from .pcn import AnalogPCN

__all__ = ["SweepSettings", "run_sweep", "DRIFT_TIMES"]

#: evaluation times after programming (s): 0, 1 min, 1 h, 1 day, 1 month, 1 year
DRIFT_TIMES = (0.0, 60.0, 3600.0, 86400.0, 2.592e6, 3.1536e7)


@dataclass
class SweepSettings:
    """What a sweep runs. ``levels`` maps an :class:`AnalogConfig` field to its levels."""

    seeds: int = 10
    levels: dict = field(default_factory=lambda: dict(NONIDEALITIES))
    drift_times: tuple = DRIFT_TIMES
    drift_preset: str = "pcm_learning"
    finetune_epochs: int = 1
    finetune_batch: int = 16
    finetune_lr: float = 0.02
    finetune_limit: int | None = None     # training samples per fine-tuning epoch
    test_limit: int | None = None         # test samples evaluated
    jobs: int = 0                         # 0: every local core
    executor: str = ""                    # serial | local | dask ("": serial at 1 job, else local)
    scheduler: str | None = None          # a Dask scheduler's address (executor dask)

    def check(self):
        if self.seeds < 2:
            raise ValueError("a Monte Carlo sweep needs at least 2 seeds per point for a "
                             "confidence band")
        bad = set(self.levels) - set(AnalogConfig.__dataclass_fields__)
        if bad:
            raise ValueError(f"unknown non-ideality {sorted(bad)}; choose from "
                             f"{sorted(NONIDEALITIES)}")
        for k, lv in self.levels.items():
            for v in lv:
                AnalogConfig(**{k: v})          # validates the level
        preset(self.drift_preset)


# ---- one point (runs in a worker) ------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(spec_dict: dict, W: list, b: list):
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:                 # pragma: no cover - scikit-learn brings it
        pass
    _WORKER["spec"] = PCSpec.from_dict(spec_dict)
    _WORKER["weights"] = Weights(W, b)


def _point_task(arg) -> tuple[float, float]:
    """One Monte Carlo point on any executor: (the network, its config, settings, seed); the
    network is set up once per worker process (its digest says whether it is the same)."""
    init, cfg_dict, s, seed = arg
    h = hashlib.sha256(json.dumps(init[0], sort_keys=True).encode())
    for a in (*init[1], *init[2]):
        h.update(np.ascontiguousarray(a, np.float64).tobytes())
    key = h.hexdigest()
    if _WORKER.get("key") != key:
        _init_worker(*init)
        _WORKER["key"] = key
    return _point(cfg_dict, s, seed)


def _point(cfg_dict: dict, s: SweepSettings, seed: int) -> tuple[float, float]:
    spec, weights = _WORKER["spec"], _WORKER["weights"]
    data = load_digits_split()
    xt, yt = data.x_test, data.y_test
    if s.test_limit:
        xt, yt = xt[:s.test_limit], yt[:s.test_limit]
    net = AnalogPCN(spec, weights, AnalogConfig(**cfg_dict))
    acc_a = accuracy_float(net, xt, yt)
    rng = np.random.default_rng(10_000 + seed)
    target = one_hot(data.y_train, data.n_classes)
    step = SGD(net, s.finetune_lr)
    n = len(data.x_train) if s.finetune_limit is None else min(s.finetune_limit,
                                                                  len(data.x_train))
    for _ in range(s.finetune_epochs):
        order = rng.permutation(len(data.x_train))[:n]
        for i in range(0, n, s.finetune_batch):
            idx = order[i:i + s.finetune_batch]
            net.train_batch(data.x_train[idx], target[idx], step=step,
                            learning="after_relaxation")
    acc_b = accuracy_float(net, xt, yt)
    return acc_a, acc_b


def _tasks(s: SweepSettings):
    """(series, level, seed, AnalogConfig) for every point."""
    for name, levels in s.levels.items():
        for lv in levels:
            for seed in range(s.seeds):
                yield name, lv, seed, AnalogConfig(**{name: lv, "seed": seed})
    for comp in (True, False):
        series = "drift" if comp else "drift_uncompensated"
        for t in s.drift_times:
            for seed in range(s.seeds):
                yield series, t, seed, preset(s.drift_preset, t_inference=float(t),
                                              drift_compensation=comp, seed=seed)


def _band(v: list) -> dict:
    """mean, std and the 95 % confidence interval of the mean (Student t) of ``v``."""
    from scipy.stats import t as student
    a = np.asarray(v, dtype=np.float64)
    m, sd = float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0
    h = float(student.ppf(0.975, len(a) - 1) * sd / math.sqrt(len(a))) if len(a) > 1 else 0.0
    return {"mean": m, "std": sd, "ci95_low": m - h, "ci95_high": m + h, "values": a.tolist()}


def run_sweep(spec: PCSpec, weights: Weights, settings: SweepSettings | None = None,
              progress=None) -> dict:
    """Run every point; returns the results dict (see ``docs/analog.md``)."""
    s = settings or SweepSettings()
    s.check()
    weights.check(spec)
    if spec.sizes[0] != 64 or spec.sizes[-1] != 10:
        raise ValueError(f"the digits sweep needs 64 inputs and 10 outputs; the spec has "
                         f"sizes {list(spec.sizes)}")
    data = load_digits_split()
    xt, yt = data.x_test, data.y_test
    if s.test_limit:
        xt, yt = xt[:s.test_limit], yt[:s.test_limit]
    float_acc = accuracy_float(FloatPCN(spec, weights), xt, yt)
    tasks = list(_tasks(s))
    jobs = s.jobs or os.cpu_count() or 1
    init = (spec.to_dict(), [np.asarray(w) for w in weights.W],
            [np.asarray(v) for v in weights.b])
    raw: dict = {}
    t0 = time.perf_counter()

    def record(k, res):
        name, lv, seed, _ = tasks[k]
        raw.setdefault(name, {}).setdefault(lv, [None] * s.seeds)[seed] = res
        if progress:
            done = sum(v is not None for lvls in raw.values() for vs in lvls.values()
                       for v in vs)
            progress(done, len(tasks), {"points": done})

    kind = s.executor if s.executor else ("serial" if jobs == 1 else "local")
    args = [(init, cfg.to_dict(), s, seed) for _, _, seed, cfg in tasks]
    with Executor(kind, workers=jobs, scheduler=s.scheduler) as ex:
        jobs = ex.n_workers
        outcomes = ex.map(_point_task, args,
                          progress=(lambda d, n, info: progress(d, n, {"points": d}))
                          if progress else None)
    for k, o in enumerate(outcomes):
        if not o.ok:
            raise RuntimeError(f"analog sweep point {tasks[k][:3]} failed: {o.error}")
        record(k, o.value)
    series = {}
    for name, by_level in raw.items():
        pts = []
        for lv, vals in by_level.items():
            a, b = zip(*vals)
            pts.append({"level": lv, "programmed": _band(a), "learned": _band(b)})
        series[name] = pts
    return {
        "spec_digest": spec.digest, "sizes": list(spec.sizes),
        "activations": list(spec.activations), "iterations": spec.iterations,
        "gamma": spec.gamma.value,
        "float_test_accuracy": float_acc, "test_samples": len(xt),
        "settings": {k: (list(v) if isinstance(v, tuple) else v)
                     for k, v in asdict(s).items() if k != "levels"}
        | {"levels": {k: list(v) for k, v in s.levels.items()}},
        "drift_preset": preset(s.drift_preset).to_dict(),
        "series": series,
        "points": len(tasks), "jobs": jobs,
        "wall_s": round(time.perf_counter() - t0, 2),
    }
