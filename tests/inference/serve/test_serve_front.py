"""The raw ASGI front, against the real app: every model on /invocations, clipped rows made
visible, the headers every answer carries, MLflow's probes, the fast request path agreeing
with the checked one, and every OpenAPI example succeeding."""

import gzip
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from helpers import CALIFORNIA_FEATURES
from linreg_ops._version import __version__
from linreg_ops.inference import predict, requests
from linreg_ops.inference.requests import Limits, RequestError
from linreg_ops.inference.serve import ServeSettings, create_app

FEATURES = list(CALIFORNIA_FEATURES)
ROW = [8.3252, 41.0, 6.984127, 1.02381, 322.0, 2.555556, 37.88, -122.23]
FAR = [
    1e9,
    41.0,
    6.984127,
    1.02381,
    322.0,
    2.555556,
    37.88,
    -122.23,
]  # MedInc beyond any calibration
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client(trained_dir):
    with TestClient(create_app(ServeSettings(models_dir=trained_dir, access_log="off"))) as test:
        yield test


def post(client, path, payload, **headers):
    return client.post(path, content=json.dumps(payload), headers={**JSON, **headers})


@pytest.mark.parametrize("kind", ["float", "quantized", "integer"])
def test_invocations_serves_every_model_by_query_or_header(client, models, test_rows, kind):
    rows = test_rows[1][:30, :-1]
    expected, clipped = predict.predict_rows(models.get(kind), rows)
    payload = {"dataframe_split": {"columns": FEATURES, "data": rows.tolist()}}
    by_query = post(client, f"/invocations?model={kind}", payload)
    by_header = post(client, "/invocations", payload, **{"X-Model-Kind": kind})
    for response in (by_query, by_header):
        assert response.status_code == 200, response.text
        assert list(response.json()) == ["predictions"]  # MLflow's body, nothing added
        np.testing.assert_array_equal(response.json()["predictions"], expected)
        if kind == "integer":
            assert response.headers["x-clipped-rows"] == str(int(clipped.sum()))
        else:
            assert "x-clipped-rows" not in response.headers


@pytest.mark.parametrize(
    ("query", "headers", "message"),
    [
        ("?model=float16", {}, "'float16' is not one of float, quantized, integer"),
        ("?model=integer", {"X-Model-Kind": "float"}, "asked for 'integer' and 'float'"),
        ("", {"X-Model-Kind": ""}, "'' is not one of"),
    ],
)
def test_a_bad_model_choice_on_invocations_is_a_400(client, query, headers, message):
    response = post(client, f"/invocations{query}", {"instances": [ROW]}, **headers)
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_integer_answers_name_their_clipped_rows(client, models):
    response = post(client, "/predict", {"instances": [ROW, FAR, ROW, FAR], "model": "integer"})
    assert response.status_code == 200
    assert response.json()["clipped_rows"] == [1, 3]
    assert response.headers["x-clipped-rows"] == "2"
    response = post(client, "/invocations?model=integer", {"instances": [ROW, FAR]})
    assert response.headers["x-clipped-rows"] == "1"
    assert "clipped_rows" not in post(client, "/predict", {"instances": [FAR]}).json()


@settings(max_examples=40, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 20), st.just(8)),
        elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    )
)
def test_integer_answers_equal_predict_rows_bit_for_bit(client, models, X):
    """The service's small-batch int64 route against the model's own prediction."""
    expected, clipped = predict.predict_rows(models.integer, X)
    response = post(client, "/predict", {"instances": X.tolist(), "model": "integer"})
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(response.json()["predictions"], expected)
    assert response.json()["clipped_rows"] == np.flatnonzero(clipped).tolist()


def test_every_answer_carries_the_model_version_and_a_request_id(client):
    answers = [
        client.get("/health"),
        client.get("/metrics"),
        client.get("/no-such-route"),
        client.get("/predict"),  # 405, from FastAPI
        client.get("/openapi.json"),
        post(client, "/predict", {"instances": [ROW]}),
        post(client, "/predict", {"instances": []}),
        client.post("/invocations", content=b"{}", headers={"content-type": "text/plain"}),
    ]
    for response in answers:
        assert response.headers["x-model-version"] == "2", response.request.url
        assert len(response.headers["x-request-id"]) == 16
    ids = {response.headers["x-request-id"] for response in answers}
    assert len(ids) == len(answers)


@pytest.mark.parametrize(
    ("given", "kept"),
    [("abc-123", True), ("x" * 129, False), ("two words", False), ('quo"te', False)],
)
def test_a_request_id_is_echoed_when_it_is_short_and_plain(client, given, kept):
    response = client.get("/health", headers={"X-Request-ID": given})
    assert (response.headers["x-request-id"] == given) is kept


def test_mlflow_ping_and_version(client):
    ping = client.get("/ping")
    assert (ping.status_code, ping.content) == (200, b"\n")
    version = client.get("/version")
    assert (version.status_code, version.text) == (200, __version__)
    assert client.post("/ping").status_code == 405


