"""PCSpec validation (every bad input names its field), TOML round trip, digest; Weights I/O."""
import numpy as np
import pytest

from pcforge.model import Formats, PCSpec, QFormat, SpecError, Weights, WeightsError
from pcforge.model.qformat import FixedConst
from pcforge.model.randspec import random_spec
from pcforge.model.presets import digits_spec


def test_digits_default_round_trips_through_toml(tmp_path):
    spec = digits_spec()
    p = spec.save(tmp_path / "spec.toml")
    back = PCSpec.load(p)
    assert back == spec and back.digest == spec.digest
    assert spec.formats.acc.width == 40 and spec.formats.acc.frac == 24


def test_random_specs_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(30):
        spec = random_spec(rng)
        assert PCSpec.load(spec.save(tmp_path / f"s{i}.toml")) == spec


def test_digest_is_stable_and_sensitive():
    a, b = digits_spec(), digits_spec()
    assert a.digest == b.digest
    assert len(a.digest) == 16
    assert digits_spec(iterations=21).digest != a.digest
    assert digits_spec(name="other").digest == a.digest          # the name is not content
    assert digits_spec(stop="none").digest != a.digest


@pytest.mark.parametrize("kw, field", [
    (dict(sizes=[64]), "network.sizes"),
    (dict(sizes=[64, 0, 10]), r"network.sizes\[1\]"),
    (dict(activations=["relu"]), "network.activations"),                 # mismatched sizes
    (dict(activations=["identity", "swish"]), r"network.activations\[1\] = 'swish'"),
    (dict(iterations=0), "network.iterations"),
    (dict(init="random"), "network.init"),
    (dict(learning="backprop"), "network.learning"),
    (dict(schedule="async"), "network.schedule"),
    (dict(stop="soon"), "network.stop"),
    (dict(table_bits=20), "network.table_bits"),
    (dict(clamp={"inference": [True, False]}), "clamp.inference"),
])
def test_bad_network_fields_are_named(kw, field):
    base = dict(sizes=[64, 64, 10], activations=["identity", "relu"])
    base.update(kw)
    with pytest.raises(SpecError, match=field):
        PCSpec(**base)


def test_accumulator_too_narrow_names_width_and_fix():
    f = Formats(acc=QFormat(32, 24))
    with pytest.raises(SpecError, match=r"formats.acc.width = 32 .* set formats.acc.width >= 40"):
        PCSpec(sizes=[64, 64, 10], activations=["identity", "relu"], formats=f)


def test_accumulator_fraction_too_small():
    f = Formats(acc=QFormat(48, 20))
    with pytest.raises(SpecError, match=r"formats.acc.frac = 20 .* set formats.acc.frac = 24"):
        PCSpec(sizes=[4, 4], activations=["relu"], formats=f)


def test_x_format_must_hold_one():
    with pytest.raises(SpecError, match="formats.x"):
        PCSpec(sizes=[4, 4], activations=["relu"], formats=Formats(x=QFormat(16, 15)))


def test_overflowing_update_width_is_refused():
    f = Formats(x=QFormat(32, 20), e=QFormat(32, 20), w=QFormat(32, 20), b=QFormat(32, 20))
    with pytest.raises(SpecError, match="bits"):
        PCSpec(sizes=[4, 4], activations=["relu"], formats=f)


def test_malformed_toml_names_the_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[network\nsizes = [1, 2]\n")
    with pytest.raises(SpecError, match="bad.toml is not valid TOML"):
        PCSpec.load(p)


def test_unknown_key_is_named(tmp_path):
    text = digits_spec().to_toml().replace("iterations = 20", "iteratons = 20")
    p = tmp_path / "typo.toml"
    p.write_text(text)
    with pytest.raises(SpecError, match="unknown key.*iteratons"):
        PCSpec.load(p)


def test_bad_format_in_toml_is_named(tmp_path):
    text = digits_spec().to_toml().replace('rounding = "half_even"', 'rounding = "nearest"', 1)
    p = tmp_path / "fmt.toml"
    p.write_text(text)
    with pytest.raises(SpecError, match="formats.x.*rounding"):
        PCSpec.load(p)


def test_missing_spec_file():
    with pytest.raises(SpecError, match="does not exist"):
        PCSpec.load("/nonexistent/spec.toml")


def test_unknown_clamp_mode():
    with pytest.raises(SpecError, match="unknown clamp mode 'dream'"):
        digits_spec().mask("dream")


def test_weights_shape_mismatch_is_named(tmp_path):
    spec = digits_spec()
    w = Weights.init(spec, np.random.default_rng(0))
    w.W[1] = np.zeros((10, 63))
    with pytest.raises(WeightsError, match=r"W2 has shape \(10, 63\).*\(10, 64\)"):
        w.check(spec)


def test_weights_file_for_other_sizes_is_refused(tmp_path):
    small = digits_spec(hidden=(32,))
    Weights.init(small, np.random.default_rng(0)).save(tmp_path / "w.npz", small)
    with pytest.raises(WeightsError, match=r"sizes \[64, 32, 10\].*\[64, 64, 10\]"):
        Weights.load(tmp_path / "w.npz", digits_spec())


def test_weights_missing_array_and_bad_file(tmp_path):
    spec = digits_spec()
    np.savez(tmp_path / "w.npz", W1=np.zeros((64, 64)))
    with pytest.raises(WeightsError, match="no array 'b1'"):
        Weights.load(tmp_path / "w.npz", spec)
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(WeightsError, match="not an .npz archive"):
        Weights.load(tmp_path / "junk.npz", spec)


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8)), "not an .npz archive"),
    (b"\x80\x04\x95pickled", "not an .npz archive"),
    (b"PK\x03\x04truncated zip", "not"),
], ids=["empty", "random", "pickle", "broken-zip"])
def test_malformed_weights_files_are_named(tmp_path, content, message):
    """Random bytes, an empty file, a pickle, a broken zip: a WeightsError naming the file."""
    f = tmp_path / "w.npz"
    f.write_bytes(content)
    with pytest.raises(WeightsError, match=message) as exc:
        Weights.load(f, digits_spec())
    assert str(f) in str(exc.value)


