"""The Open Inference Protocol (v2, REST) over the served version's models, with no web
framework in sight: any HTTP front calls ``answer(method, path, headers, body, models,
limits)`` and sends back the ``Answer`` (status, headers, body) it returns.

Routes (kserve/open-inference-protocol, ``specification/protocol/inference_rest.md``):
``GET /v2`` (server metadata), ``/v2/health/live``, ``/v2/health/ready``,
``GET /v2/models/{name}[/versions/{v}]`` (model metadata), ``…/ready`` and
``POST …/infer``. The three model kinds are three names (``config.MODEL_NAMES``); a kind
the version did not publish is a 404, like an unknown name or a version not served here.

An inference request holds either one FP64 or FP32 tensor of shape ``[N, d]`` (the rows, in
feature order) or one tensor per feature, named by it, of shape ``[N]`` or ``[N, 1]``. Its
data is JSON, or binary after the JSON header when the request says how long that header is
(``Inference-Header-Content-Length``: Triton's binary tensor data extension, which
``tritonclient`` uses by default). Outputs: ``prediction`` (FP64 ``[N]``), and for the
integer-only model ``clipped`` (BOOL ``[N]``: the rows where an input lay outside its
calibrated range or the output saturated), each in JSON or binary as asked.

The limits are ``/predict``'s (``requests.Limits``): the JSON nesting depth is measured
before parsing and the row count (from the declared shapes) is checked before any value is
read. Every refusal is ``{"error": "..."}`` naming the field: 400 for a bad request, 404 for
an unknown model, version or route, 405 for a wrong method, 413 for too many rows, 415 for a
body in a media type or encoding this service does not read.
"""

import math
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, NamedTuple

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from linreg_ops._version import __version__
from linreg_ops.config import MODEL_KINDS, MODEL_NAMES, ModelKind
from linreg_ops.errors import InputError
from linreg_ops.inference.loading import AnyModel, Models
from linreg_ops.inference.predict import predict_rows
from linreg_ops.inference.requests import (
    Limits,
    Number,
    RequestError,
    check_batch,
    check_depth,
    load_json,
    numeric_matrix,
)

__all__ = [
    "CLIPPED",
    "DATATYPES",
    "EXTENSIONS",
    "HEADER_LENGTH",
    "MATRIX_INPUT",
    "OUTPUT_DATATYPES",
    "PLATFORM",
    "PREDICTION",
    "Answer",
    "InferenceRequest",
    "ParsedRequest",
    "RequestInput",
    "RequestOutput",
    "answer",
    "encode_infer_response",
    "model_metadata",
    "output_names",
    "owns",
    "parse_infer_request",
    "server_metadata",
]

DATATYPES: dict[str, np.dtype[Any]] = {"FP64": np.dtype("<f8"), "FP32": np.dtype("<f4")}
OUTPUT_DATATYPES: dict[str, np.dtype[Any]] = {"FP64": np.dtype("<f8"), "BOOL": np.dtype("u1")}
HEADER_LENGTH = "inference-header-content-length"  # Triton's binary tensor data extension
EXTENSIONS = ["binary_tensor_data"]
MATRIX_INPUT = "input"  # the name model metadata gives the [N, d] tensor (any name is read)
PREDICTION, CLIPPED = "prediction", "clipped"
PLATFORM = "linreg-ops_json"  # "<project>_<format>": the pickle-free JSON artifacts
_KIND_OF: dict[str, ModelKind] = {name: kind for kind, name in MODEL_NAMES.items()}
_CONTENT_TYPES = ("", "application/json", "application/octet-stream")
_JSON_HEADERS = [("content-type", "application/json")]

_ROUTE = re.compile(
    r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<action>/ready|/infer)?/?"
)
_DIGITS = re.compile(r"[0-9]{1,18}")
_FLAT = TypeAdapter(list[Number])
_NESTED = TypeAdapter(list[list[Number]])


