"""Fixtures for the exporter tests: the California models, onnxruntime, edge-case rows.

Everything that builds a model from data goes through ``fit_linear_model`` and
``california_models`` here, so a module path moved by a refactor is fixed in one place.
Helpers are fixtures that return functions (conftest modules are not importable under
pytest's importlib mode).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pytest


def fit_linear_model(X, y, names: Sequence[str] | None = None, target: str = "y"):
    """A LinearModel fitted the project's way (standardized lstsq) on in-memory arrays."""
    from linreg_ops.model import LinearModel
    from linreg_ops.moments import MomentStats
    from linreg_ops.training.engines import fit_linear_regression
    from linreg_ops.training.features import feature_statistics

    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    estimator = fit_linear_regression(X, y)
    return LinearModel(
        feature_names=tuple(names if names is not None else (f"x{i}" for i in range(X.shape[1]))),
        target_name=target,
        coef=np.asarray(estimator.coef_, dtype=np.float64),
        intercept=float(estimator.intercept_),
        stats=feature_statistics(MomentStats.of(X, y), X),
    )


def quantize(
    model,
    dtype="int8",
    granularity="per-tensor",
    rounding="hessian",
    input_dtype=None,
    calibration="minmax",
):
    """The quantized model, or the integer-only one when ``input_dtype`` is given."""
    from linreg_ops.config import IntegerConfig, QuantConfig
    from linreg_ops.quantization.quantize import build_integer_model, quantize_model

    config = QuantConfig(dtype, granularity, rounding)
    if input_dtype is None:
        return quantize_model(model, config)
    return build_integer_model(model, config, IntegerConfig(input_dtype, calibration))


@dataclass(frozen=True)
class California:
    model: object
    quantized: object
    integer: object
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def california_models() -> California:
    """The seed's run: California Housing, train_test_split 80/20 with random_state 42."""
    from sklearn.datasets import fetch_california_housing
    from sklearn.model_selection import train_test_split

    bunch = fetch_california_housing()
    X_train, X_test, y_train, y_test = train_test_split(
        np.ascontiguousarray(bunch.data, dtype=np.float64),
        np.asarray(bunch.target, dtype=np.float64),
        test_size=0.2,
        random_state=42,
    )
    model = fit_linear_model(X_train, y_train, bunch.feature_names, bunch.target_names[0])
    return California(
        model=model,
        quantized=quantize(model, "int8"),
        integer=quantize(model, "int8", input_dtype="int16"),
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
    )


@pytest.fixture(scope="module")
def cal_models() -> California:
    """Float, int8 quantized and int8×int16 integer-only models of California Housing."""
    return california_models()


@pytest.fixture(scope="module")
def fit() -> Callable:
    """``fit(X, y, names=None)``: a LinearModel for synthetic data."""
    return fit_linear_model


@pytest.fixture(scope="module")
def quantize_variants() -> Callable:
    """``make(model, dtype, granularity, rounding, input_dtype=None, calibration)``."""
    return quantize


@pytest.fixture(scope="module")
def ort_run() -> Callable:
    """Run ONNX bytes in onnxruntime's CPU provider: ``run(bytes, X, optimize=True)``.

    ``optimize=False`` turns off every graph optimization, to show that none of them (a fusion
    into a com.microsoft kernel, say) changes the results.
    """
    import onnxruntime

    def run(model_bytes: bytes, X: np.ndarray, optimize: bool = True) -> list[np.ndarray]:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        if not optimize:
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = onnxruntime.InferenceSession(
            model_bytes, options, providers=["CPUExecutionProvider"]
        )
        return session.run(None, {"X": X})

    return run


