"""Writers take turns; readers never see a mix; a service serves one version, whatever
happens to the folder or to its workers."""

import json
import os
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

from helpers import stop, write_csv
from linreg_ops import pipeline
from linreg_ops.inference import loading
from linreg_ops.inference.live import POLL_SECONDS
from linreg_ops.storage import store
from linreg_ops.training import sources

pytestmark = pytest.mark.slow
LINREG_OPS = str(Path(sys.executable).with_name("linreg-ops"))


def dataset(folder: Path, name: str, sign: float, rows: int = 3000) -> Path:
    rng = np.random.default_rng(abs(int(sign * 10)))
    X = rng.normal(size=(rows, 3))
    y = sign * (X @ np.array([1.0, -2.0, 0.5])) + rng.normal(scale=0.1, size=rows)
    return write_csv(folder / name, ["a", "b", "c", "y"], np.column_stack([X, y]).tolist())


def cli(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINREG_OPS, *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_a_second_writer_waits_then_exits_2_naming_the_holder(tmp_path):
    source = dataset(tmp_path, "d.csv", 1.0)
    pipeline.train(sources.file_source(source, "y"), tmp_path / "models")
    with store.writer(tmp_path / "models", "linreg-ops train --data huge.csv", 1.0):
        started = time.monotonic()
        result = cli("quantize", "--models-dir", tmp_path / "models", "--lock-timeout", "0.5")
        waited = time.monotonic() - started
    assert result.returncode == 2
    assert (
        f"is being written by PID {os.getpid()} (linreg-ops train --data huge.csv" in result.stderr
    )
    assert "waited 0.5 s" in result.stderr
    assert waited >= 0.5
    assert loading.load(tmp_path / "models").version.number == 1


def read_lock(models: Path) -> str:
    try:
        return (models / store.LOCK).read_text()
    except FileNotFoundError:
        return ""


def test_train_then_quantize_half_a_second_later_never_mix(tmp_path):
    """Issue 9: quantize started while train ran used to publish the old quantized models
    beside the new float model. Now quantize waits, then quantizes the new model."""
    models = tmp_path / "models"
    old, new = dataset(tmp_path, "old.csv", 1.0), dataset(tmp_path, "new.csv", -1.0, rows=300_000)
    pipeline.run(sources.file_source(old, "y"), models, tmp_path / "reports")
    train = subprocess.Popen(
        [LINREG_OPS, "train", "--data", str(new), "--target", "y", "--models-dir", str(models)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # quantize starts once train holds the lock (its PID in the lock file), however slow the
    # machine: a fixed 0.5 s let a loaded machine start quantize first
    deadline = time.monotonic() + 120
    while f'"pid": {train.pid},' not in read_lock(models) and train.poll() is None:
        assert time.monotonic() < deadline, "train never took the lock"
        time.sleep(0.02)
    quantize = cli("quantize", "--models-dir", models, "--lock-timeout", "120")
    _train_out, train_err = train.communicate(timeout=300)
    assert train.returncode == 0, train_err
    assert quantize.returncode == 0, quantize.stderr
    loaded = loading.load(models)  # known answers: every model of one run
    assert loaded.version.number == 3
    assert loaded.version.manifest.parent == 2
    assert np.sign(loaded.float.coef[0]) == np.sign(loaded.quantized.dequantized_weights()[0]) == -1


def test_two_runs_at_once_both_publish_whole_versions(tmp_path):
    models = tmp_path / "models"
    inputs = [dataset(tmp_path, f"{i}.csv", s) for i, s in enumerate((1.0, -1.0))]
    processes = [
        subprocess.Popen(
            [
                LINREG_OPS,
                "run",
                "--data",
                str(path),
                "--target",
                "y",
                "--models-dir",
                str(models),
                "--reports-dir",
                str(tmp_path / f"r{i}"),
                "--lock-timeout",
                "120",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, path in enumerate(inputs)
    ]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    for number in (1, 2):
        loaded = loading.load(models, number)
        assert loaded.version.manifest.training_data["source"] in {str(p) for p in inputs}
    assert loading.load(models).version.number == 2


def test_readers_during_writers_always_load_one_complete_version(tmp_path):
    models = tmp_path / "models"
    inputs = [
        sources.file_source(dataset(tmp_path, f"{i}.csv", s, 500), "y")
        for i, s in enumerate((1.0, -1.0))
    ]
    pipeline.run(inputs[0], models, tmp_path / "reports")
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            for source in inputs:
                pipeline.run(source, models, tmp_path / "reports")

    writer = threading.Thread(target=write)
    writer.start()
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            loaded = loading.load(models)  # raises on any mix, any half-written file
            seen.add(loaded.version.number)
            rows = loading.stored_test_rows(loaded).values[:, :-1]
            assert np.sign(loaded.float.predict(rows[:1] * 0 + 1)) == np.sign(
                loaded.quantized.predict(rows[:1] * 0 + 1)
            )
    finally:
        stop.set()
        writer.join()
    # at least one switch met (on a loaded machine the writers may publish only once while
    # the readers run)
    assert len(seen) >= 2, "the readers should have met more than one version"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.parametrize(
    ("pinning", "served"), [(["--version", "1"], 1), ([], 2)], ids=["pinned", "following-current"]
)
def test_two_workers_and_a_killed_one_serve_the_same_version_after_a_retrain(
    tmp_path, pinning, served
):
    """Issue 9: a worker restarted after a retrain used to load the new files, so answers
    alternated between two models on one port while /ready said ready. Pinned
    (``--version 1``), every worker, restarted or not, serves version 1; following ``current``
    (the default), every worker serves the retrain's version 2 once the poll bound has passed
    — never a mix."""
    import psutil

    models = tmp_path / "models"
    pipeline.run(sources.file_source(dataset(tmp_path, "a.csv", 1.0), "y"), models, tmp_path / "r")
    port = free_port()
    server = subprocess.Popen(
        [LINREG_OPS, "serve", "--models-dir", str(models), "--port", str(port), "--workers", "2",
         *pinning],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    row = {"instances": [[0.3, -1.2, 2.0]]}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert get(f"{url}/ready")["version"] == 1
                break
            except OSError:
                assert time.monotonic() < deadline, "the service did not start"
                time.sleep(0.2)
        before = post(f"{url}/predict", row)["predictions"][0]
        pipeline.train(sources.file_source(dataset(tmp_path, "b.csv", -1.0), "y"), models)
        assert loading.load(models).version.number == 2

        def workers() -> list[psutil.Process]:  # not multiprocessing's resource tracker
            found = []
            for child in psutil.Process(server.pid).children():
                try:
                    if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(
                        child.cmdline()
                    ):
                        found.append(child)
                except psutil.Error:  # gone, or a zombie not yet reaped
                    continue
            return found

        first = workers()
        assert len(first) == 2
        for victim in first:  # one at a time: every answer below comes from a restarted worker
            os.kill(victim.pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while len([w for w in workers() if w.pid != victim.pid]) < 2:
                assert time.monotonic() < deadline, "uvicorn did not restart the worker"
                time.sleep(0.2)
        assert not {w.pid for w in workers()} & {w.pid for w in first}
        time.sleep(POLL_SECONDS + 1.5)  # the bound within which a following worker swaps
        answers, versions = set(), set()
        for _ in range(200):
            try:
                body = post(f"{url}/predict", row)
            except OSError:
                time.sleep(0.05)  # the restarted worker is still starting
                continue
            answers.add(body["predictions"][0])
            versions.add(body["model"]["version"])
        assert versions == {served}
        if served == 1:
            assert answers == {before}
        else:
            assert len(answers) == 1
            assert answers != {before}
        assert get(f"{url}/ready")["version"] == served
        assert get(f"{url}/metadata")["version"] == served
    finally:
        stop(server, sig=signal.SIGINT)