class Answer(NamedTuple):
    """What an HTTP front sends back: status, headers (lower-case names) and body; for an
    answered inference, what it did (the model kind, rows, clipped rows, predictions and the
    rows scored), for the front's metrics, request log and drift statistics."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    kind: ModelKind | None = None
    rows: int = 0
    clipped: int = 0
    predictions: np.ndarray | None = None
    scored: np.ndarray | None = None  # the rows an inference scored


class RequestInput(BaseModel):
    """``$request_input``; ``data`` is read after the row count is checked."""

    model_config = ConfigDict(strict=True, extra="forbid")

    name: str
    shape: list[Annotated[int, Field(ge=0)]]
    datatype: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    data: Any = None


class RequestOutput(BaseModel):
    """``$request_output``: which output, and (``binary_data``) in which form."""

    model_config = ConfigDict(strict=True, extra="forbid")

    name: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class InferenceRequest(BaseModel):
    """``$inference_request``."""

    model_config = ConfigDict(strict=True, extra="forbid")

    id: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ParsedRequest(NamedTuple):
    """An inference request, read: the rows, the id to echo, and the outputs to send (name,
    binary or not) in the order asked."""

    X: np.ndarray
    id: str | None
    outputs: list[tuple[str, bool]]


# --------------------------------------------------------------------------- routing


def owns(path: str) -> bool:
    """Whether a request path is this protocol's (``/v2`` and below)."""
    return path == "/v2" or path.startswith("/v2/")


def answer(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    models: Models,
    limits: Limits,
    ready: bool = True,
) -> Answer:
    """Any ``/v2`` request → its answer; never raises for any input. ``headers`` are looked
    up by lower-case name; ``ready`` is False while the server drains."""
    try:
        if path in ("/v2", "/v2/"):
            _allow(method, "GET")
            return _json(200, server_metadata())
        if path == "/v2/health/live":
            _allow(method, "GET")
            return _json(200, {"live": True})
        if path == "/v2/health/ready":
            _allow(method, "GET")
            return _json(200 if ready else 503, {"ready": ready})
        match = _ROUTE.fullmatch(path)
        if match is None:
            raise RequestError(404, f"no route {path!r}: see GET /v2 and /v2/models/<name>")
        name, version, action = match.group("name", "version", "action")
        kind, model = _served(models, name, version)
        if action == "/infer":
            _allow(method, "POST")
            request = parse_infer_request(
                body, headers, model.feature_names, output_names(kind), limits
            )
            return encode_infer_response(models, kind, request)
        _allow(method, "GET")
        if action == "/ready":
            return _json(200 if ready else 503, {"name": name, "ready": ready})
        return _json(200, model_metadata(models, kind))
    except RequestError as exc:
        status = 400 if exc.status == 422 else exc.status
        extra = [("allow", exc.code)] if status == 405 else []
        return _json(status, {"error": exc.message}, extra)


def _allow(method: str, allowed: str) -> None:
    """A wrong method is a 405; HEAD goes where GET goes (the front sends no body for it)."""
    if method != allowed and not (method == "HEAD" and allowed == "GET"):
        raise RequestError(405, f"method {method} not allowed here: use {allowed}", allowed)


def _served(models: Models, name: str, version: str | None) -> tuple[ModelKind, AnyModel]:
    """The kind and model a path names, or a 404 saying what is served."""
    kind = _KIND_OF.get(name)
    model = None
    if kind is not None:
        try:
            model = models.get(kind)
        except InputError:
            model = None
    if kind is None or model is None:
        served = ", ".join(MODEL_NAMES[kind] for kind in _kinds(models))
        raise RequestError(404, f"unknown model {name!r}: this service serves {served}")
    number = str(models.version.number)
    if version is not None and version != number:
        raise RequestError(
            404, f"model {name!r} has no version {version!r} here: this service serves {number}"
        )
    return kind, model


def _kinds(models: Models) -> list[ModelKind]:
    return [kind for kind in MODEL_KINDS if getattr(models, kind) is not None]


def _json(status: int, content: Any, extra: Sequence[tuple[str, str]] = ()) -> Answer:
    return Answer(status, [*_JSON_HEADERS, *extra], orjson.dumps(content))


# --------------------------------------------------------------------------- metadata


def server_metadata() -> dict[str, Any]:
    """``GET /v2``."""
    return {"name": "linreg-ops", "version": __version__, "extensions": EXTENSIONS}


def output_names(kind: ModelKind) -> list[str]:
    """The outputs a model kind produces."""
    return [PREDICTION, CLIPPED] if kind == "integer" else [PREDICTION]


