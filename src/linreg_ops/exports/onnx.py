"""ONNX graphs of the three model kinds: standard ``ai.onnx`` operators only, one opset.

Every graph takes one input ``X`` of shape [N, d] (N symbolic, features in
``feature_names`` order) and is stamped with ``ONNX_OPSET`` 21 / ``ONNX_IR_VERSION`` 10, the
pair of ONNX 1.16: old enough for any current runtime, new enough for 16-bit
DequantizeLinear (tested with onnxruntime 1.32). ``metadata_props`` carries the feature
names (a JSON list), the model kind, the SHA-256 of the artifact it was exported from and
the linreg-ops version.

Every graph takes float64 ``X`` by default, the type of the data ``predict`` reads, so its
answers are predict's on the same numbers; ``input_type="float32"`` makes ``X`` float32
(half the bytes per row, the usual tensor type of ML pipelines), cast to float64 first
inside: the graph then answers the float32-rounded inputs, which moves the integer model's
codes on a few rows of float64 data and the float answers by up to ~2⁻²⁴ of their terms.
Either way, a row outside the model's domain (``linreg_ops.model.outside_domain``: NaN, ±inf,
or, for the float kinds, a value so large that a sum could overflow) gets ``y`` = NaN,
where ``predict`` refuses it; the arithmetic inside the domain is predict's.

* ``float``: ``y`` float64 = X·coef + intercept (coefficients in raw feature space), the
  arithmetic of ``LinearModel.predict``, within its rounding bound (summation order).
* ``quantized``: the integer weight codes are an initializer of the narrowest integer type
  (int8/uint8 up to 8 bits, int16/uint16 up to 16); the graph dequantizes them as
  DequantizeLinear would, but in float64 (Cast, Sub the zero point, Mul the scale:
  DequantizeLinear-21 has no float64 output, and its float32 product is not exact), divides
  by the float32 standard deviations and folds the means and the int32 bias into an
  intercept: the operations of ``QuantizedLinearModel.to_raw_space`` and ``predict``, each
  elementwise step bit for bit, the two dot products within their rounding bound.
* ``integer``: → ``codes`` int16, ``clipped`` bool, ``y`` float64. See ``integer_graph`` for
  how it reproduces ``IntegerLinearModel.predict_codes`` bit for bit.

onnx is imported inside the functions, so the package imports without the ``onnx`` extra.
"""

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from linreg_ops._version import __version__
from linreg_ops.config import ONNX_INPUT_TYPES
from linreg_ops.errors import InputError
from linreg_ops.exports._common import checked_sha256, integer_bounds
from linreg_ops.extras import require
from linreg_ops.model import IntegerLinearModel, LinearModel, QuantizedLinearModel

if TYPE_CHECKING:
    import onnx as onnx_module

__all__ = [
    "INPUT_NAME",
    "INPUT_TYPES",
    "ONNX_IR_VERSION",
    "ONNX_OPSET",
    "ROWS",
    "Model",
    "float_graph",
    "integer_graph",
    "model_kind",
    "onnx_model",
    "onnx_model_bytes",
    "quantized_graph",
    "require_onnx",
    "weight_code_dtype",
]

ONNX_OPSET = 21
ONNX_IR_VERSION = 10
INPUT_NAME = "X"
INPUT_TYPES = ONNX_INPUT_TYPES  # the first is the default (in config: the CLI offers them)
# MatMul with a [d, 1] matrix and a Reshape to [N], not with a [d] vector: onnxruntime
# 1.32's CPU MatMul takes a ~50× slower path for a 1-D second operand (185 ms against 4 ms
# for 1M float64 rows × 8 features), with the same results.
ROWS = np.array([-1], dtype=np.int64)

Model = LinearModel | QuantizedLinearModel | IntegerLinearModel


def require_onnx() -> None:
    """Fail with the one-line hint that installs onnx, before any function imports it."""
    require("onnx", "onnx", "the ONNX export")


def model_kind(model: Model) -> str:
    """``float``, ``quantized`` or ``integer``: the name the CLI and the metadata use."""
    if isinstance(model, LinearModel):
        return "float"
    if isinstance(model, QuantizedLinearModel):
        return "quantized"
    if isinstance(model, IntegerLinearModel):
        return "integer"
    raise InputError(f"cannot export a {type(model).__name__} to ONNX")


