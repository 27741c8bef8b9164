"""``helpers.served`` and ``helpers.start_server``, which every test of a real server process
uses: a start that fails says why (the server's own output), and no process outlives its
test, whether it never started, never answered or the test failed while it ran."""

import os
import sys
import urllib.request

import pytest

from helpers import free_port, served, start_server

pytestmark = pytest.mark.slow


def test_a_server_that_exits_at_start_is_reaped_and_its_error_is_shown(tmp_path):
    with pytest.raises(AssertionError) as raised, served(tmp_path / "empty"):
        pass
    message = str(raised.value)
    assert "exited with 2 before /ready answered" in message
    assert "no model in" in message  # the server's stderr, merged into its output


def test_a_server_that_never_answers_is_stopped_at_the_deadline(tmp_path):
    port = free_port()
    pid_file = tmp_path / "pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); print('starting', flush=True); time.sleep(60)"  # fmt: skip
    with pytest.raises(AssertionError) as raised:
        start_server([sys.executable, "-c", code], port, timeout=1.0)
    message = str(raised.value)
    assert "did not answer /ready within 1 s" in message
    assert "starting" in message
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # stopped and reaped, not a zombie
        os.kill(pid, 0)


def test_a_failing_test_still_stops_its_server(trained_dir):
    started = []

    def failing_test() -> None:
        with served(trained_dir) as server:
            started.append(server)
            with urllib.request.urlopen(f"{server.url}/ready", timeout=5) as response:
                assert response.status == 200
            raise RuntimeError("the test failed here")

    with pytest.raises(RuntimeError, match="the test failed here"):
        failing_test()
    assert started[0].process.returncode is not None
    assert "Traceback" not in started[0].output
