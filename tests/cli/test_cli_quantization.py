"""``linreg-ops quantize`` options, the gate's exit code, the sweep and integer-only predict."""

import pytest

from helpers import snapshot
from linreg_ops.inference import loading

pytestmark = pytest.mark.slow


def test_gate_failure_exits_3_and_keeps_previous_artifacts(run_cli, models_copy):
    before = snapshot(models_copy)
    result = run_cli(
        "quantize", "--dtype", "int3", "--rounding", "nearest", "--models-dir", models_copy
    )
    assert result.returncode == 3, result.stderr
    assert "quality gate: int3 per-tensor nearest loses" in result.stderr
    assert "more than --max-r2-drop 0.001; nothing was written" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(models_copy) == before


def test_max_abs_diff_gate(run_cli, models_copy):
    result = run_cli("quantize", "--max-abs-diff", "0.001", "--models-dir", models_copy)
    assert result.returncode == 3
    assert "more than --max-abs-diff 0.001" in result.stderr


def test_the_integer_only_model_is_gated_too(run_cli, models_copy):
    """Issue 8: --input-dtype int8 --max-abs-diff 0.05 used to publish a model moving 0.58."""
    before = snapshot(models_copy)
    result = run_cli(
        "quantize", "--input-dtype", "int8", "--max-abs-diff", "0.05", "--models-dir", models_copy
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "quality gate: integer-only int8×int8 minmax loses" in result.stderr
    assert "and moves a prediction by" in result.stderr
    assert snapshot(models_copy) == before


def test_options_reach_the_artifacts(run_cli, models_copy):
    result = run_cli(
        "quantize", "--dtype", "int6", "--granularity", "per-channel", "--rounding", "optimal",
        "--input-dtype", "int8", "--calibration", "percentile", "--max-r2-drop", "none",
        "--models-dir", models_copy,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    loaded = loading.load(models_copy)
    quantized = loaded.quantized
    assert (quantized.dtype, quantized.granularity, quantized.rounding) == (
        "int6",
        "per-channel",
        "optimal",
    )
    assert quantized.scale.size == quantized.n_features
    integer = loaded.integer
    assert (integer.weight_dtype, integer.input_bits, integer.calibration) == (
        "int6",
        8,
        "percentile",
    )
    assert "rows clipped" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--granularity", "per-row"],
        ["--rounding", "stochastic"],
        ["--input-dtype", "int4"],
        ["--calibration", "mse"],
        ["--max-r2-drop", "-1"],
        ["--max-abs-diff", "nan"],
        ["--max-abs-diff", "inf"],  # attack C1: written to metrics.json as Infinity
    ],
)
def test_bad_quantize_options_exit_2(run_cli, models_copy, args):
    before = snapshot(models_copy)
    result = run_cli("quantize", *args, "--models-dir", models_copy)
    assert result.returncode == 2
    assert snapshot(models_copy) == before


def test_sweep_prints_and_writes_the_report(run_cli, trained_dir, tmp_path):
    """``linreg-ops sweep``, and ``quantize --sweep``, its alias: the same bytes printed and
    written, and nothing published."""
    reports = tmp_path / "reports"
    before = snapshot(trained_dir)
    result = run_cli("sweep", "--models-dir", trained_dir, "--reports-dir", reports, check=True)
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 15 * 2 * 3  # header, rule, bits 2..16 × granularity × rounding
    assert "| 8 | per-tensor | nearest |" in result.stdout
    markdown = (reports / "quantization.md").read_text()
    assert "\n".join(table) in markdown
    assert (reports / "quantization.png").read_bytes().startswith(b"\x89PNG")
    assert snapshot(trained_dir) == before, "a sweep must not touch the artifacts"
    alias = run_cli(
        "quantize", "--sweep", "--models-dir", trained_dir, "--reports-dir", reports, check=True
    )
    assert alias.stdout == result.stdout
    assert (reports / "quantization.md").read_text() == markdown
    assert snapshot(trained_dir) == before


def test_predict_integer_only_reports_clipped_rows(run_cli, trained_dir):
    result = run_cli("predict", "--integer-only", "--models-dir", trained_dir, check=True)
    assert "Model: integer" in result.stdout
    assert "Rows clipped to the model's range (input or output):" in result.stdout
    assert "R² Score: 0.57" in result.stdout


@pytest.mark.parametrize(
    ("scale", "words"),
    [(1e39, "reaches 3.9e+39, beyond float32's range"), (1e-40, "too little for a float32 scale")],
)
def test_a_feature_float32_cannot_hold_is_one_line_exit_2(run_cli, tmp_path, scale, words):
    """Attack C4: a feature of 1e39 crashed quantization with a NaN traceback (exit 1)."""
    import numpy as np

    from helpers import write_csv

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    y = 2 * X[:, 1] + rng.normal(size=300)
    X[:, 0] *= scale
    data = write_csv(tmp_path / "wide.csv", ["a", "b", "y"], np.column_stack([X, y]).tolist())
    models = tmp_path / "models"
    run_cli("train", "--data", data, "--target", "y", "--models-dir", models, check=True)
    before = snapshot(models)
    result = run_cli("quantize", "--models-dir", models)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "error: feature 'a' " in result.stderr
    assert words in result.stderr
    assert "staging" not in result.stderr
    assert snapshot(models) == before


def test_a_sweep_of_a_feature_float32_cannot_hold_is_one_line_exit_2(run_cli, tmp_path):
    """Second attack: the sweep (then ``quantize --sweep``) skipped the float32 check: a NaN
    traceback."""
    import numpy as np

    from helpers import write_csv

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    y = 2 * X[:, 1] + rng.normal(size=300)
    X[:, 0] *= 1e100
    data = write_csv(tmp_path / "wide.csv", ["a", "b", "y"], np.column_stack([X, y]).tolist())
    models = tmp_path / "models"
    run_cli("train", "--data", data, "--target", "y", "--models-dir", models, check=True)
    result = run_cli("sweep", "--models-dir", models, "--reports-dir", tmp_path / "r")
    assert result.returncode == 2, result.stderr
    assert "feature 'a' reaches 3.9e+100, beyond float32's range" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("inside", ["current", "versions/2", ".staging", "reports"])
def test_reports_inside_the_models_folder_are_refused(run_cli, models_copy, inside):
    """Second attack: ``--reports-dir models/current`` wrote into an immutable version, and
    ``models/.staging`` into a folder the next writer empties."""
    before = snapshot(models_copy)
    result = run_cli(
        "quantize", "--sweep", "--models-dir", models_copy,
        "--reports-dir", models_copy / inside,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--reports-dir" in result.stderr
    assert "is inside the models folder" in result.stderr
    assert snapshot(models_copy) == before
