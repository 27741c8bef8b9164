"""``linreg-ops export`` end to end: each format written atomically from the current version,
its SHA-256 recorded in exports.json, and each verified in its own runtime — onnxruntime,
the MLflow pyfunc loader and a real ``mlflow models serve`` beside ``linreg-ops serve``."""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import device_node, snapshot, stop
from linreg_ops.errors import InputError
from linreg_ops.inference import loading, predict
from linreg_ops.storage import store

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def exports_of(models_dir: Path) -> list[dict]:
    return json.loads((models_dir / "exports.json").read_text())["exports"]


@pytest.mark.parametrize(
    ("fmt", "kind", "name"),
    [
        ("onnx", "integer", "m.onnx"),
        ("onnx", "float", "f.onnx"),
        ("c", "integer", "linreg_model.h"),
    ],
)
def test_file_exports_are_recorded_with_their_sha256(
    run_cli, models_copy, tmp_path, fmt, kind, name
):
    output = tmp_path / "out" / name
    result = run_cli(
        "export",
        "--models-dir",
        models_copy,
        "--format",
        fmt,
        "--model",
        kind,
        "--output",
        output,
        check=True,
    )
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    assert f"sha256 {digest}" in result.stdout
    (entry,) = exports_of(models_copy)
    assert (entry["format"], entry["model"], entry["version"]) == (fmt, kind, 2)
    assert entry["sha256"] == digest
    assert entry["bytes"] == output.stat().st_size
    assert entry["path"] == str(output.resolve())
    version = store.open_version(models_copy)
    assert entry["artifact_sha256"] == version.sha256(entry["artifact"])
    assert [p.name for p in output.parent.iterdir()] == [name], "no temporary file left"


def run_onnx(path: Path, X: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"X": X})
    return dict(zip([o.name for o in session.get_outputs()], outputs, strict=True))


def test_the_onnx_integer_export_reproduces_predict_integer_only(
    run_cli, models_copy, models, test_rows, tmp_path
):
    """As a user runs it (issue 13: the default graph took float32, so 4 of the 4,128 test
    rows got other codes than ``predict --integer-only``): float64 in, every code and flag
    equal on the stored test split."""
    output = tmp_path / "integer.onnx"
    run_cli(
        "export", "--models-dir", models_copy, "--format", "onnx", "--model", "integer",
        "--output", output, check=True,
    )  # fmt: skip
    X = test_rows[1][:, :-1]
    outputs = run_onnx(output, X)
    codes, clipped = models.integer.predict_codes(X)
    np.testing.assert_array_equal(outputs["codes"], codes)
    np.testing.assert_array_equal(outputs["clipped"], clipped)
    np.testing.assert_array_equal(outputs["y"], predict.predict_rows(models.integer, X)[0])


def test_onnx_input_float32_is_an_option_for_float32_data(
    run_cli, models_copy, models, test_rows, tmp_path
):
    output = tmp_path / "integer32.onnx"
    run_cli(
        "export", "--models-dir", models_copy, "--format", "onnx", "--model", "integer",
        "--onnx-input", "float32", "--output", output, check=True,
    )  # fmt: skip
    X32 = test_rows[1][:, :-1].astype(np.float32)
    codes, _ = models.integer.predict_codes(X32.astype(np.float64))
    np.testing.assert_array_equal(run_onnx(output, X32)["codes"], codes)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--format", "c", "--model", "float"], "the C export is of the integer-only model"),
        (["--format", "tar"], "argument --format: invalid choice"),
        (["--model", "float"], "the following arguments are required: --format"),
        (
            ["--format", "c", "--model", "integer", "--onnx-input", "float32"],
            "--onnx-input applies to --format onnx, not c",
        ),
        (["--format", "onnx", "--onnx-input", "float16"], "argument --onnx-input: invalid"),
    ],
)
def test_bad_export_arguments_exit_2(run_cli, models_copy, tmp_path, args, words):
    result = run_cli(
        "export",
        "--models-dir",
        models_copy,
        *args,
        *(["--output", tmp_path / "x"] if "c" in args else []),
    )
    assert result.returncode == 2
    assert words in result.stderr
    assert not (models_copy / "exports.json").exists()


