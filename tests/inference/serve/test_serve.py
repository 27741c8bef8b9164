"""The HTTP service against the real app: answers, MLflow formats, and every bad input."""

import json
import os

import numpy as np
import pytest
from fastapi.testclient import TestClient

from helpers import CALIFORNIA_FEATURES, tamper
from linreg_ops import pipeline
from linreg_ops.errors import ArtifactError, InputError
from linreg_ops.inference import loading, predict
from linreg_ops.inference.serve import ServeSettings, create_app

FEATURES = list(CALIFORNIA_FEATURES)
ROW = [8.3252, 41.0, 6.984127, 1.02381, 322.0, 2.555556, 37.88, -122.23]


@pytest.fixture(scope="module")
def client(trained_dir):
    with TestClient(create_app(ServeSettings(models_dir=trained_dir))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def rows(test_rows):
    return test_rows[1][:100, :-1]


def post_json(client, path, payload):
    return client.post(
        path, content=json.dumps(payload), headers={"content-type": "application/json"}
    )


def test_health_ready_metadata(client, models):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {
        "status": "ready",
        "version": 2,
        "models": ["float", "quantized", "integer"],
    }
    meta = client.get("/metadata").json()
    assert meta["features"] == FEATURES
    assert meta["target"] == "MedHouseVal"
    assert meta["metrics"]["float"]["r2"] == pytest.approx(0.5758, abs=1e-4)
    assert meta["quantization"]["dtype"] == "int8"
    assert meta["version"] == 2
    assert meta["models"]["float"]["sha256"] == models.version.sha256("model.json")
    assert meta["limits"] == {
        "max_batch": 10_000,
        "max_body_bytes": 8 * 1024 * 1024,
        "max_json_depth": 32,
    }
    assert "numpy" in meta["versions"]["serving"]


def test_openapi_documents_every_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/health", "/ready", "/metadata", "/predict", "/invocations", "/ping", "/version",
        "/metrics", "/monitor",
    }  # fmt: skip


def test_docs_work_offline(client):
    """Swagger UI from an installed package: the page names no other host, its assets load."""
    import re

    page = client.get("/docs")
    assert page.status_code == 200
    references = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", page.text)
    assert len(references) >= 3
    for reference in references:
        assert not re.match(r"^(https?:)?//", reference), (
            f"/docs loads {reference} from another host"
        )
        asset = client.get(reference)
        assert asset.status_code == 200, reference
    assert "SwaggerUIBundle" in client.get(next(r for r in references if r.endswith(".js"))).text


@pytest.mark.parametrize("kind", ["float", "quantized", "integer"])
def test_predict_equals_batch_prediction(client, models, rows, kind):
    response = post_json(client, "/predict", {"instances": rows.tolist(), "model": kind})
    assert response.status_code == 200, response.text
    body = response.json()
    expected, _ = predict.predict_rows(models.get(kind), rows)
    np.testing.assert_array_equal(body["predictions"], expected)
    assert body["model"]["sha256"] == models.version.sha256(loading.ARTIFACT_OF[kind])
    assert body["model"]["kind"] == kind
    assert body["model"]["version"] == 2


def test_objects_keyed_by_feature_in_any_order(client, rows):
    records = [dict(reversed(list(zip(FEATURES, row, strict=True)))) for row in rows[:5].tolist()]
    by_name = post_json(client, "/predict", {"instances": records}).json()["predictions"]
    by_order = post_json(client, "/predict", {"instances": rows[:5].tolist()}).json()["predictions"]
    assert by_name == by_order
    assert post_json(client, "/predict", {"instances": [ROW]}).json()["model"]["dtype"] == "float64"


def mlflow_payloads(rows):
    records = [dict(zip(FEATURES, row, strict=True)) for row in rows]
    return {
        "dataframe_split": {"dataframe_split": {"columns": FEATURES, "data": rows}},
        "dataframe_split without columns": {"dataframe_split": {"data": rows}},
        "dataframe_records": {"dataframe_records": records},
        "instances (rows)": {"instances": rows},
        "instances (records)": {"instances": records},
        "inputs (columns)": {
            "inputs": {name: [row[i] for row in rows] for i, name in enumerate(FEATURES)}
        },
        "with params": {"inputs": rows, "params": {}},
    }


