"""The service's statistics: per worker files merged, equal to ``monitor`` on the same rows,
in-process and through a real 2-worker server process."""

import json
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from fastapi.testclient import TestClient

from helpers import publish_without_profile, write_csv
from helpers import served as serve_process  # "served" names the /monitor answer here
from linreg_ops.inference.serve import ServeSettings, create_app
from linreg_ops.monitoring.profile import load_profile
from linreg_ops.monitoring.served import BUFFER_ROWS, ServedStats, read_served
from linreg_ops.monitoring.stats import Accumulator, DriftStats, record


def same_report(served: dict, monitored: dict) -> None:
    """Every figure equal (counts exactly, sums up to the order of addition)."""
    served = {**served, "source": None}
    monitored = {**monitored, "source": None}

    def walk(a, b, where="report"):
        if isinstance(a, dict):
            assert a.keys() == b.keys(), where
            for key in a:
                walk(a[key], b[key], f"{where}.{key}")
        elif isinstance(a, list):
            assert len(a) == len(b), where
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{where}[{i}]")
        elif isinstance(a, float) and isinstance(b, float):
            assert a == pytest.approx(b, rel=1e-9, abs=1e-12), where
        else:
            assert a == b, where

    walk(served, monitored)


def test_two_workers_files_merge_to_the_statistics_of_all_rows(tmp_path, models, test_rows):
    """Rows waiting in the buffer, a fold that leaves a request's rows waiting, and a
    request larger than the buffer folded at once: read back, the statistics of them all."""
    profile = load_profile(models.version, models.float)
    acc = Accumulator.of(profile, models.float)
    X = test_rows[1][:, :-1]
    assert len(X) > BUFFER_ROWS
    first = ServedStats(tmp_path, acc)
    first.record(X[:100])
    first.record(X[100:101])
    first.record(X[101 : BUFFER_ROWS - 20])  # the buffer nearly full
    first.record(X[BUFFER_ROWS - 20 :])  # a fold, these rows left waiting
    assert read_served(tmp_path, acc).n == len(X)
    # a second worker: another process's file, written the same way
    second_path = tmp_path / "worker-1.stats"
    first.path.rename(second_path)
    second = ServedStats(tmp_path, acc)
    second.record(X[:7])
    second.record(X)  # more rows than the buffer holds: folded with the 7 at once
    whole = DriftStats.empty(acc)
    record(whole, np.concatenate([X, X[:7], X]))
    merged = read_served(tmp_path, acc)
    assert merged.n == 2 * len(X) + 7
    np.testing.assert_array_equal(merged.parts()["counts"], whole.parts()["counts"])
    np.testing.assert_allclose(merged.data, whole.data, rtol=1e-9, atol=1e-9)
    first.close()
    second.close()


def test_served_statistics_in_process_equal_monitor(trained_dir, test_rows, tmp_path, run_cli):
    X = test_rows[1][:120, :-1]
    settings = ServeSettings(models_dir=trained_dir)
    with TestClient(create_app(settings)) as client:
        for start in range(0, 120, 7):
            response = client.post("/predict", json={"instances": X[start : start + 7].tolist()})
            assert response.status_code == 200
        served = client.get("/monitor").json()
    names = list(test_rows[0][:-1])
    csv = write_csv(tmp_path / "rows.csv", names, X.tolist())
    result = run_cli("monitor", "--models-dir", trained_dir, "--input", csv, "--json",
                     "--reports-dir", tmp_path / "reports", check=True)  # fmt: skip
    same_report(served, json.loads(result.stdout))
    assert served["rows"] == 120


