"""Findings of the outside "attack" pass on ``linreg-ops serve`` (integration branch at
314fb8a, "Merge drift"). Each test is a finding: it fails on that code and passes once the
service does what its docs (docs/serving.md, docs/operating.md) promise.

Reproduce by hand after ``make run``::

    linreg-ops serve --models-dir models --port 18731 [--workers 2]
"""

import gzip
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from helpers import stop
from linreg_ops.inference.serve import ServeSettings, create_app

ROW = [8.3252, 41.0, 6.984127, 1.02381, 322.0, 2.555556, 37.88, -122.23]
OUTSIDE = [150.0, 41.0, 6.984127, 1.02381, 322.0, 2.555556, 37.88, -122.23]  # clipped by integer
JSON = {"content-type": "application/json"}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(models_dir: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """``linreg-ops serve`` as a real process; (process, base URL) once /ready is 200, or an
    AssertionError with what it printed when it exits or is not ready within 30 s."""
    port = _free_port()
    executable = Path(sys.executable).with_name("linreg-ops")
    command = [str(executable), "serve", "--models-dir", str(models_dir), "--port", str(port)]
    process = subprocess.Popen(
        [*command, *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"serve exited {process.returncode} before it was ready:\n{process.stdout.read()}"
            )
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=1) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"serve was not ready in 30 s:\n{stop(process)}")


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_starts(trained_dir, workers):
    """Finding S1 (every start fails).
    Command: ``linreg-ops serve --models-dir models --port 18731 --workers 1`` (or 2).
    What happened: every worker dies at start-up with ``ERROR: [Errno 2] No such file or
    directory: '/tmp/linreg-ops-monitor-XXXX/1/worker-PID.stats'`` and serve exits **2**
    ("version 1 could not be loaded ... the log above says why"), an exit code the docs
    reserve for bad input; the merge of `drift` puts each version's statistics in
    ``monitor_dir / str(number)`` (serve.py ``_live``) but nothing creates that folder.
    What should happen: the service starts and /ready answers 200."""
    process, url = _serve(trained_dir, "--workers", workers, "--access-log", "off")
    try:
        with urllib.request.urlopen(f"{url}/ready", timeout=5) as response:
            assert json.loads(response.read())["status"] == "ready"
    finally:
        stop(process)


@pytest.fixture(scope="module")
def client(trained_dir):
    """The real app in process. (Finding S1 makes entering it raise FileNotFoundError.)"""
    with TestClient(create_app(ServeSettings(models_dir=trained_dir))) as test_client:
        yield test_client


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
    """Finding S2 (every 404, 405 and the docs are a 500).
    Command: ``curl -i localhost:18731/nope`` (also /, /docs, /openapi.json, /redoc,
    ``curl -X DELETE localhost:18731/predict``, ``curl -X OPTIONS localhost:18731/monitor``,
    ``curl -I localhost:18731/ping`` (HEAD on every GET route of the front but /v2's),
    and over a raw socket ``OPTIONS * HTTP/1.1``).
    What happened: ``500 Internal Server Error`` and a traceback in the log ending in
    ``openapi.py, line 115, in route_documentation: KeyError: '/monitor'`` — building the
    FastAPI app that answers everything outside the hot front fails because GET /monitor has
    no summary in openapi.route_documentation.
    What should happen: 404 for an unknown route, 405 for a wrong method, the docs 200;
    "No input gets a 5xx" (docs/operating.md)."""
    response = client.request(method, path)
    assert response.status_code < 500, response.text[:200]
    if expected is not None:
        assert response.status_code == expected, response.text[:200]


@pytest.mark.slow
def test_every_answer_is_logged_and_counted(trained_dir):
    """Finding S3 (a 5xx is invisible to the operator).
    Command: ``linreg-ops serve --models-dir models --port 18731``, then
    ``curl localhost:18731/nope`` and ``curl localhost:18731/metrics``.
    What happened: the 500 of finding S2 wrote a traceback but no access-log line, and
    ``linreg_ops_requests_total`` has no sample for it (no code="500", no route="other"); an
    error rate computed from /metrics or from the logs reads 0 while every unknown path fails.
    What should happen: one JSON log line per request (docs/operating.md, "Request logs"),
    route "other", and a counter sample with its code."""
    process, url = _serve(trained_dir, "--access-log", "json")
    try:
        try:
            with urllib.request.urlopen(f"{url}/no-such-route", timeout=5) as response:
                code = response.status
        except urllib.error.HTTPError as error:
            code = error.code
            error.close()
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            metrics = response.read().decode()
    finally:
        output = stop(process)
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert [line["status"] for line in lines if line["route"] == "other"] == [code]
    assert f'code="{code}"' in metrics
    assert 'route="other"' in metrics


@pytest.mark.parametrize("path", ["/predict", "/invocations"])
def test_a_compressed_body_is_refused_as_on_v2(client, path):
    """Finding S4 (Content-Encoding ignored on /predict and /invocations).
    Command: ``echo '{"instances": [[8.3252, 41, 6.984127, 1.02381, 322, 2.555556, 37.88,
    -122.23]]}' | gzip > b.gz; curl -X POST localhost:18731/predict -H 'content-type:
    application/json' -H 'content-encoding: gzip' --data-binary @b.gz``.
    What happened: 400 "malformed JSON: 'utf-8' codec can't decode byte 0x8b"; with a plain
    body and the same header it answers 200, reading the body as if it were not compressed.
    /v2/models/linreg-ops/infer answers the same request 415 "unsupported Content-Encoding
    'gzip': send the body as is".
    What should happen: the three prediction routes agree: 415 naming Content-Encoding (or
    decode it and answer 200)."""
    body = gzip.compress(json.dumps({"instances": [ROW]}).encode())
    response = client.post(path, content=body, headers={**JSON, "content-encoding": "gzip"})
    assert response.status_code == 415, response.text[:200]
    assert "Content-Encoding" in response.text


def test_predict_does_not_silently_ignore_the_model_query(client):
    """Finding S5 (``?model=`` / ``X-Model-Kind`` ignored on /predict).
    Command: ``curl -X POST 'localhost:18731/predict?model=integer' -H 'content-type:
    application/json' -d '{"instances": [[150, 41, 6.984127, 1.02381, 322, 2.555556, 37.88,
    -122.23]]}'`` (or with ``-H 'X-Model-Kind: integer'``).
    What happened: 200 from the **float** model (67.7179, ``"kind": "float"``), while the
    same query on /invocations answers the integer model (53.2827, X-Clipped-Rows: 1): a
    client moving between the routes gets another model's answer without a word.
    What should happen: /predict either honours the query/header as /invocations does, or
    refuses it (400 naming ``model``)."""
    payload = json.dumps({"instances": [OUTSIDE]})
    for query, headers in (("?model=integer", JSON), ("", {**JSON, "x-model-kind": "integer"})):
        response = client.post(f"/predict{query}", content=payload, headers=headers)
        if response.status_code == 200:
            assert response.json()["model"]["kind"] == "integer"
            expected = client.post(
                "/invocations?model=integer", content=payload, headers=JSON
            ).json()["predictions"]
            np.testing.assert_array_equal(response.json()["predictions"], expected)
        else:
            assert response.status_code == 400
            assert "model" in response.text
