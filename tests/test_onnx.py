"""ONNX import and export (issue 18): graphs built with onnx.helper (no PyTorch), every import
checked against onnx's reference evaluator, round trips, and every refusal naming its node."""
import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from pcforge.cli import main
from pcforge.model import FixedPCN, FloatPCN, PCSpec, Weights
from pcforge.model.onnx_io import OnnxImportError, export_onnx, import_onnx
from pcforge.model.presets import digits_spec

DT = {np.float64: TensorProto.DOUBLE, np.float32: TensorProto.FLOAT}


def _const(name, a, dtype):
    return numpy_helper.from_array(np.asarray(a, dtype), name)


def _mlp(rng, sizes, acts, *, style="gemm", dtype=np.float64, input_act=None, flatten=False,
         opset=17):
    """A random MLP graph: per layer a Gemm (random transB/alpha/beta) or MatMul(+Add, either
    operand order), the activations between layers (relu/tanh/hardtanh as Clip(-1, 1)/
    identity); returns the model and the per-layer (W, b) it computes as y = W x + b."""
    nodes, inits, t = [], [], "x"
    in_shape = ["N", sizes[0]]
    if flatten:
        in_shape = ["N", 1, sizes[0] // 4, 4]
        nodes.append(helper.make_node("Flatten", ["x"], ["flat"], name="flatten", axis=1))
        t = "flat"
    layers = []
    for l in range(1, len(sizes)):
        a = (input_act if l == 1 else acts[l - 2])
        if a and a != "none":
            o = f"a{l}"
            if a == "hardtanh":
                inits += [_const(f"lo{l}", -1.0, dtype), _const(f"hi{l}", 1.0, dtype)]
                nodes.append(helper.make_node("Clip", [t, f"lo{l}", f"hi{l}"], [o], name=f"clip{l}"))
            elif a == "identity":
                nodes.append(helper.make_node("Identity", [t], [o], name=f"id{l}"))
            else:
                nodes.append(helper.make_node({"relu": "Relu", "tanh": "Tanh"}[a], [t], [o],
                                              name=f"{a}{l}"))
            t = o
        n_in, n_out = sizes[l - 1], sizes[l]
        W = rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in))
        b = rng.normal(0, 0.1, n_out)
        o = "y" if l == len(sizes) - 1 else f"h{l}"
        kind = style if style != "mixed" else ("gemm", "matmul_add", "add_matmul", "matmul")[l % 4]
        if kind == "gemm":
            trans_b = int(rng.integers(0, 2))
            alpha, beta = float(rng.choice([1.0, 0.5, 2.0])), float(rng.choice([1.0, 0.25]))
            B = (W if trans_b else W.T) / alpha
            inits += [_const(f"W{l}", B, dtype), _const(f"b{l}", b / beta, dtype)]
            nodes.append(helper.make_node("Gemm", [t, f"W{l}", f"b{l}"], [o], name=f"gemm{l}",
                                          transB=trans_b, alpha=alpha, beta=beta))
        else:
            inits.append(_const(f"W{l}", W.T, dtype))
            if kind == "matmul":
                b = np.zeros(n_out)
                nodes.append(helper.make_node("MatMul", [t, f"W{l}"], [o], name=f"mm{l}"))
            else:
                inits.append(_const(f"b{l}", b, dtype))
                nodes.append(helper.make_node("MatMul", [t, f"W{l}"], [f"m{l}"], name=f"mm{l}"))
                ins = [f"m{l}", f"b{l}"] if kind == "matmul_add" else [f"b{l}", f"m{l}"]
                nodes.append(helper.make_node("Add", ins, [o], name=f"add{l}"))
        layers.append((W, b))
        t = o
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", DT[dtype], in_shape)],
                              [helper.make_tensor_value_info("y", DT[dtype], ["N", sizes[-1]])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model, layers


def _reference(model, x):
    inp = model.graph.input[0]
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    dtype = helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
    xin = np.asarray(x, dtype).reshape([len(x), *dims[1:]])
    return np.asarray(ReferenceEvaluator(model).run(None, {"x": xin})[0], np.float64)


ACTS = ("relu", "tanh", "hardtanh", "identity")


@pytest.mark.parametrize("seed", range(24))
def test_imported_mlp_equals_the_reference_evaluator(seed):
    """Random MLPs (2-4 layers, every activation, every layer style, input activation, a
    Flatten in front): FloatPCN's relaxed output equals onnx.reference's to 1e-6 (float64)
    and the weights are exactly the graph's."""
    rng = np.random.default_rng(seed)
    depth = int(rng.integers(1, 4))
    sizes = [4 * int(rng.integers(1, 6))] + [int(rng.integers(2, 12)) for _ in range(depth)]
    acts = [str(rng.choice(ACTS)) for _ in range(depth - 1)]
    style = ("gemm", "matmul_add", "add_matmul", "mixed")[seed % 4]
    input_act = str(rng.choice(["none", "relu", "hardtanh"])) if seed % 3 == 0 else None
    model, layers = _mlp(rng, sizes, acts, style=style, input_act=input_act,
                         flatten=seed % 5 == 0)
    net = import_onnx(model)
    assert net.spec.sizes == tuple(sizes)
    assert net.spec.activations == (input_act if input_act not in (None, "none") else
                                    "identity", *acts)
    for (W, b), Wi, bi in zip(layers, net.weights.W, net.weights.b):
        np.testing.assert_allclose(Wi, W, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(bi, b, rtol=1e-12, atol=1e-15)
    x = rng.uniform(0, 1, (50, sizes[0]))
    ref = _reference(model, x)
    out = FloatPCN(net.spec, net.weights).infer(x)
    assert np.abs(out - ref).max() <= 1e-6, np.abs(out - ref).max()


def test_float32_graphs_import_to_the_float32_tolerance():
    rng = np.random.default_rng(7)
    model, _ = _mlp(rng, [64, 32, 10], ["relu"], dtype=np.float32)
    net = import_onnx(model)
    x = rng.uniform(0, 1, (100, 64))
    ref = _reference(model, x)
    out = FloatPCN(net.spec, net.weights).infer(x)
    assert np.abs(out - ref).max() <= 1e-6 * max(1.0, np.abs(ref).max()) * 4


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_export_then_import_round_trips(act, dtype, tmp_path):
    spec = digits_spec(hidden=(24, 12), activation=act)
    w = Weights.init(spec, np.random.default_rng(3))
    path = tmp_path / "net.onnx"
    model = export_onnx(spec, w, path, dtype=dtype)
    assert path.is_file() and onnx.load(str(path)).graph.node
    x = np.random.default_rng(4).uniform(0, 1, (40, 64))
    out = FloatPCN(spec, w).infer(x)
    ref = _reference(model, x)
    tol = 1e-12 if dtype is np.float64 else 1e-6
    assert np.abs(out - ref).max() <= tol * max(1.0, np.abs(ref).max())
    back = import_onnx(path)
    assert back.spec.sizes == spec.sizes and back.spec.activations == spec.activations
    for a, b in zip(w.W + w.b, back.weights.W + back.weights.b):
        np.testing.assert_allclose(b, a, rtol=0 if dtype is np.float64 else 1e-7,
                                   atol=0 if dtype is np.float64 else 1e-8)


def test_calibration_chooses_narrower_value_formats_that_hold_the_data():
    rng = np.random.default_rng(11)
    model, _ = _mlp(rng, [64, 48, 10], ["relu"])
    bound = import_onnx(model)
    x = rng.uniform(0, 1, (300, 64)) * (rng.random((300, 64)) < 0.3)     # sparse, like digits
    calib = import_onnx(model, calibration=x)
    assert "interval bound" in bound.formats["x"]["source"]
    assert "300 calibration samples" in calib.formats["x"]["source"]
    assert calib.formats["x"]["max_abs"] < bound.formats["x"]["max_abs"]
    assert calib.spec.formats.x.frac >= bound.spec.formats.x.frac
    # the chosen formats hold the calibration data's feed-forward pass: nothing saturates
    fx = FixedPCN.from_float(calib.spec, calib.weights)
    fx.infer(fx.quantize(x, 0))
    assert fx.sat.total() == 0, fx.sat.as_dict()
    for k in ("x", "w", "b"):
        fmt = getattr(calib.spec.formats, k)
        assert calib.formats[k]["max_abs"] <= fmt.max_value
        # and not much wider (a format keeps at least its sign bit before the point)
        assert calib.formats[k]["max_abs"] > fmt.max_value / 4 or fmt.int_bits == 1


def _graph(nodes, inits=(), inputs=(("x", [None, 4]),), out=("y", [None, 3])):
    g = helper.make_graph(list(nodes), "g",
                          [helper.make_tensor_value_info(n, TensorProto.DOUBLE, s) for n, s in inputs],
                          [helper.make_tensor_value_info(out[0], TensorProto.DOUBLE, out[1])],
                          list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


W43 = _const("W", np.ones((4, 3)), np.float64)
W34 = _const("W", np.ones((3, 4)), np.float64)
REFUSED = {
    "conv": (_graph([helper.make_node("Conv", ["x", "K"], ["y"], name="conv0")],
                    [_const("K", np.ones((3, 1, 3, 3)), np.float64)],
                    inputs=(("x", [None, 1, 5, 5]),), out=("y", [None, 3, 3, 3])),
             ["conv0", "Conv", "cannot be mapped"]),
    "softmax at the end": (_graph([helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
                                   helper.make_node("Softmax", ["h"], ["y"], name="sm")], [W43]),
                           ["sm", "Softmax", "after the last layer", "logits"]),
    "relu at the end": (_graph([helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
                                helper.make_node("Relu", ["h"], ["y"], name="out_relu")], [W43]),
                        ["out_relu", "acts on the network's output"]),
    "relu6": (_graph([helper.make_node("Clip", ["x", "lo", "hi"], ["c"], name="relu6"),
                      helper.make_node("MatMul", ["c", "W"], ["y"], name="mm")],
                     [W43, _const("lo", 0.0, np.float64), _const("hi", 6.0, np.float64)]),
              ["relu6", "Clip(0.0, 6.0)", "Clip(-1, 1)"]),
    "leaky relu": (_graph([helper.make_node("LeakyRelu", ["x"], ["c"], name="lrelu"),
                           helper.make_node("MatMul", ["c", "W"], ["y"], name="mm")], [W43]),
                   ["lrelu", "LeakyRelu"]),
    "two activations": (_graph([helper.make_node("Relu", ["x"], ["a"], name="r1"),
                                helper.make_node("Tanh", ["a"], ["c"], name="t2"),
                                helper.make_node("MatMul", ["c", "W"], ["y"], name="mm")], [W43]),
                        ["t2", "second activation", "r1"]),
    "branch": (_graph([helper.make_node("Relu", ["x"], ["a"], name="r1"),
                       helper.make_node("MatMul", ["a", "W"], ["p"], name="mm1"),
                       helper.make_node("MatMul", ["a", "W"], ["q"], name="mm2"),
                       helper.make_node("Add", ["p", "q"], ["y"], name="join")], [W43]),
               ["'a'", "feeds 2 nodes", "mm1", "mm2", "branches"]),
    "two inputs": (_graph([helper.make_node("Add", ["x", "z"], ["y"], name="add")],
                          inputs=(("x", [None, 3]), ("z", [None, 3]))),
                   ["2 inputs", "x, z"]),
    "computed weight": (_graph([helper.make_node("Relu", ["W"], ["a"], name="r"),
                                helper.make_node("MatMul", ["x", "a"], ["y"], name="outer")],
                               [W43]),
                        ["outer", "MatMul", "not a constant"]),
    "transA": (_graph([helper.make_node("Gemm", ["x", "W"], ["y"], name="g", transA=1)], [W43],
                      inputs=(("x", [4, None]),)),
               ["'g'", "transA"]),
    "wrong width": (_graph([helper.make_node("Gemm", ["x", "W"], ["y"], name="g", transB=1)],
                           [_const("W", np.ones((3, 5)), np.float64)]),
                    ["'g'", "takes 5 features", "has 4"]),
    "no layer": (_graph([helper.make_node("Relu", ["x"], ["y"], name="r")],
                        out=("y", [None, 4])), ["no Gemm or MatMul"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_cannot_be_mapped_is_refused_naming_the_node(case):
    model, words = REFUSED[case]
    with pytest.raises(OnnxImportError) as exc:
        import_onnx(model)
    for w in words:
        assert w in str(exc.value), (w, str(exc.value))


def test_gemm_without_transb_is_the_transposed_weight():
    m = _graph([helper.make_node("Gemm", ["x", "W"], ["y"], name="g")], [W43])
    assert import_onnx(m).weights.W[0].shape == (3, 4)
    m = _graph([helper.make_node("Gemm", ["x", "W"], ["y"], name="g", transB=1)], [W34])
    assert import_onnx(m).weights.W[0].shape == (3, 4)


def test_cli_import_and_export(tmp_path):
    rng = np.random.default_rng(5)
    model, _ = _mlp(rng, [64, 32, 10], ["tanh"], style="mixed", dtype=np.float32)
    src = tmp_path / "mlp.onnx"
    onnx.save(model, str(src))
    calib = tmp_path / "calib.npy"
    np.save(calib, rng.uniform(0, 1, (64, 64)))
    out = tmp_path / "imp"
    r = CliRunner().invoke(main, ["import", str(src), "--out", str(out), "--calibration",
                                  str(calib), "-T", "12"])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "import.json").read_text())
    spec = PCSpec.load(out / "spec.toml")
    assert spec.iterations == 12 and spec.name == "mlp" and spec.activations == ("identity", "tanh")
    assert rep["check"]["samples"] == 64 and rep["check"]["float_vs_onnx_max_abs"] < 1e-5
    assert rep["check"]["fixed_vs_float_argmax_agreement"] > 0.9
    assert rep["spec_digest"] == spec.digest and len(rep["layers"]) == 2
    w = Weights.load(out / "weights.npz", spec)
    # export the imported network: the same function as the source graph
    dst = tmp_path / "back.onnx"
    r = CliRunner().invoke(main, ["export", "--spec", str(out / "spec.toml"), "--weights",
                                  str(out / "weights.npz"), "--out", str(dst)])
    assert r.exit_code == 0, r.output
    x = rng.uniform(0, 1, (30, 64))
    np.testing.assert_allclose(_reference(onnx.load(str(dst)), x), _reference(model, x),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(FloatPCN(spec, w).infer(x), _reference(model, x), atol=2e-6)
    # a second export keeps the first unless --force
    r = CliRunner().invoke(main, ["export", "--spec", str(out / "spec.toml"), "--weights",
                                  str(out / "weights.npz"), "--out", str(dst)])
    assert r.exit_code == 1 and "--force" in r.output


@pytest.mark.parametrize("content, says", [(b"", "not a readable ONNX model"),
                                           (b"\x00\x01garbage" * 40, "not a readable ONNX"),
                                           (None, "does not exist")])
def test_cli_import_of_a_bad_file_is_refused_and_writes_nothing(tmp_path, content, says):
    src = tmp_path / "bad.onnx"
    if content is not None:
        src.write_bytes(content)
    out = tmp_path / "imp"
    r = CliRunner().invoke(main, ["import", str(src), "--out", str(out)])
    assert r.exit_code == 1 and says in r.output and "Traceback" not in r.output, r.output
    assert not out.exists()


def test_cli_import_of_an_unmappable_graph_names_the_node(tmp_path):
    model, _ = REFUSED["softmax at the end"]
    src = tmp_path / "sm.onnx"
    onnx.save(model, str(src))
    r = CliRunner().invoke(main, ["import", str(src), "--out", str(tmp_path / "imp")])
    assert r.exit_code == 1 and "node 'sm' (Softmax)" in r.output, r.output
    assert not (tmp_path / "imp").exists()