def model_metadata(models: Models, kind: ModelKind) -> dict[str, Any]:
    """``GET /v2/models/{name}``: the spec's fields, and the feature names (which name the
    per-feature tensors) in ``parameters``."""
    features = list(models.float.feature_names)
    outputs = [{"name": PREDICTION, "datatype": "FP64", "shape": [-1]}]
    if kind == "integer":
        outputs.append({"name": CLIPPED, "datatype": "BOOL", "shape": [-1]})
    return {
        "name": MODEL_NAMES[kind],
        "versions": [str(models.version.number)],
        "platform": PLATFORM,
        "inputs": [{"name": MATRIX_INPUT, "datatype": "FP64", "shape": [-1, len(features)]}],
        "outputs": outputs,
        "parameters": {"features": features, "target": models.float.target_name},
    }


# --------------------------------------------------------------------------- requests


def parse_infer_request(
    body: bytes,
    headers: Mapping[str, str],
    features: Sequence[str],
    outputs: Sequence[str],
    limits: Limits,
) -> ParsedRequest:
    """``POST …/infer``'s body (JSON, or a JSON header and binary tensors) → the rows in
    feature order as float64, the id, and which of the model's ``outputs`` to send."""
    _check_media(headers)
    header, tail = _split_body(body, headers.get(HEADER_LENGTH))
    payload = load_json(header, limits)
    if not tail:
        fast = _fast_request(payload, header, features, outputs, limits)
        if fast is not None:
            return fast
    check_depth(payload, limits)
    if not isinstance(payload, dict):
        raise RequestError(400, "body: expected an inference request object with 'inputs'")
    try:
        request = InferenceRequest.model_validate(payload)
    except ValidationError as exc:
        raise RequestError(400, _message(exc)) from None
    rows, matrix = _check_shapes(request.inputs, features, limits)
    columns = _read_tensors(request.inputs, tail)
    if matrix:
        X = columns[0][1].reshape(rows, len(features))
    else:
        by_name = dict(columns)
        X = np.column_stack([by_name[name] for name in features])
    return ParsedRequest(X, request.id, _requested_outputs(request, outputs))


_FAST_TENSOR_KEYS = frozenset({"name", "shape", "datatype", "data"})


def _fast_request(
    payload: Any, body: bytes, features: Sequence[str], outputs: Sequence[str], limits: Limits
) -> ParsedRequest | None:
    """The fast path of the request nearly every client sends — one FP64 tensor ``[N, d]``
    of JSON numbers, an optional id, nothing else — proved by shape and by numpy, without
    the request models; None sends anything else down the checked path, which names the
    fault (a request this path answers, the checked path answers the same way)."""
    d = len(features)
    # dict → inputs → tensor → data → rows: five levels; the checked path measures the rest
    if (
        type(payload) is not dict
        or not payload.keys() <= {"id", "inputs"}
        or limits.max_json_depth < 5
    ):
        return None
    request_id, inputs = payload.get("id"), payload.get("inputs")
    if (request_id is not None and type(request_id) is not str) or type(inputs) is not list:
        return None
    if (
        len(inputs) != 1
        or type(tensor := inputs[0]) is not dict
        or tensor.keys() != _FAST_TENSOR_KEYS
    ):
        return None
    name, shape, data = tensor["name"], tensor["shape"], tensor["data"]
    if type(name) is not str or name in features or tensor["datatype"] != "FP64":
        return None
    if type(shape) is not list or len(shape) != 2 or shape[1] != d or type(data) is not list:
        return None
    rows = shape[0]
    if type(rows) is not int or type(shape[1]) is not int or rows < 1:
        return None
    check_batch(rows, limits)
    if data and type(data[0]) is list:
        X = numeric_matrix(data, d, body, limits)
    else:
        flat = numeric_matrix([data], rows * d, body, limits) if len(data) == rows * d else None
        X = None if flat is None else flat.reshape(rows, d)
    if X is None or len(X) != rows:
        return None
    return ParsedRequest(X, request_id, [(output, False) for output in outputs])


