"""The Open Inference Protocol as pure functions (``inference.oip``): routes, metadata, the
request reader (JSON and Triton's binary extension) and the response writer, without a
server. Binary responses are decoded by tritonclient's own reader, not by hand."""

import dataclasses
import json

import numpy as np
import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tritonclient.http import InferResult

from helpers import CALIFORNIA_FEATURES
from linreg_ops.inference import oip
from linreg_ops.inference.predict import predict_rows
from linreg_ops.inference.requests import Limits

FEATURES = list(CALIFORNIA_FEATURES)
ROW = [8.3252, 41.0, 6.984127, 1.02381, 322.0, 2.555556, 37.88, -122.23]
LIMITS = Limits(max_batch=100)
INFER = "/v2/models/linreg-ops/infer"


def call(models, method, path, body=b"", headers=None, ready=True):
    return oip.answer(method, path, headers or {}, body, models, LIMITS, ready=ready)


def infer(models, payload, path=INFER, headers=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return call(models, "POST", path, body, headers)


def matrix_request(X, datatype="FP64", **extra):
    return {"inputs": [{"name": "input", "shape": list(X.shape), "datatype": datatype, "data": X.ravel().tolist()}], **extra}  # fmt: skip


def binary_request(tensors, **extra):
    """A request in Triton's binary form: (name, array, datatype) → (body, headers)."""
    inputs, tail = [], b""
    for name, array, datatype in tensors:
        data = np.ascontiguousarray(array, dtype=oip.DATATYPES[datatype]).tobytes()
        inputs.append({"name": name, "shape": list(array.shape), "datatype": datatype, "parameters": {"binary_data_size": len(data)}})  # fmt: skip
        tail += data
    header = json.dumps({"inputs": inputs, **extra}).encode()
    return header + tail, {oip.HEADER_LENGTH: str(len(header))}


def decoded(answer):
    """The response as tritonclient reads it."""
    length = dict(answer.headers).get(oip.HEADER_LENGTH)
    return InferResult.from_response_body(answer.body, header_length=length and int(length))


# --------------------------------------------------------------------------- routes


def test_server_metadata_health_and_readiness(models):
    meta = call(models, "GET", "/v2")
    assert meta.status == 200
    assert orjson.loads(meta.body) == {"name": "linreg-ops", "version": oip.__version__, "extensions": ["binary_tensor_data"]}  # fmt: skip
    assert orjson.loads(call(models, "GET", "/v2/health/live").body) == {"live": True}
    assert call(models, "GET", "/v2/health/ready").status == 200
    draining = call(models, "GET", "/v2/health/ready", ready=False)
    assert (draining.status, orjson.loads(draining.body)) == (503, {"ready": False})
    assert call(models, "GET", "/v2/models/linreg-ops/ready", ready=False).status == 503


@pytest.mark.parametrize(
    ("name", "outputs"),
    [("linreg-ops", ["prediction"]), ("linreg-ops-quantized", ["prediction"]), ("linreg-ops-integer", ["prediction", "clipped"])],
)  # fmt: skip
def test_model_metadata_names_inputs_outputs_and_the_served_version(models, name, outputs):
    for path in (f"/v2/models/{name}", f"/v2/models/{name}/versions/2"):
        answer = call(models, "GET", path)
        assert answer.status == 200
        meta = orjson.loads(answer.body)
        assert meta["name"] == name
        assert meta["versions"] == ["2"]
        assert meta["platform"] == "linreg-ops_json"
        assert meta["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 8]}]
        assert [o["name"] for o in meta["outputs"]] == outputs
        assert meta["parameters"]["features"] == FEATURES
    ready = call(models, "GET", f"/v2/models/{name}/versions/2/ready")
    assert orjson.loads(ready.body) == {"name": name, "ready": True}


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/v2/models/linreg-ops-float16", 404, "unknown model 'linreg-ops-float16': this service serves linreg-ops, linreg-ops-quantized, linreg-ops-integer"),
        ("GET", "/v2/models/linreg-ops/versions/1", 404, "model 'linreg-ops' has no version '1' here: this service serves 2"),
        ("GET", "/v2/models/linreg-ops/versions/x/ready", 404, "no version 'x'"),
        ("POST", "/v2/models/float/infer", 404, "unknown model 'float'"),
        ("GET", "/v2/models", 404, "no route '/v2/models'"),
        ("GET", "/v2/models/linreg-ops/predict", 404, "no route"),
        ("GET", INFER, 405, "method GET not allowed here: use POST"),
        ("POST", "/v2/models/linreg-ops", 405, "use GET"),
        ("DELETE", "/v2/health/live", 405, "use GET"),
    ],
)  # fmt: skip
def test_unknown_models_versions_routes_and_methods(models, method, path, status, message):
    answer = call(models, method, path)
    assert answer.status == status
    assert message in orjson.loads(answer.body)["error"]
    if status == 405:
        assert ("allow", message.split()[-1]) in answer.headers