def onnx_model_bytes(
    model: Model, *, artifact_sha256: str, input_type: str = INPUT_TYPES[0]
) -> bytes:
    """The serialized ONNX model for any of the three kinds, checked by onnx's full checker.

    ``input_type`` is the type of ``X``: float64 (the default: the graph answers exactly the
    numbers ``predict`` reads) or float32 (see the module docstring for what it costs).
    """
    proto = onnx_model(model, artifact_sha256=artifact_sha256, input_type=input_type)
    return bytes(proto.SerializeToString())


def onnx_model(
    model: Model, *, artifact_sha256: str, input_type: str = INPUT_TYPES[0]
) -> "onnx_module.ModelProto":
    """The ``ModelProto`` behind ``onnx_model_bytes`` (for callers that inspect it)."""
    require_onnx()
    import onnx

    digest = checked_sha256(artifact_sha256)
    kind = model_kind(model)
    if input_type not in INPUT_TYPES:
        raise InputError(f"the ONNX input type must be float64 or float32, got {input_type!r}")
    if isinstance(model, LinearModel):
        graph = float_graph(model, input_type)
    elif isinstance(model, QuantizedLinearModel):
        graph = quantized_graph(model, input_type)
    else:
        graph = integer_graph(model, input_type)
    proto = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", ONNX_OPSET)],
        ir_version=ONNX_IR_VERSION,
        producer_name="linreg-ops",
        producer_version=__version__,
        doc_string=f"linreg-ops {kind} linear model of {model.target_name!r}",
    )
    onnx.helper.set_model_props(
        proto,
        {
            "model_kind": kind,
            "feature_names": json.dumps(list(model.feature_names)),
            "target_name": model.target_name,
            "artifact_sha256": digest,
            "input_type": input_type,
            "linreg_ops_version": __version__,
        },
    )
    onnx.checker.check_model(proto, full_check=True)
    return proto


# --------------------------------------------------------------------------- building blocks


def _input(input_type: str, d: int) -> "onnx_module.ValueInfoProto":
    from onnx import TensorProto, helper

    elem_type = TensorProto.DOUBLE if input_type == "float64" else TensorProto.FLOAT
    return helper.make_tensor_value_info(INPUT_NAME, elem_type, ["N", d])


def _domain(model: Model) -> tuple[list["onnx_module.NodeProto"], list["onnx_module.TensorProto"]]:
    """``X`` as float64 (``x64``), which of its values lie inside the domain (``inside``,
    [N, d]: |x| ≤ the model's ``input_bounds``, false for NaN) and which rows do not
    (``refused``, [N]): ``linreg_ops.model.outside_domain``, value for value."""
    from onnx import TensorProto

    nodes = [
        _node("Cast", [INPUT_NAME], "x64", to=TensorProto.DOUBLE),
        _node("Abs", ["x64"], "magnitude"),
        _node("LessOrEqual", ["magnitude", "input_bound"], "inside"),
        _node("Not", ["inside"], "outside"),
        _node("ReduceMax", ["outside", "feature_axis"], "refused", keepdims=0),
    ]
    initializers = [
        _constant("input_bound", np.asarray(model.input_bounds, dtype=np.float64)),
        _constant("feature_axis", np.array([1], dtype=np.int64)),
        _constant("not_a_number", np.array(np.nan, dtype=np.float64)),
    ]
    return nodes, initializers


def _answer(answer: str) -> "onnx_module.NodeProto":
    """``y``: the answer, NaN on the rows outside the domain (where ``predict`` refuses)."""
    return _node("Where", ["refused", "not_a_number", answer], "y")


def _output(name: str, elem_type: int) -> "onnx_module.ValueInfoProto":
    from onnx import helper

    return helper.make_tensor_value_info(name, elem_type, ["N"])


def _constant(name: str, value: np.ndarray) -> "onnx_module.TensorProto":
    from onnx import numpy_helper

    return numpy_helper.from_array(np.ascontiguousarray(value), name)


