"""What an operator does to ``linreg-ops serve`` (issue 13, item 9): configure it from the
environment, probe it, feed it broken HTTP, and stop it under load."""

import concurrent.futures
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helpers import stop

pytestmark = pytest.mark.slow
ROW = [8.3252, 41.0, 6.984127, 1.02381, 322.0, 2.555556, 37.88, -122.23]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    executable = Path(sys.executable).with_name("linreg-ops")
    process = subprocess.Popen(
        [str(executable), "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # no request log: a pipe nobody reads fills after ~64 KiB, and then every write to
        # it blocks the server (test_request_log reads it, from a file)
        env={**os.environ, "LINREG_OPS_ACCESS_LOG": "off", **(env or {})},
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
            if request(port, "GET", "/ready")[0] == 200:
                return process, port
        except OSError:
            pass
        if process.poll() is not None:
            raise AssertionError(f"serve exited: {process.stdout.read()}")
        assert time.monotonic() < deadline, "serve did not start"
        time.sleep(0.05)


def request(port: int, method: str, path: str, payload: object = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = None if payload is None else json.dumps(payload).encode()
        connection.request(method, path, body=body, headers={"content-type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_settings_come_from_flags_then_environment_then_defaults(trained_dir, tmp_path):
    """LINREG_OPS_MAX_BATCH and LINREG_OPS_MODELS_DIR, documented, had no effect on serve."""
    env = {"LINREG_OPS_MODELS_DIR": str(trained_dir), "LINREG_OPS_MAX_BATCH": "3"}
    process, port = start_server(env=env)  # no --models-dir: it comes from the environment
    try:
        assert request(port, "POST", "/predict", {"instances": [ROW] * 3})[0] == 200
        status, body = request(port, "POST", "/predict", {"instances": [ROW] * 4})
        assert status == 413
        assert b"exceeds max_batch 3" in body
    finally:
        stop(process)
    process, port = start_server("--max-batch", "4", env=env)  # the flag wins
    try:
        assert request(port, "POST", "/predict", {"instances": [ROW] * 4})[0] == 200
    finally:
        stop(process)


def test_a_bad_environment_value_is_one_line(run_cli, trained_dir):
    import subprocess

    executable = Path(sys.executable).with_name("linreg-ops")
    result = subprocess.run(
        [str(executable), "serve", "--models-dir", str(trained_dir)],
        env={**os.environ, "LINREG_OPS_MAX_BATCH": "lots"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("linreg-ops serve: error: LINREG_OPS_MAX_BATCH:")
    assert "Traceback" not in result.stderr


def test_health_and_ready_answer_head(trained_dir):
    """A load balancer's HEAD /health was 405."""
    from linreg_ops.inference.serve import ServeSettings, create_app

    with TestClient(create_app(ServeSettings(models_dir=trained_dir))) as client:
        for path in ("/health", "/ready"):
            response = client.head(path)
            assert response.status_code == 200, path
            assert response.content == b""


def test_metadata_names_files_not_server_paths(run_cli, regression_csv, tmp_path):
    """/metadata gave every caller the absolute paths of the models folder and training files."""
    from linreg_ops.inference.serve import ServeSettings, create_app

    models_dir = tmp_path / "deep" / "models"
    run_cli(
        "train", "--data", regression_csv, "--target", "y", "--models-dir", models_dir, check=True
    )
    with TestClient(create_app(ServeSettings(models_dir=models_dir))) as client:
        text = client.get("/metadata").text
    meta = json.loads(text)
    assert str(tmp_path) not in text
    assert meta["training_data"]["files"] == [regression_csv.name]
    assert meta["training_data"]["source"] == regression_csv.name
    assert meta["models_dir"] == "models"


def test_a_malformed_chunked_body_is_answered_without_a_traceback_in_the_log(trained_dir):
    """Each malformed chunked body logged a full ClientDisconnect traceback (a log flood)."""
    process, port = start_server("--models-dir", str(trained_dir))
    try:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(
                    b"POST /predict HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                    b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"ins\r\nZZZ\r\n'
                )
                assert sock.recv(100).startswith(b"HTTP/1.1 400")
        assert request(port, "POST", "/predict", {"instances": [ROW]})[0] == 200
    finally:
        log = stop(process)
    assert "Traceback" not in log
    assert "ClientDisconnect" not in log


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_under_load_answers_every_request_it_accepted(trained_dir, workers):
    """SIGTERM under load reset 3 of 160 requests in flight: uvicorn closed idle keep-alive
    connections, and connections queued in the backlog, that clients had already sent a
    request on. Now every request sent on a connection the server accepted gets its answer
    (a refused new connection, after the server stopped listening, is the client's cue to
    go elsewhere). The load stops 100 ms after SIGTERM, as a load balancer that saw /ready
    turn 503 would stop it."""
    process, port = start_server("--models-dir", str(trained_dir), "--workers", workers)
    payload = json.dumps({"instances": [ROW] * 50}).encode()
    headers = {"content-type": "application/json"}
    stopping = threading.Event()

    def client() -> Counter:
        outcomes: Counter = Counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while not stopping.is_set():
            try:
                connection.request("POST", "/predict", body=payload, headers=headers)
                response = connection.getresponse()
                response.read()
                outcomes[response.status] += 1
                if response.getheader("connection") == "close":
                    connection.close()
            except OSError as error:  # resets, refusals
                outcomes[type(error).__name__] += 1
                connection.close()
            except http.client.HTTPException as error:  # the server closed it under us
                outcomes[type(error).__name__] += 1
                connection.close()
        connection.close()
        return outcomes

    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            clients = [pool.submit(client) for _ in range(8)]
            time.sleep(0.7)
            process.send_signal(signal.SIGTERM)
            time.sleep(0.1)
            stopping.set()
            outcomes = sum((future.result() for future in clients), Counter())
        process.wait(timeout=30)
    finally:
        log = stop(process)
    failures = {k: n for k, n in outcomes.items() if k not in (200, "ConnectionRefusedError")}
    assert not failures, f"{outcomes}\n{log}"
    assert outcomes[200] > 50  # there was load


def test_a_client_that_leaves_mid_body_is_logged_once(trained_dir, tmp_path):
    """Attack on the request log ("one log line per request", docs/operating.md): a client
    sends its headers and part of its body, then closes. By hand on 2 workers, 129 of 129
    such requests had no line at all (every 200/400/404/413 had exactly one). The line may
    carry any status (499 is nginx's for "client closed"), but it must exist, once."""
    port = free_port()
    log = tmp_path / "serve.log"
    executable = Path(sys.executable).with_name("linreg-ops")
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [str(executable), "serve", "--port", str(port), "--models-dir", str(trained_dir),
             "--access-log", "json", "--drain-seconds", "0"],
            stdout=output, stderr=output,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if request(port, "GET", "/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'X-Request-ID: left-mid-body\r\nContent-Length: 1000\r\n\r\n{"inputs": ['
            )
            time.sleep(0.3)  # the server is reading the body when the client goes
        assert request(port, "GET", "/health")[0] == 200
        time.sleep(0.5)
    finally:
        stop(process)
    lines = [json.loads(line) for line in log.read_bytes().splitlines() if line.startswith(b"{")]
    ids = Counter(line.get("request_id") for line in lines)
    assert ids["left-mid-body"] == 1, lines
