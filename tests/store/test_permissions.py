"""Permission errors, as a user who is not root (root ignores file modes): one line, exit 2,
never a traceback — and reading a folder you cannot write to works."""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from helpers import write_csv
from linreg_ops import data, pipeline, store

pytestmark = pytest.mark.slow
LINREG_OPS = str(Path(sys.executable).with_name("linreg-ops"))
NOBODY = 65534


def as_user(*args: object) -> subprocess.CompletedProcess:
    """``linreg-ops ARGS`` as an unprivileged user (``nobody`` when the tests run as root)."""
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.fail("running as root: install util-linux's setpriv to drop privileges")
        prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    env = {**os.environ, "HOME": "/tmp", "MPLCONFIGDIR": tempfile.gettempdir()}
    return subprocess.run(
        [*prefix, LINREG_OPS, *map(str, args)],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip


@pytest.fixture
def shared_dir():
    """A folder every user can enter (pytest's tmp_path is private to its owner)."""
    folder = Path(tempfile.mkdtemp(prefix="linreg-ops-perm-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def published(shared_dir):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 2))
    rows = np.column_stack([X, X @ [1.0, 2.0] + rng.normal(scale=0.1, size=300)]).tolist()
    source = write_csv(shared_dir / "data.csv", ["a", "b", "y"], rows)
    source.chmod(0o644)
    models = shared_dir / "models"
    pipeline.run(data.file_source(source, "y"), models, shared_dir / "reports")
    for path in [models, *models.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)  # readable by anyone, writable by the owner only
    return models, source


def one_line_exit_2(result: subprocess.CompletedProcess, words: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert words in lines[0]


def test_reading_a_folder_you_cannot_write_works(published):
    models, _ = published
    result = as_user("predict", "--models-dir", models)
    assert result.returncode == 0, result.stderr
    assert "Model: float (version 1" in result.stdout


def test_writing_to_a_folder_you_cannot_write_is_one_line(published):
    models, source = published
    before = sorted(p.name for p in models.iterdir())
    one_line_exit_2(
        as_user("train", "--data", source, "--target", "y", "--models-dir", models),
        f"cannot write to {models}: Permission denied",
    )
    assert sorted(p.name for p in models.iterdir()) == before


def test_an_output_you_cannot_write_is_one_line(published, shared_dir):
    models, source = published
    locked = shared_dir / "locked"
    locked.mkdir(mode=0o755)
    one_line_exit_2(
        as_user("predict", "--models-dir", models, "--input", source, "--output", locked / "p.csv"),
        "cannot write",
    )
    assert list(locked.iterdir()) == []


def test_a_reports_folder_you_cannot_write_is_refused_before_any_work(published, shared_dir):
    models, source = published
    mine = shared_dir / "mine"
    mine.mkdir()
    mine.chmod(0o777)
    shutil.copytree(models, mine / "models", symlinks=True)
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(mine / "models")], check=False)
    locked = shared_dir / "locked-reports"
    locked.mkdir(mode=0o755)
    one_line_exit_2(
        as_user(
            "run",
            "--data",
            source,
            "--target",
            "y",
            "--models-dir",
            mine / "models",
            "--reports-dir",
            locked,
        ),
        f"cannot write to {locked}",
    )
    assert store.open_version(mine / "models").number == 1, "nothing was published"


def test_an_artifact_you_cannot_read_is_one_line(published):
    models, _ = published
    path = store.open_version(models).path / "model.json"
    path.chmod(0)
    try:
        one_line_exit_2(as_user("predict", "--models-dir", models), "Permission denied")
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
