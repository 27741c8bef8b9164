"""Options that must not be silently ignored, bent or lost (issue 13, item 9)."""

import json
import shutil

import numpy as np
import pytest

from helpers import snapshot, write_csv

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["quantize", "--target", "x"], "--target needs --data PATH"),
        (["evaluate", "--target", "x"], "--target needs --data PATH"),
        (["train", "--features", "a,b"], "--features needs --data PATH"),
        (["run", "--target", "y", "--features", "a"], "--target and --features need --data PATH"),
        (
            ["predict", "--model", "quantized", "--integer-only"],
            "--integer-only means --model integer; it conflicts with --model quantized",
        ),
        (
            ["predict", "--model", "float", "--integer-only"],
            "--integer-only means --model integer; it conflicts with --model float",
        ),
    ],
)
def test_contradictory_or_orphan_options_exit_2_and_change_nothing(
    run_cli, models_copy, args, message
):
    before = snapshot(models_copy)
    result = run_cli(*args, "--models-dir", models_copy)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [f"linreg-ops {args[0]}: error: {message}"]
    assert snapshot(models_copy) == before


def test_integer_only_is_an_alias_of_model_integer(run_cli, trained_dir):
    alias = run_cli("predict", "--models-dir", trained_dir, "--integer-only", check=True)
    named = run_cli("predict", "--models-dir", trained_dir, "--model", "integer", check=True)
    assert alias.stdout == named.stdout
    assert "Model: integer" in named.stdout


def test_feature_names_are_taken_exactly_as_written(run_cli, tmp_path):
    """Issue 13: ``--features " HouseAge "`` was stripped to another column's name."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2, 200))
    rows = np.column_stack([a, b, 3.0 * a + rng.normal(scale=0.01, size=200)]).tolist()
    data = write_csv(tmp_path / "spaces.csv", [" a ", "a", "y"], [[r[0], r[1], r[2]] for r in rows])
    models = tmp_path / "models"
    result = run_cli(
        "train", "--data", data, "--target", "y", "--features", " a ", "--models-dir", models
    )
    assert result.returncode == 0, result.stderr
    model = json.loads((models / "model.json").read_text())
    assert model["features"] == [" a "]
    assert model["coef"][0] == pytest.approx(3.0, rel=1e-2)  # y follows " a ", not "a"
    empty = run_cli("train", "--data", data, "--target", "y", "--features", " a ,,a")
    assert empty.returncode == 2
    assert "an empty column name" in empty.stderr


def test_the_models_folder_can_come_from_the_environment(run_cli, trained_dir, tmp_path):
    """Issue 13: LINREG_OPS_MODELS_DIR, documented, had no effect."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    executable = Path(sys.executable).with_name("linreg-ops")
    env = {**os.environ, "LINREG_OPS_MODELS_DIR": str(trained_dir)}
    result = subprocess.run(
        [str(executable), "predict"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"of {trained_dir})" in result.stdout
    # the flag wins over the environment
    other = shutil.copytree(trained_dir, tmp_path / "flag", symlinks=True)
    result = subprocess.run(
        [str(executable), "predict", "--models-dir", str(other)], env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert f"of {other})" in result.stdout
