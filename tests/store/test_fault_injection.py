"""Kill ``train``, ``quantize`` and ``run`` after each of their file operations in turn —
every k, not a sample — and prove that the folder then loads one complete version: the
previous one, or (once the pointer has moved) the new one; and that the next writer cleans
up whatever the killed one left."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import write_csv
from linreg_ops import data, pipeline

pytestmark = pytest.mark.slow
DRIVER = Path(__file__).with_name("fault_driver.py")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Version 1 (train) and 2 (quantize) of a small model: the 'previous' state."""
    folder = tmp_path_factory.mktemp("template")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=400)
    first = write_csv(folder / "first.csv", ["a", "b", "c", "y"], np.column_stack([X, y]).tolist())
    second = write_csv(
        folder / "second.csv", ["a", "b", "c", "y"], np.column_stack([X, -y]).tolist()
    )
    models = folder / "models"
    pipeline.train(data.file_source(first, "y"), models)
    pipeline.quantize(models)
    return models, second


COMMANDS = {
    "train": ["train", "--data", "{data}", "--target", "y", "--models-dir", "{models}"],
    "quantize": ["quantize", "--dtype", "int6", "--max-r2-drop", "none", "--models-dir", "{models}"],
    "run": ["run", "--data", "{data}", "--target", "y", "--models-dir", "{models}",
            "--reports-dir", "{work}/reports", "--max-r2-drop", "none"],
}  # fmt: skip


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_kill_after_any_file_operation_leaves_one_complete_version(template, tmp_path, command):
    models, second = template
    argv = [a.replace("{data}", str(second)) for a in COMMANDS[command]]
    result = subprocess.run(
        [sys.executable, str(DRIVER), str(models), str(tmp_path / "work"), "--", *argv],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    dry, trials, recovery = lines[0], lines[1:-1], lines[-1]
    assert dry["error"] is None, dry
    assert dry["current"] == 3
    assert dry["count"] >= 15, "the command should perform many file operations"
    assert len(trials) == dry["count"], "one trial per file operation"
    print(f"\n{command}: killed after each of its {dry['count']} file operations in turn")
    assert all(t["killed"] for t in trials)
    previous_files = None
    moved = False
    for t in trials:
        assert t["error"] is None, f"kill after operation {t['k']}: {t['error']}"
        assert t["current"] in (2, 3), t
        if t["current"] == 2:
            assert not moved, f"operation {t['k']}: the pointer went back"
            previous_files = previous_files or t["files"]
            assert t["files"] == previous_files, f"operation {t['k']}: version 2 changed"
        else:
            moved = True
            assert t["files"] == dry["files"], f"operation {t['k']}: version 3 is not the whole run"
    assert trials[0]["current"] == 2
    assert trials[-1]["current"] == 3
    assert recovery["status"] == 0
    assert recovery["current"] == 4
    assert recovery["leftovers"] == [], "the next writer removes what a killed one left"
