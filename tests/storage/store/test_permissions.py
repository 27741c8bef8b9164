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
from linreg_ops import pipeline
from linreg_ops.storage import store
from linreg_ops.training import sources

pytestmark = pytest.mark.slow
LINREG_OPS = str(Path(sys.executable).with_name("linreg-ops"))
NOBODY = 65534
DROP = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def nobody_can_import(python: str, env: dict[str, str]) -> bool:
    probe = subprocess.run(
        [*DROP, python, "-c", "import linreg_ops.cli"],
        capture_output=True, timeout=120, check=False, env=env, cwd=tempfile.gettempdir(),
    )  # fmt: skip
    return probe.returncode == 0


@pytest.fixture(scope="module")
def command():
    """How an unprivileged user runs linreg-ops: ``nobody`` when the tests run as root.

    A checkout under a 0700 folder (what ``mktemp -d`` makes) is out of nobody's reach, and
    so are its virtualenv and source: then they run from a hard-linked copy (seconds, no
    bytes copied) in a folder every user can enter, or the tests skip saying why."""
    env = {**os.environ, "HOME": "/tmp", "MPLCONFIGDIR": tempfile.gettempdir()}
    if os.geteuid() != 0:
        yield [LINREG_OPS], env
        return
    if shutil.which("setpriv") is None:
        pytest.fail("running as root: install util-linux's setpriv to drop privileges")
    if nobody_can_import(sys.executable, env):
        yield [*DROP, LINREG_OPS], env
        return
    import linreg_ops

    copy = Path(tempfile.mkdtemp(prefix="linreg-ops-perm-checkout-", dir="/tmp"))
    try:
        copy.chmod(0o755)
        source = Path(linreg_ops.__file__).parents[1]
        trees = [(source, copy / "src")]
        if sys.prefix != sys.base_prefix:  # a virtualenv, most likely in the checkout
            trees.append((Path(sys.prefix), copy / "venv"))
        for tree, linked in trees:  # cp -al: hard links, no bytes copied
            made = subprocess.run(
                ["cp", "-al", str(tree), str(linked)], capture_output=True, text=True, check=False
            )
            if made.returncode != 0:
                pytest.skip(
                    f"nobody cannot reach {tree} (a folder above it is private), and a "
                    f"hard-linked copy in /tmp failed ({made.stderr.strip()}): run the tests "
                    "from a checkout other users can enter"
                )
        in_venv = copy / "venv" / Path(sys.executable).relative_to(sys.prefix)
        python = str(in_venv) if sys.prefix != sys.base_prefix else sys.executable
        env = {**env, "PYTHONPATH": str(copy / "src")}
        if not nobody_can_import(python, env):
            pytest.skip(
                f"nobody cannot read the copy of {source} and {sys.prefix} either (files "
                "private to their owner?): run the tests from a checkout others can read"
            )
        yield [*DROP, python, "-m", "linreg_ops"], env
    finally:
        subprocess.run(["rm", "-rf", str(copy)], check=False)


@pytest.fixture
def as_user(command):
    """``as_user(*ARGS)``: ``linreg-ops ARGS`` as an unprivileged user."""
    prefix, env = command

    def run(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*prefix, *map(str, args)],
            capture_output=True, text=True, timeout=120, check=False, env=env,
            cwd=tempfile.gettempdir(),
        )  # fmt: skip

    return run


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
    pipeline.run(sources.file_source(source, "y"), models, shared_dir / "reports")
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


def test_reading_a_folder_you_cannot_write_works(as_user, published):
    models, _ = published
    result = as_user("predict", "--models-dir", models)
    assert result.returncode == 0, result.stderr
    assert "Model: float (version 1" in result.stdout


def test_writing_to_a_folder_you_cannot_write_is_one_line(as_user, published):
    models, source = published
    before = sorted(p.name for p in models.iterdir())
    one_line_exit_2(
        as_user("train", "--data", source, "--target", "y", "--models-dir", models),
        f"cannot write to {models}: Permission denied",
    )
    assert sorted(p.name for p in models.iterdir()) == before


def test_an_output_you_cannot_write_is_one_line(as_user, published, shared_dir):
    models, source = published
    locked = shared_dir / "locked"
    locked.mkdir(mode=0o755)
    one_line_exit_2(
        as_user("predict", "--models-dir", models, "--input", source, "--output", locked / "p.csv"),
        "cannot write",
    )
    assert list(locked.iterdir()) == []


def test_a_reports_folder_you_cannot_write_is_refused_before_any_work(
    as_user, published, shared_dir
):
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


def test_an_artifact_you_cannot_read_is_one_line(as_user, published):
    models, _ = published
    path = store.open_version(models).path / "model.json"
    path.chmod(0)
    try:
        one_line_exit_2(as_user("predict", "--models-dir", models), "Permission denied")
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
