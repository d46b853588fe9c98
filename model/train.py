"""Training and evaluation on the digits data set (the built-in default network is
:func:`pcforge.model.presets.digits_spec`).

* :func:`train_float` — FloatPCN, batched, Adam or SGD on the Hebbian directions, learning after
  relaxation or incremental (T = 20, feed-forward init, batch 32, Adam 3e-3 with cosine decay
  over 50 epochs: 98.3 % mean test accuracy over seeds 0–2; constant Adam 1e-3, the public PC
  libraries' recipe, gave 97.6 % here).
* :func:`train_fixed` — FixedPCN, one sample at a time with the hardware's rule
  W += round(α e f(x)ᵀ) (plain SGD, the only rule the hardware has).
* :func:`mlp_baseline` — scikit-learn's MLPClassifier of the same shape, the bar to beat.

``progress(done, total, info)`` callbacks keep this module free of any user interface.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .data import Dataset, one_hot
from .fixed_pcn import FixedPCN
from .float_pcn import FloatPCN
from .qformat import FixedConst
from .spec import PCSpec
from .weights import Weights

__all__ = ["LR_SCHEDULES", "ALPHA_SCHEDULES", "Adam", "SGD", "train_float", "train_fixed",
           "accuracy_float", "accuracy_fixed", "mlp_baseline", "TrainHistory", "alpha_schedule",
           "with_alpha_register"]

#: Learning-rate schedules of the float trainer (over the epochs; not the spec's relaxation
#: ``schedule``).
LR_SCHEDULES = ("cosine", "constant")


#: Schedules of the hardware's learning rate α over the epochs (the α register, written by the
#: host before each epoch: ``rates.alpha_runtime``).
ALPHA_SCHEDULES = ("constant", "cosine", "step")


def with_alpha_register(spec: PCSpec, bits: int = 8) -> PCSpec:
    """``spec`` with α as a run-time register (``rates.alpha_runtime``) of at least ``bits``
    bits and the same starting value (more fraction bits: 2^−5 = 1·2^−5 becomes 128·2^−12)."""
    a = spec.alpha
    k = max(0, bits - a.mantissa.bit_length())
    return spec.replace(alpha=FixedConst(a.mantissa << k, a.frac + k), alpha_runtime=True)


def alpha_schedule(spec: PCSpec, kind: str, epochs: int, final: float | None = None) -> list:
    """α register mantissas, one per epoch, from the spec's α: ``constant``; ``cosine`` (half
    a cosine from α down to ``final``, default α/16); ``step`` (α halved every quarter of the
    epochs). A schedule other than constant needs ``rates.alpha_runtime``."""
    if kind not in ALPHA_SCHEDULES:
        raise ValueError(f"α schedule {kind!r}: use one of {', '.join(ALPHA_SCHEDULES)}")
    m0 = spec.alpha.mantissa
    if kind == "constant":
        return [m0] * epochs
    spec.alpha_at(m0)                     # refuses a spec whose α is a constant of the core
    if kind == "step":
        return [max(1, m0 >> (ep * 4 // max(1, epochs))) for ep in range(epochs)]
    lo = m0 / 16 if final is None else final * 2 ** spec.alpha.frac
    if not 0 < lo <= m0:
        raise ValueError(f"final α {final!r}: give 0 < final <= the spec's α "
                         f"({spec.alpha.value:g})")
    return [max(1, int(round(lo + (m0 - lo) * 0.5 * (1 + np.cos(np.pi * ep / epochs)))))
            for ep in range(epochs)]


class SGD:
    """W += lr · direction (the Hebbian direction is the descent direction of the energy)."""

    def __init__(self, net: FloatPCN, lr: float):
        self.net, self.lr = net, lr

    def __call__(self, dW, db):
        self.net.apply(dW, db, self.lr)


class Adam:
    """Adam (Kingma & Ba 2015) on the gradient −direction, bias-corrected."""

    def __init__(self, net: FloatPCN, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        self.net, self.lr, self.b1, self.b2, self.eps = net, lr, betas[0], betas[1], eps
        self.t = 0
        self.m = [np.zeros_like(p) for p in net.W + net.b]
        self.v = [np.zeros_like(p) for p in net.W + net.b]

    def __call__(self, dW, db):
        self.t += 1
        params = self.net.W + self.net.b
        for i, (p, d) in enumerate(zip(params, list(dW) + list(db))):
            g = -d
            self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g
            self.v[i] = self.b2 * self.v[i] + (1 - self.b2) * g * g
            mh = self.m[i] / (1 - self.b1 ** self.t)
            vh = self.v[i] / (1 - self.b2 ** self.t)
            p -= self.lr * mh / (np.sqrt(vh) + self.eps)


@dataclass
class TrainHistory:
    epochs: int = 0
    train_energy: list = field(default_factory=list)
    test_accuracy: list = field(default_factory=list)
    wall_s: float = 0.0

    def end_epoch(self, energy: float, test_accuracy: float, epochs: int, progress=None):
        """Record an epoch's mean training energy and test accuracy; report progress."""
        self.train_energy.append(energy)
        self.test_accuracy.append(test_accuracy)
        self.epochs += 1
        if progress:
            progress(self.epochs, epochs, {"energy": energy, "test_acc": test_accuracy})


def accuracy_float(net: FloatPCN, x: np.ndarray, y: np.ndarray) -> float:
    out = net.infer(x)
    return float(np.mean(np.argmax(out, axis=1) == y))


