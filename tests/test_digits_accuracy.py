"""Acceptance numbers on the digits default (slow but real; printed for the record)."""
import numpy as np
import pytest

from pcforge.model import FixedPCN
from pcforge.model.data import load_digits_split
from pcforge.model.presets import digits_spec
from pcforge.model.train import accuracy_fixed, mlp_baseline, train_fixed, train_float


@pytest.fixture(scope="module")
def data():
    return load_digits_split()


@pytest.mark.slow
def test_float_pc_reaches_98_percent_mean_of_three_seeds(data):
    spec = digits_spec()
    accs, fixed = [], []
    for seed in range(3):
        net, hist = train_float(spec, data, epochs=50, seed=seed)
        accs.append(hist.test_accuracy[-1])
        fixed.append(accuracy_fixed(FixedPCN.from_float(spec, net.weights), data.x_test,
                                    data.y_test))
    print(f"\nfloat PC per seed {accs}, mean {np.mean(accs):.4f}; fixed (16-bit, float-trained "
          f"weights) {fixed}, mean {np.mean(fixed):.4f}; MLP {mlp_baseline(data):.4f}")
    assert np.mean(accs) >= 0.98
    # 16-bit fixed point with float-trained weights: within 0.5 pt of float, seed by seed
    assert all(abs(f - a) <= 0.005 for f, a in zip(fixed, accs)), (fixed, accs)


@pytest.mark.slow
def test_fixed_point_training_within_one_point_of_float_trained_the_same_way(data):
    """Both trained sample by sample with plain SGD at the spec's α (the hardware's rule)."""
    spec = digits_spec()
    fx, hfx = train_fixed(spec, data, epochs=4, seed=0)
    fl, hfl = train_float(spec, data, epochs=4, batch=1, optimizer="sgd", lr=spec.alpha.value,
                          lr_schedule="constant", seed=0)
    print(f"\nfixed-point SGD per epoch {hfx.test_accuracy}; float SGD {hfl.test_accuracy}")
    assert hfx.test_accuracy[-1] >= hfl.test_accuracy[-1] - 0.01
    assert hfx.test_accuracy[-1] > 0.93