def test_a_kind_the_version_did_not_publish_is_404(models):
    float_only = dataclasses.replace(models, quantized=None, integer=None)
    for name in ("linreg-ops-quantized", "linreg-ops-integer"):
        for path in (f"/v2/models/{name}", f"/v2/models/{name}/ready"):
            answer = call(float_only, "GET", path)
            assert answer.status == 404
            assert orjson.loads(answer.body)["error"].endswith("this service serves linreg-ops")
    assert infer(float_only, matrix_request(np.array([ROW])), path="/v2/models/linreg-ops-integer/infer").status == 404  # fmt: skip


# --------------------------------------------------------------------------- requests


def test_every_layout_reads_the_same_rows(models, test_rows):
    X = test_rows[1][:5, :-1]
    flat = infer(models, matrix_request(X, id="a"))
    nested = infer(models, {"id": "a", "inputs": [{"name": "rows", "shape": [5, 8], "datatype": "FP64", "data": X.tolist()}]})  # fmt: skip
    columns = [{"name": name, "shape": [5], "datatype": "FP64", "data": X[:, j].tolist()} for j, name in enumerate(FEATURES)]  # fmt: skip
    by_feature = infer(models, {"id": "a", "inputs": columns[::-1]})
    as_column_vectors = [{**c, "shape": [5, 1], "data": [[v] for v in c["data"]]} for c in columns]
    by_column_vector = infer(models, {"id": "a", "inputs": as_column_vectors})
    expected = predict_rows(models.float, X)[0]
    for answer in (flat, nested, by_feature, by_column_vector):
        assert answer.status == 200, answer.body
        body = orjson.loads(answer.body)
        assert body["id"] == "a"
        assert body["model_name"] == "linreg-ops"
        assert body["model_version"] == "2"
        assert body["outputs"] == [{"name": "prediction", "datatype": "FP64", "shape": [5], "data": expected.tolist()}]  # fmt: skip


def test_no_id_no_id_in_the_answer(models):
    assert "id" not in orjson.loads(infer(models, matrix_request(np.array([ROW]))).body)


def test_fp32_inputs_are_the_float32_values(models):
    X = np.array([ROW, ROW[::-1]])
    narrowed = X.astype(np.float32).astype(np.float64)
    expected = predict_rows(models.float, narrowed)[0]
    from_json = orjson.loads(infer(models, matrix_request(X, "FP32")).body)
    assert from_json["outputs"][0]["data"] == expected.tolist()
    body, headers = binary_request([("input", X.astype(np.float32), "FP32")])
    np.testing.assert_array_equal(decoded(infer(models, body, headers=headers)).as_numpy("prediction"), expected)  # fmt: skip


def test_the_integer_model_says_which_rows_it_clipped(models):
    X = np.array([ROW, [1e6, *ROW[1:]], ROW])
    expected, clipped = predict_rows(models.integer, X)
    assert clipped.tolist() == [False, True, False]
    path = "/v2/models/linreg-ops-integer/infer"
    body = orjson.loads(infer(models, matrix_request(X), path=path).body)
    assert body["outputs"] == [
        {"name": "prediction", "datatype": "FP64", "shape": [3], "data": expected.tolist()},
        {"name": "clipped", "datatype": "BOOL", "shape": [3], "data": [False, True, False]},
    ]
    binary = decoded(infer(models, matrix_request(X, parameters={"binary_data_output": True}), path=path))  # fmt: skip
    assert binary.as_numpy("clipped").tolist() == [False, True, False]
    np.testing.assert_array_equal(binary.as_numpy("prediction"), expected)


