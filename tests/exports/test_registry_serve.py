"""``serve --model-uri models:/NAME@ALIAS`` follows the registry alias: a real ``linreg-ops
serve`` process with two workers against the real tracking server (``mlflow_server``) and
the two registered versions of ``tracked``. The alias is moved with ``MlflowClient`` under a
short load burst: no request fails, every prediction is the one of the version its
``X-Model-Version`` names, and the old version stops answering within the stated bound (the
registry poll, 2 s, plus one fetch and load). A registered version that fails its
verification is refused by every worker (logged, counted, in ``/metadata``) while the old
one serves; a worker SIGKILLed then starts on the version it can verify, and every worker
keeps following."""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from helpers import stop
from linreg_ops.config import SERVE_DEFAULTS
from linreg_ops.inference import loading
from linreg_ops.inference.predict import predict_rows

pytestmark = [
    pytest.mark.slow,
    # MLflow's own input-example code (the shared `tracked` runs) compares columns with a range
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning"),
]
BIN = Path(sys.executable).parent
NAME = "linreg-ops-test"  # the registered model of the `tracked` fixture
ALIAS = "followed"
POLL = SERVE_DEFAULTS.registry_poll_seconds
BOUND = POLL + 6.0  # the poll, one fetch and load, and room for a loaded 2-core machine
THREADS = 8
LIVE = re.compile(r'^linreg_ops_live_version\{alias="([^"]*)",pid="(\d+)"\} (\S+)$', re.M)
REFUSED = re.compile(r'^linreg_ops_reloads_refused_total\{alias="([^"]*)"\} (\S+)$', re.M)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


def workers(url: str) -> dict[int, int]:
    """Each worker's live version, by pid (from /metrics)."""
    text = get(f"{url}/metrics")[2].decode()
    return {int(pid): int(float(v)) for _, pid, v in LIVE.findall(text)}


def refused(url: str) -> float:
    text = get(f"{url}/metrics")[2].decode()
    return sum(float(v) for _, v in REFUSED.findall(text))


def wait_for(what: str, check, seconds: float) -> float:
    """Seconds until ``check()``; a connection reset meanwhile (a worker just killed had
    accepted it) is a "not yet"."""
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except (OSError, http.client.HTTPException):
            pass
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds:g} s"
        time.sleep(0.1)


class Burst:
    """Single-row /invocations requests from THREADS keep-alive clients until stopped:
    (time, row, X-Model-Version, prediction) per answer, and every failure."""

    def __init__(self, port: int, columns: list[str], X: np.ndarray) -> None:
        self.port, self.columns, self.X = port, columns, X
        self.answers: list[tuple[float, int, int, float]] = []
        self.failures: list[str] = []
        self.running = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(i,)) for i in range(THREADS)]

    def __enter__(self) -> "Burst":
        self.running.set()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.running.clear()
        for thread in self.threads:
            thread.join(30)

    def _client(self, offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        row = offset
        while self.running.is_set():
            row = (row + THREADS) % len(self.X)
            body = json.dumps(
                {"dataframe_split": {"columns": self.columns, "data": [self.X[row].tolist()]}}
            )
            try:
                connection.request(
                    "POST", "/invocations", body, {"content-type": "application/json"}
                )
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"row {row}: {exc!r}")
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                continue
            if response.status != 200:
                self.failures.append(f"row {row}: {response.status} {data[:200]!r}")
                continue
            version = int(response.getheader("x-model-version") or 0)
            prediction = json.loads(data)["predictions"][0]
            self.answers.append((time.monotonic(), row, version, prediction))
        connection.close()