def _node(op: str, inputs: list[str], output: str, **attributes: Any) -> "onnx_module.NodeProto":
    """One node, named after its only output (so error messages point at it)."""
    from onnx import helper

    return helper.make_node(op, inputs, [output], name=output, **attributes)


# --------------------------------------------------------------------------- float


def float_graph(model: LinearModel, input_type: str = INPUT_TYPES[0]) -> "onnx_module.GraphProto":
    """y = X·coef + intercept in float64: MatMul with the [d, 1] coefficients, Reshape, Add."""
    require_onnx()
    import onnx

    d = model.n_features
    coef = np.asarray(model.coef, dtype=np.float64)
    if coef.shape != (d,) or not (np.isfinite(coef).all() and np.isfinite(model.intercept)):
        raise InputError("the float model needs one finite coefficient per feature")
    domain, bounds = _domain(model)
    return onnx.helper.make_graph(
        [
            *domain,
            _node("MatMul", ["x64", "coef"], "column"),
            _node("Reshape", ["column", "rows"], "dot"),
            _node("Add", ["dot", "intercept"], "answer"),
            _answer("answer"),
        ],
        "linreg_float",
        [_input(input_type, d)],
        [_output("y", onnx.TensorProto.DOUBLE)],
        [
            *bounds,
            _constant("coef", coef.reshape(d, 1)),
            _constant("rows", ROWS),
            _constant("intercept", np.array(model.intercept, dtype=np.float64)),
        ],
        doc_string="y = X @ coef + intercept, float64, raw feature space; NaN outside the domain",
    )


# --------------------------------------------------------------------------- quantized


def weight_code_dtype(model: QuantizedLinearModel) -> type[np.integer[Any]]:
    """The narrowest type DequantizeLinear-21 accepts for these codes: (u)int8 or (u)int16."""
    if model.bits > 16:
        raise InputError(f"{model.dtype} weights are wider than DequantizeLinear's 16-bit types")
    if model.symmetric:
        return np.int8 if model.bits <= 8 else np.int16
    return np.uint8 if model.bits <= 8 else np.uint16


def quantized_graph(
    model: QuantizedLinearModel, input_type: str = INPUT_TYPES[0]
) -> "onnx_module.GraphProto":
    """y = X·c + (bias·bias_scale − c·μ), c = scale·(q − zero_point)/σ: float64, from the
    stored integer codes, as ``QuantizedLinearModel.to_raw_space`` and ``predict``."""
    require_onnx()
    import onnx

    d = model.n_features
    code_type = weight_code_dtype(model)
    info = np.iinfo(code_type)
    weights = np.asarray(model.weights, dtype=np.int64)
    zero_point = np.asarray(model.zero_point, dtype=np.int64)
    if weights.shape != (d,) or zero_point.shape != np.shape(model.scale):
        raise InputError("the quantized model's weights, scales and zero points do not match")
    codes = np.concatenate([weights, zero_point])
    if codes.min() < info.min or codes.max() > info.max:
        raise InputError(f"{model.dtype} codes do not fit {np.dtype(code_type).name}")
    if np.size(model.scale) not in (1, d):
        raise InputError("a per-channel quantized model needs one scale per feature")
    double = onnx.TensorProto.DOUBLE
    domain, bounds = _domain(model)
    return onnx.helper.make_graph(
        [
            *domain,
            _node("Cast", ["weight_codes"], "codes64", to=double),
            _node("Cast", ["weight_zero_point"], "zero_point64", to=double),
            _node("Sub", ["codes64", "zero_point64"], "steps"),
            _node("Mul", ["steps", "weight_scale"], "standardized_weights"),
            _node("Div", ["standardized_weights", "feature_std"], "coef_vector"),
            _node("Reshape", ["coef_vector", "column_shape"], "coef"),
            _node("Cast", ["bias_code"], "bias64", to=double),
            _node("Mul", ["bias64", "bias_scale"], "bias"),
            _node("Reshape", ["feature_mean", "row_shape"], "mean_row"),
            _node("MatMul", ["mean_row", "coef"], "mean_term"),
            _node("Reshape", ["mean_term", "scalar_shape"], "mean_scalar"),
            _node("Sub", ["bias", "mean_scalar"], "intercept"),
            _node("MatMul", ["x64", "coef"], "column"),
            _node("Reshape", ["column", "rows"], "dot"),
            _node("Add", ["dot", "intercept"], "answer"),
            _answer("answer"),
        ],
        "linreg_quantized",
        [_input(input_type, d)],
        [_output("y", double)],
        [
            *bounds,
            _constant("weight_codes", weights.astype(code_type)),
            _constant("weight_zero_point", zero_point.astype(code_type)),
            _constant("weight_scale", np.asarray(model.scale, dtype=np.float64)),
            _constant("feature_std", np.asarray(model.feature_std, dtype=np.float64)),
            _constant("feature_mean", np.asarray(model.feature_mean, dtype=np.float64)),
            _constant("column_shape", np.array([d, 1], dtype=np.int64)),
            _constant("row_shape", np.array([1, d], dtype=np.int64)),
            _constant("scalar_shape", np.zeros(0, dtype=np.int64)),
            _constant("rows", ROWS),
            _constant("bias_code", np.array(model.bias, dtype=np.int32)),
            _constant("bias_scale", np.array(model.bias_scale, dtype=np.float64)),
        ],
        doc_string=(
            f"{model.dtype} {model.granularity} weight codes; c = scale·(q − zero_point) / "
            "feature_std; y = X·c + bias·bias_scale − c·feature_mean, float64; NaN outside "
            "the domain"
        ),
    )