def test_requested_outputs_and_their_form_are_honoured(models):
    X = np.array([ROW, ROW])
    path = "/v2/models/linreg-ops-integer/infer"
    only_clipped = infer(models, matrix_request(X, outputs=[{"name": "clipped"}]), path=path)
    assert [o["name"] for o in orjson.loads(only_clipped.body)["outputs"]] == ["clipped"]
    mixed = infer(models, matrix_request(X, parameters={"binary_data_output": True}, outputs=[{"name": "clipped", "parameters": {"binary_data": False}}, {"name": "prediction"}]), path=path)  # fmt: skip
    assert dict(mixed.headers)["content-type"] == "application/octet-stream"
    header_length = int(dict(mixed.headers)[oip.HEADER_LENGTH])
    header = orjson.loads(mixed.body[:header_length])
    assert header["outputs"][0] == {"name": "clipped", "datatype": "BOOL", "shape": [2], "data": [False, False]}  # fmt: skip
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 16}
    assert len(mixed.body) == header_length + 16
    np.testing.assert_array_equal(np.frombuffer(mixed.body[header_length:], "<f8"), predict_rows(models.integer, X)[0])  # fmt: skip


BAD = {
    # /predict's hostile cases, mapped
    "unknown feature": ({"inputs": [*({"name": n, "shape": [1], "datatype": "FP64", "data": [v]} for n, v in zip(FEATURES, ROW, strict=True)), {"name": "Color", "shape": [1], "datatype": "FP64", "data": [1]}]}, 400, "inputs[8] (Color): unknown input 'Color'"),
    "missing feature": ({"inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [v]} for n, v in zip(FEATURES[1:], ROW[1:], strict=True)]}, 400, "inputs: missing feature 'MedInc'"),
    "non-numeric": ({"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP64", "data": [*ROW[:3], "many", *ROW[4:]]}]}, 400, "inputs[0] (input).data[3]: Input should be a valid number"),
    "numeric string": ({"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP64", "data": ["8.3", *ROW[1:]]}]}, 400, ".data[0]: Input should be a valid number"),
    "boolean": ({"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP64", "data": [True, *ROW[1:]]}]}, 400, ".data[0]: Input should be a valid number"),
    "nested non-numeric": ({"inputs": [{"name": "input", "shape": [2, 8], "datatype": "FP64", "data": [ROW, [*ROW[:7], None]]}]}, 400, "inputs[0] (input).data[1][7]: Input should be a valid number"),
    "short row": ({"inputs": [{"name": "input", "shape": [1, 7], "datatype": "FP64", "data": ROW[:7]}]}, 400, "shape [1, 7]: the rows tensor has shape [N, 8]"),
    "ragged rows": ({"inputs": [{"name": "input", "shape": [2, 8], "datatype": "FP64", "data": [ROW, ROW[:7]]}]}, 400, "rows of different lengths"),
    "data shorter than shape": ({"inputs": [{"name": "input", "shape": [2, 8], "datatype": "FP64", "data": ROW}]}, 400, "holds 8 values; shape [2, 8] needs 16"),
    "empty batch": ({"inputs": [{"name": "input", "shape": [0, 8], "datatype": "FP64", "data": []}]}, 400, "shape [0, 8]: no rows"),
    "no inputs": ({"id": "1"}, 400, "inputs: Field required"),
    "empty inputs": ({"inputs": []}, 400, "inputs: List should have at least 1 item"),
    "not an object": ([ROW], 400, "body: expected an inference request object"),
    "data not a list": ({"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP64", "data": 3}]}, 400, "(input).data: expected an array of numbers"),
    # the protocol's own fields
    "datatype": ({"inputs": [{"name": "input", "shape": [1, 8], "datatype": "INT64", "data": [1] * 8}]}, 400, "datatype 'INT64' is not read here: send FP64 or FP32"),
    "3-d shape": ({"inputs": [{"name": "input", "shape": [1, 1, 8], "datatype": "FP64", "data": ROW}]}, 400, "must have 1 or 2 dimensions"),
    "negative dimension": ({"inputs": [{"name": "input", "shape": [-1, 8], "datatype": "FP64", "data": ROW}]}, 400, "inputs[0].shape[0]: Input should be greater than or equal to 0"),
    "boolean dimension": ({"inputs": [{"name": "input", "shape": [True, 8], "datatype": "FP64", "data": ROW}]}, 400, "inputs[0].shape[0]: Input should be a valid integer"),
    "feature as a matrix": ({"inputs": [{"name": "MedInc", "shape": [1, 8], "datatype": "FP64", "data": ROW}]}, 400, "a feature's tensor has shape [N] or [N, 1]"),
    "feature twice": ({"inputs": [{"name": "MedInc", "shape": [1], "datatype": "FP64", "data": [1]}] * 2}, 400, "input 'MedInc' is sent twice"),
    "features of different lengths": ({"inputs": [{"name": n, "shape": [1 + (n == "Latitude")], "datatype": "FP64", "data": [v] * (1 + (n == "Latitude"))} for n, v in zip(FEATURES, ROW, strict=True)]}, 400, "(Latitude): shape [2] has 2 rows, inputs[0] has 1"),
    "id not a string": (matrix_request(np.array([ROW]), id=42), 400, "id: Input should be a valid string"),
    "unknown field": (matrix_request(np.array([ROW]), inputz=[]), 400, "inputz: Extra inputs are not permitted"),
    "unknown output": (matrix_request(np.array([ROW]), outputs=[{"name": "clipped"}]), 400, "outputs[0] (clipped): unknown output 'clipped': this model has prediction"),
    "output twice": (matrix_request(np.array([ROW]), outputs=[{"name": "prediction"}] * 2), 400, "output 'prediction' is asked for twice"),
    "binary_data not a flag": (matrix_request(np.array([ROW]), outputs=[{"name": "prediction", "parameters": {"binary_data": 1}}]), 400, "outputs[0] (prediction).parameters.binary_data: expected true or false"),
    "binary_data_output not a flag": (matrix_request(np.array([ROW]), parameters={"binary_data_output": "yes"}), 400, "parameters.binary_data_output: expected true or false"),
    "FP32 beyond its range": (matrix_request(np.array([[1e39, *ROW[1:]]]), "FP32"), 400, "(input).data[0]: 1e+39 is beyond FP32's range"),
    "overflowing prediction": (matrix_request(np.array([ROW, [1.7e308, *ROW[1:]]])), 400, "request row 2: column 'MedInc' holds 1.7e+308, beyond ±"),
    "binary size without the header": ({"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP64", "parameters": {"binary_data_size": 64}}]}, 400, "is Inference-Header-Content-Length missing?"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_requests_are_4xx_naming_the_field(models, case):
    payload, status, message = BAD[case]
    answer = infer(models, payload)
    assert answer.status == status, answer.body
    assert message in orjson.loads(answer.body)["error"]
    assert answer.headers == [("content-type", "application/json")]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP64", "data": [NaN, 41, 6.9, 1.0, 322, 2.5, 37.8, -122.2]}]}', "(input).data[0]: Input should be a finite number"),
        (b'{"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP64", "data": [8.3, Infinity, 6.9, 1.0, 322, 2.5, 37.8, -122.2]}]}', "(input).data[1]: Input should be a finite number"),
        (b'{"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP64", "data": [8.3, 41, 6.9, 1.0, 322, 2.5, 37.8, 1e999]}]}', "(input).data[7]: Input should be a finite number"),
        (b'{"inputs": [{"name": "input", "shape": [1, 8],', "malformed JSON"),
        (b"\xff\xfe{}", "malformed JSON"),
        (b"[" * 33 + b"]" * 33, "JSON nested 33 levels deep; at most 32"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON nested 100000 levels deep"),
    ],
)  # fmt: skip
def test_non_finite_malformed_and_deep_json(models, raw, message):
    answer = infer(models, raw)
    assert answer.status == 400
    assert message in orjson.loads(answer.body)["error"]