def _edge_values(integer, finite_max: float, limits=None) -> np.ndarray:
    """Per feature, raw values at and around every interesting point of its input grid, and
    of the calibration limits (the training minimum and maximum) when they are given."""
    scale = integer.input_scale.astype(np.float64)
    zero = integer.input_zero_point.astype(np.float64)
    qmin, qmax = integer.input_range
    codes = np.array([qmin, qmin + 1, qmax - 1, qmax, 0, 1, -1, 2, -2], dtype=np.float64)
    steps = np.concatenate(
        [
            codes,
            codes + 0.5,  # exact ties in float64 (≤ 41 significant bits)
            codes - 0.5,
            [qmin - 1, qmax + 1, qmin - 1000, qmax + 1000, 10 * qmin, 10 * qmax],
        ]
    )
    on_grid = (steps[None, :] - zero[:, None]) * scale[:, None]  # (d, k): x with x/s = step − zp
    if limits is not None:
        on_grid = np.concatenate([on_grid, np.column_stack(limits)], axis=1)
    around = np.concatenate(
        [on_grid, np.nextafter(on_grid, np.inf), np.nextafter(on_grid, -np.inf)], axis=1
    )
    fixed = np.array([0.0, -0.0, 1e-300, -1e-300, 1e30, -1e30, finite_max, -finite_max])
    fixed = np.concatenate([fixed, [np.inf, -np.inf]])
    return np.concatenate([around, np.broadcast_to(fixed, (len(scale), fixed.size))], axis=1)


@pytest.fixture(scope="module")
def edge_rows() -> Callable:
    """``rows(integer, n, seed, dtype, limits)``: n rows mixing every edge of the model's inputs.

    Each cell is either on the input grid (codes at qmin/qmax, exact ties, one ulp either
    side), beyond the calibration limits, huge (up to ±1e300 or float32's max, ±inf), or
    uniform over the calibrated range and a bit beyond. Fixed rows push every feature to its
    limit in the direction of its weight's sign, so the extreme reachable output codes occur.
    """

    def rows(integer, n: int, seed: int = 0, dtype=np.float64, limits=None) -> np.ndarray:
        rng = np.random.default_rng(seed)
        finite_max = 1e300 if dtype == np.float64 else float(np.finfo(np.float32).max)
        values = _edge_values(integer, finite_max, limits)
        d = values.shape[0]
        picked = values[np.arange(d), rng.integers(0, values.shape[1], size=(n, d))]
        qmin, qmax = integer.input_range
        scale = integer.input_scale.astype(np.float64)
        low = (qmin - integer.input_zero_point) * scale
        high = (qmax - integer.input_zero_point) * scale
        span = high - low
        uniform = rng.uniform(low - 0.1 * span, high + 0.1 * span, size=(n, d))
        choice = rng.random((n, d))
        X = np.where(choice < 0.5, picked, uniform)
        sign = np.sign(integer.weights)
        top, bottom = np.where(sign >= 0, high, low), np.where(sign >= 0, low, high)
        fixed = np.stack([top, bottom, low, high, top * 1.5, bottom * 1.5])
        X[: len(fixed)] = fixed
        with np.errstate(over="ignore"):
            return X.astype(dtype)

    return rows


@dataclass(frozen=True)
class TrackingServer:
    uri: str
    artifacts: object  # Path of the server's artifact store (to tamper with in a test)
    started_seconds: float


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """One real MLflow tracking server for the session: ``mlflow server`` with a SQLite
    backend store and a local artifact store it serves itself, on a free port of 127.0.0.1;
    waited for until ``/health`` answers, stopped (and reaped) at the end."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    from helpers import stop

    root = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    # no job runner: MLflow 3 starts a huey consumer with 5 workers by default, seconds of
    # CPU at start that none of these tests uses
    env = {**os.environ, "MLFLOW_TRACKING_URI": "", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(root / "server.log", "w")  # noqa: SIM115 - closed after the server stops
    started = time.monotonic()
    # a file, not a pipe: nobody reads the server's log while it runs, and a full pipe blocks it
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    uri = f"http://127.0.0.1:{port}"
    try:
        while True:
            if server.poll() is not None:
                raise AssertionError(f"mlflow server exited: {(root / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() - started > 120:
                    raise AssertionError("mlflow server did not answer /health in 120 s") from None
                time.sleep(0.2)
        yield TrackingServer(uri, root / "artifacts", time.monotonic() - started)
    finally:
        stop(server, sig=signal.SIGTERM)
        log.close()


@pytest.fixture(scope="session")
def data_csv(tmp_path_factory):
    """300 rows of y = 2a − 3b + 0.5c + 1 + noise: a run takes a second, not California's."""
    from helpers import write_csv

    rng = np.random.default_rng(11)
    X = rng.normal(size=(300, 3))
    y = X @ np.array([2.0, -3.0, 0.5]) + 1.0 + rng.normal(scale=0.1, size=300)
    folder = tmp_path_factory.mktemp("tracked-data")
    return write_csv(folder / "train.csv", ["a", "b", "c", "y"], np.column_stack([X, y]).tolist())