@pytest.mark.parametrize("fmt", list(mlflow_payloads([ROW])))
def test_invocations_json_formats(client, models, rows, fmt):
    payload = mlflow_payloads(rows[:20].tolist())[fmt]
    response = post_json(client, "/invocations", payload)
    assert response.status_code == 200, response.text
    expected = models.float.predict(rows[:20])
    np.testing.assert_array_equal(response.json()["predictions"], expected)


def test_invocations_csv(client, models, rows):
    order = FEATURES[::-1]
    lines = [",".join(order)] + [
        ",".join(repr(row[FEATURES.index(n)]) for n in order) for row in rows[:20].tolist()
    ]
    response = client.post(
        "/invocations",
        content="\n".join(lines) + "\n",
        headers={"content-type": "text/csv; charset=utf-8"},
    )
    assert response.status_code == 200, response.text
    expected = models.float.predict(rows[:20])
    np.testing.assert_array_equal(response.json()["predictions"], expected)


def test_invocations_csv_with_quotes_crlf_and_bom(client, models, rows):
    lines = [",".join(f'"{name}"' for name in FEATURES)]
    lines += [",".join(f'"{value!r}"' for value in row) for row in rows[:5].tolist()]
    body = b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n"
    response = client.post("/invocations", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(response.json()["predictions"], models.float.predict(rows[:5]))


BAD_PREDICT = {
    "unknown feature": ({"instances": [{**dict(zip(FEATURES, ROW, strict=True)), "Color": 1}]}, 422, "instances[0]: unknown feature 'Color'"),
    "missing feature": ({"instances": [dict(zip(FEATURES[1:], ROW[1:], strict=True))]}, 422, "instances[0]: missing feature 'MedInc'"),
    "non-numeric": ({"instances": [ROW, [*ROW[:3], "many", *ROW[4:]]]}, 422, "instances[1][3]: Input should be a valid number"),
    "numeric string": ({"instances": [["8.3", *ROW[1:]]]}, 422, "instances[0][0]: Input should be a valid number"),
    "boolean": ({"instances": [[True, *ROW[1:]]]}, 422, "instances[0][0]: Input should be a valid number"),
    "short row": ({"instances": [ROW, ROW[:7]]}, 422, "instances[1]: expected 8 values in feature order, got 7"),
    "empty batch": ({"instances": []}, 422, "instances: List should have at least 1 item"),
    "no instances": ({"rows": [ROW]}, 422, "instances: Field required"),
    "unknown model": ({"instances": [ROW], "model": "float16"}, 422, "model: Input should be 'float', 'quantized' or 'integer'"),
    "not an object": ([ROW], 422, "body: Input should be an object"),
}  # fmt: skip


def assert_refused(client, path, case):
    """A bad body's answer: its status and an error message holding the expected words."""
    payload, status, message = case
    response = post_json(client, path, payload)
    assert response.status_code == status, response.text
    assert message in response.json()["message"]


@pytest.mark.parametrize("case", list(BAD_PREDICT))
def test_bad_predict_bodies(client, case):
    assert_refused(client, "/predict", BAD_PREDICT[case])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"instances": [[NaN, 41, 6.9, 1.0, 322, 2.5, 37.8, -122.2]]}', "instances[0][0]: Input should be a finite number"),
        (b'{"instances": [[8.3, Infinity, 6.9, 1.0, 322, 2.5, 37.8, -122.2]]}', "instances[0][1]: Input should be a finite number"),
        (b'{"instances": [[8.3, 41, 6.9, 1.0, 322, 2.5, 37.8, 1e999]]}', "instances[0][7]: Input should be a finite number"),
    ],
)  # fmt: skip
def test_nan_and_infinity_are_refused(client, raw, message):
    response = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert message in response.json()["message"]


