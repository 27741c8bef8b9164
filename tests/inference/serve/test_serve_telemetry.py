"""Metrics, request logs and MLflow parity against real ``linreg-ops serve`` processes (one
worker and two): counters parsed with prometheus_client's parser read exactly what was sent,
dead workers' files are folded away, and every MLflow payload gets MLflow's status."""

import concurrent.futures
import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import stop
from linreg_ops.inference import telemetry

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]
ROW = [8.3252, 41.0, 6.984127, 1.02381, 322.0, 2.555556, 37.88, -122.23]
FAR = [1e9, 41.0, 6.984127, 1.02381, 322.0, 2.555556, 37.88, -122.23]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        connection.request(
            method, path, body=data, headers={"content-type": "application/json", **(headers or {})}
        )
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


class Server:
    """A real ``linreg-ops serve``, its output in a file (a pipe nobody reads would fill)."""

    def __init__(self, models_dir: Path, log: Path, *args: str) -> None:
        self.port = free_port()
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINREG_OPS_")}
        env.pop(telemetry.MULTIPROC_ENV, None)
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).with_name("linreg-ops")), "serve", "--models-dir",
                 str(models_dir), "--port", str(self.port), *args],
                stdout=output, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                if request(self.port, "GET", "/ready")[0] == 200:
                    return
            except OSError:
                pass
            assert self.process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.05)

    def workers(self) -> list[int]:
        """The worker processes (uvicorn spawns them; multiprocessing's tracker is not one)."""
        pids = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                command = Path(f"/proc/{child}/cmdline").read_bytes()
                if b"resource_tracker" not in command:
                    pids.append(int(child))
        return pids

    def metrics(self) -> dict[tuple[str, tuple], float]:
        status, _, body = request(self.port, "GET", "/metrics")
        assert status == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
        }

    def stop(self) -> str:
        stop(self.process)
        return self.log.read_text()


def total(metrics, name, **labels):
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(
        value
        for (sample, sample_labels), value in metrics.items()
        if sample == name and labels.items() <= dict(sample_labels).items()
    )


@pytest.fixture(scope="module")
def one_worker(trained_dir, tmp_path_factory):
    server = Server(trained_dir, tmp_path_factory.mktemp("serve") / "serve.log")
    yield server
    server.stop()


def test_counters_histograms_and_info_after_requests(one_worker):
    port = one_worker.port
    for _ in range(7):
        assert request(port, "POST", "/predict", {"instances": [ROW, ROW, ROW]})[0] == 200
    assert (
        request(port, "POST", "/predict", {"instances": [ROW, FAR], "model": "integer"})[0] == 200
    )
    assert request(port, "POST", "/predict", {"instances": []})[0] == 422
    metrics = one_worker.metrics()
    route = {"route": "/predict", "model_version": "2"}
    assert total(metrics, "linreg_ops_requests_total", **route, status="success",
                 model_name="linreg-ops") == 7  # fmt: skip
    assert total(metrics, "linreg_ops_requests_total", **route, status="failure", code="422") == 1
    assert total(metrics, "linreg_ops_request_rows_count", **route, model_name="linreg-ops") == 7
    assert total(metrics, "linreg_ops_request_rows_sum", **route, model_name="linreg-ops") == 21
    assert total(metrics, "linreg_ops_predicted_values_count", **route) == 23
    assert total(metrics, "linreg_ops_clipped_rows_total", **route,
                 model_name="linreg-ops-integer") == 1  # fmt: skip
    # the first latency bucket is below a millisecond
    bounds = {
        float(dict(labels)["le"])
        for (name, labels), _ in metrics.items()
        if name == "linreg_ops_request_duration_seconds_bucket"
    }
    assert min(bounds) < 0.001
    kinds = {
        dict(labels)["model_kind"]
        for (name, labels), value in metrics.items()
        if name == "linreg_ops_model_info" and value == 1
    }
    assert kinds == {"float", "quantized", "integer"}
    assert any(name.startswith("process_") for name, _ in metrics)