@pytest.fixture(scope="session")
def tracked(mlflow_server, data_csv, tmp_path_factory):
    """Two tracked runs into one models folder (versions 1 and 2, registered versions 1 and
    2 of ``linreg-ops-test``): ``linreg-ops run --tracking-uri`` as a user runs it, then
    ``pipeline.run`` and ``tracking.log_run`` in this process (the functions ``promote`` and
    others call). Shared by the tracking and the registry-alias tests: copy the folder
    before moving its aliases."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from linreg_ops import pipeline
    from linreg_ops.config import GateConfig, TrainConfig
    from linreg_ops.exports import tracking
    from linreg_ops.training.sources import file_source

    name = "linreg-ops-test"
    root = tmp_path_factory.mktemp("tracked")
    models_dir = root / "models"
    result = subprocess.run(
        [str(Path(sys.executable).with_name("linreg-ops")), "run", "--data", str(data_csv),
         "--target", "y", "--models-dir", str(models_dir), "--reports-dir", str(root / "reports1"),
         "--registered-model", name, "--max-r2-drop", "none", "--tracking-uri", mlflow_server.uri],
        capture_output=True, text=True, timeout=300, check=False,
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    second = pipeline.run(
        file_source(str(data_csv), "y", None), models_dir, root / "reports2",
        TrainConfig(random_state=7), gate=GateConfig(max_r2_drop=None),
    )  # fmt: skip
    logged = tracking.log_run(mlflow_server.uri, second.train.version, second.reports, name)
    assert (logged.registry_version, logged.registered_model) == (2, name)
    return models_dir, root, [result.stdout]


@pytest.fixture
def registry_proxies(mlflow_server):
    """``start(intercept)`` → the URL of a real HTTP proxy in front of the tracking server.
    ``intercept(handler, body)`` sees each request first: it answers it itself (or holds it)
    and returns True, or returns False to have it passed on. Every proxy started is stopped
    at the end of the test."""
    import contextlib
    import http.client
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlsplit

    upstream = urlsplit(mlflow_server.uri)
    started: list[ThreadingHTTPServer] = []

    def start(intercept: Callable[[BaseHTTPRequestHandler, bytes], bool]) -> str:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if intercept(self, body):
                    return
                connection = http.client.HTTPConnection(
                    upstream.hostname, upstream.port, timeout=60
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                try:
                    connection.request(self.command, self.path, body or None, headers)
                    answer = connection.getresponse()
                    data = answer.read()
                finally:
                    connection.close()
                # a client interrupted meanwhile (a Ctrl-C test) is gone: nobody to answer
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(answer.status)
                    for key, value in answer.getheaders():
                        if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(key, value)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _forward  # noqa: N815 - http.server names

            def log_message(self, *args: object) -> None:
                pass

        proxy = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        proxy.daemon_threads = True
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        started.append(proxy)
        return f"http://127.0.0.1:{proxy.server_address[1]}"

    yield start
    for proxy in started:
        proxy.shutdown()
        proxy.server_close()
