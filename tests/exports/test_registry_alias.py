"""``promote`` and ``rollback --tracking-uri`` move the MLflow registry's alias with the
models folder's, against the real tracking server (``mlflow_server``) and the two registered
versions of ``tracked``: everything that can refuse is asked before the folder changes (exit
2, nothing changed anywhere); a registry that refuses after the folder's alias moved is exit
5 with one line that says so, and the same command finishes the move."""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import answer_json, snapshot
from linreg_ops.storage import store

pytestmark = [
    pytest.mark.slow,
    # MLflow's own input-example code (the shared `tracked` runs) compares columns with a range
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning"),
]
BIN = Path(sys.executable).parent
NAME = "linreg-ops-test"  # the registered model of the `tracked` fixture
ALIAS_ENDPOINT = "/registered-models/alias"  # MLflow's REST route that moves an alias
# the slow proxy's delay: longer than a promote takes to start, shorter than --lock-timeout
SLOW_SECONDS = 5.0


def linreg_ops(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run(
        [str(BIN / "linreg-ops"), *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )  # fmt: skip


def registry_alias(server, alias: str) -> int | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=server.uri, registry_uri=server.uri)
    try:
        return int(client.get_model_version_by_alias(NAME, alias).version)
    except MlflowException:
        return None


@pytest.fixture
def models(tracked, tmp_path) -> Path:
    """A copy of the tracked folder (versions 1 and 2, registered as NAME/1 and NAME/2)."""
    return Path(shutil.copytree(tracked[0], tmp_path / "models", symlinks=True))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def registry_proxy(registry_proxies) -> Iterator:
    """``start(mode)`` → (URL, asked): a real HTTP proxy in front of the tracking server that
    passes every call through but a move of an alias, which it answers 403 (``deny``: a
    registry user who may read and not manage) or passes on ``SLOW_SECONDS`` late
    (``slow``); ``asked`` is set once a move has reached it."""

    def start(mode: str) -> tuple[str, threading.Event]:
        asked = threading.Event()

        def intercept(handler, body: bytes) -> bool:
            moves = handler.command == "POST" and handler.path.split("?")[0].endswith(
                ALIAS_ENDPOINT
            )
            if not moves:
                return False
            asked.set()
            if mode == "deny":
                denied = b'{"error_code": "PERMISSION_DENIED", "message": "no MANAGE right"}'
                answer_json(handler, 403, denied)
                return True
            time.sleep(SLOW_SECONDS)
            return False

        return registry_proxies(intercept), asked

    return start


def test_promote_and_rollback_move_the_registry_alias_too(models, mlflow_server):
    uri, alias = mlflow_server.uri, "staging"
    common = ["--models-dir", models, "--tracking-uri", uri, "--registered-model", NAME]
    first = linreg_ops("promote", "1", "--alias", alias, *common)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1] == (
        f"registry {NAME}@{alias}: models:/{NAME}/1 (was nothing) at {uri}"
    )
    assert (store.alias_holder(models, alias), registry_alias(mlflow_server, alias)) == (1, 1)
    second = linreg_ops("promote", "2", "--alias", alias, "--force", *common)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1] == (
        f"registry {NAME}@{alias}: models:/{NAME}/2 (was models:/{NAME}/1) at {uri}"
    )
    assert (store.alias_holder(models, alias), registry_alias(mlflow_server, alias)) == (2, 2)
    back = linreg_ops("rollback", "--alias", alias, *common)
    assert back.returncode == 0, back.stderr
    assert back.stdout.splitlines()[0].startswith(f"{alias}: version 1 (was version 2; rollback")
    assert back.stdout.splitlines()[1] == (
        f"registry {NAME}@{alias}: models:/{NAME}/1 (was models:/{NAME}/2) at {uri}"
    )
    assert (store.alias_holder(models, alias), registry_alias(mlflow_server, alias)) == (1, 1)


