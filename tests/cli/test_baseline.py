"""The CI gate against regressions (``linreg-ops baseline``, ``make check-baseline``): the
committed ``ci/baseline.json`` agrees with a fresh California run; a worse version fails with
exit 3 and the table goes to ``$GITHUB_STEP_SUMMARY``; a bad baseline is exit 2."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import write_csv
from linreg_ops import pipeline
from linreg_ops.storage import store
from linreg_ops.training import sources

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """v1 train + v2 quantize on clean data, v3 the same data with its target half noise."""
    root = tmp_path_factory.mktemp("baseline")
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 2))
    y = X @ np.array([1.5, -1.0]) + rng.normal(scale=0.2, size=300)
    data = write_csv(root / "d.csv", ["a", "b", "y"], np.column_stack([X, y]).tolist())
    models = root / "models"
    pipeline.train(sources.file_source(data, "y"), models)
    pipeline.quantize(models)
    return models


def test_the_committed_baseline_is_what_a_california_run_gives(run_cli, trained_dir, tmp_path):
    summary = tmp_path / "summary.md"
    result = run_cli(
        "baseline", "--models-dir", trained_dir, "--file", REPO / "ci" / "baseline.json",
        "--summary", summary,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "against the baseline: passed" in result.stdout
    assert summary.read_text() == result.stdout


def test_a_regression_fails_with_exit_3_and_a_table_in_the_step_summary(run_cli, small, tmp_path):
    models = Path(shutil.copytree(small, tmp_path / "models", symlinks=True))
    baseline = tmp_path / "baseline.json"
    wrote = run_cli("baseline", "--write", "--models-dir", models, "--file", baseline)
    assert wrote.returncode == 0, wrote.stderr
    recorded = json.loads(baseline.read_text())
    assert set(recorded["r2"]) == {"float", "quantized", "integer"}
    # the baseline claims a float R² 0.002 better than this version's: beyond the 0.001 gate
    recorded["r2"]["float"] += 0.002
    baseline.write_text(json.dumps(recorded))
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier steps\n")
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary)}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("linreg-ops")), "baseline", "--models-dir", models,
         "--file", baseline],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 3, result.stdout + result.stderr
    assert "| float |" in result.stdout
    assert "| regression |" in result.stdout
    assert summary.read_text() == "earlier steps\n" + result.stdout
    loose = run_cli(
        "baseline", "--models-dir", models, "--file", baseline, "--max-r2-regression", "0.003"
    )
    assert loose.returncode == 0, loose.stdout


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "is missing: record one with linreg-ops baseline --write"),
        ("{not json", "is not a baseline (JSON)"),
        ('{"r2": {"float": "high"}}', "no 'r2' object of numbers"),
        ('{"r2": {"float": 0.5}, "data_sha256": "00"}', "R² on other data is no comparison"),
    ],
)
def test_a_bad_baseline_is_exit_2_in_one_line(run_cli, small, tmp_path, content, words):
    baseline = tmp_path / "baseline.json"
    if content is not None:
        baseline.write_text(content)
    result = run_cli("baseline", "--models-dir", small, "--file", baseline)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert words in result.stderr
    assert store.alias_holder(small, "current") == 2
