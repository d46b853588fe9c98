"""Networks from and to other tools through ONNX: a feed-forward MLP graph becomes a PC network
(spec + float weights), and a PC network's feed-forward pass becomes an ONNX graph.

Why an MLP maps onto a PC network exactly: with feed-forward initialisation and only the input
clamped, every free layer starts at its prediction, x_l = W_l f(x_{l-1}) + b_l, all errors are 0
and relaxation leaves them there; so the PC network's output x_L *is* the MLP's output when the
MLP computes ``Gemm → f → Gemm → f → … → Gemm`` (the logits, no activation after the last
layer). The activation that follows layer l's Gemm in the graph is pcforge's ``activations[l]``
(f applied to x_l where it feeds layer l+1); one acting on the graph input is ``activations[0]``.

Mapped operators (opset ≥ 11): ``Gemm`` (any alpha/beta, transB; not transA), ``MatMul`` with or
without a following ``Add`` of a constant bias (either operand order), ``Relu``, ``Tanh``,
``Clip`` with bounds −1, 1 (hardtanh), ``Identity``, and ``Flatten``/``Reshape`` to
(batch, features) before the first layer. Anything else — a ``Conv``, a ``Softmax`` after the
last layer, a branch — is refused by :class:`OnnxImportError` naming the node, its operator and
why, and what to do.

Fixed-point formats (like hls4ml's profiling): the weight and bias formats get the integer bits
that the largest |W| and |b| need; the value and error formats those of the largest |x_l| or
|f(x_l)| of the feed-forward pass over a calibration set when one is given, else of an interval
bound over every input in ``input_range`` (never overflows in the feed-forward pass, but can be
pessimistic). Each choice is reported with the number it came from.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .activations import f_float
from .qformat import QFormat
from .spec import Formats, PCSpec, SpecError
from .weights import Weights

__all__ = ["OnnxImportError", "ImportedNetwork", "import_onnx", "export_onnx", "choose_formats",
           "check_against_reference", "OPSET"]

#: the opset :func:`export_onnx` writes (Clip's bounds are inputs from 11 on)
OPSET = 17
_ACT_OPS = {"Relu": "relu", "Tanh": "tanh"}
_ACT_NODES = {"relu": "Relu", "tanh": "Tanh"}


class OnnxImportError(ValueError):
    """An ONNX graph (or one of its nodes) that pcforge cannot map onto a PC network."""


@dataclass
class ImportedNetwork:
    """What :func:`import_onnx` made: the spec, the float weights, and how each choice was made.

    ``layers``: per PC layer l = 1..L, the graph nodes that became W_l, b_l and f_{l-1};
    ``formats``: per format (x, e, w, b), the largest magnitude it must hold and where that
    number came from; ``graph_input``/``graph_output``: the tensor names."""

    spec: PCSpec
    weights: Weights
    layers: list = field(default_factory=list)
    formats: dict = field(default_factory=dict)
    graph_input: str = ""
    graph_output: str = ""

    def report(self) -> dict:
        return {"spec_digest": self.spec.digest, "sizes": list(self.spec.sizes),
                "activations": list(self.spec.activations), "layers": self.layers,
                "formats": self.formats, "graph_input": self.graph_input,
                "graph_output": self.graph_output}


def _load(model):
    import onnx
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise OnnxImportError(f"{path} does not exist")
        if path.stat().st_size == 0:
            raise OnnxImportError(f"{path} is empty (0 bytes): not a readable ONNX model")
        try:
            model = onnx.load(str(path))
        except Exception as exc:            # protobuf's DecodeError and friends
            raise OnnxImportError(f"{path} is not a readable ONNX model ({exc.__class__.__name__}"
                                  f": {exc}); export one with torch.onnx.export, tf2onnx or "
                                  "onnx.helper") from None
    if not model.graph.node and not model.ir_version:
        raise OnnxImportError("not a readable ONNX model: no graph and no IR version (a file of "
                              "another kind?)")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise OnnxImportError(f"the ONNX model does not pass onnx.checker: {exc}") from None
    return model


def _describe(node) -> str:
    return f"node '{node.name or '(unnamed)'}' ({node.op_type})"


class _Graph:
    """The constants of a graph and who consumes each tensor."""

    def __init__(self, graph):
        from onnx import numpy_helper
        self.graph = graph
        self.const = {t.name: numpy_helper.to_array(t).astype(np.float64)
                      for t in graph.initializer}
        self.nodes = []
        for n in graph.node:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        self.const[n.output[0]] = numpy_helper.to_array(a.t).astype(np.float64)
                        break
                else:
                    raise OnnxImportError(f"{_describe(n)}: only tensor constants ('value') are "
                                          "supported")
            else:
                self.nodes.append(n)
        self.consumers: dict[str, list] = {}
        for n in self.nodes:
            for i in n.input:
                if i and i not in self.const:
                    self.consumers.setdefault(i, []).append(n)

    def next_node(self, tensor: str, outputs: set):
        users = self.consumers.get(tensor, [])
        if len(users) > 1:
            names = ", ".join(_describe(u) for u in users)
            raise OnnxImportError(f"tensor '{tensor}' feeds {len(users)} nodes ({names}): a PC "
                                  "network is a chain of layers, so branches cannot be mapped")
        if users and tensor in outputs:
            raise OnnxImportError(f"tensor '{tensor}' is a graph output and also feeds "
                                  f"{_describe(users[0])}: give the graph one output")
        return users[0] if users else None

    def attr(self, node, name, default):
        from onnx import helper
        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default


def _clip_bounds(g: _Graph, node):
    lo, hi = g.attr(node, "min", None), g.attr(node, "max", None)     # opset < 11
    ins = list(node.input) + ["", ""]
    for k, name in ((1, "min"), (2, "max")):
        if ins[k]:
            if ins[k] not in g.const:
                raise OnnxImportError(f"{_describe(node)}: its {name} bound is computed, not a "
                                      "constant")
            v = float(g.const[ins[k]].reshape(-1)[0])
            lo, hi = (v, hi) if k == 1 else (lo, v)
    return lo, hi


def _activation(g: _Graph, node) -> str | None:
    if node.op_type in _ACT_OPS:
        return _ACT_OPS[node.op_type]
    if node.op_type == "Identity":
        return "identity"
    if node.op_type == "Clip":
        lo, hi = _clip_bounds(g, node)
        if lo == -1.0 and hi == 1.0:
            return "hardtanh"
        raise OnnxImportError(f"{_describe(node)}: Clip({lo}, {hi}) is not an activation pcforge "
                              "has; only Clip(-1, 1) maps (hardtanh). Relu6 and other clips are "
                              "not in the datapath")
    return None


def _dense(g: _Graph, node, n_in: int | None):
    """(W (out, in), b or None, the node whose output is the layer's, [node names])."""
    names = [node.name or node.op_type]
    if node.op_type == "Gemm":
        if g.attr(node, "transA", 0):
            raise OnnxImportError(f"{_describe(node)}: transA = 1 (a transposed input) cannot be"
                                  " mapped; export with the batch as the first axis")
        if node.input[1] not in g.const:
            raise OnnxImportError(f"{_describe(node)}: its weight '{node.input[1]}' is computed "
                                  "in the graph, not a constant (initializer)")
        B = g.const[node.input[1]]
        W = (B if g.attr(node, "transB", 0) else B.T) * float(g.attr(node, "alpha", 1.0))
        b = None
        if len(node.input) > 2 and node.input[2]:
            if node.input[2] not in g.const:
                raise OnnxImportError(f"{_describe(node)}: its bias '{node.input[2]}' is not a "
                                      "constant")
            b = g.const[node.input[2]] * float(g.attr(node, "beta", 1.0))
        return W, b, node, names
    # MatMul (+ Add)
    a, w = node.input
    if w not in g.const:
        raise OnnxImportError(f"{_describe(node)}: its second operand '{w}' is not a constant "
                              "weight (a MatMul of two computed tensors is not a layer)")
    W = g.const[w].T
    if W.ndim != 2:
        raise OnnxImportError(f"{_describe(node)}: weight '{w}' has {W.ndim} axes, not 2")
    last, b = node, None
    nxt = g.next_node(node.output[0], set())
    if nxt is not None and nxt.op_type == "Add":
        other = [i for i in nxt.input if i != node.output[0]]
        if len(other) == 1 and other[0] in g.const:
            b, last = g.const[other[0]], nxt
            names.append(nxt.name or nxt.op_type)
    return W, b, last, names


def _bias(b, n_out: int, node) -> np.ndarray:
    if b is None:
        return np.zeros(n_out)
    b = np.asarray(b, np.float64)
    if b.size == 1:
        return np.full(n_out, float(b.reshape(-1)[0]))
    if b.size != n_out or (b.ndim == 2 and b.shape[0] != 1) or b.ndim > 2:
        raise OnnxImportError(f"{_describe(node)}: bias of shape {b.shape} does not broadcast "
                              f"per output as ({n_out},)")
    return b.reshape(-1)


def _walk(model):
    """(sizes, activations, W list, b list, layer notes, input name, output name)."""
    g = _Graph(model.graph)
    inits = set(g.const)
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise OnnxImportError(f"the graph has {len(inputs)} inputs "
                              f"({', '.join(i.name for i in inputs)}); an MLP has one")
    if len(model.graph.output) != 1:
        raise OnnxImportError(f"the graph has {len(model.graph.output)} outputs; an MLP has one")
    inp, out_name = inputs[0], model.graph.output[0].name
    outputs = {out_name}
    dims = [d.dim_value if d.HasField("dim_value") else None
            for d in inp.type.tensor_type.shape.dim]
    features = math.prod(dims[1:]) if dims and all(dims[1:]) else None

    acts, Ws, bs, layers = [], [], [], []
    pending_act, act_node = None, None
    tensor, node = inp.name, g.next_node(inp.name, outputs)
    while node is not None:
        if node.op_type in ("Flatten", "Reshape"):
            if Ws or pending_act:
                raise OnnxImportError(f"{_describe(node)}: a reshape between layers cannot be "
                                      "mapped (only one before the first layer, to (batch, "
                                      "features))")
            if node.op_type == "Flatten" and g.attr(node, "axis", 1) != 1:
                raise OnnxImportError(f"{_describe(node)}: Flatten(axis={g.attr(node, 'axis', 1)})"
                                      " must keep the batch axis (axis = 1)")
            if node.op_type == "Reshape":
                shape = g.const.get(node.input[1])
                if shape is None or shape.size != 2:
                    raise OnnxImportError(f"{_describe(node)}: only a Reshape to (batch, "
                                          "features) with a constant shape maps")
            tensor = node.output[0]
        elif (a := _activation(g, node)) is not None:
            if pending_act is not None:
                raise OnnxImportError(f"{_describe(node)}: a second activation right after "
                                      f"{_describe(act_node)}; pcforge has one f per layer")
            pending_act, act_node = a, node
            tensor = node.output[0]
        elif node.op_type in ("Gemm", "MatMul"):
            W, b, last, names = _dense(g, node, None)
            n_out, n_in = W.shape
            if not Ws and features is not None and features != n_in:
                raise OnnxImportError(f"{_describe(node)}: weight takes {n_in} features but the "
                                      f"input '{inp.name}' has {features}")
            if Ws and Ws[-1].shape[0] != n_in:
                raise OnnxImportError(f"{_describe(node)}: weight takes {n_in} inputs but the "
                                      f"layer before has {Ws[-1].shape[0]} outputs")
            acts.append(pending_act or "identity")
            layers.append({"layer": len(Ws) + 1, "nodes": names, "shape": [n_out, n_in],
                           "activation_before": acts[-1],
                           "activation_node": act_node.name if act_node is not None else None})
            Ws.append(np.asarray(W, np.float64))
            bs.append(_bias(b, n_out, last))
            pending_act, act_node = None, None
            tensor = last.output[0]
        else:
            where = "after the last layer" if Ws else "in the graph"
            hint = (" A PC network's output layer is linear (x_L = W_L f(x_{L-1}) + b_L): "
                    "export the logits, without the final " + node.op_type
                    if node.op_type in ("Softmax", "LogSoftmax", "Sigmoid") else
                    " pcforge maps Gemm, MatMul(+Add), Relu, Tanh, Clip(-1, 1), Identity, "
                    "Flatten and Reshape")
            raise OnnxImportError(f"{_describe(node)} {where} cannot be mapped.{hint}")
        node = g.next_node(tensor, outputs)
    if not Ws:
        raise OnnxImportError("the graph has no Gemm or MatMul layer")
    if pending_act is not None:
        raise OnnxImportError(f"{_describe(act_node)} acts on the network's output: a PC "
                              "network's output layer is the linear prediction x_L = W_L "
                              "f(x_{L-1}) + b_L; export the graph without it")
    if tensor != out_name:
        raise OnnxImportError(f"the chain of layers ends in '{tensor}', not in the graph output "
                              f"'{out_name}'")
    sizes = [Ws[0].shape[1]] + [W.shape[0] for W in Ws]
    return sizes, acts, Ws, bs, layers, inp.name, out_name


def _int_bits(magnitude: float) -> int:
    """Bits before the point (sign included) that hold ±magnitude."""
    if magnitude <= 0 or not np.isfinite(magnitude):
        return 1
    return max(1, math.floor(math.log2(magnitude)) + 2)


def _interval_bound(acts, Ws, bs, lo: float, hi: float) -> float:
    """The largest |x_l| or |f(x_l)| over every input in [lo, hi]^n (interval arithmetic)."""
    low = np.full(Ws[0].shape[1], lo, np.float64)
    high = np.full(Ws[0].shape[1], hi, np.float64)
    m = max(abs(lo), abs(hi))
    for a, W, b in zip(acts, Ws, bs):
        fl, fh = f_float(a, low), f_float(a, high)       # monotone activations
        m = max(m, np.abs(fl).max(), np.abs(fh).max())
        Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
        low, high = Wp @ fl + Wn @ fh + b, Wp @ fh + Wn @ fl + b
        m = max(m, np.abs(low).max(), np.abs(high).max())
    return float(m)


def _calibrated_max(acts, Ws, bs, x: np.ndarray) -> float:
    m = float(np.abs(x).max())
    for a, W, b in zip(acts, Ws, bs):
        fx = f_float(a, x)
        x = fx @ W.T + b
        m = max(m, float(np.abs(fx).max()), float(np.abs(x).max()))
    return m


def choose_formats(acts, Ws, bs, *, width: int = 16, calibration=None,
                   input_range=(0.0, 1.0)) -> tuple[Formats, dict]:
    """Formats of ``width`` bits for these weights (see the module docstring) and, per format,
    the magnitude it must hold and its source."""
    wmax = max(float(np.abs(W).max()) for W in Ws)
    bmax = max(float(np.abs(b).max()) for b in bs)
    if calibration is not None:
        x = np.asarray(calibration, np.float64)
        if x.ndim != 2 or x.shape[1] != Ws[0].shape[1] or not np.all(np.isfinite(x)):
            raise OnnxImportError(f"the calibration set must be finite, (samples, "
                                  f"{Ws[0].shape[1]}); it is {x.shape}")
        xmax = _calibrated_max(acts, Ws, bs, x)
        xsrc = f"feed-forward pass of {len(x)} calibration samples"
    else:
        lo, hi = map(float, input_range)
        xmax = _interval_bound(acts, Ws, bs, lo, hi)
        xsrc = f"interval bound over every input in [{lo:g}, {hi:g}]"
    info, fmts = {}, {}
    for name, mag, src in (("x", xmax, xsrc), ("e", xmax, "as x (errors are differences of "
                                                      "values and predictions)"),
                           ("w", wmax, "largest |W|"), ("b", bmax, "largest |b|")):
        ib = _int_bits(mag)
        if ib >= width:
            raise OnnxImportError(f"formats.{name}: values up to {mag:.3g} ({src}) need {ib} "
                                  f"integer bits, not fewer than --width {width}")
        fmts[name] = QFormat(width, width - ib)
        info[name] = {"max_abs": mag, "source": src, "format": f"Q{width}.{width - ib}"}
    return Formats(**fmts), info


def check_against_reference(model, spec: PCSpec, weights: Weights, x: np.ndarray) -> dict:
    """Run the ONNX graph with onnx's reference evaluator (``onnx.reference``) on inputs ``x``
    and compare: FloatPCN's output after relaxation (feed-forward initialisation, input
    clamped) against the graph's, and the bit-exact FixedPCN against FloatPCN. Returns the
    maximum absolute differences, the output scale and the argmax agreements."""
    from onnx.helper import tensor_dtype_to_np_dtype
    from onnx.reference import ReferenceEvaluator

    from .fixed_pcn import FixedPCN
    from .float_pcn import FloatPCN
    model = _load(model)
    inits = {t.name for t in model.graph.initializer}
    inp = [i for i in model.graph.input if i.name not in inits][0]
    dtype = tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
    dims = [d.dim_value if d.HasField("dim_value") else -1
            for d in inp.type.tensor_type.shape.dim]
    xin = np.asarray(x, dtype).reshape([len(x), *[d if d > 0 else -1 for d in dims[1:]]]
                                       if len(dims) > 2 else (len(x), -1))
    ref = np.asarray(ReferenceEvaluator(model).run(None, {inp.name: xin})[0],
                     np.float64).reshape(len(x), -1)
    flt = FloatPCN(spec, weights).infer(np.asarray(xin, np.float64).reshape(len(x), -1))
    fx = FixedPCN.from_float(spec, weights)
    res = fx.infer(fx.quantize(np.asarray(xin, np.float64).reshape(len(x), -1), 0))
    fix = spec.formats.x.to_float(res.output)
    return {"samples": int(len(x)), "onnx_dtype": str(np.dtype(dtype)),
            "output_max_abs": float(np.abs(ref).max()),
            "float_vs_onnx_max_abs": float(np.abs(flt - ref).max()),
            "float_vs_onnx_argmax_agreement": float(np.mean(flt.argmax(1) == ref.argmax(1))),
            "fixed_vs_float_max_abs": float(np.abs(fix - flt).max()),
            "fixed_vs_float_mean_abs": float(np.abs(fix - flt).mean()),
            "fixed_vs_float_argmax_agreement": float(np.mean(fix.argmax(1) == flt.argmax(1))),
            "fixed_saturations": int(fx.sat.total())}


def import_onnx(model, *, name: str = "imported", width: int = 16, calibration=None,
                input_range=(0.0, 1.0), **spec_changes) -> ImportedNetwork:
    """A PC network (spec + float weights) from an ONNX MLP graph.

    ``model``: a path or an ``onnx.ModelProto``; ``calibration``: inputs (samples, n_0) whose
    feed-forward ranges choose the value formats (else the interval bound over
    ``input_range``); ``spec_changes``: further :class:`PCSpec` fields (iterations, rates, …).

    >>> import onnx, numpy as np
    >>> from onnx import helper, numpy_helper
    >>> W = numpy_helper.from_array(np.eye(3, 4, dtype=np.float32), "W")
    >>> g = helper.make_graph([helper.make_node("Gemm", ["x", "W"], ["y"], transB=1)], "mlp",
    ...     [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 4])],
    ...     [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 3])], [W])
    >>> net = import_onnx(helper.make_model(g))
    >>> net.spec.sizes, net.spec.activations
    ((4, 3), ('identity',))
    """
    sizes, acts, Ws, bs, layers, iname, oname = _walk(_load(model))
    formats, info = choose_formats(acts, Ws, bs, width=width, calibration=calibration,
                                   input_range=input_range)
    try:
        spec = PCSpec(sizes=tuple(sizes), activations=tuple(acts), formats=formats, name=name,
                      **{"stop": "exact", **spec_changes})
    except SpecError as exc:
        raise OnnxImportError(f"the imported network makes no valid spec: {exc}") from None
    weights = Weights(Ws, bs).check(spec)
    return ImportedNetwork(spec, weights, layers, info, iname, oname)


def export_onnx(spec: PCSpec, weights: Weights, path=None, *, dtype=np.float32):
    """The feed-forward network of a PC net as an ONNX model (``Gemm`` per layer, the
    activations as ``Relu``/``Tanh``/``Clip(-1, 1)``; input ``x`` (batch, n_0), output ``y``
    (batch, n_L)): what the PC network computes with the input clamped and feed-forward
    initialisation (float, true tanh). Written to ``path`` when given; returns the model."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from .files import atomic_write
    weights.check(spec)
    elem = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE}[dtype]
    nodes, inits, t = [], [], "x"
    for l in range(1, spec.L + 1):
        a = spec.activations[l - 1]
        if a != "identity":
            o = f"f{l - 1}"
            if a == "hardtanh":
                inits += [numpy_helper.from_array(np.array(-1.0, dtype), f"clip_lo{l - 1}"),
                          numpy_helper.from_array(np.array(1.0, dtype), f"clip_hi{l - 1}")]
                nodes.append(helper.make_node("Clip", [t, f"clip_lo{l - 1}", f"clip_hi{l - 1}"],
                                              [o], name=f"hardtanh{l - 1}"))
            else:
                nodes.append(helper.make_node(_ACT_NODES[a], [t], [o], name=f"{a}{l - 1}"))
            t = o
        inits += [numpy_helper.from_array(np.asarray(weights.W[l - 1], dtype), f"W{l}"),
                  numpy_helper.from_array(np.asarray(weights.b[l - 1], dtype), f"b{l}")]
        o = "y" if l == spec.L else f"x{l}"
        nodes.append(helper.make_node("Gemm", [t, f"W{l}", f"b{l}"], [o], name=f"layer{l}",
                                      transB=1))
        t = o
    graph = helper.make_graph(
        nodes, spec.name,
        [helper.make_tensor_value_info("x", elem, ["batch", spec.sizes[0]])],
        [helper.make_tensor_value_info("y", elem, ["batch", spec.sizes[-1]])], inits,
        doc_string=f"pcforge spec {spec.digest}: feed-forward pass of the PC network")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="pcforge")
    model.ir_version = min(model.ir_version, 9)      # readable by older runtimes too
    onnx.checker.check_model(model)
    if path is not None:
        atomic_write(path, model.SerializeToString())
    return model
