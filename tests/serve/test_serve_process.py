"""``linreg-ops serve`` as a real process on a free loopback port, called over HTTP."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from linreg_ops import artifacts

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early: {process.stdout.read()}")
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not become ready in time")


def test_serve_over_real_http(trained_dir):
    port = free_port()
    executable = Path(sys.executable).with_name("linreg-ops")
    command = [str(executable), "serve", "--models-dir", str(trained_dir), "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process)
        rows = artifacts.load_test_split(trained_dir).values[:10, :-1]
        request = urllib.request.Request(
            f"{url}/predict",
            data=json.dumps({"instances": rows.tolist(), "model": "quantized"}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            body = json.loads(response.read())
        expected = artifacts.load_quantized_model(trained_dir).predict(rows)
        np.testing.assert_array_equal(body["predictions"], expected)
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            assert json.loads(response.read()) == {"status": "ok"}
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_serve_refuses_a_folder_without_models(run_cli, tmp_path):
    result = run_cli("serve", "--models-dir", tmp_path / "empty", "--port", str(free_port()))
    assert result.returncode == 2
    assert "no manifest.json" in result.stderr
    assert "Traceback" not in result.stderr
