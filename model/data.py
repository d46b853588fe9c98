"""The built-in data set: scikit-learn's bundled 8×8 digits (1,797 images, no download).

Pixels are scaled from 0..16 to [0, 1]; labels become one-hot targets in [0, 1]. The split is
stratified with ``test_size=0.2, random_state=0``: 1,437 training and 360 test samples.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["Dataset", "load_digits_split", "one_hot"]


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray   # (N_train, 64) float64 in [0, 1]
    y_train: np.ndarray   # (N_train,) int labels 0..9
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int = 10

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]


def one_hot(y: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(y), n_classes))
    out[np.arange(len(y)), y] = 1.0
    return out


@lru_cache(maxsize=2)
def load_digits_split(test_size: float = 0.2, random_state: int = 0) -> Dataset:
    """The digits data set, scaled to [0, 1], split stratified and reproducibly."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.data.astype(np.float64) / 16.0
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=test_size,
                                          random_state=random_state, stratify=d.target)
    for a in (xtr, xte, ytr, yte):
        a.setflags(write=False)
    return Dataset(xtr, ytr, xte, yte)