# --------------------------------------------------------------------------- integer


def integer_graph(
    model: IntegerLinearModel, input_type: str = INPUT_TYPES[0]
) -> "onnx_module.GraphProto":
    """The integer-only model, equal to ``IntegerLinearModel.predict_codes`` bit for bit.

    Input quantization runs in float64 inside the graph, as numpy does it: X as double
    (a Cast, exact; the identity for the default float64 input), values outside the domain
    (NaN, ±inf) replaced by 0 so that every Cast below is defined (their row's ``y`` is NaN,
    its codes and flag those of the replaced row), Div by the float32-valued scales held as
    doubles (one IEEE division, correctly rounded in both), Round (half to even, like
    ``np.rint``), Add the zero point, flag rows with a value outside [qmin, qmax], Clip, Cast
    to int64 (an out-of-range double never reaches it: Clip comes first). So the codes equal
    ``predict --integer-only`` bit for bit on every input ``predict`` answers. With
    ``input_type="float32"`` the caller rounds float64 data to float32 first, which can move
    a value across a rounding boundary (4 of California's 4,128 test rows get another code).

    Accumulation: int64 MatMul of the codes with the weights, plus the bias. ``integer_bounds``
    proves |acc| ≤ Σ|w|·2^(b−1) + |bias| and |acc·M + 2^(s−1)| < 2^63, so no step wraps.

    Requantization needs the floor shift (acc·M + 2^(s−1)) >> s, but ONNX's BitShift takes
    only unsigned types and int64 Div truncates toward zero (wrong for negative values). The
    graph shifts an unsigned offset copy instead: t is cast to uint64 (two's complement, so
    the bits are t mod 2^64) and 2^63 is added modulo 2^64. For every int64 t,
    u = t + 2^63 lies in [0, 2^64), so the modular sum is that exact integer; u >> s is
    floor(u / 2^s) = floor(t / 2^s) + 2^(63−s) because 2^s divides 2^63 (s ≤ 62); it is
    below 2^63, so the cast back to int64 keeps its value, and subtracting 2^(63−s) leaves
    exactly floor(t / 2^s), numpy's arithmetic shift, over the whole int64 range. A row
    whose result lies outside the output codes is flagged ``clipped`` too (saturated), then
    Clip to the output range, Cast to int16: ``codes``. ``y`` = double(codes) · output_scale,
    the same float64 product ``IntegerLinearModel.predict`` forms.
    """
    require_onnx()
    import onnx

    integer_bounds(model)  # refuses a model whose intermediates could wrap
    d = model.n_features
    qmin, qmax = model.input_range
    omin, omax = model.output_range
    shift = model.shift
    tensor = onnx.TensorProto
    domain, bounds = _domain(model)
    nodes = [
        *domain,
        _node("Where", ["inside", "x64", "zero"], "x_inside"),
        _node("Div", ["x_inside", "input_scale"], "steps"),
        _node("Round", ["steps"], "rounded"),
        _node("Add", ["rounded", "input_zero_point"], "unclipped"),
        _node("Less", ["unclipped", "input_min"], "below"),
        _node("Greater", ["unclipped", "input_max"], "above"),
        _node("Or", ["below", "above"], "input_outside"),
        _node("ReduceMax", ["input_outside", "feature_axis"], "input_clipped", keepdims=0),
        _node("Clip", ["unclipped", "input_min", "input_max"], "in_range"),
        _node("Cast", ["in_range"], "input_codes", to=tensor.INT64),
        _node("MatMul", ["input_codes", "weights"], "column"),
        _node("Reshape", ["column", "rows"], "dot"),
        _node("Add", ["dot", "bias"], "accumulator"),
        _node("Mul", ["accumulator", "multiplier"], "scaled"),
        _node("Add", ["scaled", "rounding"], "to_shift"),
        _node("Cast", ["to_shift"], "to_shift_bits", to=tensor.UINT64),
        _node("Add", ["to_shift_bits", "offset"], "offset_value"),
        _node("BitShift", ["offset_value", "shift"], "shifted", direction="RIGHT"),
        _node("Cast", ["shifted"], "shifted_signed", to=tensor.INT64),
        _node("Sub", ["shifted_signed", "shifted_offset"], "floor_shifted"),
        _node("Less", ["floor_shifted", "output_min"], "output_below"),
        _node("Greater", ["floor_shifted", "output_max"], "output_above"),
        _node("Or", ["output_below", "output_above"], "saturated"),
        _node("Or", ["input_clipped", "saturated"], "clipped"),
        _node("Clip", ["floor_shifted", "output_min", "output_max"], "output_codes"),
        _node("Cast", ["output_codes"], "codes", to=tensor.INT16),
        _node("Cast", ["codes"], "codes64", to=tensor.DOUBLE),
        _node("Mul", ["codes64", "output_scale"], "answer"),
        _answer("answer"),
    ]
    initializers = [
        *bounds,
        _constant("zero", np.array(0.0, dtype=np.float64)),
        _constant("input_scale", np.asarray(model.input_scale, dtype=np.float64)),
        # numpy adds the int64 zero points to float64 values: the same conversion here.
        _constant("input_zero_point", np.asarray(model.input_zero_point, dtype=np.float64)),
        _constant("input_min", np.array(qmin, dtype=np.float64)),
        _constant("input_max", np.array(qmax, dtype=np.float64)),
        _constant("weights", np.asarray(model.weights, dtype=np.int64).reshape(d, 1)),
        _constant("rows", ROWS),
        _constant("bias", np.array(model.bias, dtype=np.int64)),
        _constant("multiplier", np.array(model.multiplier, dtype=np.int64)),
        _constant("rounding", np.array(2 ** (shift - 1), dtype=np.int64)),
        _constant("offset", np.array(2**63, dtype=np.uint64)),
        _constant("shift", np.array(shift, dtype=np.uint64)),
        _constant("shifted_offset", np.array(2 ** (63 - shift), dtype=np.int64)),
        _constant("output_min", np.array(omin, dtype=np.int64)),
        _constant("output_max", np.array(omax, dtype=np.int64)),
        _constant("output_scale", np.array(model.output_scale, dtype=np.float64)),
    ]
    return onnx.helper.make_graph(
        nodes,
        "linreg_integer",
        [_input(input_type, d)],
        [
            _output("codes", tensor.INT16),
            _output("clipped", tensor.BOOL),
            _output("y", tensor.DOUBLE),
        ],
        initializers,
        doc_string=(
            f"integer-only: int{model.input_bits} input codes, {model.weight_dtype} weights, "
            f"int64 accumulator, (acc·{model.multiplier} + 2^{shift - 1}) >> {shift} as a "
            f"floor shift, int{model.output_bits} output codes; y = codes · output_scale "
            "(NaN outside the domain)"
        ),
    )
