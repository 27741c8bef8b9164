"""MLflow tracking and registry against a real tracking server (``mlflow_server``): ``run
--tracking-uri`` logs the run and registers the version, ``set_registry_alias`` moves an
alias, ``fetch_registered_version`` brings a version back verified, and ``serve --model-uri``
serves it. Without a tracking URI nothing imports MLflow."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import stop
from linreg_ops.errors import ArtifactError, InputError
from linreg_ops.exports import tracking
from linreg_ops.inference import loading
from linreg_ops.inference.predict import predict_rows
from linreg_ops.storage import store

pytestmark = [
    pytest.mark.slow,
    # MLflow's own input-example code compares columns with a range (pandas deprecates it)
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning"),
]
BIN = Path(sys.executable).parent
NAME = "linreg-ops-test"


def linreg_ops(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "linreg-ops"), *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )  # fmt: skip


def without_tracking_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}


def client(server):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server.uri, registry_uri=server.uri)


def test_the_server_starts_in_bounded_time(mlflow_server):
    print(f"mlflow server answered /health after {mlflow_server.started_seconds:.1f} s")
    assert mlflow_server.started_seconds < 120


def test_run_logs_params_metrics_and_artifacts(tracked, mlflow_server):
    models_dir, _, outputs = tracked
    version = store.open_version(models_dir, 1)
    metrics = loading.load_metrics(version)
    registered = client(mlflow_server).get_model_version(NAME, "1")
    run = client(mlflow_server).get_run(registered.run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["models_version"] == "1"
    assert params["split.random_state"] == "42"
    assert params["quantized.dtype"] == "int8"
    assert params["quantized.rounding"] == "hessian"
    assert params["integer_only.input_dtype"] == "int16"
    assert params["data_sha256"] == version.manifest.training_data["sha256"]
    logged = run.data.metrics
    assert logged["float.r2"] == metrics["float"]["r2"]
    assert logged["quantized.delta_r2"] == metrics["quantized"]["delta_r2"]
    assert logged["integer_only.r2"] == metrics["integer_only"]["r2"]
    assert logged["n_test"] == metrics["n_test"]
    names = {a.path for a in client(mlflow_server).list_artifacts(run.info.run_id, "reports")}
    assert {"reports/report.md", "reports/model_card.md"} <= names
    files = {
        a.path.split("/")[-1]
        for a in client(mlflow_server).list_artifacts(run.info.run_id, tracking.VERSION_ARTIFACTS)
    }
    assert files == {*version.manifest.artifacts, store.MANIFEST_JSON}
    assert "MLflow run" in outputs[0]
    assert f"Registered models:/{NAME}/1" in outputs[0]


def test_the_registered_version_is_the_mlflow_model_with_its_tags(tracked, mlflow_server):
    import mlflow.pyfunc
    import pandas as pd

    models_dir, _, _ = tracked
    version = store.open_version(models_dir, 2)
    metrics = loading.load_metrics(version)
    registered = client(mlflow_server).get_model_version(NAME, "2")
    tags = registered.tags
    assert tags["models_version"] == "2"
    assert tags["dtype"] == "int8"
    assert tags["rounding"] == "hessian"
    assert float(tags["delta_r2"]) == metrics["quantized"]["delta_r2"]
    assert tags["data_sha256"] == version.manifest.training_data["sha256"]
    manifest = (version.path / store.MANIFEST_JSON).read_bytes()
    assert tags["manifest_sha256"] == store.sha256_bytes(manifest)
    # the registered model is the export's pyfunc: it predicts as the local version does
    os.environ["MLFLOW_TRACKING_URI"] = mlflow_server.uri
    try:
        pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}/2")
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    models = loading.load_models(version)
    X = loading.stored_test_rows(models).values[:20, :-1]
    frame = pd.DataFrame(X, columns=list(models.float.feature_names))
    np.testing.assert_array_equal(
        np.asarray(pyfunc.predict(frame)), predict_rows(models.float, X)[0]
    )


def mlflow_settings() -> dict[str, str]:
    """MLflow's public environment settings (MLflow's own bookkeeping, ``_MLFLOW_…``, aside)."""
    return {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}


@pytest.mark.parametrize("preset", [None, "http://127.0.0.1:9/elsewhere"])
def test_a_tracked_run_leaves_the_environment_as_found(tracked, mlflow_server, preset, monkeypatch):
    """``log_run`` names its server on every call: MLFLOW_TRACKING_URI (absent, or set to
    another server) and MLflow's process-wide URI are as they were after it. Before, MLflow's
    set_tracking_uri left the variable set and a later test's subprocess logged to this
    server (checked failing with the restore left out: the variable and MLflow's URI were
    left at the server's)."""
    import mlflow

    # MLflow's process-wide URI as a fresh process has it (None) or as set to another server
    monkeypatch.setattr("mlflow.tracking._tracking_service.utils._tracking_uri", preset)
    if preset is None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", preset)
    models_dir, _, _ = tracked
    before, uri_before = mlflow_settings(), mlflow.get_tracking_uri()
    logged = tracking.log_run(mlflow_server.uri, store.open_version(models_dir, 1), (), "env-test")
    assert logged.registered_model == "env-test"
    assert mlflow_settings() == before
    assert mlflow.get_tracking_uri() == uri_before
    run = client(mlflow_server).get_run(logged.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["linreg_ops.registered"] == f"env-test/{logged.registry_version}"


def test_the_alias_moves_and_says_who_held_it(tracked, mlflow_server):
    models_dir, _, _ = tracked
    uri = mlflow_server.uri
    assert tracking.registered_version_of(uri, NAME, store.open_version(models_dir, 1)) == 1
    assert tracking.registered_version_of(uri, NAME, store.open_version(models_dir, 2)) == 2
    assert tracking.set_registry_alias(uri, NAME, "challenger", 1) is None
    assert tracking.set_registry_alias(uri, NAME, "challenger", 2) == 1
    assert client(mlflow_server).get_model_version_by_alias(NAME, "challenger").version == "2"
    assert tracking.resolve_model_uri(uri, f"models:/{NAME}@challenger") == f"models:/{NAME}/2"
    assert tracking.set_registry_alias(uri, NAME, "challenger", 1) == 2
    assert client(mlflow_server).get_model_version_by_alias(NAME, "challenger").version == "1"
    assert tracking.resolve_model_uri(uri, f"models:/{NAME}@challenger") == f"models:/{NAME}/1"
    with pytest.raises(InputError, match=f"^MLflow at {uri}: "):
        tracking.set_registry_alias(uri, NAME, "challenger", 99)
    assert client(mlflow_server).get_model_version_by_alias(NAME, "challenger").version == "1"


def test_fetch_brings_the_version_back_verified(tracked, mlflow_server, tmp_path):
    models_dir, _, _ = tracked
    tracking.set_registry_alias(mlflow_server.uri, NAME, "fetched", 2)
    resolved, path = tracking.fetch_registered_version(
        mlflow_server.uri, f"models:/{NAME}@fetched", tmp_path / "m"
    )
    assert (resolved, path) == (f"models:/{NAME}/2", tmp_path / "m")
    local, fetched = store.open_version(models_dir, 2), store.open_version(path)
    assert fetched.number == 2
    assert fetched.manifest == local.manifest
    for name in local.manifest.artifacts:
        if name.endswith(".joblib"):
            assert not (fetched.path / name).exists()  # pickles are never downloaded
        else:
            assert store.read_artifact(fetched, name) == store.read_artifact(local, name)


def test_a_tampered_registry_is_refused_and_leaves_nothing(tracked, mlflow_server, tmp_path):
    """Attack: the run's model.json replaced after registration (same path, other bytes),
    and a tag naming another manifest: both refused, no folder left behind."""
    models_dir, _, _ = tracked
    mlflow_client = client(mlflow_server)
    registered = mlflow_client.get_model_version(NAME, "1")
    mlflow_client.set_model_version_tag(NAME, "1", "manifest_sha256", "0" * 64)
    try:
        with pytest.raises(ArtifactError, match="differs from the manifest_sha256 tag"):
            tracking.fetch_registered_version(
                mlflow_server.uri, f"models:/{NAME}/1", tmp_path / "a"
            )
    finally:
        mlflow_client.set_model_version_tag(
            NAME, "1", "manifest_sha256", registered.tags["manifest_sha256"]
        )
    assert not (tmp_path / "a").exists()
    text = (store.open_version(models_dir, 1).path / store.MODEL_JSON).read_text()
    at = text.index(",", text.index('"intercept"')) - 1  # the intercept's last digit
    forged = tmp_path / "forged" / store.MODEL_JSON
    forged.parent.mkdir()
    forged.write_text(text[:at] + str((int(text[at]) + 1) % 10) + text[at + 1 :])  # same size
    (tmp_path / "original").mkdir()
    original = mlflow_client.download_artifacts(
        registered.run_id,
        f"{tracking.VERSION_ARTIFACTS}/{store.MODEL_JSON}",
        str(tmp_path / "original"),
    )
    mlflow_client.log_artifact(registered.run_id, str(forged), tracking.VERSION_ARTIFACTS)
    try:
        with pytest.raises(ArtifactError) as refusal:
            tracking.fetch_registered_version(
                mlflow_server.uri, f"models:/{NAME}/1", tmp_path / "b"
            )
    finally:
        mlflow_client.log_artifact(registered.run_id, original, tracking.VERSION_ARTIFACTS)
    assert str(refusal.value).startswith(
        f"models:/{NAME}/1: {tracking.VERSION_ARTIFACTS}/model.json does not match its SHA-256"
    )
    assert not (tmp_path / "b").exists()
    assert tracking.fetch_registered_version(
        mlflow_server.uri, f"models:/{NAME}/1", tmp_path / "c"
    ) == (f"models:/{NAME}/1", tmp_path / "c")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (f"models:/{NAME}@nobody", "MLflow at "),
        (f"models:/{NAME}/77", "MLflow at "),
        ("models:/no-such-model/1", "MLflow at "),
        (f"runs:/abc/{NAME}", "expected models:/NAME@ALIAS or models:/NAME/VERSION"),
        (f"models:/{NAME}/Production", "expected models:/NAME@ALIAS"),
    ],
)
def test_fetch_refuses_what_the_registry_does_not_hold(mlflow_server, tmp_path, uri, message):
    with pytest.raises(InputError, match=message):
        tracking.fetch_registered_version(mlflow_server.uri, uri, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_fetch_refuses_a_version_linreg_ops_did_not_register(mlflow_server, tmp_path):
    """A registered version made by someone else (no run, no manifest_sha256 tag) has
    nothing to be verified against: refused in one line, nothing downloaded."""
    mlflow_client = client(mlflow_server)
    run = mlflow_client.create_run("0")
    mlflow_client.create_registered_model("foreign")
    mlflow_client.create_model_version(
        "foreign", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id, tags={"dtype": "int8"}
    )
    with pytest.raises(InputError, match="was not registered by linreg-ops run"):
        tracking.fetch_registered_version(mlflow_server.uri, "models:/foreign/1", tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_fetch_refuses_a_folder_that_is_not_empty(mlflow_server, tracked, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="already exists"):
        tracking.fetch_registered_version(mlflow_server.uri, f"models:/{NAME}/1", tmp_path / "m")
    assert (tmp_path / "m" / "keep.txt").read_text() == "mine"


@given(
    name=st.text(
        st.characters(blacklist_characters="/@", blacklist_categories=("Cs",)), min_size=1
    ),
    alias=st.text(
        st.characters(blacklist_characters="/@", blacklist_categories=("Cs",)), min_size=1
    ),
    number=st.integers(1, 10**9),
)
def test_model_uris_parse_back_to_their_parts(name, alias, number):
    assert tracking.parse_model_uri(f"models:/{name}@{alias}") == (name, alias, None)
    assert tracking.parse_model_uri(f"models:/{name}/{number}") == (name, None, number)


@given(st.text())
def test_any_other_text_is_a_uri_error_or_a_uri(text):
    if not text.startswith("models:/") or text.count("/") + text.count("@") != 2:
        with pytest.raises(InputError, match="expected models:/NAME@ALIAS or models:/NAME/VERSION"):
            tracking.parse_model_uri(text)
        return
    try:
        name, alias, number = tracking.parse_model_uri(text)
    except InputError as exc:
        message = str(exc)
    else:
        message = ""
        assert text == f"models:/{name}" + (f"@{alias}" if alias else f"/{number}")
    assert message in (
        "",
        f"--model-uri {text!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_model_uri_answers_as_the_local_version(tracked, mlflow_server):
    models_dir, _, _ = tracked
    tracking.set_registry_alias(mlflow_server.uri, NAME, "champion", 1)
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "linreg-ops"), "serve", "--model-uri", f"models:/{NAME}@champion",
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**without_tracking_env(), "MLFLOW_TRACKING_URI": mlflow_server.uri},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                with urllib.request.urlopen(f"{url}/ready", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "serve --model-uri did not become ready"
                time.sleep(0.3)
        local = loading.load(models_dir, 1)
        X = loading.stored_test_rows(local).values[:, :-1]
        payload = {
            "dataframe_split": {"columns": list(local.float.feature_names), "data": X.tolist()}
        }
        request = urllib.request.Request(
            f"{url}/invocations", json.dumps(payload).encode(), {"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            served = json.loads(response.read())["predictions"]
        np.testing.assert_array_equal(served, predict_rows(local.float, X)[0])
        with urllib.request.urlopen(f"{url}/metadata", timeout=10) as response:
            metadata = json.loads(response.read())
        assert metadata["version"] == 1
        assert metadata["models"]["float"]["sha256"] == local.version.sha256(store.MODEL_JSON)
    finally:
        output = stop(server, sig=signal.SIGINT)
    assert f"models:/{NAME}@champion is models:/{NAME}/1: version 1, verified" in output
    folder = output.split("verified, in ")[1].split()[0]
    assert not Path(folder).exists()  # the temporary models folder is removed on exit


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model-uri", f"models:/{NAME}@champion"], "--model-uri needs --tracking-uri URI"),
        (["--model-uri", "champion", "--tracking-uri", "http://127.0.0.1:9"],
         "--model-uri 'champion': expected models:/NAME@ALIAS"),
        (["--registry-poll-seconds", "1"],
         "--registry-poll-seconds needs --model-uri models:/NAME@ALIAS"),
        (["--model-uri", f"models:/{NAME}/1", "--tracking-uri", "http://127.0.0.1:9",
          "--registry-poll-seconds", "1"], f"models:/{NAME}/1 names one version, nothing to poll"),
        (["--model-uri", f"models:/{NAME}@a", "--registry-poll-seconds", "0"],
         "--registry-poll-seconds: must be ≥ 0.5 seconds, got 0"),
        # attack: 1e-9 polled a shared registry 150 times a second (its server at 90 % CPU)
        (["--model-uri", f"models:/{NAME}@a", "--registry-poll-seconds", "1e-9"],
         "--registry-poll-seconds: must be ≥ 0.5 seconds, got 1e-9"),
    ],
)  # fmt: skip
def test_serve_model_uri_refusals_are_one_line(args, message):
    result = linreg_ops("serve", *args, env=without_tracking_env(), timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert message in result.stderr


def test_an_unreachable_server_is_refused_before_any_work(data_csv, tmp_path):
    port = free_port()  # nothing listens on it
    started = time.monotonic()
    result = linreg_ops(
        "run", "--data", data_csv, "--target", "y", "--models-dir", tmp_path / "models",
        "--reports-dir", tmp_path / "reports", "--tracking-uri", f"http://127.0.0.1:{port}",
        env=without_tracking_env(), timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"linreg-ops run: error: MLflow at http://127.0.0.1:{port}: ")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "models").exists()
    assert not (tmp_path / "reports").exists()
    assert time.monotonic() - started < 60


def test_without_a_tracking_uri_nothing_imports_mlflow(data_csv, tmp_path):
    script = (
        "import sys\n"
        "from linreg_ops.cli import main\n"
        f"assert main(['run', '--data', {str(data_csv)!r}, '--target', 'y', '--models-dir', "
        f"{str(tmp_path / 'models')!r}, '--reports-dir', {str(tmp_path / 'reports')!r}, '--max-r2-drop', 'none']) == 0\n"
        f"assert main(['predict', '--models-dir', {str(tmp_path / 'models')!r}]) == 0\n"
        f"assert main(['promote', '1', '--alias', 'champion', '--models-dir', {str(tmp_path / 'models')!r}]) == 0\n"
        f"assert main(['rollback', '--alias', 'champion', '--models-dir', {str(tmp_path / 'models')!r}]) == 2\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
        env=without_tracking_env(), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_fetching_imports_no_scikit_learn_and_unpickles_nothing(tracked, mlflow_server, tmp_path):
    """The serving side of the registry: MLflow's client, no scikit-learn, no joblib."""
    script = (
        "import sys, pickle\n"
        "from pathlib import Path\n"
        "def refuse(*a, **k): raise AssertionError('unpickling')\n"
        "pickle.load = pickle.loads = refuse\n"
        "from linreg_ops.exports.tracking import fetch_registered_version\n"
        f"fetch_registered_version({mlflow_server.uri!r}, 'models:/{NAME}/1', Path({str(tmp_path / 'm')!r}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'joblib')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_bad_registered_model_name_is_refused_before_any_work(mlflow_server, data_csv, tmp_path):
    result = linreg_ops(
        "run", "--data", data_csv, "--target", "y", "--models-dir", tmp_path / "models",
        "--reports-dir", tmp_path / "reports", "--tracking-uri", mlflow_server.uri,
        "--registered-model", "a/b", env=without_tracking_env(),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        "linreg-ops run: error: --registered-model 'a/b': a name without '/', ':' or '@' "
        "is needed\n"
    )
    assert not (tmp_path / "models").exists()


def test_a_failed_log_keeps_the_published_version_and_says_so(mlflow_server, data_csv, tmp_path):
    """The server answers, but the run cannot be logged (an experiment that does not exist):
    exit 2, one line saying the version is published but not logged; the version stays."""
    result = linreg_ops(
        "run", "--data", data_csv, "--target", "y", "--models-dir", tmp_path / "models",
        "--reports-dir", tmp_path / "reports", "--tracking-uri", mlflow_server.uri,
        "--max-r2-drop", "none", env={**without_tracking_env(), "MLFLOW_EXPERIMENT_ID": "987654"},
    )  # fmt: skip
    assert result.returncode == 2
    assert "version 1 of" in result.stderr
    assert "is published, but not logged to MLflow: MLflow at " in result.stderr
    assert result.stderr.count("\n") == 1
    assert loading.load(tmp_path / "models").version.number == 1


DOC = Path(__file__).resolve().parents[2] / "docs" / "lifecycle.md"
DOC_URI, DOC_PORT = "http://127.0.0.1:5000", "8001"


def doc_blocks() -> tuple[list[str], list[str]]:
    """The commands (```bash) and the printed output (```) of the MLflow section."""
    text = DOC.read_text().split("## MLflow tracking and registry", 1)[1].split("\n## ", 1)[0]
    blocks: list[tuple[str, list[str]]] = []
    language = None
    for line in text.splitlines():
        if language is None and line.startswith("```"):
            language = line[3:]
            blocks.append((language, []))
        elif language is not None and line == "```":
            language = None
        elif language is not None:
            blocks[-1][1].append(line)
    commands = [line for lang, lines in blocks if lang == "bash" for line in lines if line.strip()]
    outputs = ["\n".join(lines) for lang, lines in blocks if lang == ""]
    return commands, outputs


def test_the_docs_commands_run_as_written(mlflow_server, tmp_path):
    """The MLflow section's commands, in order, in one empty folder, against the session's
    server: run (registered 1), promote 1 (the registry alias too), serve the alias and ask
    it, then a second run promoted while the service runs — which answers with version 2."""
    commands, outputs = doc_blocks()
    server, export, run, promote, serve, curl, run_again, promote_again, curl_again = commands
    assert server.startswith("mlflow server --backend-store-uri sqlite:///mlflow.db ")
    assert export == f"export MLFLOW_TRACKING_URI={DOC_URI}"
    env = {**without_tracking_env(), "MLFLOW_TRACKING_URI": mlflow_server.uri,
           "PATH": f"{BIN}:{os.environ['PATH']}", "LOGNAME": "alice"}  # fmt: skip

    def shell(command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-c", command.replace(DOC_URI, mlflow_server.uri)], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    def shown(text: str) -> str:
        return text.replace(mlflow_server.uri, DOC_URI)

    ran = shell(run)
    assert ran.returncode == 0, ran.stderr
    printed = outputs[0].splitlines()
    assert printed[0].startswith("MLflow run ")
    assert printed[0].endswith(f"at {DOC_URI}")
    assert ran.stdout.splitlines()[-1] == printed[1]  # the Registered … line, figures included
    promoted = shell(promote)
    assert promoted.returncode == 0, promoted.stderr
    assert shown(promoted.stdout) == outputs[1] + "\n"
    port = str(free_port())
    process = subprocess.Popen(
        ["bash", "-c", f"exec {serve.replace(DOC_PORT, port)}"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the docs' serve command did not start"
                time.sleep(0.3)
        answered = shell(curl.replace(f"localhost:{DOC_PORT}", f"localhost:{port}"))
        assert shell(run_again).returncode == 0
        moved = shell(promote_again)
        followed = shell(curl_again.replace(f"localhost:{DOC_PORT}", f"localhost:{port}"))
    finally:
        served = stop(process, sig=signal.SIGINT)
    expected = outputs[2].splitlines()
    temporary = re.compile(r"/tmp/linreg-ops-registry-[a-z0-9_]+/")
    lines = [
        temporary.sub("/tmp/linreg-ops-registry-btazcpls/", line) for line in served.splitlines()
    ]
    assert lines[:2] == [line.replace(":8001 ", f":{port} ") for line in expected[:2]]
    assert answered.stdout == expected[2]
    assert moved.returncode == 0, moved.stderr
    figure = outputs[3]
    assert re.fullmatch(r"\d+ requests at c=8, 0 failed, every answer its header's version's; "
                        r"last answer from the old version \d+\.\d\d s after the registry "
                        r"alias moved \(bound: poll 2 s \+ one fetch and load\)", figure)  # fmt: skip
    assert shown(moved.stdout) + followed.stdout.replace("\r", "") == outputs[4] + "\n"


@pytest.mark.parametrize("command", ["serve", "run"])
def test_a_file_tracking_uri_is_exit_2_with_one_line(tmp_path, command):
    """Attack finding T1: MLflow refuses a ``file://`` store (maintenance mode) as the client
    is built, which was outside the error mapping: a traceback and exit 1. Now exit 2, one
    line naming the URI, before any work."""
    uri = (tmp_path / "mlruns").as_uri()
    if command == "serve":
        args = ["serve", "--model-uri", f"models:/{NAME}/1", "--tracking-uri", uri, "--port", "0"]
    else:
        data = Path(__file__).resolve().parents[2] / "examples" / "houses.csv"
        args = ["run", "--models-dir", tmp_path / "models", "--data", data, "--target", "price",
                "--reports-dir", tmp_path / "reports", "--tracking-uri", uri]  # fmt: skip
    result = linreg_ops(*args, env=without_tracking_env(), timeout=120)
    assert result.returncode == 2, result.stderr[-800:]
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr[-800:]
    assert f"MLflow at {uri}: " in result.stderr
    assert not (tmp_path / "models").exists()


def test_serve_model_uri_on_an_unreachable_server_is_exit_2_within_seconds(tmp_path):
    """Attack finding T2: ``serve --model-uri`` asked MLflow with its default retries (minutes
    of back-off); it now asks once, as run does."""
    port = free_port()  # nothing listens on it
    started = time.monotonic()
    result = linreg_ops(
        "serve", "--model-uri", "models:/nope/1", "--tracking-uri", f"http://127.0.0.1:{port}",
        "--port", "0", env=without_tracking_env(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-800:]
    assert result.stderr.startswith(f"linreg-ops serve: error: MLflow at http://127.0.0.1:{port}: ")
    assert result.stderr.count("\n") == 1
    assert time.monotonic() - started < 30


def test_run_json_with_a_tracking_uri_prints_only_json(data_csv, mlflow_server, tmp_path):
    """Attack: ``run --json --tracking-uri`` piped into a JSON reader. MLflow writes "🏃 View
    run … / 🧪 View experiment …" to stdout as a run ends, before the document: stdout must
    be the one JSON object, and ``-q`` must print nothing (MLflow's chatter is not ours)."""
    common = ["--data", data_csv, "--target", "y", "--tracking-uri", mlflow_server.uri,
              "--registered-model", "json-stdout", "--max-r2-drop", "none"]  # fmt: skip
    document = linreg_ops(
        "run", *common, "--models-dir", tmp_path / "m1", "--reports-dir", tmp_path / "r1",
        "--json", env=without_tracking_env(),
    )  # fmt: skip
    assert document.returncode == 0, document.stderr
    assert json.loads(document.stdout)["version"] == 1
    quiet = linreg_ops(
        "run", *common, "--models-dir", tmp_path / "m2", "--reports-dir", tmp_path / "r2", "-q",
        env=without_tracking_env(),
    )  # fmt: skip
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == ""
