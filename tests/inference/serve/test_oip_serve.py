"""The Open Inference Protocol through the real app (in process) and a real ``linreg-ops
serve`` process, spoken by ``tritonclient.http`` in JSON mode and in its default binary
mode: the answers equal ``/invocations``' bit for bit, and every bad input is a 4xx."""

import gzip
import json
import socket
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tritonclient.utils import InferenceServerException

from helpers import CALIFORNIA_FEATURES, served
from linreg_ops import __version__
from linreg_ops.inference.predict import predict_rows
from linreg_ops.inference.serve import ServeSettings, create_app

FEATURES = list(CALIFORNIA_FEATURES)
ROW = [8.3252, 41.0, 6.984127, 1.02381, 322.0, 2.555556, 37.88, -122.23]
MAX_BATCH, MAX_BODY = 100, 20_000
INFER = "/v2/models/linreg-ops/infer"


@pytest.fixture(scope="module")
def server(trained_dir):
    """``linreg-ops serve`` on a free port, with limits small enough to reach."""
    limits = ("--max-batch", str(MAX_BATCH), "--max-body-bytes", str(MAX_BODY))
    with served(trained_dir, *limits, ready="/v2/health/ready") as running:
        yield f"127.0.0.1:{running.port}"
    assert "Traceback" not in running.output, running.output


@pytest.fixture(scope="module")
def client(server):
    with triton.InferenceServerClient(url=server) as triton_client:
        yield triton_client


