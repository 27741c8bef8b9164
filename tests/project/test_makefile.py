"""The Makefile's promises: every target is listed by `make help`, `make clean` never deletes
a model version, and `make clean-models` deletes them only when told CONFIRM=1."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_help_lists_every_target():
    text = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"(?m)^([a-z][a-z-]*):", text))
    listed = {line.split()[0] for line in make("help").stdout.splitlines() if line.strip()}
    assert targets <= listed, f"not in make help: {sorted(targets - listed)}"
    assert {"run", "test", "serve", "docker", "clean", "clean-models"} <= listed


def test_clean_never_deletes_the_models(tmp_path):
    models = tmp_path / "models"
    recipe = make("-n", "clean", f"MODELS_DIR={models}").stdout
    assert "rm -rf" in recipe
    assert str(models) not in recipe
    assert not re.search(r"\bmodels\b", recipe)


def test_clean_models_needs_confirm(tmp_path):
    models = tmp_path / "models"
    (models / "versions" / "1").mkdir(parents=True)
    refused = make("clean-models", f"MODELS_DIR={models}")
    assert refused.returncode != 0
    assert "CONFIRM=1" in refused.stderr
    assert (models / "versions" / "1").is_dir()
    done = make("clean-models", f"MODELS_DIR={models}", "CONFIRM=1")
    assert done.returncode == 0, done.stderr
    assert not models.exists()