def test_brackets_inside_strings_do_not_count_as_depth(models):
    answer = infer(models, matrix_request(np.array([ROW]), id="[" * 100))
    assert answer.status == 200
    assert orjson.loads(answer.body)["id"] == "[" * 100


def test_the_row_count_is_checked_before_any_value(models):
    too_many = {"inputs": [{"name": "input", "shape": [101, 8], "datatype": "FP64", "data": ["not a number"]}]}  # fmt: skip
    answer = infer(models, too_many)
    assert answer.status == 413
    assert "batch of 101 rows exceeds max_batch 100" in orjson.loads(answer.body)["error"]
    huge = {"inputs": [{"name": "MedInc", "shape": [2**62], "datatype": "FP64", "data": []}]}
    assert infer(models, huge).status == 413
    beyond_uint64 = {"inputs": [{"name": "MedInc", "shape": [10**30], "datatype": "FP64", "data": []}]}  # fmt: skip
    assert infer(models, beyond_uint64).status == 400
    assert infer(models, matrix_request(np.ones((100, 8)))).status == 200


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({"content-type": "text/csv"}, 415, "unsupported Content-Type 'text/csv'"),
        ({"content-type": "application/json; charset=utf-8"}, 200, ""),
        ({"content-type": "application/octet-stream"}, 200, ""),
        ({"content-encoding": "gzip"}, 415, "unsupported Content-Encoding 'gzip'"),
    ],
)  # fmt: skip
def test_media_types(models, headers, status, message):
    answer = infer(models, matrix_request(np.array([ROW])), headers=headers)
    assert answer.status == status
    assert message in orjson.loads(answer.body).get("error", "")