@pytest.fixture(scope="module")
def app(trained_dir):
    settings = ServeSettings(models_dir=trained_dir, max_batch=MAX_BATCH, max_body_bytes=MAX_BODY)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def post(server, path, body, headers=None):
    """(status, headers, body) of a raw POST to the real server (urllib would send a form's
    Content-Type, which /v2 refuses, unless told otherwise)."""
    headers = {"content-type": "application/json", **(headers or {})}
    request = urllib.request.Request(f"http://{server}{path}", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def invocations(server, X):
    body = json.dumps({"dataframe_split": {"columns": FEATURES, "data": X.tolist()}}).encode()
    status, _, answer = post(server, "/invocations", body, {"content-type": "application/json"})
    assert status == 200, answer
    return np.array(json.loads(answer)["predictions"])


def rows_input(X, datatype="FP64", binary=True, name="input"):
    tensor = triton.InferInput(name, list(X.shape), datatype)
    tensor.set_data_from_numpy(X.astype(np.float32 if datatype == "FP32" else np.float64), binary_data=binary)  # fmt: skip
    return tensor


# --------------------------------------------------------------------------- tritonclient


def test_tritonclient_sees_a_live_ready_server_and_its_models(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.get_server_metadata() == {"name": "linreg-ops", "version": __version__, "extensions": ["binary_tensor_data"]}  # fmt: skip
    for name in ("linreg-ops", "linreg-ops-quantized", "linreg-ops-integer"):
        assert client.is_model_ready(name)
        assert client.is_model_ready(name, "2")
        meta = client.get_model_metadata(name, "2")
        assert meta["name"] == name
        assert meta["versions"] == ["2"]
        assert meta["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 8]}]
    assert not client.is_model_ready("linreg-ops", "1")
    assert not client.is_model_ready("linreg-ops-float16")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_predictions_equal_invocations_bit_for_bit(client, server, test_rows, binary):
    X = test_rows[1][:50, :-1]
    outputs = None if binary else [triton.InferRequestedOutput("prediction", binary_data=False)]
    result = client.infer("linreg-ops", [rows_input(X, binary=binary)], outputs=outputs, request_id="r-7")  # fmt: skip
    assert result.get_response()["id"] == "r-7"
    assert result.get_response()["model_version"] == "2"
    got = result.as_numpy("prediction")
    assert got.dtype == np.float64
    assert got.shape == (50,)
    assert got.tobytes() == invocations(server, X).tobytes()


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_one_fp32_tensor_per_feature(client, models, test_rows, binary):
    X = test_rows[1][:20, :-1]
    inputs = [rows_input(X[:, [j]], "FP32", binary, name) for j, name in enumerate(FEATURES)][::-1]
    result = client.infer("linreg-ops-quantized", inputs, model_version="2")
    expected = predict_rows(models.quantized, X.astype(np.float32).astype(np.float64))[0]
    assert result.as_numpy("prediction").tobytes() == expected.tobytes()


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_reads_which_rows_the_integer_model_clipped(client, models, binary):
    X = np.array([ROW, [1e6, *ROW[1:]], ROW, [*ROW[:6], -1e6, ROW[7]]])
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("prediction", "clipped")]  # fmt: skip
    result = client.infer("linreg-ops-integer", [rows_input(X, binary=binary)], outputs=outputs)
    expected, clipped = predict_rows(models.integer, X)
    assert result.as_numpy("clipped").tolist() == clipped.tolist() == [False, True, False, True]
    assert result.as_numpy("prediction").tobytes() == expected.tobytes()


@pytest.mark.parametrize(
    ("model", "inputs", "status", "message"),
    [
        ("linreg-ops-float16", [np.array([ROW])], "404", "unknown model 'linreg-ops-float16'"),
        ("linreg-ops", [np.array([ROW[:7]])], "400", "the rows tensor has shape [N, 8]"),
        ("linreg-ops", [np.array([[np.nan, *ROW[1:]]])], "400", "request row 1: column 'MedInc' holds NaN"),
        ("linreg-ops", [np.ones((MAX_BATCH + 1, 8))], "413", f"exceeds max_batch {MAX_BATCH}"),
    ],
)  # fmt: skip
def test_tritonclient_gets_the_errors(client, model, inputs, status, message):
    with pytest.raises(InferenceServerException) as raised:
        client.infer(model, [rows_input(X) for X in inputs])
    assert raised.value.status() == status
    assert message in raised.value.message()


# --------------------------------------------------------------------------- /invocations

MATRICES = st.integers(1, 10).flatmap(
    lambda n: hnp.arrays(
        np.float64,
        (n, 8),
        elements=st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True),
    )
)


KINDS = {"float": "linreg-ops", "quantized": "linreg-ops-quantized", "integer": "linreg-ops-integer"}  # fmt: skip


@settings(max_examples=60)
@given(X=MATRICES, binary=st.booleans(), kind=st.sampled_from(list(KINDS)))
def test_any_matrix_is_answered_as_invocations_and_predict_answer_it(app, X, binary, kind):
    """Through the real app: the float model's predictions are /invocations', the others'
    /predict's, bit for bit, or both refuse the rows (the integer model's clipped flags are
    predict_rows')."""
    if kind == "float":
        reference = app.post("/invocations", json={"instances": X.tolist()})
    else:
        reference = app.post("/predict", json={"instances": X.tolist(), "model": kind})
    path = f"/v2/models/{KINDS[kind]}/infer"
    if binary:
        data = X.tobytes()
        header = json.dumps({"inputs": [{"name": "input", "shape": list(X.shape), "datatype": "FP64", "parameters": {"binary_data_size": len(data)}}], "parameters": {"binary_data_output": True}}).encode()  # fmt: skip
        answer = app.post(path, content=header + data, headers={"inference-header-content-length": str(len(header))})  # fmt: skip
    else:
        answer = app.post(path, json={"inputs": [{"name": "input", "shape": list(X.shape), "datatype": "FP64", "data": X.tolist()}]})  # fmt: skip
    if reference.status_code in (400, 422):  # a row outside the model's domain
        assert answer.status_code == 400
        assert answer.json()["error"] == reference.json()["message"]
        return
    assert reference.status_code == answer.status_code == 200, answer.text
    expected = np.array(reference.json()["predictions"])
    if binary:
        length = int(answer.headers["inference-header-content-length"])
        got = triton.InferResult.from_response_body(answer.content, header_length=length)
    else:
        got = triton.InferResult.from_response_body(answer.content)
    assert got.as_numpy("prediction").tobytes() == expected.tobytes()
    if kind == "integer":
        models = app.app.service.live.models
        assert got.as_numpy("clipped").tolist() == predict_rows(models.integer, X)[1].tolist()


# --------------------------------------------------------------------------- bad input


def bad_requests():
    """/predict's hostile cases, mapped to /v2 infer: (path, body, headers, status, message)."""

    def rows(data, shape=(1, 8), **extra):
        return json.dumps({"inputs": [{"name": "input", "shape": list(shape), "datatype": "FP64", "data": data}], **extra}).encode()  # fmt: skip

    columns = [{"name": n, "shape": [1], "datatype": "FP64", "data": [v]} for n, v in zip(FEATURES, ROW, strict=True)]  # fmt: skip
    good = rows(ROW)
    return {
        "unknown feature": (INFER, json.dumps({"inputs": [*columns, {**columns[0], "name": "Color"}]}).encode(), {}, 400, "unknown input 'Color'"),
        "missing feature": (INFER, json.dumps({"inputs": columns[1:]}).encode(), {}, 400, "missing feature 'MedInc'"),
        "non-numeric": (INFER, rows([*ROW[:3], "many", *ROW[4:]]), {}, 400, "data[3]: Input should be a valid number"),
        "numeric string": (INFER, rows(["8.3", *ROW[1:]]), {}, 400, "data[0]: Input should be a valid number"),
        "boolean": (INFER, rows([True, *ROW[1:]]), {}, 400, "data[0]: Input should be a valid number"),
        "short row": (INFER, rows(ROW[:7], (1, 7)), {}, 400, "the rows tensor has shape [N, 8]"),
        "empty batch": (INFER, rows([], (0, 8)), {}, 400, "no rows"),
        "no inputs": (INFER, b'{"rows": []}', {}, 400, "inputs: Field required"),
        "unknown model": ("/v2/models/float16/infer", good, {}, 404, "unknown model 'float16'"),
        "unknown version": ("/v2/models/linreg-ops/versions/3/infer", good, {}, 404, "no version '3'"),
        "not an object": (INFER, json.dumps([ROW]).encode(), {}, 400, "expected an inference request object"),
        "NaN": (INFER, good.replace(b"8.3252", b"NaN"), {}, 400, "data[0]: Input should be a finite number"),
        "Infinity": (INFER, good.replace(b"41.0", b"Infinity"), {}, 400, "data[1]: Input should be a finite number"),
        "1e999": (INFER, good.replace(b"-122.23", b"1e999"), {}, 400, "data[7]: Input should be a finite number"),
        "malformed JSON": (INFER, good[:-5], {}, 400, "malformed JSON"),
        "wrong content type": (INFER, good, {"content-type": "text/plain"}, 415, "unsupported Content-Type"),
        "compressed": (INFER, gzip.compress(good), {"content-encoding": "gzip"}, 415, "unsupported Content-Encoding"),
        "above max_batch": (INFER, rows([1.0] * 8 * (MAX_BATCH + 1), (MAX_BATCH + 1, 8)), {}, 413, f"exceeds max_batch {MAX_BATCH}"),
        "row count before values": (INFER, rows(["x"], (MAX_BATCH + 1, 8)), {}, 413, "exceeds max_batch"),
        "deep JSON": (INFER, b"[" * 2_000 + b"]" * 2_000, {}, 400, "JSON nested 2000 levels deep; at most 32"),
        "above max_body_bytes": (INFER, rows(ROW, id=" " * MAX_BODY), {}, 413, f"request body exceeds max_body_bytes {MAX_BODY:,}"),
        "overflowing prediction": (INFER, rows([ROW, [1.7e308, *ROW[1:]]], (2, 8)), {}, 400, "request row 2: column 'MedInc' holds 1.7e+308"),
        "binary without its header length": (INFER, json.dumps({"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP64", "parameters": {"binary_data_size": 64}}]}).encode() + np.array(ROW).tobytes(), {}, 400, "malformed JSON"),
        "header length past the body": (INFER, good, {"inference-header-content-length": "99999"}, 400, "Inference-Header-Content-Length '99999'"),
        "wrong method": (INFER.replace("/infer", ""), good, {}, 405, "use GET"),
    }  # fmt: skip


