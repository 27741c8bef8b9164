"""The scaling options through the real console script."""

import contextlib
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from linreg_ops.inference import loading

pytestmark = pytest.mark.slow


@pytest.fixture
def parquet_files(tmp_path):
    rng = np.random.default_rng(9)
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(3):
        X = rng.normal(size=(3000, 3))
        y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=3000)
        pq.write_table(
            pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "y": y}), folder / f"{i}.parquet"
        )
    return folder


def test_streaming_train_and_out_of_core_predict(run_cli, parquet_files, tmp_path):
    models = tmp_path / "models"
    result = run_cli(
        "train",
        "--data",
        parquet_files,
        "--target",
        "y",
        "--engine",
        "streaming",
        "--chunk-rows",
        "1000",
        "--models-dir",
        models,
        check=True,
    )
    assert "(engine: streaming)" in result.stdout
    loaded = loading.load(models)
    np.testing.assert_allclose(loaded.float.coef, [1.0, -2.0, 0.5], atol=0.01)
    assert loaded.version.manifest.split["method"].startswith("row hash")
    result = run_cli(
        "predict",
        "--input",
        parquet_files / "1.parquet",
        "--output",
        tmp_path / "p.parquet",
        "--chunk-rows",
        "500",
        "--models-dir",
        models,
        check=True,
    )
    assert "Wrote 3000 float predictions" in result.stdout
    assert "B/s" not in result.stderr, "no progress bar when the output is not a terminal"
    assert pq.read_table(tmp_path / "p.parquet").num_rows == 3000


def test_bad_engine_options_exit_2(run_cli, parquet_files, tmp_path):
    assert run_cli("train", "--engine", "spark").returncode == 2
    assert run_cli("train", "--chunk-rows", "0").returncode == 2
    result = run_cli("train", "--data", tmp_path / "nothing-*.parquet", "--target", "y")
    assert result.returncode == 2
    assert "no .csv or .parquet files" in result.stderr
    result = run_cli(
        "train", "--data", parquet_files, "--target", "z", "--models-dir", tmp_path / "m"
    )
    assert result.returncode == 2
    assert "target column 'z' not found in" in result.stderr
    assert "0.parquet" in result.stderr


def test_constant_column_warns_by_name_and_still_trains(run_cli, tmp_path):
    from helpers import write_csv

    rng = np.random.default_rng(4)
    x = rng.normal(size=300)
    path = write_csv(
        tmp_path / "c.csv", ["a", "b", "y"], [[v, 5.0, 2 * v + 0.1 * rng.normal()] for v in x]
    )
    result = run_cli(
        "train", "--data", path, "--target", "y", "--models-dir", tmp_path / "m", check=True
    )
    assert "RankWarning: feature 'b' is constant" in result.stderr
    assert loading.load(tmp_path / "m").float.coef[1] == 0.0


@pytest.fixture
def small_csv(tmp_path):
    from helpers import write_csv

    rows = [[i, (i * 7) % 5, 2 * i - (i * 7) % 5 + 0.1 * (i % 3)] for i in range(40)]
    return write_csv(tmp_path / "small.csv", ["a", "b", "y"], rows)


def assert_one_line_exit_2(result, message):
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert message in lines[0]


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("garbage", "--scheduler 'garbage' is not a Dask scheduler address (tcp://HOST:PORT)"),
        ("", "--scheduler '' is not a Dask scheduler address"),
        ("tcp://127.0.0.1:99999", "is not a Dask scheduler address"),
        ("http://127.0.0.1:8786", "unknown address scheme 'http'"),
        ("tls://127.0.0.1:8786", "is not a Dask scheduler address (tcp://HOST:PORT)"),
    ],
)
def test_a_malformed_scheduler_address_is_one_line_exit_2(
    run_cli, small_csv, tmp_path, address, message
):
    """It was a traceback (exit 1): distributed's ValueError or TypeError escaped."""
    result = run_cli(
        "train", "--data", small_csv, "--target", "y", "--engine", "dask",
        "--scheduler", address, "--models-dir", tmp_path / "m",
    )  # fmt: skip
    assert_one_line_exit_2(result, message)


def test_no_scheduler_at_an_address_is_one_line_exit_2(small_csv, tmp_path):
    """A closed port, a listener that never answers (distributed waited for its handshake
    forever) and an HTTP server (its reply read as a frame length: a MemoryError traceback),
    all at once: each is refused within the connect timeout."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    http = socket.create_server(("127.0.0.1", 0))

    def answer_http() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = http.accept()
                with connection:
                    connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=answer_http, daemon=True).start()
    executable = Path(sys.executable).with_name("linreg-ops")
    cases = {
        closed_port: "cannot reach the Dask scheduler",
        silent.getsockname()[1]: "cannot reach the Dask scheduler",
        http.getsockname()[1]: "does not answer as a Dask scheduler",
    }

    def train(port: int) -> subprocess.Popen:
        address = f"tcp://127.0.0.1:{port}"
        args = ["train", "--data", small_csv, "--target", "y", "--engine", "dask"]
        args += ["--scheduler", address, "--models-dir", tmp_path / f"m{port}"]
        return subprocess.Popen(
            [str(executable), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    running: dict[int, subprocess.Popen] = {}
    try:
        running = {port: train(port) for port in cases}  # at once: two wait 10 s each
        for port, process in running.items():
            _, stderr = process.communicate(timeout=120)
            result = subprocess.CompletedProcess(process.args, process.returncode, "", stderr)
            assert_one_line_exit_2(result, cases[port])
    finally:
        for process in running.values():
            process.kill()  # only if a case hung (the test failed)
            process.wait()
        silent.close()
        http.close()