def test_a_single_npy_array_is_not_a_weights_file(tmp_path):
    np.save(tmp_path / "w.npy", np.zeros((64, 64)))
    with pytest.raises(WeightsError, match="single .npy array"):
        Weights.load(tmp_path / "w.npy", digits_spec())


def test_weights_under_other_activations_are_refused_naming_both_digests(tmp_path):
    """Same sizes, another activation: the same numbers would be another network."""
    tanh = digits_spec(activation="tanh")
    Weights.init(tanh, np.random.default_rng(0)).save(tmp_path / "w.npz", tanh)
    relu = digits_spec()
    with pytest.raises(WeightsError, match="activations") as exc:
        Weights.load(tmp_path / "w.npz", relu)
    assert tanh.digest in str(exc.value) and relu.digest in str(exc.value)
    # other rates, T or the stop are fine: the float weights are quantised for the spec in use
    Weights.load(tmp_path / "w.npz", tanh.replace(iterations=7, stop="none"))


def test_weights_round_trip(tmp_path):
    spec = digits_spec()
    w = Weights.init(spec, np.random.default_rng(1))
    back = Weights.load(w.save(tmp_path / "w.npz", spec), spec)
    for a, b in zip(w.W + w.b, back.W + back.b):
        assert np.array_equal(a, b)


def test_rates_are_exact_constants():
    s = digits_spec(gamma=FixedConst.from_float(0.1, 10))
    assert s.gamma.value == 0.099609375


@pytest.mark.parametrize("rate", ["gamma", "alpha"])
def test_rates_above_one_refused_in_python_and_toml(rate, tmp_path):
    """γ = 1000 used to be accepted (FixedPCN saturated and scored 5 %); now the spec refuses
    any rate above 1, from Python and from a TOML file, while exactly 1 is still allowed."""
    assert digits_spec(**{rate: FixedConst.from_float(1.0, 3)}).to_dict()
    with pytest.raises(SpecError, match=f"rates.{rate} = 1000"):
        digits_spec(**{rate: FixedConst.from_float(1000.0, 3)})
    path = digits_spec().save(tmp_path / "s.toml")
    text = path.read_text()
    block = f"[rates.{rate}]\nmantissa = 1\n"
    assert block in text
    path.write_text(text.replace(block, f"[rates.{rate}]\nmantissa = 1000\n"))
    with pytest.raises(SpecError, match=f"0 < {rate} <= 1"):
        PCSpec.load(path)


def test_weight_guard_bits_roundtrip_and_validation(tmp_path):
    from pcforge.model.presets import digits_spec
    plain = digits_spec()
    assert "w_guard" not in plain.to_dict()["formats"]       # digests of older specs unchanged
    spec = digits_spec(formats=Formats(w=QFormat(12, 8), w_guard=4))
    assert spec.formats.w_store == QFormat(16, 12)
    assert spec.to_dict()["formats"]["w_guard"] == 4 and spec.digest != plain.digest
    back = PCSpec.load(spec.save(tmp_path / "g.toml"))
    assert back == spec and back.digest == spec.digest
    with pytest.raises(SpecError, match="w_guard"):
        digits_spec(formats=Formats(w_guard=17))
    with pytest.raises(SpecError, match="32"):
        digits_spec(formats=Formats(w=QFormat(30, 12), w_guard=4))
    with pytest.raises(SpecError, match="guard"):
        digits_spec(formats=Formats(w_guard=16))              # past the product's fraction bits
    d = spec.to_dict()
    d["formats"]["w_guard"] = "4"
    with pytest.raises(SpecError, match="w_guard"):
        PCSpec.from_dict(d)