@pytest.mark.parametrize("case", list(bad_requests()))
def test_bad_input_is_4xx_with_an_error_object_from_the_app(app, case):
    path, body, headers, status, message = bad_requests()[case]
    answer = app.post(path, content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


@pytest.mark.slow
def test_bad_input_is_4xx_with_an_error_object_from_the_server(server):
    for case, (path, body, headers, status, message) in bad_requests().items():
        got_status, got_headers, got_body = post(server, path, body, headers)
        assert got_status == status, (case, got_body)
        assert message in json.loads(got_body)["error"], case
        assert got_headers["content-type"] == "application/json"


@pytest.mark.slow
def test_a_chunked_body_above_the_limit_is_413_with_an_error_object(server):
    host, port = server.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST {INFER} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".encode())  # fmt: skip
        chunk = b"[" + b" " * 4096
        try:
            for _ in range(MAX_BODY // len(chunk) + 2):
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may answer and close before the whole body is sent
        answer = b""
        while data := sock.recv(65536):
            answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b'"error":"request body exceeds max_body_bytes' in body


@pytest.mark.slow
def test_load_balancers_may_probe_with_head(server):
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/linreg-ops-integer/ready"):
        request = urllib.request.Request(f"http://{server}{path}", method="HEAD")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
            assert response.read() == b""
    assert post(server, "/v2/health/live", b"", {})[0] == 405  # a POST is still refused


@pytest.mark.slow
def test_while_draining_v2_ready_is_503_and_infer_still_answers(trained_dir):
    """After SIGTERM the service drains (serve.Drain): /v2/health/ready says not ready, so a
    gateway stops sending, while requests already on their way are still predicted."""
    import signal

    with served(trained_dir, "--drain-seconds", "5", ready="/v2/health/ready") as running:
        server = f"127.0.0.1:{running.port}"
        body = json.dumps({"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP64", "data": ROW}]}).encode()  # fmt: skip
        running.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        while True:  # the signal is handled asynchronously: poll until it shows
            status, _, answer = post(server, INFER, body)
            assert status == 200, answer
            try:
                urllib.request.urlopen(f"http://{server}/v2/health/ready", timeout=5)
            except urllib.error.HTTPError as error:
                ready = (error.code, json.loads(error.read()))
                break
            assert time.monotonic() < deadline, "/v2/health/ready never said draining"
        assert ready == (503, {"ready": False})
        assert post(server, INFER, body)[0] == 200