def test_export_from_an_empty_folder_exits_2(run_cli, tmp_path):
    result = run_cli(
        "export",
        "--models-dir",
        tmp_path / "none",
        "--format",
        "onnx",
        "--output",
        tmp_path / "m.onnx",
    )
    assert result.returncode == 2
    assert "no model in" in result.stderr


def test_export_of_a_missing_model_kind_exits_2(run_cli, california, tmp_path):
    from linreg_ops import pipeline

    pipeline.train(california, tmp_path / "models")
    result = run_cli(
        "export",
        "--models-dir",
        tmp_path / "models",
        "--format",
        "onnx",
        "--model",
        "quantized",
        "--output",
        tmp_path / "q.onnx",
    )
    assert result.returncode == 2
    assert "has no quantized model: run linreg-ops quantize" in result.stderr


# --------------------------------------------------------------------------- MLflow


def export_mlflow(run_cli, models_dir, output, kind):
    run_cli(
        "export", "--models-dir", models_dir, "--format", "mlflow", "--model", kind,
        "--output", output, check=True,
    )  # fmt: skip
    return output


def test_export_mlflow_quiet_prints_nothing_but_the_json(run_cli, models_copy, tmp_path):
    """Attack finding C1: ``export --format mlflow -q --json`` printed MLflow's INFO line
    ("Validating input example against model signature") and a tqdm download bar on stderr;
    MLflow's own chatter is now silenced while the model is written."""
    pytest.importorskip("mlflow")
    result = run_cli(
        "export", "--models-dir", models_copy, "--format", "mlflow", "--json", "-q",
        "--output", tmp_path / "mlf",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-600:]
    assert json.loads(result.stdout)["format"] == "mlflow"
    assert result.stderr == ""


@pytest.mark.parametrize("kind", ["float", "quantized", "integer"])
def test_mlflow_models_are_code_and_json_and_predict_the_same(
    run_cli, models_copy, models, test_rows, tmp_path, kind
):
    import mlflow.pyfunc

    output = export_mlflow(run_cli, models_copy, tmp_path / f"mlflow-{kind}", kind)
    files = {p.name for p in output.rglob("*") if p.is_file()}
    assert {"MLmodel", "input_example.json", "serving_input_example.json"} <= files
    assert loading.ARTIFACT_OF[kind] in files
    assert not [name for name in files if name.endswith((".pkl", ".pickle", ".joblib"))]
    mlmodel = (output / "MLmodel").read_text()
    assert "linreg_ops:" in mlmodel
    assert "manifest_sha256" in mlmodel
    assert "signature:" in mlmodel
    assert "MedInc" in mlmodel
    X = test_rows[1][:, :-1]
    frame = pd.DataFrame(X, columns=list(models.float.feature_names))
    predicted = np.asarray(mlflow.pyfunc.load_model(str(output)).predict(frame), dtype=np.float64)
    np.testing.assert_array_equal(predicted, predict.predict_rows(models.get(kind), X)[0])


def test_every_mlflow_model_refuses_a_non_finite_input_with_predicts_message(
    run_cli, models_copy, models, tmp_path
):
    """Issue 13: the integer model's MLflow export answered NaN with 46.24, the float one
    raised scikit-learn's error, the quantized one said the prediction overflowed."""
    import mlflow.pyfunc

    names = list(models.float.feature_names)
    for kind in ("float", "quantized", "integer"):
        loaded = mlflow.pyfunc.load_model(
            str(export_mlflow(run_cli, models_copy, tmp_path / f"mlflow-{kind}", kind))
        )
        for value, what in ((np.nan, "NaN"), (np.inf, "an infinite value"), (-np.inf, "an inf")):
            rows = np.ones((3, len(names)))
            rows[1, 2] = value
            with pytest.raises(InputError) as refusal:
                loaded.predict(pd.DataFrame(rows, columns=names))
            assert str(refusal.value).startswith(f"input row 2: column 'AveRooms' holds {what}"), (
                kind
            )
            assert str(refusal.value).endswith("linreg-ops predicts from finite numbers only")