def _check_media(headers: Mapping[str, str]) -> None:
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _CONTENT_TYPES:
        raise RequestError(
            415,
            f"unsupported Content-Type {content_type!r}: send application/json "
            "(or application/octet-stream with Inference-Header-Content-Length)",
        )
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise RequestError(415, f"unsupported Content-Encoding {encoding!r}: send the body as is")


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary tail."""
    if header_length is None:
        return body, b""
    text = header_length.strip()
    if not _DIGITS.fullmatch(text) or not 0 < int(text) <= len(body):
        raise RequestError(
            400,
            f"Inference-Header-Content-Length {header_length!r}: expected the length of the "
            f"JSON header, a whole number from 1 to the body's {len(body):,} bytes",
        )
    return body[: int(text)], body[int(text) :]


def _message(error: ValidationError) -> str:
    """One line naming the first bad field: ``inputs[0].shape[1]: Input should be …``."""
    first = error.errors(include_url=False)[0]
    where = ""
    for part in first["loc"]:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return f"{where or 'body'}: {first['msg']}"


def _check_shapes(
    inputs: list[RequestInput], features: Sequence[str], limits: Limits
) -> tuple[int, bool]:
    """The row count N, from the declared shapes alone (before any value is read), and
    whether the rows come as one ``[N, d]`` tensor (else one ``[N]``/``[N, 1]`` tensor per
    feature). With one feature, a lone ``[N, 1]`` tensor is both: either reading agrees."""
    d = len(features)
    for i, tensor in enumerate(inputs):
        where = f"inputs[{i}] ({tensor.name})"
        if tensor.datatype not in DATATYPES:
            raise RequestError(
                400, f"{where}: datatype {tensor.datatype!r} is not read here: send FP64 or FP32"
            )
        if len(tensor.shape) not in (1, 2):
            raise RequestError(400, f"{where}: shape {tensor.shape} must have 1 or 2 dimensions")
        check_batch(tensor.shape[0], limits)
    first = inputs[0]
    matrix = len(inputs) == 1 and first.name not in features
    if matrix:
        if first.shape[1:] != [d]:
            raise RequestError(
                400,
                f"inputs[0] ({first.name}): shape {first.shape}: the rows tensor has shape "
                f"[N, {d}] (or send one tensor per feature: {', '.join(features)})",
            )
    else:
        _check_columns(inputs, features)
    rows = first.shape[0]
    if rows == 0:
        raise RequestError(400, f"inputs[0] ({first.name}): shape {first.shape}: no rows")
    return rows, matrix


def _check_columns(inputs: list[RequestInput], features: Sequence[str]) -> None:
    seen: set[str] = set()
    for i, tensor in enumerate(inputs):
        where = f"inputs[{i}] ({tensor.name})"
        if tensor.name not in features:
            raise RequestError(
                400,
                f"{where}: unknown input {tensor.name!r}: send one tensor [N, {len(features)}] "
                f"or one tensor per feature ({', '.join(features)})",
            )
        if tensor.name in seen:
            raise RequestError(400, f"{where}: input {tensor.name!r} is sent twice")
        seen.add(tensor.name)
        if tensor.shape[1:] not in ([], [1]):
            raise RequestError(
                400, f"{where}: shape {tensor.shape}: a feature's tensor has shape [N] or [N, 1]"
            )
        if tensor.shape[0] != inputs[0].shape[0]:
            raise RequestError(
                400,
                f"{where}: shape {tensor.shape} has {tensor.shape[0]} rows, inputs[0] "
                f"has {inputs[0].shape[0]}",
            )
    missing = [name for name in features if name not in seen]
    if missing:
        raise RequestError(400, f"inputs: missing feature {missing[0]!r}")


def _read_tensors(inputs: list[RequestInput], tail: bytes) -> list[tuple[str, np.ndarray]]:
    """Each input's values as a flat float64 array, from JSON or from the binary tail."""
    columns = []
    offset = 0
    for i, tensor in enumerate(inputs):
        where = f"inputs[{i}] ({tensor.name})"
        count = math.prod(tensor.shape)
        dtype = DATATYPES[tensor.datatype]
        size = tensor.parameters.get("binary_data_size")
        if size is None:
            values = _json_values(tensor, where, count)
        else:
            if type(size) is not int or size != count * dtype.itemsize:
                raise RequestError(
                    400,
                    f"{where}: binary_data_size {size!r}: shape {tensor.shape} of "
                    f"{tensor.datatype} is {count * dtype.itemsize} bytes",
                )
            if "data" in tensor.model_fields_set:
                raise RequestError(400, f"{where}: send data or binary_data_size, not both")
            if offset + size > len(tail):
                raise RequestError(
                    400,
                    f"{where}: the binary data ends at byte {len(tail):,} after the JSON "
                    f"header; the inputs declare {offset + size:,}"
                    + ("" if tail else " (is Inference-Header-Content-Length missing?)"),
                )
            values = np.frombuffer(tail, dtype, count, offset).astype(np.float64)
            offset += size
        columns.append((tensor.name, values))
    if offset != len(tail):
        raise RequestError(
            400,
            f"body: {len(tail) - offset:,} bytes after the JSON header belong to no input "
            "(binary_data_size)",
        )
    return columns