def accuracy_fixed(net: FixedPCN, x: np.ndarray, y: np.ndarray, batch: int = 512) -> float:
    hits = 0
    for i in range(0, len(x), batch):
        out = net.infer(net.quantize(x[i:i + batch])).output
        hits += int(np.sum(np.argmax(out, axis=1) == y[i:i + batch]))
    return hits / len(x)


def train_float(spec: PCSpec, data: Dataset, *, epochs: int = 50, batch: int = 32,
                optimizer: str = "adam", lr: float = 3e-3, lr_schedule: str = "cosine",
                learning: str | None = None, seed: int = 0, weights: Weights | None = None,
                generative: bool = False, unsupervised: bool = False, progress=None):
    """Train a FloatPCN on ``data``; returns (net, history).

    ``lr_schedule``: ``constant`` learning rate, or ``cosine`` decay from ``lr`` to 0 over the run
    (evaluated per epoch). ``generative``: the layer order reversed (the Rao–Ballard network of
    :func:`pcforge.model.presets.generative_digits_spec`): layer 0 is clamped to the one-hot
    label and layer L to the image; the test accuracy is then classification by inference
    (:func:`pcforge.model.generative.classify`). ``unsupervised`` (with ``generative``): from
    the images alone — only layer L clamped, the label layer a free latent (it never sees a
    label; the per-epoch test accuracy is then NaN).
    """
    if unsupervised and not generative:
        raise ValueError("unsupervised training is for a generative network (the image on "
                         "layer L): pass generative=True")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule {lr_schedule!r} is unknown; use "
                         f"{' or '.join(LR_SCHEDULES)}")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer {optimizer!r} is unknown; use adam or sgd")
    rng = np.random.default_rng(seed)
    net = FloatPCN(spec, weights or Weights.init(spec, rng))
    step = Adam(net, lr) if optimizer == "adam" else SGD(net, lr)
    hist = TrainHistory()
    t0 = time.perf_counter()
    labels = one_hot(data.y_train, data.n_classes)
    bottom, top = (labels, data.x_train) if generative else (data.x_train, labels)
    n = len(data.x_train)
    for ep in range(epochs):
        if lr_schedule == "cosine":
            step.lr = lr * 0.5 * (1 + np.cos(np.pi * ep / epochs))
        order = rng.permutation(n)
        en = 0.0
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            if unsupervised:
                res = net.relax({spec.L: top[idx]}, "generation")
                step(*net.hebbian(res.x, res.e))
            else:
                res = net.train_batch(bottom[idx], top[idx], step=step, learning=learning)
            en += float(res.energy[-1].sum())
        if unsupervised:
            acc = float("nan")
        elif generative:
            from .generative import classify
            acc = float(np.mean(classify(net, data.x_test) == data.y_test))
        else:
            acc = accuracy_float(net, data.x_test, data.y_test)
        hist.end_epoch(en / n, acc, epochs, progress)
    hist.wall_s = time.perf_counter() - t0
    return net, hist


def train_fixed(spec: PCSpec, data: Dataset, *, epochs: int = 10, learning: str | None = None,
                seed: int = 0, weights: Weights | None = None, limit: int | None = None,
                alpha: list | None = None, progress=None):
    """Train a FixedPCN sample by sample with the hardware's SGD rule; returns (net, history).

    ``limit`` trains on the first ``limit`` samples of each shuffled epoch (for quick runs);
    ``alpha``: the α register's mantissa per epoch (:func:`alpha_schedule`).
    """
    rng = np.random.default_rng(seed)
    net = FixedPCN.from_float(spec, weights or Weights.init(spec, rng))
    target = net.quantize(one_hot(data.y_train, data.n_classes))
    x_all = net.quantize(data.x_train)
    hist = TrainHistory()
    t0 = time.perf_counter()
    n = len(data.x_train) if limit is None else min(limit, len(data.x_train))
    for ep in range(epochs):
        if alpha is not None:
            net.set_alpha(alpha[ep])
        order = rng.permutation(len(data.x_train))[:n]
        en = 0.0
        for k, i in enumerate(order):
            res = net.train_sample(x_all[i:i + 1], target[i:i + 1], learning=learning)
            en += float(res.energy[-1].sum())
            if progress and k % 64 == 0:
                progress(ep + k / n, epochs, {"energy": en / (k + 1)})
        hist.end_epoch(en / n, accuracy_fixed(net, data.x_test, data.y_test), epochs, progress)
    hist.wall_s = time.perf_counter() - t0
    return net, hist


def mlp_baseline(data: Dataset, hidden=(64,), activation: str = "relu", seed: int = 0,
                 progress=None) -> float:
    """Test accuracy of scikit-learn's MLPClassifier of the same shape (Adam, early stopping
    off, up to 500 epochs; stops as ``fit`` does once the training loss has not improved by
    ``tol`` for ``n_iter_no_change`` epochs). Trained an epoch at a time (``partial_fit``) so
    that ``progress(epoch, 500, {"loss": ...})`` can follow it."""
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=tuple(hidden), activation=activation,
                        max_iter=500, random_state=seed)
    classes = np.unique(data.y_train)
    best, stale = np.inf, 0
    for ep in range(clf.max_iter):
        clf.partial_fit(data.x_train, data.y_train, classes=classes)
        stale = stale + 1 if clf.loss_ > best - clf.tol else 0
        best = min(best, clf.loss_)
        if progress:
            progress(ep + 1, clf.max_iter, {"loss": clf.loss_})
        if stale > clf.n_iter_no_change:
            break
    return float(clf.score(data.x_test, data.y_test))