def test_mlflow_export_refuses_a_folder_that_is_not_empty(run_cli, models_copy, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    result = run_cli(
        "export", "--models-dir", models_copy, "--format", "mlflow", "--output", tmp_path / "taken"
    )
    assert result.returncode == 2
    assert "already exists" in result.stderr
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"{process.args[0]} exited: {process.stdout.read() if process.stdout else ''}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer")


def invocations(url: str, payload: dict) -> list[float]:
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps(payload).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["predictions"]


def test_mlflow_models_serve_answers_as_linreg_ops_serve(
    run_cli, models_copy, models, test_rows, tmp_path
):
    output = tmp_path / "mlflow-model"
    run_cli(
        "export",
        "--models-dir",
        models_copy,
        "--format",
        "mlflow",
        "--model",
        "float",
        "--output",
        output,
        check=True,
    )
    ours, theirs = free_port(), free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"file://{tmp_path / 'mlruns'}",
    }
    servers = [
        subprocess.Popen([str(BIN / "linreg-ops"), "serve", "--models-dir", str(models_copy), "--port", str(ours)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env),
        subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m", str(output), "--env-manager", "local",
                          "-h", "127.0.0.1", "-p", str(theirs), "--workers", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env),
    ]  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{ours}/ready", servers[0])
        wait_for(f"http://127.0.0.1:{theirs}/ping", servers[1])
        rows = test_rows[1][:50, :-1]
        payload = {
            "dataframe_split": {"columns": list(models.float.feature_names), "data": rows.tolist()}
        }
        from_ours = invocations(f"http://127.0.0.1:{ours}", payload)
        from_mlflow = invocations(f"http://127.0.0.1:{theirs}", payload)
        np.testing.assert_allclose(from_mlflow, from_ours, rtol=1e-12, atol=0)
        np.testing.assert_array_equal(from_ours, models.float.predict(rows))
    finally:
        for server in servers:
            stop(server, sig=signal.SIGINT)


def test_an_export_into_the_models_folder_is_refused(run_cli, models_copy):
    """Attack B1: ``--output models/model.json`` replaced the seed link with an ONNX file."""
    before = (models_copy / "model.json").read_bytes()
    for output in (models_copy / "model.json", models_copy / "exports" / "m.onnx"):
        result = run_cli(
            "export", "--models-dir", models_copy, "--format", "onnx", "--output", output
        )
        assert result.returncode == 2
        assert "is inside the models folder" in result.stderr
    assert (models_copy / "model.json").is_symlink()
    assert (models_copy / "model.json").read_bytes() == before
    assert not (models_copy / "exports").exists()


def test_a_broken_export_record_is_refused_before_the_export_is_written(
    run_cli, models_copy, tmp_path
):
    """Attack D8: the export was written, then the record refused: a file nothing records."""
    (models_copy / "exports.json").write_text('{"schema_version": 2, "exports": [{}]}')
    output = tmp_path / "m.onnx"
    result = run_cli("export", "--models-dir", models_copy, "--format", "onnx", "--output", output)
    assert result.returncode == 2
    assert "exports.json" in result.stderr
    assert not output.exists()


def test_an_export_to_a_busy_folder_writes_nothing(run_cli, models_copy, tmp_path):
    """Second attack: the export was written (an existing file replaced), and only then was
    the lock taken to record it: on a busy or read-only folder, an unrecorded export."""
    output = tmp_path / "m.onnx"
    output.write_bytes(b"the previous export")
    with store.writer(models_copy, "a long training run", 1.0):
        result = run_cli(
            "export", "--models-dir", models_copy, "--format", "onnx", "--output", output,
            "--lock-timeout", "0.2",
        )  # fmt: skip
    assert result.returncode == 2
    assert "is being written by" in result.stderr
    assert output.read_bytes() == b"the previous export"
    assert not (models_copy / "exports.json").exists()