@pytest.mark.parametrize("path", ["/predict", "/invocations"])
def test_malformed_json(client, path):
    response = client.post(
        path, content=b'{"instances": [[1, 2,', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["message"]


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/predict", "text/plain"),
        ("/predict", "text/csv"),
        ("/invocations", "application/xml"),
        ("/invocations", None),
    ],
)
def test_wrong_content_type(client, path, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(path, content=b"{}", headers=headers)
    assert response.status_code == 415
    assert "unsupported Content-Type" in response.json()["message"]


BAD_INVOCATIONS = {
    "no known key": ({"data": [ROW]}, 400, "unknown field 'data'"),
    "two keys": ({"instances": [ROW], "inputs": [ROW]}, 400, "expected exactly one of"),
    "not an object": ([ROW], 400, "body must be a JSON object"),
    "ragged split": ({"dataframe_split": {"columns": FEATURES, "data": [ROW, ROW[:5]]}}, 400, "dataframe_split.data[1]: expected 8 values"),
    "unknown column": ({"dataframe_split": {"columns": [*FEATURES[:7], "Color"], "data": [ROW]}}, 400, "dataframe_split: unknown feature 'Color'"),
    "missing column": ({"dataframe_records": [dict(zip(FEATURES[:7], ROW, strict=False))]}, 400, "dataframe_records[0]: missing feature 'Longitude'"),
    "non-numeric record": ({"dataframe_records": [{**dict(zip(FEATURES, ROW, strict=True)), "AveRooms": "x"}]}, 400, "dataframe_records[0].AveRooms: Input should be a valid number"),
    "empty": ({"instances": []}, 400, "instances: expected a non-empty list of rows"),
    "uneven columns": ({"inputs": {"MedInc": [1, 2], "HouseAge": [3]}}, 400, "every column must be a list of the same length"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_INVOCATIONS))
def test_bad_invocations(client, case):
    assert_refused(client, "/invocations", BAD_INVOCATIONS[case])


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        (",".join(FEATURES) + "\n" + ",".join(map(str, ROW[:4])) + ",lots," + ",".join(map(str, ROW[5:])) + "\n", "CSV body column 'Population' row 1: non-numeric value 'lots'"),
        (",".join(FEATURES) + "\n" + ",".join(map(str, [*ROW, -122.23])) + "\n", "CSV body row 1 (line 2) has 9 fields, the header has 8"),
        (",".join(FEATURES) + "\n" + ",".join(map(str, ROW[:7])) + ",nan\n", "column 'Longitude' row 1 is NaN"),
        (",".join([*FEATURES, "Color"]) + "\n" + ",".join(map(str, [*ROW, 1])) + "\n", "unknown feature 'Color'"),
        (",".join(FEATURES[:7]) + "\n" + ",".join(map(str, ROW[:7])) + "\n", "column 'Longitude' not found"),
        (",".join(FEATURES) + "\n", "no data rows"),
        ("Med\rInc," + ",".join(FEATURES[1:]) + "\n" + "1," * 7 + "1\n", "unknown feature 'Med'"),  # a lone CR ends a row
    ],
)  # fmt: skip
def test_bad_csv(client, csv_text, message):
    response = client.post("/invocations", content=csv_text, headers={"content-type": "text/csv"})
    assert response.status_code == 400, response.text  # MLflow's status for every bad input
    assert message in response.json()["message"]


@pytest.fixture(scope="module")
def small_client(trained_dir):
    settings = ServeSettings(models_dir=trained_dir, max_batch=5, max_body_bytes=2_000)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize("path", ["/predict", "/invocations"])
def test_batch_above_max_batch_is_413(small_client, path):
    response = post_json(small_client, path, {"instances": [ROW] * 6})
    assert response.status_code == 413
    assert "exceeds max_batch 5" in response.json()["message"]
    assert post_json(small_client, path, {"instances": [ROW] * 5}).status_code == 200


@pytest.mark.parametrize("path", ["/predict", "/invocations"])
def test_the_row_count_is_checked_before_any_row_is_validated(small_client, path):
    response = post_json(small_client, path, {"instances": [["not a number"]] * 6})
    assert response.status_code == 413


