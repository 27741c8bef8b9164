"""The installed ``linreg-ops`` console script, run as a real process."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import SEED_MSE, SEED_R2, device_node, snapshot, tamper, write_csv
from linreg_ops import __version__, cli
from linreg_ops.cli import commands
from linreg_ops.inference import loading
from linreg_ops.storage import store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_result(tmp_path_factory):
    """One full ``linreg-ops run`` in an empty folder, shared by the tests that read it."""
    workdir = tmp_path_factory.mktemp("run")
    executable = Path(sys.executable).with_name("linreg-ops")
    result = subprocess.run(
        [str(executable), "run"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return workdir, result


def test_run_reproduces_the_seed_and_writes_everything(run_result):
    workdir, result = run_result
    assert result.returncode == 0, result.stderr
    assert f"R² Score: {SEED_R2}" in result.stdout
    assert f"Mean Squared Error (Loss): {SEED_MSE}" in result.stdout
    for name in store.SEED_PATHS:
        assert (workdir / "models" / name).is_file(), name
    assert (workdir / "models" / "current").resolve() == workdir / "models" / "versions" / "1"
    metrics = json.loads((workdir / "models" / "metrics.json").read_text())
    assert set(metrics) >= {"float", "quantized", "n_train", "n_test", "features", "gate"}
    assert set(metrics["quantized"]) >= {"dtype", "r2", "mse", "max_abs_diff", "mean_abs_diff"}
    assert metrics["integer_only"]["mean_abs_diff_inside"] <= 0.005
    assert metrics["quantized"]["dtype"] == "int8"
    assert abs(metrics["quantized"]["r2"] - metrics["float"]["r2"]) <= 0.001
    for name in ("report.md", "predicted_vs_actual.png", "residuals.png"):
        assert (workdir / "reports" / name).is_file(), name


def test_report_holds_the_table_exactly_as_printed(run_result):
    workdir, result = run_result
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert len(table) == 5  # header, rule, float64, int8, integer-only
    assert "\n".join(table) in (workdir / "reports" / "report.md").read_text()


def test_help_lists_every_command(run_cli):
    result = run_cli("--help", check=True)
    for command in ("train", "quantize", "predict", "evaluate", "run", "serve"):
        assert command in result.stdout


def test_version(run_cli):
    assert run_cli("--version", check=True).stdout.strip() == f"linreg-ops {__version__}"


def test_predict_prints_metrics_and_first_ten(run_cli, trained_dir):
    result = run_cli("predict", "--models-dir", trained_dir, check=True)
    assert "R² Score: 0.5758" in result.stdout
    assert "True: 0.4770 | Predicted: 0.7191 | Diff: 0.2421" in result.stdout
    assert sum(line.startswith("True: ") for line in result.stdout.splitlines()) == 10


def test_predict_input_output(run_cli, trained_dir, models, test_rows, tmp_path):
    columns, values = test_rows
    rows = write_csv(tmp_path / "rows.csv", list(columns), values[:7].tolist())
    result = run_cli(
        "predict",
        "--models-dir",
        trained_dir,
        "--input",
        rows,
        "--output",
        tmp_path / "p.parquet",
        "--model",
        "quantized",
        check=True,
    )
    assert "Wrote 7 quantized predictions" in result.stdout
    import pyarrow.parquet as pq

    written = pq.read_table(tmp_path / "p.parquet").column("prediction").to_numpy()
    np.testing.assert_array_equal(written, models.quantized.predict(values[:7, :-1]))


def test_predict_input_folder(run_cli, trained_dir, models, test_rows, tmp_path):
    columns, values = test_rows
    (tmp_path / "in").mkdir()
    write_csv(tmp_path / "in" / "a.csv", list(columns), values[:3].tolist())
    write_csv(tmp_path / "in" / "b.csv", list(columns), values[3:5].tolist())
    result = run_cli(
        "predict", "--models-dir", trained_dir, "--input", tmp_path / "in", "--output",
        tmp_path / "p.csv", check=True,
    )  # fmt: skip
    assert "Wrote 5 float predictions" in result.stdout
    written = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(written, models.float.predict(values[:5, :-1]))


def test_quoted_text_between_features_does_not_shift_columns(
    run_cli, trained_dir, models, tmp_path
):
    """Issue 8: a free-text column with commas used to shift the numbers after it."""
    names = list(models.float.feature_names)
    row = [8.3252, 41.0, 6.98, 1.02, 322.0, 2.55, 37.88, -122.23]
    header = [*names[:3], "address", *names[3:]]
    text = (
        ",".join(header)
        + "\n"
        + ",".join([*map(str, row[:3]), '"north, 5, x"', *map(str, row[3:])])
        + "\n"
    )
    (tmp_path / "q.csv").write_text(text)
    run_cli(
        "predict",
        "--models-dir",
        trained_dir,
        "--input",
        tmp_path / "q.csv",
        "--output",
        tmp_path / "p.csv",
        check=True,
    )
    written = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1)
    assert written == models.float.predict(np.array([row]))[0]


def test_a_row_with_an_extra_field_is_refused(run_cli, trained_dir, models, tmp_path):
    """Issue 8: this row used to predict −20.035 with exit 0."""
    names = list(models.float.feature_names)
    (tmp_path / "x.csv").write_text(
        ",".join(names) + "\n8,3252,41,6.98,1.02,322,2.55,37.88,-122.23\n"
    )
    result = run_cli(
        "predict",
        "--models-dir",
        trained_dir,
        "--input",
        tmp_path / "x.csv",
        "--output",
        tmp_path / "p.csv",
    )
    assert result.returncode == 2
    assert "row 1 (line 2) has 9 fields, the header has 8" in result.stderr
    assert not (tmp_path / "p.csv").exists()


def test_evaluate_prints_the_comparison_table(run_cli, models_copy):
    result = run_cli("evaluate", "--models-dir", models_copy, check=True)
    assert "| float64 | 0.5758 | +0.000000 | 0.5559 |" in result.stdout
    assert "| int8 per-tensor hessian |" in result.stdout
    assert "| integer-only int8×int16 minmax |" in result.stdout


def test_train_and_predict_on_a_user_csv(run_cli, regression_csv, tmp_path):
    models = tmp_path / "user-models"
    result = run_cli(
        "train", "--data", regression_csv, "--target", "y", "--models-dir", models, check=True
    )
    assert f"Loading {regression_csv} (target 'y')." in result.stdout
    np.testing.assert_allclose(loading.load(models).float.coef, [2.0, -3.0, 0.5], atol=0.05)
    run_cli(
        "quantize", "--dtype", "uint8", "--max-r2-drop", "0.01", "--models-dir", models, check=True
    )
    assert loading.load(models).quantized.dtype == "uint8"


def test_predict_does_not_import_scikit_learn(trained_dir):
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "linreg_ops", "predict",
         "--models-dir", str(trained_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    imported = {
        line.split("|")[-1].strip() for line in result.stderr.splitlines() if "import time:" in line
    }
    assert "linreg_ops.inference.predict" in imported
    # (numpy itself imports the pickle module; what matters is that nothing unpickles a model)
    # pyarrow is the one table reader (the stored test split is CSV); pandas is not needed
    for heavy in ("sklearn", "joblib", "scipy", "pandas", "matplotlib", "dask"):
        assert heavy not in imported, f"predict imported {heavy}"


def _file(folder, name, content: bytes):
    path = folder / name
    path.write_bytes(content)
    return path


def _table(folder, name, header, rows):
    return write_csv(folder / name, header, rows)


# case: (make the file in a folder, the message stderr must hold)
BAD_TRAIN_INPUTS = {
    "missing file": (lambda p: p / "nope.csv", "data file not found"),
    "unreadable": (lambda p: _file(p, "bin.csv", b"\xff\xfe\x00"), "cannot read"),
    "empty": (lambda p: _file(p, "e.csv", b""), "is empty"),
    "no target": (
        lambda p: _table(p, "t.csv", ["a", "b"], [[1, 2]] * 5),
        "target column 'y' not found",
    ),
    "non-numeric": (
        lambda p: _table(p, "n.csv", ["a", "y"], [[1, 2], ["x", 3], [3, 1], [4, 4]]),
        "column 'a' row 2: non-numeric value 'x'; pass --features",
    ),
    "extra field": (
        lambda p: _file(p, "x.csv", b"a,y\n1,2\n3,4,5\n"),
        "row 2 (line 3) has 3 fields, the header has 2",
    ),
    "overflow": (
        lambda p: _table(p, "o.csv", ["a", "y"], [[1, 2], [1e308, 3], [3, 1], [4, 4]] * 3),
        "column 'a' holds values so large that their squares overflow",
    ),
    "nan": (
        lambda p: _table(p, "nan.csv", ["a", "y"], [[1, 2], [2, 3], [3, "nan"], [4, 4]]),
        "column 'y' row 3 is NaN",
    ),
    "inf": (
        lambda p: _table(p, "inf.csv", ["a", "y"], [[1, 2], ["inf", 3], [3, 1], [4, 4]]),
        "column 'a' row 2 is an infinite value",
    ),
    "too few rows": (
        lambda p: _table(p, "f.csv", ["a", "b", "y"], [[1, 2, 3], [2, 1, 4], [3, 3, 1]]),
        "too few to fit 2 features",
    ),
    "constant target": (
        lambda p: _table(p, "c.csv", ["a", "y"], [[i, 1.5] for i in range(10)]),
        "is constant",
    ),
}


@pytest.mark.parametrize("case", BAD_TRAIN_INPUTS, ids=list(BAD_TRAIN_INPUTS))
def test_bad_training_data_exits_2_and_changes_nothing(run_cli, models_copy, tmp_path, case):
    make, message = BAD_TRAIN_INPUTS[case]
    before = snapshot(models_copy)
    result = run_cli(
        "train", "--data", make(tmp_path), "--target", "y", "--models-dir", models_copy
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error_lines = result.stderr.strip().splitlines()
    assert len(error_lines) == 1
    assert message in error_lines[0]
    assert snapshot(models_copy) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "--models-dir", "{empty}"], "no model in"),
        (["predict", "--models-dir", "{models}", "--output", "o.csv"], "--output needs --input"),
        (["predict", "--input", "rows.csv"], "--input needs --output"),
        (["quantize", "--dtype", "int1", "--models-dir", "{models}"], "unsupported dtype 'int1'"),
        (
            [
                "predict",
                "--models-dir",
                "{models}",
                "--input",
                "{models}/model.json",
                "--output",
                "o.csv",
            ],
            "unsupported data format '.json'",
        ),
        (  # second attack: the report went into the current (immutable) version
            ["run", "--models-dir", "{models}", "--reports-dir", "{models}/current"],
            "--reports-dir {models}/current is inside the models folder",
        ),
    ],
)
def test_usage_errors_exit_2(run_cli, models_copy, tmp_path, args, message):
    before = snapshot(models_copy)
    args = [a.format(empty=tmp_path / "empty", models=models_copy) for a in args]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message.format(models=models_copy) in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(models_copy) == before


def test_argparse_errors_exit_2(run_cli):
    assert run_cli("predict", "--model", "float16").returncode == 2
    assert run_cli("train", "--test-size", "2").returncode == 2
    assert run_cli("frobnicate").returncode == 2


def test_tampered_model_exits_2(run_cli, models_copy):
    tamper(
        models_copy,
        "model.json",
        lambda data: data.replace(b'"intercept": -37', b'"intercept": -36'),
    )
    result = run_cli("predict", "--models-dir", models_copy)
    assert result.returncode == 2
    assert "does not match its SHA-256" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "99999"], "argument --port: must be from 0 (any free port) to 65535"),
        (["--port", "http"], "argument --port: expected a port number"),
        (
            ["--host", "256.1.1.1"],
            "--host '256.1.1.1' is not an address this machine can listen on",
        ),
        (["--workers", "0"], "argument --workers: must be ≥ 1"),
    ],
)
def test_bad_serve_addresses_exit_2(run_cli, trained_dir, args, message):
    result = run_cli("serve", "--models-dir", trained_dir, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_optional_dependency_is_one_line_naming_the_command(tmp_path, trained_dir):
    """Hide distributed (as if the scale extra were not installed): exit 2, the pip command."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "distributed.py").write_text("raise ImportError('blocked', name='distributed')\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(blocker)}
    data = write_csv(tmp_path / "d.csv", ["a", "y"], [[i, 2 * i + i % 3] for i in range(30)])
    result = subprocess.run(
        [str(Path(sys.executable).with_name("linreg-ops")), "train", "--data", str(data),
         "--target", "y", "--engine", "dask", "--models-dir", str(tmp_path / "m")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "the dask engine needs the 'scale' extra (distributed is not installed): " in lines[0]
    assert "-m pip install" in lines[0]
    assert "[scale]'" in lines[0]


def test_dask_scoring_without_dask_is_one_line_naming_the_extra(tmp_path, trained_dir):
    """Hide dask (as if the scale extra were not installed): predict --engine dask is exit 2
    with the pip command, not a traceback from its first import."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "dask.py").write_text("raise ImportError('blocked', name='dask')\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(blocker)}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("linreg-ops")), "predict", "--engine", "dask",
         "--models-dir", str(trained_dir), "--input", str(trained_dir / "current" / "test_split.csv"),
         "--output", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "the dask engine needs the 'scale' extra (dask is not installed): " in lines[0]


def test_unexpected_errors_exit_1(monkeypatch, capsys, trained_dir):
    def explode(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(commands, "cmd_evaluate", explode)
    assert cli.main(["evaluate", "--models-dir", str(trained_dir)]) == 1
    assert "unexpected error" in capsys.readouterr().err


# --------------------------------------------------------------------------- --output targets


def predict_rows_csv(tmp_path: Path, test_rows, n: int = 50) -> Path:
    columns, values = test_rows
    return write_csv(tmp_path / "rows.csv", list(columns), values[:n].tolist())


@pytest.mark.parametrize("kind", [[], ["--integer-only"]])
def test_predict_output_dash_writes_csv_to_stdout(
    run_cli, trained_dir, models, test_rows, tmp_path, kind
):
    rows = predict_rows_csv(tmp_path, test_rows)
    result = run_cli(
        "predict", "--models-dir", trained_dir, "--input", rows, "--output", "-", *kind, check=True
    )
    lines = result.stdout.splitlines()
    assert lines[0] == ("prediction,clipped" if kind else "prediction")
    written = np.loadtxt(lines[1:], delimiter=",", ndmin=2)
    model = models.integer if kind else models.float
    np.testing.assert_array_equal(written[:, 0], model.predict(test_rows[1][:50, :-1]))
    # what is said goes to stderr, so stdout is the table and nothing else
    assert "Wrote 50 " in result.stderr
    assert "to standard output" in result.stderr
    assert ("Rows clipped to the model's range" in result.stderr) == bool(kind)
    assert not (tmp_path / "-").exists()


def test_predict_to_a_closed_pipe_stops_quietly(trained_dir, test_rows, tmp_path):
    columns, values = test_rows
    rows = write_csv(tmp_path / "rows.csv", list(columns), values.tolist())  # > a pipe's buffer
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("linreg-ops")), "predict", "--models-dir", str(trained_dir),
         "--input", str(rows), "--output", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout.readline() == b"prediction\n"
    process.stdout.close()  # like `| head -1`
    with process.stderr:
        stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr


@pytest.mark.parametrize("name", ["null", "null.csv", "null.parquet"])
def test_predict_writes_through_a_device_and_leaves_it_a_device(
    run_cli, trained_dir, test_rows, tmp_path, name
):
    """Attack: ``--output /dev/null`` (as root) was replaced by a regular file, exit 0."""
    import stat

    device = device_node(tmp_path / name)
    rows = predict_rows_csv(tmp_path, test_rows)
    result = run_cli("predict", "--models-dir", trained_dir, "--input", rows, "--output", device)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISCHR(device.lstat().st_mode), "the device was replaced"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "rows.csv"])


@pytest.mark.parametrize("name", ["p.csv", "p", "p.parquet"])
def test_predict_writes_through_a_fifo(run_cli, trained_dir, models, test_rows, tmp_path, name):
    import os
    import stat
    import threading

    fifo = tmp_path / name
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    rows = predict_rows_csv(tmp_path, test_rows)
    result = run_cli(
        "predict", "--models-dir", trained_dir, "--input", rows, "--output", fifo, timeout=60
    )
    reader.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode), "the FIFO was replaced"
    expected = models.float.predict(test_rows[1][:50, :-1])
    if name.endswith(".parquet"):
        import io

        import pyarrow.parquet as pq

        written = pq.read_table(io.BytesIO(received[0])).column("prediction").to_numpy()
    else:
        written = np.loadtxt(received[0].decode().splitlines()[1:], delimiter=",")
    np.testing.assert_array_equal(written, expected)


def test_predict_through_a_link_writes_the_linked_file(run_cli, trained_dir, test_rows, tmp_path):
    (tmp_path / "real.csv").write_text("old\n")
    (tmp_path / "link.csv").symlink_to("real.csv")
    rows = predict_rows_csv(tmp_path, test_rows)
    run_cli(
        "predict",
        "--models-dir",
        trained_dir,
        "--input",
        rows,
        "--output",
        tmp_path / "link.csv",
        check=True,
    )
    assert (tmp_path / "link.csv").is_symlink(), "the link was replaced by a file"
    assert (tmp_path / "real.csv").read_text().startswith("prediction\n")


@pytest.mark.parametrize(
    ("output", "args", "message"),
    [
        ("folder", [], "cannot write {output}: it is a folder, not a file"),
        ("afile/p.csv", [], "cannot write {output}: {tmp}/afile is not a folder"),
        ("afile/deeper/p.csv", [], "cannot write {output}: {tmp}/afile is not a folder"),
        ("-", ["--engine", "dask"], "--engine dask writes a Parquet dataset (a folder), not -"),
        ("p.txt", [], "unsupported output format '.txt'"),
    ],
)
def test_predict_outputs_that_cannot_be_written_are_one_line(
    run_cli, trained_dir, test_rows, tmp_path, output, args, message
):
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("mine")
    rows = predict_rows_csv(tmp_path, test_rows)
    target = output if output == "-" else tmp_path / output
    before = snapshot(tmp_path)
    result = run_cli(
        "predict", "--models-dir", trained_dir, "--input", rows, "--output", target, *args
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message.format(output=target, tmp=tmp_path) in lines[0]
    assert snapshot(tmp_path) == before