def test_one_json_log_line_per_request_and_no_body(one_worker):
    port = one_worker.port
    secret = 4242.125  # a value that must never reach the log
    status, headers, _ = request(
        port, "POST", "/predict?x=1", {"instances": [[secret, *ROW[1:]]], "model": "integer"},
        {"X-Request-ID": "trace-me-1"},
    )  # fmt: skip
    assert status == 200
    assert headers["x-request-id"] == "trace-me-1"
    deadline = time.monotonic() + 5
    while "trace-me-1" not in one_worker.log.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    text = one_worker.log.read_text()
    assert str(secret) not in text
    line = next(json.loads(line) for line in text.splitlines() if "trace-me-1" in line)
    assert line["route"] == "/predict"
    assert line["model"] == "linreg-ops-integer"
    # MedInc 4242 lies beyond the calibrated range: the row was clipped
    assert (line["version"], line["rows"], line["status"], line["clipped_rows"]) == (2, 1, 200, 1)
    assert line["latency_ms"] > 0
    assert set(line) == {"time", "request_id", "method", "route", "model", "version", "rows",
                         "status", "latency_ms", "clipped_rows"}  # fmt: skip


@pytest.fixture(scope="module")
def recorder():
    spec = importlib.util.spec_from_file_location(
        "record_mlflow_answers", REPO / "scripts" / "record_mlflow_answers.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Where linreg-ops answers otherwise than MLflow 3.17.2, on purpose: (our status, why).
DEVIATIONS = {
    "instances, list of lists": (200, "rows in the model's feature order are unambiguous"),
    "inputs, list of lists": (200, "rows in the model's feature order are unambiguous"),
    "csv, header only": (400, "no rows is a client error, not an empty answer"),
    "csv, extra column": (400, "an unknown column is refused: it is often a misspelled one"),
    "extra column": (400, "an unknown column is refused: it is often a misspelled one"),
    "empty data": (400, "no rows is a client error, not an empty answer"),
    "wrong type: numeric string": (400, "strict numbers: '41' is not coerced"),
    "wrong type: boolean": (400, "strict numbers: true is not 1"),
    "no content type": (415, "never a 5xx: a missing Content-Type is the client's to fix"),
    "GET /health": (200, "linreg-ops's /health answers JSON (MLflow's a newline)"),
    "POST a wrong path": (422, "/predict is linreg-ops's own route, not a wrong path"),
}


def test_mlflow_scoring_parity(one_worker, recorder, test_rows):
    """Each payload of MLflow's scoring protocol, sent to a real server: MLflow's status (or a
    listed deviation), MLflow's body shape on success, an error body that is a subset of
    MLflow's (error_code and message)."""
    recorded = json.loads((REPO / "tests" / "fixtures" / "mlflow_scoring_answers.json").read_text())
    columns = list(test_rows[0][:-1])
    rows = test_rows[1][:3, :-1].tolist()
    for name, payload in recorder.PAYLOADS.items():
        ours = recorder.send(one_worker.port, payload, columns, rows)
        theirs = recorded["answers"][name]
        expected = DEVIATIONS.get(name, (theirs["status"], ""))[0]
        assert ours["status"] == expected, (name, ours, theirs)
        if name in DEVIATIONS:
            continue
        if ours["status"] == 200 and name != "GET /version":
            assert ours["body"] == theirs["body"], name
        elif isinstance(theirs["body"], dict) and "error_code" in theirs["body"]:
            assert set(ours["body"]) <= set(theirs["body"]), name
    assert set(DEVIATIONS) <= set(recorder.PAYLOADS)


@pytest.fixture(scope="module")
def two_workers(trained_dir, tmp_path_factory):
    server = Server(trained_dir, tmp_path_factory.mktemp("serve2") / "serve.log", "--workers",
                    "2", "--access-log", "off")  # fmt: skip
    yield server
    log = server.stop()
    assert "Traceback" not in log, log


def multiproc_dir(server: Server) -> Path:
    environ = Path(f"/proc/{server.process.pid}/environ").read_bytes().split(b"\0")
    for entry in environ:
        if entry.startswith(telemetry.MULTIPROC_ENV.encode() + b"="):
            return Path(entry.split(b"=", 1)[1].decode())
    # set by serve itself after start: read it from a worker
    for pid in server.workers():
        for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            if entry.startswith(telemetry.MULTIPROC_ENV.encode() + b"="):
                return Path(entry.split(b"=", 1)[1].decode())
    raise AssertionError("no multiprocess folder")


def test_two_workers_count_every_request_exactly(two_workers):
    """Requests from 8 concurrent keep-alive connections, until both workers have answered
    some: the counter, read by whichever worker answers the scrape, is exactly what was sent."""
    folder = multiproc_dir(two_workers)
    payload = json.dumps({"instances": [ROW]}).encode()

    def client() -> int:
        connection = http.client.HTTPConnection("127.0.0.1", two_workers.port, timeout=10)
        sent = 0
        for _ in range(25):
            connection.request("POST", "/invocations", body=payload,
                               headers={"content-type": "application/json"})  # fmt: skip
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            sent += 1
        connection.close()
        return sent

    sent = 0
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _ in range(20):
            sent += sum(pool.map(lambda _: client(), range(8)))
            if len(list(folder.glob("counter_*.db"))) >= 2:
                break
    assert len(list(folder.glob("counter_*.db"))) == 2, "one worker answered everything"
    metrics = two_workers.metrics()
    assert total(metrics, "linreg_ops_requests_total", route="/invocations",
                 status="success") == sent  # fmt: skip


def test_killed_workers_are_folded_away_and_nothing_is_lost(two_workers):
    folder = multiproc_dir(two_workers)
    # a request of its own first: under xdist this test may run before the module's others
    assert request(two_workers.port, "POST", "/invocations", {"instances": [ROW]})[0] == 200
    before = total(two_workers.metrics(), "linreg_ops_requests_total", route="/invocations")
    assert before > 0
    answered = 0
    for _ in range(3):
        # a worker counts a request just before answering it: a SIGKILL in between would count
        # a request whose answer never left
        time.sleep(0.3)
        for pid in two_workers.workers():
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:  # uvicorn's supervisor starts new workers
            try:
                if (
                    request(two_workers.port, "GET", "/ready")[0] == 200
                    and len(two_workers.workers()) == 2
                ):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "workers were not restarted"
            time.sleep(0.1)
        for _ in range(5):
            answered += (
                request(two_workers.port, "POST", "/invocations", {"instances": [ROW]})[0] == 200
            )
    time.sleep(1.0)  # both new workers have started (and folded the dead ones' files)
    answered += request(two_workers.port, "POST", "/invocations", {"instances": [ROW]})[0] == 200
    started = time.perf_counter()
    metrics = two_workers.metrics()
    assert time.perf_counter() - started < 0.05 * 4  # generous on a shared machine
    assert total(metrics, "linreg_ops_requests_total", route="/invocations") == before + answered
    assert answered == 16
    counters = sorted(path.name for path in folder.glob("counter_*.db"))
    assert len(counters) <= 3, counters  # two live workers and the archive


def test_a_hundred_dead_workers_fold_into_one_archive(tmp_path):
    """prometheus/client_python #275/#367: files of dead workers pile up and scrapes slow
    down. Files of 100 dead pids (above pid_max: no process has them) fold into one archive;
    the sums are kept and a scrape stays under 50 ms."""
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    dead = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    key = mmap_key("linreg_ops_requests", "linreg_ops_requests_total", ["route"], ["/x"], "help")
    bucket = mmap_key(
        "linreg_ops_request_rows", "linreg_ops_request_rows_bucket", ["route", "le"], ["/x", "1.0"],
        "help",
    )  # fmt: skip
    for offset in range(100):
        for kind, name in (("counter", key), ("histogram", bucket)):
            values = MmapedDict(str(tmp_path / f"{kind}_{dead + offset}.db"))
            values.write_value(name, 3.0, 0.0)
            values.close()
    assert telemetry.compact_dead_workers(tmp_path) == 200
    assert sorted(path.name for path in tmp_path.glob("*.db")) == [
        "counter_archive.db", "histogram_archive.db",
    ]  # fmt: skip
    scrape = telemetry.Telemetry((0.0,), tmp_path)
    started = time.perf_counter()
    body, _ = scrape.render()
    assert time.perf_counter() - started < 0.05
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["linreg_ops_requests"].samples[0].value == 300
    assert telemetry.compact_dead_workers(tmp_path) == 0  # the archive is nobody's pid