def test_csv_row_count_is_checked_before_values_are(small_client):
    body = ",".join(FEATURES) + "\n" + "x,1,1,1,1,1,1,1\n" * 6
    response = small_client.post("/invocations", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 413


@pytest.mark.parametrize("path", ["/predict", "/invocations"])
@pytest.mark.parametrize("depth", [33, 2_000, 100_000])
def test_deep_json_is_refused_before_parsing(client, path, depth):
    body = b"[" * depth + b"]" * depth
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert f"JSON nested {depth} levels deep; at most 32" in response.json()["message"]


def test_brackets_inside_strings_do_not_count_as_depth(client):
    body = json.dumps({"instances": [ROW], "model": "[" * 100}).encode()
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "model:" in response.json()["message"]


def test_body_above_the_byte_limit_is_413(small_client):
    body = json.dumps({"instances": [ROW] * 5, "padding": " " * 3_000}).encode()
    response = small_client.post(
        "/predict", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "exceeds max_body_bytes 2,000" in response.json()["message"]


def test_chunked_body_above_the_byte_limit_is_413(small_client):
    def chunks():
        yield b'{"instances": ['
        for _ in range(100):
            yield json.dumps(ROW).encode() + b","
        yield json.dumps(ROW).encode() + b"]}"

    response = small_client.post(
        "/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_quantized_model_missing_is_a_clear_4xx(models_copy, california):
    pipeline.train(california, models_copy)  # version 3: the float model only
    with TestClient(create_app(ServeSettings(models_dir=models_copy))) as test_client:
        response = post_json(test_client, "/predict", {"instances": [ROW], "model": "quantized"})
    assert response.status_code == 422
    assert "run linreg-ops quantize" in response.json()["message"]


def test_tampered_artifact_stops_start_up(models_copy):
    tamper(
        models_copy,
        "model.json",
        lambda data: data.replace(b'"intercept": -37', b'"intercept": -36'),
    )
    with pytest.raises(ArtifactError, match="does not match its SHA-256"):  # noqa: SIM117
        with TestClient(create_app(ServeSettings(models_dir=models_copy))):
            pass


def test_importing_serve_loads_nothing(tmp_path):
    # The app object can be created for a folder that does not exist: loading is in the lifespan.
    create_app(ServeSettings(models_dir=tmp_path / "nowhere"))


def test_a_start_up_that_fails_in_the_worker_is_an_input_error_not_exit_3(models_copy, monkeypatch):
    """Attack C5: uvicorn exits 3 when the lifespan fails (a model changed between the CLI's
    check and the worker's load) — the CLI's exit code for a failed quality gate."""
    from linreg_ops.inference import serve
    from linreg_ops.storage import store

    version = store.open_version(models_copy)
    tamper(models_copy, "model.json", lambda data: data.replace(b"1", b"2", 1))
    # serve.run hands its settings to the workers in the environment: keep this test's own
    monkeypatch.setattr(os, "environ", {**os.environ})
    for name in serve.ServeSettings.model_fields:
        os.environ.pop(f"LINREG_OPS_{name.upper()}", None)
    settings = serve.ServeSettings(port=0, max_batch=10, max_body_bytes=1000, log_level="critical")
    with pytest.raises(InputError, match="could not be loaded when the service"):
        serve.run(version, settings)


def test_a_prediction_that_overflows_is_a_422_naming_the_row(client, models):
    """Attack A4: finite inputs near float64's maximum were answered 200 with null."""
    big = (np.sign(models.float.coef) * 1.7e308).tolist()
    for kind in ("float", "quantized"):
        response = post_json(client, "/predict", {"instances": [ROW, big], "model": kind})
        assert response.status_code == 422
        message = response.json()["message"]
        assert message.startswith("request row 2: column 'MedInc' holds 1.7e+308, beyond ±")
        assert "where the prediction could overflow float64" in message
    response = post_json(client, "/invocations", {"instances": [ROW, ROW, big]})
    assert response.status_code == 400  # MLflow's protocol: every bad input is a 400
    assert "request row 3" in response.json()["message"]
    response = post_json(client, "/predict", {"instances": [ROW, big], "model": "integer"})
    assert response.status_code == 200  # inputs are clipped: every answer is finite
