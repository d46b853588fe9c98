"""The learning rate as a run-time register (issue 17, item 4): ``rates.alpha_runtime`` in the
spec, FixedPCN's ``set_alpha``, the host's schedules, and training on the hardware with a decay
schedule, every update checked against FixedPCN. The core against FixedPCN with a new α before
every sample on random specs is in ``tests/test_hdl_core.py``
(``test_core_learns_with_a_runtime_alpha_like_fixed_model``) and in the random cases of
``pcforge verify`` (``tests/test_verilator.py``)."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from pcforge.cli import main
from pcforge.model import FixedPCN, PCSpec, SpecError, Weights
from pcforge.model.presets import digits_spec
from pcforge.model.qformat import FixedConst
from pcforge.model.train import alpha_schedule, with_alpha_register


def test_the_register_is_in_the_spec_and_its_toml(tmp_path):
    spec = with_alpha_register(digits_spec())
    assert spec.alpha == FixedConst(128, 12) and spec.alpha.value == digits_spec().alpha.value
    assert spec.alpha_runtime and spec.alpha_bits == 8
    spec.save(tmp_path / "s.toml")
    assert "alpha_runtime = true" in (tmp_path / "s.toml").read_text()
    back = PCSpec.load(tmp_path / "s.toml")
    assert back == spec and back.digest == spec.digest
    # specs without it keep their TOML (and digests)
    assert "alpha_runtime" not in digits_spec().to_dict()["rates"]


@pytest.mark.parametrize("call, says", [
    (lambda: digits_spec().alpha_at(1), "set rates.alpha_runtime = true"),
    (lambda: with_alpha_register(digits_spec()).alpha_at(256), "takes integers 1..255"),
    (lambda: with_alpha_register(digits_spec()).alpha_at(0), "takes integers 1..255"),
    (lambda: alpha_schedule(digits_spec(), "cosine", 4), "set rates.alpha_runtime"),
])
def test_out_of_range_alphas_are_refused(call, says):
    with pytest.raises(SpecError) as exc:
        call()
    assert says in str(exc.value)


def test_schedules():
    spec = with_alpha_register(digits_spec())
    assert alpha_schedule(spec, "constant", 3) == [128] * 3
    cos = alpha_schedule(spec, "cosine", 10)
    assert cos[0] == 128 and all(a >= b for a, b in zip(cos, cos[1:])) and 8 <= cos[-1] < 16
    assert alpha_schedule(spec, "cosine", 4, final=2 ** -9)[-1] < 30
    assert alpha_schedule(spec, "step", 8) == [128, 128, 64, 64, 32, 32, 16, 16]
    with pytest.raises(ValueError, match="final"):
        alpha_schedule(spec, "cosine", 4, final=1.0)


def test_fixed_model_learns_with_the_register(tmp_path):
    """α = m·2^-f from the register: the update with m equals the update of a spec whose
    constant α is m·2^-f, bit for bit."""
    spec = with_alpha_register(digits_spec(hidden=(16,)))
    w = Weights.init(spec, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    x, t = rng.random((1, 64)), np.eye(10)[[3]]
    a = FixedPCN.from_float(spec, w)
    a.set_alpha(37)
    a.train_sample(a.quantize(x), a.quantize(t, spec.L))
    const = spec.replace(alpha=FixedConst(37, 12), alpha_runtime=False)
    b = FixedPCN.from_float(const, w)
    b.train_sample(b.quantize(x), b.quantize(t, spec.L))
    assert all(np.array_equal(u, v) for u, v in zip(a.W + a.b, b.W + b.b))
    c = FixedPCN.from_float(spec, w)                  # the reset value: the spec's α
    c.train_sample(c.quantize(x), c.quantize(t, spec.L))
    assert not all(np.array_equal(u, v) for u, v in zip(a.W, c.W))


def test_train_fixed_with_a_cosine_alpha(tmp_path):
    out = tmp_path / "f"
    r = CliRunner().invoke(main, ["train", "--out", str(out), "--trainer", "fixed", "--epochs",
                                  "2", "--alpha-schedule", "cosine", "--no-mlp"])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["alpha_per_epoch"][0] == 2 ** -5 and m["alpha_per_epoch"][1] < 2 ** -5
    assert PCSpec.load(out / "spec.toml").alpha_runtime
    r = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "g"), "--alpha-schedule",
                                  "cosine"])
    assert r.exit_code == 2 and "the float trainer has --lr" in r.output
    r = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "h"), "--trainer", "fixed",
                                  "--alpha-final", "0.001"])
    assert r.exit_code == 2 and "--alpha-schedule cosine" in r.output
    assert not (tmp_path / "g").exists() and not (tmp_path / "h").exists()


def test_train_on_hardware_with_a_decaying_alpha(tmp_path):
    """The host writes the core's α register before every epoch; every weight and bias after
    every update equals FixedPCN's learning with the same α (the run stops otherwise)."""
    out = tmp_path / "hw"
    r = CliRunner().invoke(main, ["train", "--on", "hardware", "--out", str(out), "--epochs",
                                  "2", "--limit", "24", "--test-limit", "40",
                                  "--alpha-schedule", "step", "--hidden", "16", "--alpha",
                                  "0.0625"])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["updates_checked"] == 48 and m["cycles_match_model"]
    assert m["alpha_per_epoch"] == [2 ** -4, 2 ** -6]
    assert len(m["fixed_test_accuracy_per_epoch"]) == 2
    assert m["hw_test_accuracy"] == m["fixed_test_accuracy"]
    said = " ".join(r.output.split())
    assert "per epoch" in said and "(α 0.01562" in said, said