def test_serve_follows_the_registry_alias(tracked, mlflow_server, tmp_path):
    from mlflow import MlflowClient

    models_dir = tracked[0]
    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    client.set_registered_model_alias(NAME, ALIAS, "1")
    local = {n: loading.load(models_dir, n) for n in (1, 2)}
    columns = list(local[1].float.feature_names)
    X = loading.stored_test_rows(local[1]).values[:64, :-1]
    expected = {n: predict_rows(local[n].float, X)[0] for n in (1, 2)}
    assert not np.array_equal(expected[1], expected[2])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.uri}
    with open(log, "w") as output:
        process = subprocess.Popen(
            [str(BIN / "linreg-ops"), "serve", "--model-uri", f"models:/{NAME}@{ALIAS}",
             "--workers", "2", "--port", str(port), "--access-log", "off",
             "--drain-seconds", "0"],
            stdout=output, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:

        def ready() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return len(workers(url)) == 2 and get(f"{url}/ready")[0] == 200
            except OSError:
                return False

        wait_for("two ready workers", ready, 180)
        assert set(workers(url).values()) == {1}

        # 1. the alias moves under load: no failure, every answer its header's version's
        with Burst(port, columns, X) as burst:
            time.sleep(1.0)
            moved = time.monotonic()
            client.set_registered_model_alias(NAME, ALIAS, "2")
            wait_for("every worker on version 2", lambda: set(workers(url).values()) == {2}, BOUND)
            time.sleep(0.5)
        assert burst.failures == []
        assert len(burst.answers) > 100
        for _, row, version, prediction in burst.answers:
            assert prediction == expected[version][row], (row, version)
        old = [t for t, _, version, _ in burst.answers if version == 1]
        new = [t for t, _, version, _ in burst.answers if version == 2]
        assert old
        assert new
        lag = max(old) - moved
        print(
            f"{len(burst.answers)} requests at c={THREADS}, 0 failed, every answer its header's "
            f"version's; last answer from the old version {lag:.2f} s after the registry alias "
            f"moved (bound: poll {POLL:g} s + one fetch and load)"
        )
        assert lag < BOUND
        assert all(t > max(old) for t in new[-10:])

        # 2. a version that fails its verification: refused by both workers, 2 serves on
        good = client.get_model_version(NAME, "1")
        bad = client.create_model_version(
            NAME, good.source, run_id=good.run_id,
            tags={**good.tags, "manifest_sha256": "0" * 64},
            model_id=good.model_id or good.source.removeprefix("models:/"),
        )  # fmt: skip
        client.set_registered_model_alias(NAME, ALIAS, bad.version)
        wait_for("both workers refuse it", lambda: refused(url) >= 2, BOUND)
        live = json.loads(get(f"{url}/metadata")[2])["live"]
        assert live["version"] == 2
        assert live["model_uri"] == f"models:/{NAME}/2"
        assert live["refused"]["version"] == int(bad.version)
        assert "differs from the manifest_sha256 tag" in live["refused"]["error"]
        assert get(f"{url}/ready")[1]["x-model-version"] == "2"

        # 3. a worker killed while the alias names it starts on version 2, and follows
        pids = workers(url)
        killed = min(pids)
        os.kill(killed, signal.SIGKILL)
        wait_for(
            "a restarted worker on version 2",
            lambda: any(p not in pids and v == 2 for p, v in workers(url).items()),
            90,
        )
        assert "starting on version 2 instead, and following" in log.read_text()
        for _ in range(20):
            assert get(f"{url}/ready")[1]["x-model-version"] == "2"
        client.set_registered_model_alias(NAME, ALIAS, "1")
        alive = [p for p in workers(url) if p != killed]

        def all_on_one() -> bool:
            now = workers(url)
            return all(now.get(p) == 1 for p in alive)

        wait_for("every worker back on version 1", all_on_one, BOUND)
        for _ in range(20):
            assert get(f"{url}/ready")[1]["x-model-version"] == "1"
    finally:
        stop(process, sig=signal.SIGINT)
    printed = log.read_text()
    assert f"models:/{NAME}@{ALIAS} is models:/{NAME}/1: version 1, verified, in " in printed
    assert f"following models:/{NAME}@{ALIAS} (each worker asks the registry every 2 s)" in printed
    folder = Path(printed.split("verified, in ")[1].split()[0]).parents[2]
    assert folder.name.startswith("linreg-ops-registry-")
    assert not folder.exists()  # the fetched versions are removed with the service