def _json_values(tensor: RequestInput, where: str, count: int) -> np.ndarray:
    """A tensor's JSON data (flat or nested, row-major), checked number by number."""
    data = tensor.data
    if not isinstance(data, list):
        raise RequestError(400, f"{where}.data: expected an array of numbers")
    try:
        if data and isinstance(data[0], list):
            rows = _NESTED.validate_python(data)
            if len({len(row) for row in rows}) > 1:
                raise RequestError(400, f"{where}.data: rows of different lengths")
            checked: list[Any] = rows
        else:
            checked = _FLAT.validate_python(data)
    except ValidationError as exc:
        raise RequestError(400, f"{where}.data{_message(exc).removeprefix('body')}") from None
    values = np.array(checked, dtype=np.float64).reshape(-1)
    if values.size != count:
        raise RequestError(
            400, f"{where}.data holds {values.size} values; shape {tensor.shape} needs {count}"
        )
    if tensor.datatype == "FP32":
        with np.errstate(over="ignore"):
            narrow = values.astype(np.float32)
        if not np.isfinite(narrow).all():
            index = int(np.flatnonzero(~np.isfinite(narrow))[0])
            raise RequestError(
                400, f"{where}.data[{index}]: {values[index]:g} is beyond FP32's range"
            )
        values = narrow.astype(np.float64)
    return values


def _requested_outputs(
    request: InferenceRequest, available: Sequence[str]
) -> list[tuple[str, bool]]:
    """(name, binary) per output to send: every output unless some are named; binary where
    ``binary_data`` says so, else where the request's ``binary_data_output`` does."""
    default = _flag(request.parameters, "binary_data_output", False, "parameters")
    if request.outputs is None:
        return [(name, default) for name in available]
    chosen: list[tuple[str, bool]] = []
    for i, output in enumerate(request.outputs):
        where = f"outputs[{i}] ({output.name})"
        if output.name not in available:
            raise RequestError(
                400,
                f"{where}: unknown output {output.name!r}: this model has {', '.join(available)}",
            )
        if any(name == output.name for name, _ in chosen):
            raise RequestError(400, f"{where}: output {output.name!r} is asked for twice")
        chosen.append((output.name, _flag(output.parameters, "binary_data", default, where)))
    return chosen


def _flag(parameters: Mapping[str, Any], name: str, default: bool, where: str) -> bool:
    value = parameters.get(name, default)
    if type(value) is not bool:
        raise RequestError(400, f"{where}.parameters.{name}: expected true or false")
    return value


# --------------------------------------------------------------------------- responses


def encode_infer_response(models: Models, kind: ModelKind, request: ParsedRequest) -> Answer:
    """Predict, and render the outputs asked for: JSON, or a JSON header followed by the
    binary outputs (``Inference-Header-Content-Length`` says where the header ends)."""
    try:
        predictions, clipped = predict_rows(models.get(kind), request.X, source="request")
    except InputError as exc:
        raise RequestError(400, str(exc)) from None
    values = {PREDICTION: ("FP64", predictions), CLIPPED: ("BOOL", clipped)}
    outputs: list[dict[str, Any]] = []
    tail: list[bytes] = []
    for name, binary in request.outputs:
        datatype, array = values[name]
        output: dict[str, Any] = {"name": name, "datatype": datatype, "shape": [len(array)]}
        if binary:
            data = array.astype(OUTPUT_DATATYPES[datatype], copy=False).tobytes()
            output["parameters"] = {"binary_data_size": len(data)}
            tail.append(data)
        else:
            output["data"] = array
        outputs.append(output)
    content: dict[str, Any] = {
        "model_name": MODEL_NAMES[kind],
        "model_version": str(models.version.number),
    }
    if request.id is not None:
        content["id"] = request.id
    content["outputs"] = outputs
    header = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    did = (kind, len(predictions), int(np.count_nonzero(clipped)), predictions, request.X)
    if not tail:
        return Answer(200, _JSON_HEADERS, header, *did)
    headers = [
        ("content-type", "application/octet-stream"),
        (HEADER_LENGTH, str(len(header))),
    ]
    return Answer(200, headers, header + b"".join(tail), *did)