@pytest.mark.parametrize("path", ["/predict", "/invocations"])
@pytest.mark.parametrize("body", [b"null", b"1", b'"x"', b"true", b"[]", b"{}", b""])
def test_scalar_and_empty_bodies_are_4xx(client, path, body):
    """Attack: a null body crashed the depth walk (found by schemathesis)."""
    response = client.post(path, content=body, headers=JSON)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["message"]


def checked_matrix(rows, d):
    """The checked path's matrix: pydantic validation, then rows_to_matrix."""
    validated = requests._validated_rows(rows, "instances")
    return requests.rows_to_matrix(validated, [f"f{j}" for j in range(d)], "instances")


VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.lists(st.floats(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(VALUES, min_size=3, max_size=3), min_size=1, max_size=4), st.booleans())
def test_the_fast_path_accepts_only_what_the_checked_path_accepts(rows, as_text):
    """Whatever the rows hold, the fast path either gives the checked path's matrix or
    steps aside (None): it never accepts a value the checked path refuses."""
    try:
        body = json.dumps({"instances": rows}).encode()
    except ValueError:
        return
    payload = json.loads(body)  # what the parser gives (NaN literals included)
    fast = requests.numeric_matrix(payload["instances"], 3, body, Limits())
    try:
        checked = checked_matrix(payload["instances"], 3)
    except RequestError:
        assert fast is None, f"fast path accepted {rows!r}"
        return
    if fast is not None:
        np.testing.assert_array_equal(fast, checked)


def test_the_fast_path_is_taken_for_plain_rows():
    body = json.dumps({"instances": [ROW, ROW]}).encode()
    assert requests.numeric_matrix([ROW, ROW], 8, body, Limits()) is not None
    assert requests.numeric_matrix([ROW, ROW], 8, body, Limits(max_json_depth=2)) is None


def test_every_openapi_example_succeeds(client):
    """Every request example of /docs, sent as Swagger UI's "Try it out" sends it."""
    document = client.get("/openapi.json").json()
    sent = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if not content:
                response = client.request(method.upper(), path)
                assert response.status_code == 200, (path, response.text)
                sent += 1
            for media_type, body in content.items():
                for name, example in body.get("examples", {}).items():
                    value = example["value"]
                    data = value if isinstance(value, str) else json.dumps(value)
                    response = client.request(
                        method.upper(), path, content=data, headers={"content-type": media_type}
                    )
                    assert response.status_code == 200, (path, name, response.text)
                    assert len(response.json()["predictions"]) == 2
                    sent += 1
    assert sent == 7 + 4 + 5  # GET routes, /predict's examples, /invocations' examples