def binary_cases():
    good, headers = binary_request([("input", np.array([ROW]), "FP64")])
    length = int(headers[oip.HEADER_LENGTH])
    header = json.loads(good[:length])
    both = json.dumps({"inputs": [{**header["inputs"][0], "data": ROW}]}).encode()
    wrong_size = json.dumps({"inputs": [{**header["inputs"][0], "parameters": {"binary_data_size": 63}}]}).encode()  # fmt: skip
    as_float = json.dumps({"inputs": [{**header["inputs"][0], "parameters": {"binary_data_size": 64.0}}]}).encode()  # fmt: skip
    nan = good[:length] + np.array([np.nan, *ROW[1:]]).tobytes()
    return {
        "header length not a number": (good, {oip.HEADER_LENGTH: "12a"}, "Inference-Header-Content-Length '12a'"),
        "header length zero": (good, {oip.HEADER_LENGTH: "0"}, "a whole number from 1"),
        "header length beyond the body": (good, {oip.HEADER_LENGTH: str(len(good) + 1)}, "a whole number from 1 to the body's"),
        "header length in the binary part": (good, {oip.HEADER_LENGTH: str(length + 3)}, "malformed JSON"),
        "tail too short": (good[:-1], headers, "the binary data ends at byte 63 after the JSON header; the inputs declare 64"),
        "tail too long": (good + b"\0", headers, "body: 1 bytes after the JSON header belong to no input"),
        "data and binary": (both + good[length:], {oip.HEADER_LENGTH: str(len(both))}, "send data or binary_data_size, not both"),
        "binary_data_size wrong": (wrong_size + good[length:], {oip.HEADER_LENGTH: str(len(wrong_size))}, "binary_data_size 63: shape [1, 8] of FP64 is 64 bytes"),
        "NaN in binary": (nan, headers, "request row 1: column 'MedInc' holds NaN"),
        "binary_data_size a float": (as_float + good[length:], {oip.HEADER_LENGTH: str(len(as_float))}, "binary_data_size 64.0: shape [1, 8] of FP64 is 64 bytes"),
    }  # fmt: skip


@pytest.mark.parametrize("case", list(binary_cases()))
def test_bad_binary_requests(models, case):
    body, headers, message = binary_cases()[case]
    answer = infer(models, body, headers=headers)
    assert answer.status == 400, answer.body
    assert message in orjson.loads(answer.body)["error"]


# --------------------------------------------------------------------------- properties

MATRICES = st.integers(1, 12).flatmap(
    lambda n: hnp.arrays(np.float64, (n, 8), elements=st.floats(-1e6, 1e6, allow_subnormal=True))
)