# --------------------------------------------------------------------------- --output targets


def export_to(run_cli, models_dir: Path, output, fmt: str = "onnx", kind: str = "float"):
    return run_cli(
        "export", "--models-dir", models_dir, "--format", fmt, "--model", kind, "--output", output
    )


def one_line_exit_2(result, words: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert words in lines[0]


@pytest.mark.parametrize(("fmt", "name"), [("onnx", "null.onnx"), ("c", "null.h")])
def test_an_export_never_replaces_a_device(run_cli, models_copy, tmp_path, fmt, name):
    """Attack: ``export --output /dev/null`` (as root) replaced the device by a file, exit 0."""
    import stat

    device = device_node(tmp_path / name)
    result = export_to(run_cli, models_copy, device, fmt, "integer")
    one_line_exit_2(result, f"cannot write {device}: it is a character device, not a file")
    assert stat.S_ISCHR(device.lstat().st_mode)
    assert not (models_copy / "exports.json").exists(), "an export that was not written"


@pytest.mark.parametrize("fmt", ["onnx", "mlflow"])
def test_an_export_never_replaces_a_fifo(run_cli, models_copy, tmp_path, fmt):
    import os
    import stat

    fifo = tmp_path / ("m.onnx" if fmt == "onnx" else "model")
    os.mkfifo(fifo)
    result = export_to(run_cli, models_copy, fifo, fmt)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert not (models_copy / "exports.json").exists()


@pytest.mark.parametrize(
    ("fmt", "kind", "name", "words"),
    [
        ("onnx", "float", "x.h", "--output {output}: onnx exports are .onnx files; name it x.onnx"),
        ("onnx", "float", "x", "onnx exports are .onnx files"),
        ("onnx", "float", "x.onnx.tmp", "onnx exports are .onnx files"),
        ("c", "integer", "x.onnx", "--output {output}: c exports are .h files; name it x.h"),
        ("c", "integer", "x.c", "c exports are .h files"),
        ("mlflow", "float", "x.onnx", "mlflow exports are folders, not .onnx files"),
        ("mlflow", "float", "x.h", "mlflow exports are folders, not .h files"),
        ("onnx", "float", "-", "--output -: an export is written to a file"),
        ("mlflow", "float", "-", "--output -: an export is written to a file"),
        ("onnx", "float", "afile/x.onnx", "cannot write {output}: {tmp}/afile is not a folder"),
        ("c", "integer", "afile/sub/x.h", "cannot write {output}: {tmp}/afile is not a folder"),
        ("mlflow", "float", "afile/model", "cannot write {output}"),
        ("onnx", "float", "folder.onnx", "cannot write {output}: it is a folder, not a file"),
    ],
)
def test_export_outputs_that_do_not_fit_are_one_line(
    run_cli, models_copy, tmp_path, fmt, kind, name, words
):
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "folder.onnx").mkdir()
    output = name if name == "-" else tmp_path / name
    before = snapshot(tmp_path)
    result = export_to(run_cli, models_copy, output, fmt, kind)
    one_line_exit_2(result, words.format(output=output, tmp=tmp_path))
    assert "Traceback" not in result.stderr
    assert snapshot(tmp_path) == before, "nothing written, nothing removed"
    assert not (models_copy / "exports.json").exists()


def test_an_export_through_a_link_writes_the_linked_file(run_cli, models_copy, tmp_path):
    (tmp_path / "real.onnx").write_bytes(b"old")
    (tmp_path / "link.onnx").symlink_to("real.onnx")
    result = export_to(run_cli, models_copy, tmp_path / "link.onnx")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "link.onnx").is_symlink(), "the link was replaced by a file"
    digest = hashlib.sha256((tmp_path / "real.onnx").read_bytes()).hexdigest()
    (entry,) = exports_of(models_copy)
    assert (entry["path"], entry["sha256"]) == (str(tmp_path / "real.onnx"), digest)
