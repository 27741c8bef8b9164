"""The seed's ``python src/{train,quantize,predict}.py`` run, through the shims."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import SEED_FIRST_PREDICTIONS, SEED_MSE, SEED_R2

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
SHARED_CACHE = REPO.parent / "shared" / "datasets" / "california_housing" / "scikit_learn_data"


def california_cache() -> Path:
    """scikit-learn's California Housing cache: the one this run uses, else the shared one."""
    for folder in (os.environ.get("SCIKIT_LEARN_DATA"), SHARED_CACHE):
        if folder and (Path(folder) / "cal_housing_py3.pkz").is_file():
            return Path(folder)
    pytest.skip(
        "the seed's shims need California Housing offline: put scikit-learn's cache "
        f"(cal_housing_py3.pkz) in {SHARED_CACHE} or point SCIKIT_LEARN_DATA at it"
    )


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    """The three shims, in order, from an empty folder and without PYTHONPATH or
    SCIKIT_LEARN_DATA: they must find ``../shared`` beside their checkout themselves. The
    checkout is a copy of ``src/``'s scripts with a ``shared`` folder beside it that holds
    this run's cache, so the test means the same wherever the suite runs."""
    cache = california_cache()
    root = tmp_path_factory.mktemp("layout")
    (root / "checkout" / "src").mkdir(parents=True)
    for script in ("train", "quantize", "predict"):
        shutil.copy(SRC / f"{script}.py", root / "checkout" / "src")
    shared = root / "shared" / "datasets" / "california_housing"
    shared.mkdir(parents=True)
    (shared / "scikit_learn_data").symlink_to(cache.resolve())
    workdir = tmp_path_factory.mktemp("seed")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SCIKIT_LEARN_DATA")}
    outputs = {}
    for script in ("train", "quantize", "predict"):
        result = subprocess.run(
            [sys.executable, str(root / "checkout" / "src" / f"{script}.py")],
            cwd=workdir, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"{script}.py failed:\n{result.stderr}"
        outputs[script] = result.stdout
    return workdir, outputs


def test_train_shim(seed_run):
    workdir, outputs = seed_run
    lines = outputs["train"].splitlines()
    assert lines[:5] == [
        "Loading California Housing dataset.",
        "Creating LinearRegression model.",
        "Training model.",
        f"R² Score: {SEED_R2}",
        f"Mean Squared Error (Loss): {SEED_MSE}",
    ]
    assert "Model saved to models/linear_regression_model.joblib" in lines
    assert (workdir / "models" / "linear_regression_model.joblib").is_file()


def test_quantize_shim(seed_run):
    workdir, outputs = seed_run
    out = outputs["quantize"]
    assert "Original coefficients shape is : (8,)" in out
    assert "Original intercept is : -37.023277706064" in out
    assert "Max coefficient error:" in out
    assert "Original predictions (sklearn): [0.71912284 1.76401657 2.70965883" in out
    assert "Sklearn vs manual original: [0. 0. 0. 0. 0. 0. 0. 0. 0. 0.]" in out
    assert "Max difference:" in out
    assert "Mean difference:" in out
    for name in ("unquant_params.joblib", "quant_params.joblib", "quantized_model.json"):
        assert (workdir / "models" / name).is_file()


def test_predict_shim(seed_run):
    _, outputs = seed_run
    out = outputs["predict"]
    assert f"R² Score: {SEED_R2}" in out
    assert f"Mean Squared Error: {SEED_MSE}" in out
    predicted = [
        float(line.split("Predicted: ")[1].split(" |")[0])
        for line in out.splitlines()
        if line.startswith("True:")
    ]
    assert predicted == [round(p, 4) for p in SEED_FIRST_PREDICTIONS]


def test_shims_are_thin():
    for script in ("train", "quantize", "predict"):
        assert len((SRC / f"{script}.py").read_text().splitlines()) <= 15


@pytest.mark.parametrize("script", ["train", "quantize", "predict"])
def test_a_shim_outside_the_virtualenv_says_how_to_activate_it(script, tmp_path):
    """An interpreter without the package (python -I -S: no site-packages) gets one line."""
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(SRC / f"{script}.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "is not installed for" in result.stderr
    assert "source .venv/bin/activate" in result.stderr