@pytest.mark.parametrize(
    ("registered", "alias", "reachable", "message"),
    [
        ("nobody", "refused", True, "is not registered as 'nobody' at "),
        ("a/b", "refused", True, "--registered-model 'a/b': a name without '/'"),
        (NAME, "refused", False, "MLflow at http://127.0.0.1:"),
        (NAME, "latest", True, "is reserved"),  # a folder takes these names, MLflow does not
        (NAME, "v2", True, "is reserved"),
    ],
)
def test_what_the_registry_refuses_is_refused_before_anything_moves(
    models, mlflow_server, registered, alias, reachable, message
):
    """Exit 2, one line, and neither the folder (every byte) nor the registry changed; a
    rollback (of current: publish 1, publish 2) likewise, where its alias is a name."""
    uri = mlflow_server.uri if reachable else f"http://127.0.0.1:{free_port()}"
    before = snapshot(models)
    commands = [["promote", "2", "--alias", alias]]
    if alias == "refused":
        commands.append(["rollback", "--alias", "current"])
    for command in commands:
        result = linreg_ops(
            *command,
            "--models-dir",
            models,
            "--tracking-uri",
            uri,
            "--registered-model",
            registered,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert message in result.stderr
        assert snapshot(models) == before
    if alias == "refused":  # (MLflow answers 'latest' and 'v2' with versions of its own)
        assert registry_alias(mlflow_server, alias) is None
        assert registry_alias(mlflow_server, "current") is None


def test_a_registry_that_refuses_after_the_folder_moved_is_exit_5_and_the_command_finishes_it(
    models, mlflow_server, registry_proxy
):
    """The registry answers every check but refuses the move itself (403): exit 5, one line
    saying the folder's alias moved and the registry's did not, and how to finish; then the
    same promote against a registry that lets it moves only the registry's alias. Checked
    failing with the move's error raised as a plain InputError: exit 2 ("nothing changed")."""
    alias = "exit-five"
    denying_proxy, _ = registry_proxy("deny")
    common = ["--models-dir", models, "--registered-model", NAME]
    denied = linreg_ops("promote", "1", "--alias", alias, "--tracking-uri", denying_proxy, *common)
    assert denied.returncode == 5, denied.stderr
    assert denied.stderr.count("\n") == 1, denied.stderr
    assert denied.stderr.startswith(
        f"linreg-ops promote: error: '{alias}' names version 1 in {models}, but the registry "
        f"alias {NAME}@{alias} was not moved (MLflow at {denying_proxy}: "
    )
    assert denied.stderr.rstrip().endswith(
        "run the same promote again to move it (the folder's alias stays on 1)"
    )
    assert (store.alias_holder(models, alias), registry_alias(mlflow_server, alias)) == (1, None)
    history = store.moves(models, alias)
    again = linreg_ops(
        "promote", "1", "--alias", alias, "--tracking-uri", mlflow_server.uri, *common
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"{alias}: version 1 already (the folder's alias unchanged)",
        f"registry {NAME}@{alias}: models:/{NAME}/1 (was nothing) at {mlflow_server.uri}",
    ]
    assert store.moves(models, alias) == history  # the folder's alias did not move again
    assert registry_alias(mlflow_server, alias) == 1
    # rollback: the folder's alias goes back, the registry's cannot; promote finishes it
    linreg_ops("promote", "2", "--alias", alias, "--force", "--tracking-uri", mlflow_server.uri,
               *common)  # fmt: skip
    rolled = linreg_ops("rollback", "--alias", alias, "--tracking-uri", denying_proxy, *common)
    assert rolled.returncode == 5, rolled.stderr
    assert rolled.stderr.count("\n") == 1
    assert f"linreg-ops promote 1 --alias {alias} with the same --tracking-uri" in rolled.stderr
    assert (store.alias_holder(models, alias), registry_alias(mlflow_server, alias)) == (1, 2)


def test_two_promotes_at_once_land_in_the_same_order_in_the_folder_and_the_registry(
    models, mlflow_server, registry_proxy
):
    """Attack: promote 1 reaches the registry late (a slow proxy); promote 2 starts the
    moment promote 1's registry move is on its way. The registry's alias moves under the
    folder's writer lock, so promote 2 waits and both end on version 2. Checked failing with
    the registry moved after the lock is released: the folder said 2, the registry 1."""
    slow, asked = registry_proxy("slow")
    alias = "raced"
    common = ["--alias", alias, "--models-dir", models, "--registered-model", NAME]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    first = subprocess.Popen(
        [str(BIN / "linreg-ops"), "promote", "1", *map(str, common), "--tracking-uri", slow],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert asked.wait(120), "promote 1 never asked the registry to move the alias"
        second = linreg_ops("promote", "2", "--force", *common, "--tracking-uri", mlflow_server.uri)
    finally:
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.returncode == 0, second.stderr
    assert (store.alias_holder(models, alias), registry_alias(mlflow_server, alias)) == (2, 2)


@pytest.mark.parametrize("command", ["promote", "rollback"])
def test_ctrl_c_while_the_registry_moves_says_the_folder_moved(
    models, mlflow_server, registry_proxy, command
):
    """Attack: Ctrl-C while the registry's move is on its way (a slow proxy), after the
    folder's alias moved. The two are out of step, as when the registry refuses: exit 5 and
    one line saying what moved and how to finish — not a silent exit 130 that leaves the
    operator believing nothing changed (a rollback re-run would go one version further)."""
    import signal

    alias = f"interrupted-{command}"
    common = ["--alias", alias, "--models-dir", models, "--registered-model", NAME]
    direct = [*common, "--tracking-uri", mlflow_server.uri]
    if command == "rollback":
        assert linreg_ops("promote", "1", *direct).returncode == 0
        assert linreg_ops("promote", "2", "--force", *direct).returncode == 0
        argv = ["rollback", *common]
    else:
        argv = ["promote", "1", *common]
    slow, asked = registry_proxy("slow")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    process = subprocess.Popen(
        [str(BIN / "linreg-ops"), *map(str, argv), "--tracking-uri", slow],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert asked.wait(120), f"{command} never asked the registry to move the alias"
        process.send_signal(signal.SIGINT)
    finally:
        _, err = process.communicate(timeout=120)
    assert store.alias_holder(models, alias) == 1  # the folder's alias moved
    assert process.returncode == 5, (process.returncode, err)
    assert err.count("\n") == 1, err
    assert err.startswith(f"linreg-ops {command}: error: '{alias}' names version 1 in {models}")
    assert "promote 1 --alias" in err or "run the same promote again" in err
