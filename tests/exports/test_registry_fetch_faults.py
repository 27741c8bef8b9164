"""A registry that fails mid-fetch: the alias resolves, then every artifact download is
answered 500 or never answered (a real HTTP proxy in front of the real tracking server,
``mlflow_server``). A registry-following worker must not wait for MLflow's own back-off
(7 retries, minutes) nor its 120 s read timeout: a restarted worker starts on the last good
version, and a running one refuses the version and keeps serving, within a bounded time."""

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import answer_json
from linreg_ops.exports.registry import POLL_TIMEOUT_SECONDS, RegistrySource
from linreg_ops.inference import live

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning"),
]
NAME = "linreg-ops-test"  # the registered model of the `tracked` fixture
ALIAS = "fetch-faults"  # an alias of its own: other tests move theirs on the same server
# a fetch that fails must be given up within one request timeout, plus room for a loaded machine
BOUND = POLL_TIMEOUT_SECONDS + 10.0


@pytest.fixture
def failing_registry(registry_proxies) -> Iterator:
    """``start(mode)`` → URL of a proxy that passes every call on to the tracking server but
    an artifact download, answered 500 (``"500"``) or held open unanswered (``"hang"``)."""
    released = threading.Event()

    def start(mode: str) -> str:
        def intercept(handler, body: bytes) -> bool:
            if "artifacts" not in handler.path:
                return False
            if mode == "hang":
                released.wait(600)
            else:
                answer_json(handler, 500, b"{}")
            return True

        return registry_proxies(intercept)

    yield start
    released.set()


def within(seconds: float, call):
    """``call()``'s result, or a failure if it has not returned within ``seconds`` (the
    thread is left behind as a daemon: it is the defect under test)."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(("ok", call()))
        except BaseException as exc:  # handed to the test
            outcome.append(("error", exc))

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still waiting on the registry after {time.monotonic() - started:.0f} s"
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value


@pytest.fixture
def fetched_one(tracked, mlflow_server, tmp_path) -> Path:
    """A registry folder in which registered version 1 was fetched and went live; the
    alias then moves to version 2."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    client.set_registered_model_alias(NAME, ALIAS, "1")
    root = tmp_path / "registry"
    root.mkdir()
    direct = RegistrySource(mlflow_server.uri, f"models:/{NAME}@{ALIAS}", root, 2.0)
    start = live.first_version(direct)
    assert start.key == 1
    direct.served(1)
    client.set_registered_model_alias(NAME, ALIAS, "2")
    return root


@pytest.mark.parametrize("mode", ["500", "hang"])
def test_a_worker_restarting_while_the_registry_fails_mid_fetch_starts_on_the_last_good(
    failing_registry, fetched_one, mode
):
    source = RegistrySource(failing_registry(mode), f"models:/{NAME}@{ALIAS}", fetched_one, 2.0)
    start = within(BOUND, lambda: live.first_version(source))
    assert start.key == 1
    assert start.refused is not None
    assert start.refused["version"] == 2
    assert not (fetched_one / "2").exists()


@pytest.mark.parametrize("mode", ["500", "hang"])
def test_a_running_worker_refuses_a_version_it_cannot_fetch_within_a_bound(
    failing_registry, fetched_one, mode
):
    source = RegistrySource(failing_registry(mode), f"models:/{NAME}@{ALIAS}", fetched_one, 2.0)
    installed: list[object] = []
    follower = live.Follower(
        source, 1, prepare=lambda models: models, install=installed.append, number=1
    )
    swapped = within(BOUND, lambda: asyncio.run(follower.poll()))
    assert swapped is False
    assert installed == []
    assert follower.refused is not None
    assert follower.refused["version"] == 2
    assert follower.serving == 1


def test_serving_a_pinned_version_the_registry_cannot_hand_over_is_refused_at_once(
    failing_registry, tracked, tmp_path
):
    """``serve --model-uri models:/NAME/1`` through a registry whose downloads answer 500:
    exit 2 with one line, asked once as the server check is — not after MLflow's seven
    retries (249 s, measured by hand with a version number the server answers 500 to)."""
    import os
    import subprocess
    import sys

    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    started = time.monotonic()
    try:
        result = subprocess.run(
            [str(bin_dir / "linreg-ops"), "serve", "--model-uri", f"models:/{NAME}/1",
             "--tracking-uri", failing_registry("500"), "--port", "0"],
            capture_output=True, text=True, timeout=BOUND + 30, env=env, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve still fetching after {time.monotonic() - started:.0f} s")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("linreg-ops serve: error: MLflow at http://127.0.0.1:")
