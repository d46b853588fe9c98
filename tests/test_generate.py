"""The generative (Rao–Ballard) digits network (issue 17, item 1): training with the label and
the image clamped, generation (label clamped) and classification by inference (image clamped)
in FloatPCN, FixedPCN and the hardware, and ``pcforge generate``."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from pcforge.cli import main
from pcforge.model import FixedPCN, Weights
from pcforge.model.data import load_digits_split
from pcforge.model.generative import class_means, classify, correlations, generate, label_inputs
from pcforge.model.presets import digits_spec, generative_digits_spec
from pcforge.model.train import train_float


@pytest.fixture(scope="module")
def generative_net():
    spec = generative_digits_spec()
    net, hist = train_float(spec, load_digits_split(), epochs=30, seed=1, generative=True)
    return spec, net, hist


def test_generated_digits_correlate_with_their_class_means(generative_net):
    """Every class's generated image (float and bit-exact fixed) correlates with its own class
    mean far above the discriminative network's 0.08–0.48, and with its own class mean more
    than with any other class's."""
    spec, net, _ = generative_net
    d = load_digits_split()
    means = class_means(d)
    fl = generate(net, label_inputs(10)).x[-1]
    fx = FixedPCN.from_float(spec, net.weights)
    words = generate(fx, fx.quantize(label_inputs(10), 0))
    fi = spec.formats.x.to_float(words.x[-1])
    for images in (fl, fi):
        c = correlations(images, means)
        assert c.min() > 0.95, c
        cross = np.corrcoef(images, means)[:10, 10:]
        assert np.all(cross.argmax(axis=1) == np.arange(10))
    assert np.abs(fi - fl).max() < 0.1            # 16-bit formats: close, not equal


def test_classification_by_inference_in_the_generative_network(generative_net):
    """Image clamped, label relaxed: well above chance in float and fixed point; the epoch
    history records the same measure."""
    spec, net, hist = generative_net
    d = load_digits_split()
    acc_float = np.mean(classify(net, d.x_test) == d.y_test)
    fx = FixedPCN.from_float(spec, net.weights)
    acc_fixed = np.mean(classify(fx, fx.quantize(d.x_test, spec.L)) == d.y_test)
    assert acc_float > 0.85 and acc_fixed > 0.85, (acc_float, acc_fixed)
    assert hist.test_accuracy[-1] == pytest.approx(acc_float)


def test_pcforge_generate_trains_generates_and_checks_the_hardware(tmp_path):
    out = tmp_path / "gen"
    r = CliRunner().invoke(main, ["generate", "--out", str(out), "--limit", "6", "--epochs",
                                  "30", "--no-discriminative"])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "generate.json").read_text())
    assert rep["generation_bit_exact"] == rep["generation_samples"] == 10
    assert rep["classification_bit_exact"] == rep["classification_hardware_samples"] == 6
    assert set(rep["correlation_min"]) == {"FloatPCN", "FixedPCN", "hardware"}
    assert rep["correlation_min"]["hardware"] > 0.95
    # the hardware's images are FixedPCN's words: the same correlations
    assert rep["correlation_with_class_mean"]["hardware"] == \
        rep["correlation_with_class_mean"]["FixedPCN"]
    for f in ("generated.png", "generate.md", "spec.toml", "weights.npz"):
        assert (out / f).stat().st_size > 0, f
    # earlier outputs are kept unless --force
    r = CliRunner().invoke(main, ["generate", "--out", str(out), "--no-discriminative"])
    assert r.exit_code != 0 and "--force" in r.output


def test_generate_refuses_what_is_not_a_generative_digits_network(tmp_path):
    r = CliRunner().invoke(main, ["generate", "--out", str(tmp_path / "a"), "--spec", "x.toml"])
    assert r.exit_code == 2 and "give both" in r.output
    spec = digits_spec()
    spec.save(tmp_path / "s.toml")
    Weights.init(spec, np.random.default_rng(0)).save(tmp_path / "w.npz", spec)
    r = CliRunner().invoke(main, ["generate", "--out", str(tmp_path / "b"), "--spec",
                                  str(tmp_path / "s.toml"), "--weights", str(tmp_path / "w.npz"),
                                  "--no-discriminative"])
    assert r.exit_code == 1 and "10 label nodes" in r.output and "Traceback" not in r.output, \
        r.output