def test_errors_are_documented_with_their_model(client):
    document = client.get("/openapi.json").json()
    for path in ("/predict", "/invocations"):
        responses = document["paths"][path]["post"]["responses"]
        assert {"200", "400", "413", "415", "422"} <= set(responses)
        error = responses["400"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/ErrorResponse"}
    predict_200 = document["paths"]["/predict"]["post"]["responses"]["200"]
    assert predict_200["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictResponse"
    }


def test_redoc_works_offline(client):
    import re

    page = client.get("/redoc")
    assert page.status_code == 200
    references = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]+)['"]""", page.text)
    assert references
    for reference in references:
        assert not re.match(r"^(https?:)?//", reference), f"/redoc loads {reference}"
        assert client.get(reference).status_code == 200, reference


def test_text_and_off_access_logs(tmp_path):
    """--access-log text: one line with every field; off: nothing; and a line never holds
    a newline of the caller's making (the request id is replaced)."""
    import os

    from linreg_ops.inference.access_log import AccessLogger, Entry, request_id

    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        entry = Entry(request_id(b"evil\nline"), "POST", "/predict", "linreg-ops", 2, 3, 200,
                      0.25, 1)  # fmt: skip
        AccessLogger("text", fd).write(entry)
        AccessLogger("off", fd).write(entry)
        AccessLogger("json", fd).write(entry)
    finally:
        os.close(fd)
    text, json_line = path.read_text().splitlines()
    assert "POST /predict 200 0.250ms model=linreg-ops version=2 rows=3 clipped=1 id=" in text
    assert "evil" not in text
    assert json.loads(json_line)["request_id"] == entry.request_id
    assert len(entry.request_id) == 16


def test_a_bad_access_log_choice_is_exit_2(run_cli, trained_dir):
    result = run_cli("serve", "--models-dir", str(trained_dir), "--access-log", "xml")
    assert result.returncode == 2
    assert "--access-log" in result.stderr


OUTSIDE = [150.0, *ROW[1:]]  # MedInc beyond the integer model's calibration: clipped


@pytest.mark.parametrize("path", ["/predict", "/invocations"])
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_a_compressed_body_is_refused_as_on_v2(client, path, encoding):
    """Attack finding S4: a Content-Encoding other than identity was ignored on /predict and
    /invocations (a gzip body a 400 "malformed JSON", a plain body with the header a 200);
    the three prediction routes now agree on 415 naming Content-Encoding."""
    body = gzip.compress(json.dumps({"instances": [ROW]}).encode())
    response = client.post(path, content=body, headers={**JSON, "content-encoding": encoding})
    assert response.status_code == 415, response.text[:200]
    assert response.json()["error_code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert f"Content-Encoding {encoding!r}" in response.json()["message"]
    plain = post(client, path, {"instances": [ROW]}, **{"content-encoding": "identity"})
    assert plain.status_code == 200, plain.text[:200]


def test_predict_honours_the_model_query_and_header_as_invocations_does(client):
    """Attack finding S5: /predict ignored ``?model=`` and ``X-Model-Kind`` and answered the
    float model; without "model" in the body they now pick the model as on /invocations."""
    payload = {"instances": [OUTSIDE]}
    expected = post(client, "/invocations?model=integer", payload)
    assert expected.headers["x-clipped-rows"] == "1"
    for query, headers in (("?model=integer", {}), ("", {"X-Model-Kind": "integer"})):
        response = post(client, f"/predict{query}", payload, **headers)
        assert response.status_code == 200, response.text
        assert response.json()["model"]["kind"] == "integer"
        assert response.json()["clipped_rows"] == [0]
        assert response.json()["predictions"] == expected.json()["predictions"]


@pytest.mark.parametrize(
    ("query", "headers", "body_model"),
    [
        ("?model=integer", {}, "float"),
        ("", {"X-Model-Kind": "quantized"}, "integer"),
        ("?model=integer", {"X-Model-Kind": "quantized"}, None),
        ("?model=nope", {}, None),
    ],
)
def test_predict_refuses_a_model_asked_for_twice_differently(client, query, headers, body_model):
    """A body, a query and a header that disagree are a 422 naming ``model``, never a guess."""
    payload: dict = {"instances": [ROW]}
    if body_model is not None:
        payload["model"] = body_model
    response = post(client, f"/predict{query}", payload, **headers)
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith("model: ")


def through_a_cold_app(trained_dir, tmp_path, cold, method: str) -> tuple[int, list[dict], str]:
    """One request to an unknown route, answered by the real front with ``cold`` in place of
    the FastAPI app behind it (fault injection): the status the client got, the request-log
    lines and a /metrics scrape."""
    import os

    from linreg_ops.inference.access_log import AccessLogger

    front = create_app(ServeSettings(models_dir=trained_dir, access_log="json"))
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        with TestClient(front, raise_server_exceptions=False) as test:
            front.service.log = AccessLogger("json", fd)
            front._cold = cold
            answer = test.request(
                method, "/no-such-route", content=b"{}" if method == "POST" else None
            )
            front._cold = None
            metrics = test.get("/metrics").text
    finally:
        os.close(fd)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return answer.status_code, lines, metrics


def counted(metrics: str, code: int) -> bool:
    return any(
        line.startswith("linreg_ops_requests_total{")
        and f'code="{code}"' in line
        and 'route="other"' in line
        for line in metrics.splitlines()
    )


def test_an_exception_from_the_cold_app_is_logged_and_counted_as_a_500(trained_dir, tmp_path):
    """Attack finding S3: an exception escaping the FastAPI app behind the front skipped the
    access-log line and the request counter, so a route failing every time read as 0 errors."""

    async def failing(scope, receive, send):
        raise RuntimeError("the cold app broke")

    status, lines, metrics = through_a_cold_app(trained_dir, tmp_path, failing, "GET")
    assert status == 500
    assert (lines[0]["route"], lines[0]["status"]) == ("other", 500)
    assert counted(metrics, 500), metrics


def test_a_client_that_leaves_a_cold_route_is_logged_and_counted_as_499(trained_dir, tmp_path):
    """Attack finding: a client leaving while the FastAPI app behind the front read its body
    (starlette's ClientDisconnect) was logged and counted as a 500, a server error nobody
    made; the hot routes say 499 ("client closed request")."""
    from starlette.requests import ClientDisconnect

    async def left(scope, receive, send):
        raise ClientDisconnect

    _, lines, metrics = through_a_cold_app(trained_dir, tmp_path, left, "POST")
    assert (lines[0]["route"], lines[0]["status"]) == ("other", 499)
    assert counted(metrics, 499), metrics
    assert not counted(metrics, 500), metrics


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/", 404),
        ("GET", "/nope", 404),
        ("GET", "/docs", 200),
        ("GET", "/redoc", 200),
        ("GET", "/openapi.json", 200),
        ("GET", "/predict/", None),  # None: any answer below 500
        ("GET", "/PREDICT", None),
        ("GET", "/metrics/", None),
        ("GET", "//v2", 404),
        ("DELETE", "/predict", 405),
        ("PUT", "/invocations", 405),
        ("GET", "/predict", 405),
        ("OPTIONS", "/monitor", 405),
        ("HEAD", "/ping", None),
        ("HEAD", "/health", None),
        ("HEAD", "/metrics", None),
        ("OPTIONS", "/predict", None),
    ],
)
def test_routes_outside_the_front_never_answer_5xx(client, method, path, expected):
    """Attack finding S2: building the FastAPI app behind the front failed (GET /monitor had
    no OpenAPI summary), so every 404, 405 and the docs were a 500."""
    response = client.request(method, path)
    assert response.status_code < 500, response.text[:200]
    if expected is not None:
        assert response.status_code == expected, response.text[:200]