@given(X=MATRICES, fp32=st.booleans(), binary_out=st.booleans(), request_id=st.text(max_size=8))
def test_binary_requests_and_responses_round_trip(models, X, fp32, binary_out, request_id):
    """Any matrix, sent in binary (FP64 or FP32), is read bit for bit, and the answer, in
    binary or JSON, decodes (with tritonclient's reader) to predict_rows' bits."""
    datatype = "FP32" if fp32 else "FP64"
    body, headers = binary_request([("input", X, datatype)], id=request_id, parameters={"binary_data_output": binary_out})  # fmt: skip
    parsed = oip.parse_infer_request(body, headers, FEATURES, ["prediction"], LIMITS)
    sent = X.astype(np.float32).astype(np.float64) if fp32 else X
    assert parsed.X.tobytes() == sent.tobytes()
    assert parsed.id == request_id
    assert parsed.outputs == [("prediction", binary_out)]
    answer = oip.encode_infer_response(models, "float", parsed)
    result = decoded(answer)
    assert result.get_response()["id"] == request_id
    assert result.as_numpy("prediction").tobytes() == predict_rows(models.float, sent)[0].tobytes()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["id", "inputs", "outputs", "parameters", "name", "shape", "datatype", "data", "binary_data_size", "binary_data", "binary_data_output"]) | st.text(max_size=4), inner, max_size=5),
    max_leaves=30,
)  # fmt: skip


@given(payload=JSON_VALUES, header_length=st.none() | st.integers(-2, 400).map(str) | st.text(max_size=3), tail=st.binary(max_size=80))  # fmt: skip
def test_no_request_body_is_a_server_error(models, payload, header_length, tail):
    body = json.dumps(payload).encode() + tail
    headers = {} if header_length is None else {oip.HEADER_LENGTH: header_length}
    for path in (INFER, "/v2/models/linreg-ops-integer/infer"):
        answer = infer(models, body, path=path, headers=headers)
        assert answer.status in (200, 400, 413), answer
        if answer.status != 200:
            assert orjson.loads(answer.body)["error"]


NAMES = st.sampled_from([*FEATURES, "input", "rows", ""])
VALUES = st.one_of(
    st.floats(), st.integers(-(2**70), 2**70), st.booleans(), st.none(), st.text(max_size=3)
)
TENSORS = st.fixed_dictionaries(
    {
        "name": NAMES,
        "shape": st.lists(st.integers(-1, 12) | st.sampled_from([2**62, 2**64, True]), max_size=3),
        "datatype": st.sampled_from(["FP64", "FP32", "INT64", "BOOL", "fp64"]),
    },
    optional={
        "data": st.lists(VALUES | st.lists(VALUES, max_size=9), max_size=12) | VALUES,
        "parameters": st.fixed_dictionaries(
            {}, optional={"binary_data_size": st.integers(-8, 200) | VALUES}
        ),
    },
)
REQUESTS = st.fixed_dictionaries(
    {"inputs": st.lists(TENSORS, min_size=1, max_size=9)},
    optional={
        "id": st.text(max_size=4) | VALUES,
        "outputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["prediction", "clipped", "x"])}, optional={"parameters": st.fixed_dictionaries({}, optional={"binary_data": VALUES})}), max_size=3),
        "parameters": st.fixed_dictionaries({}, optional={"binary_data_output": VALUES}),
    },
)  # fmt: skip


@given(
    request=REQUESTS, tail=st.binary(max_size=200), exact_length=st.booleans(), fp32=st.booleans()
)
def test_no_nearly_valid_request_is_a_server_error(models, request, tail, exact_length, fp32):
    """Requests shaped like the protocol's, with any field wrong (and any binary tail):
    always an answer, 200 or a 4xx with an error, never an exception."""
    header = json.dumps(request).encode()
    headers = {oip.HEADER_LENGTH: str(len(header) if exact_length else len(header) + 1)} if tail else {}  # fmt: skip
    for path in (INFER, "/v2/models/linreg-ops-integer/infer"):
        answer = infer(models, header + tail, path=path, headers=headers)
        assert answer.status in (200, 400, 413), answer
        if answer.status != 200:
            assert orjson.loads(answer.body)["error"]