@pytest.mark.slow
def test_served_statistics_of_a_two_worker_server_equal_monitor(
    trained_dir, test_rows, tmp_path, run_cli
):
    import os

    scratch = tmp_path / "tmp"  # where the server makes its run folder
    scratch.mkdir()
    X = test_rows[1][:400, :-1]
    env = {**os.environ, "TMPDIR": str(scratch)}
    with serve_process(trained_dir, "--workers", "2", timeout=60.0, env=env) as server:
        url = server.url
        deadline = time.monotonic() + 60
        while len(list(scratch.glob("linreg-ops-monitor-*/*/worker-*.stats"))) < 2:
            assert time.monotonic() < deadline, "the second worker did not start"
            time.sleep(0.1)  # /ready answers from the first worker up
        for start in range(0, len(X), 10):
            body = {"instances": X[start : start + 10].tolist(), "model": "integer"}
            if start % 20:  # both routes record
                data, path, kind = (
                    json.dumps({"inputs": body["instances"]}),
                    "/invocations",
                    "application/json",
                )
            else:
                data, path, kind = json.dumps(body), "/predict", "application/json"
            request = urllib.request.Request(
                f"{url}{path}",
                data=data.encode(),
                headers={"content-type": kind, "connection": "close"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
        with urllib.request.urlopen(f"{url}/monitor", timeout=10) as response:
            served = json.loads(response.read())
        files = list(scratch.glob("linreg-ops-monitor-*/*/worker-*.stats"))
        assert len(files) == 2  # one per worker, merged on read
    assert not list(scratch.iterdir())  # the run folder goes with the server
    csv = write_csv(tmp_path / "rows.csv", list(test_rows[0][:-1]), X.tolist())
    result = run_cli("monitor", "--models-dir", trained_dir, "--input", csv, "--json",
                     "--reports-dir", tmp_path / "reports", check=True)  # fmt: skip
    same_report(served, json.loads(result.stdout))
    assert served["rows"] == 400


def test_monitor_without_rows_and_without_a_profile(trained_dir, models_copy):
    with TestClient(create_app(ServeSettings(models_dir=trained_dir))) as client:
        empty = client.get("/monitor")
    assert empty.status_code == 200
    assert empty.json()["rows"] == 0
    assert empty.json()["drift"] is False
    # a version published before profiles existed is served, but not monitored
    publish_without_profile(models_copy)
    with TestClient(create_app(ServeSettings(models_dir=models_copy))) as client:
        row = [[8.3252, 41.0, 6.98, 1.02, 322.0, 2.55, 37.88, -122.23]]
        assert client.post("/predict", json={"instances": row}).status_code == 200
        missing = client.get("/monitor")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "NO_DRIFT_PROFILE"
    assert "retrain" in missing.json()["message"]


KILLED_WRITER = """
import sys, numpy as np
from pathlib import Path
from linreg_ops.inference import loading
from linreg_ops.monitoring.profile import load_profile
from linreg_ops.monitoring.served import ServedStats
from linreg_ops.monitoring.stats import Accumulator
models = loading.load(Path(sys.argv[1]))
acc = Accumulator.of(load_profile(models.version, models.float), models.float)
rows = loading.stored_test_rows(models).values[:, :-1]
stats = ServedStats(Path(sys.argv[2]), acc)
print("ready", flush=True)
i = 0
while True:
    n = 1 + i % 40
    stats.record(rows[i % 4000 : i % 4000 + n])
    i += 1
"""


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.05, 0.13, 0.31])
def test_a_worker_killed_while_recording_leaves_consistent_statistics(
    trained_dir, models, tmp_path, delay
):
    """SIGKILL at an arbitrary instant: the file holds every row of some prefix of the
    requests, never a half-folded copy (each column counted the same number of rows)."""
    import signal

    acc = Accumulator.of(load_profile(models.version, models.float), models.float)
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(trained_dir), str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout.readline() == "ready\n"
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()
    stats = read_served(tmp_path, acc)
    assert stats.n > 0
    counts = stats.parts()["counts"].sum(axis=1)
    np.testing.assert_array_equal(counts, np.full(acc.columns, stats.n))
    assert stats.parts()["min"].max() < np.inf


def test_a_row_too_large_for_the_sums_is_served_but_not_recorded(trained_dir, test_rows):
    X = test_rows[1][:3, :-1].copy()
    X[1, 4] = 1e200
    with TestClient(create_app(ServeSettings(models_dir=trained_dir))) as client:
        assert client.post("/predict", json={"instances": X.tolist()}).status_code == 200
        report = client.get("/monitor")
    assert report.status_code == 200
    assert report.json()["rows"] == 2
    assert all(np.isfinite(f["psi"]) for f in report.json()["features"])