# --------------------------------------------------------------------------- the fast path

NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, 0.0, 1.0, -0.0, True, False, "1", None, [1.0], 1e308, 2**63]),
)


DEVIATIONS = ("none", "cell", "ragged", "shape", "datatype", "name", "key", "id")


@st.composite
def infer_payloads(draw):
    """The request the fast path takes — one FP64 [N, d] tensor of numbers, flat or nested,
    maybe an id — or it with one step off that shape: a cell of another kind (a bool, a
    string, a big integer, a list), a ragged row, another shape, datatype or name (a
    feature's), an extra key, an id that is not a string."""
    d = len(FEATURES)
    rows = draw(st.integers(1, 4))
    plain = st.floats(-1e6, 1e6, allow_nan=False)
    grid = draw(st.lists(st.lists(plain, min_size=d, max_size=d), min_size=rows, max_size=rows))
    tensor = {"name": "input", "shape": [rows, d], "datatype": "FP64"}
    payload = {"inputs": [tensor]}
    deviation = draw(st.sampled_from(DEVIATIONS))
    if deviation == "cell":
        grid[draw(st.integers(0, rows - 1))][draw(st.integers(0, d - 1))] = draw(NUMBERS)
    elif deviation == "ragged":
        grid[draw(st.integers(0, rows - 1))].pop()
    elif deviation == "shape":
        tensor["shape"] = draw(st.sampled_from([[rows + 1, d], [rows, d - 1], [rows, d, 1], [rows, True], [rows, float(d)], [float(rows), d], [0, d], [rows * d]]))  # fmt: skip
    elif deviation == "datatype":
        tensor["datatype"] = draw(st.sampled_from(["FP32", "INT64", "fp64", "BYTES"]))
    elif deviation == "name":
        tensor["name"] = draw(st.sampled_from([FEATURES[0], "x", ""]))
    elif deviation == "key":
        tensor["parameters"] = {}
    tensor["data"] = grid if draw(st.booleans()) else [value for row in grid for value in row]
    if deviation == "id":
        payload["id"] = draw(st.one_of(st.integers(), st.none(), st.lists(st.text(max_size=2))))
    elif draw(st.booleans()):
        payload["id"] = draw(st.text(max_size=5))
    return payload


def one_off(**change):
    """The fast path's request (one row, a string id) with one field changed."""
    tensor = {"name": "input", "shape": [1, len(ROW)], "datatype": "FP64", "data": [ROW]}
    tensor.update(change)
    return {"inputs": [tensor], "id": "r"}


@given(payload=infer_payloads())
@example(payload=one_off())
@example(payload=one_off(name=FEATURES[0]))
@example(payload=one_off(shape=[1, float(len(ROW))]))
@example(payload=one_off(shape=[2, len(ROW)]))
@example(payload=one_off(data=[[True, *ROW[1:]]]))
@example(payload=one_off(data=[ROW[:-1]]))
@example(payload=one_off(datatype="FP32"))
def test_the_fast_path_answers_as_the_checked_path(models, payload):
    """``parameters: {}`` changes nothing a request means but keeps it off the fast path:
    the two answers are the same bytes, status and headers, or the same refusal."""
    checked = {**payload, "parameters": {}}
    fast_answer = infer(models, payload)
    checked_answer = infer(models, checked)
    assert (fast_answer.status, fast_answer.headers, fast_answer.body) == (
        checked_answer.status, checked_answer.headers, checked_answer.body,
    )  # fmt: skip


def test_the_common_request_takes_the_fast_path(models):
    """The request every client sends is read without the request models (the reason for
    the fast path: a quarter of a one-row /v2 request); its answer, as the checked path's."""
    payload = matrix_request(np.array([ROW]), id="a")
    fast = oip._fast_request(payload, b"", FEATURES, ["prediction"], LIMITS)
    assert fast is not None
    np.testing.assert_array_equal(fast.X, np.array([ROW]))
    assert (fast.id, fast.outputs) == ("a", [("prediction", False)])
    assert oip._fast_request({**payload, "parameters": {}}, b"", FEATURES, ["p"], LIMITS) is None
