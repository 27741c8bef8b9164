"""Files written to paths the user names (reports, exports, exports.json): only a regular
file, or nothing, is ever replaced. A FIFO, a device, a folder or a socket there is refused
in one line and left as it was; a link is written through, not replaced; a file where a
folder of the path should be is one line, not a traceback from the cleanup."""

import os
import socket
import stat
from pathlib import Path

import pytest

from helpers import device_node, snapshot
from linreg_ops.errors import InputError
from linreg_ops.storage import store


def make(kind: str, path: Path) -> int:
    """Put a ``kind`` node at ``path``; its file type, to check it is still there after."""
    if kind == "a FIFO":
        os.mkfifo(path)
    elif kind == "a character device":
        device_node(path)
    elif kind == "a folder":
        path.mkdir()
    else:
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(str(path))
    return stat.S_IFMT(path.lstat().st_mode)


KINDS = ["a FIFO", "a character device", "a folder", "a socket"]


@pytest.mark.parametrize("kind", KINDS)
def test_atomic_write_never_renames_over_what_is_not_a_file(tmp_path, kind):
    path = tmp_path / "report.md"
    file_type = make(kind, path)
    with pytest.raises(InputError, match=f"cannot write {path}: it is {kind}, not a file"):
        store.atomic_write(path, b"new")
    assert stat.S_IFMT(path.lstat().st_mode) == file_type, f"{kind} was replaced"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"], "a temporary file was left"


@pytest.mark.parametrize("kind", KINDS)
def test_atomic_write_refuses_it_behind_a_link_too(tmp_path, kind):
    file_type = make(kind, tmp_path / "node")
    (tmp_path / "report.md").symlink_to("node")
    with pytest.raises(InputError, match=f"it is {kind}, not a file"):
        store.atomic_write(tmp_path / "report.md", b"new")
    assert stat.S_IFMT((tmp_path / "node").lstat().st_mode) == file_type


def test_atomic_write_writes_through_a_link(tmp_path):
    (tmp_path / "real.md").write_bytes(b"old")
    (tmp_path / "report.md").symlink_to("real.md")
    (tmp_path / "new.md").symlink_to("made/by/the/write.md")  # dangling: the file is made
    store.atomic_write(tmp_path / "report.md", b"new")
    store.atomic_write(tmp_path / "new.md", b"made")
    assert (tmp_path / "report.md").is_symlink(), "the link was replaced by a file"
    assert (tmp_path / "real.md").read_bytes() == b"new"
    assert (tmp_path / "made" / "by" / "the" / "write.md").read_bytes() == b"made"


@pytest.mark.parametrize("below", ["x.onnx", "sub/x.onnx"])
def test_a_file_where_a_folder_should_be_is_one_line(tmp_path, below):
    """Attack: ``export --output <existing file>/x.onnx`` was a traceback from the cleanup."""
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(InputError, match=f"{tmp_path / 'afile'} is not a folder"):
        store.atomic_write(tmp_path / "afile" / below, b"data")
    assert (tmp_path / "afile").read_text() == "mine"


@pytest.mark.parametrize("kind", ["a FIFO", "a character device", "a socket"])
def test_a_reports_folder_that_is_not_a_folder_is_one_line(tmp_path, kind):
    file_type = make(kind, tmp_path / "reports")
    with pytest.raises(InputError, match=f"cannot write to .*reports: it is {kind}, not a folder"):
        store.check_writable(tmp_path / "reports")
    assert stat.S_IFMT((tmp_path / "reports").lstat().st_mode) == file_type


def test_run_refuses_a_reports_device_before_any_work(run_cli, models_copy, regression_csv):
    device = device_node(regression_csv.parent / "reports")
    before = snapshot(models_copy)
    result = run_cli(
        "run", "--data", regression_csv, "--target", "y", "--models-dir", models_copy,
        "--reports-dir", device,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        f"linreg-ops run: error: cannot write to {device}: it is a character device, not a folder"
    ]
    assert stat.S_ISCHR(device.lstat().st_mode)
    assert snapshot(models_copy) == before


def test_a_report_that_cannot_be_written_publishes_nothing(run_cli, models_copy, regression_csv):
    """The reports are written (beside their places) before the version is published: a
    report that cannot be written is exit 2 with the models folder as it was."""
    reports = regression_csv.parent / "reports"
    reports.mkdir()
    os.mkfifo(reports / "model_card.md")
    (reports / "report.md").write_text("the previous report")
    before = snapshot(models_copy)
    result = run_cli(
        "run", "--data", regression_csv, "--target", "y", "--models-dir", models_copy,
        "--reports-dir", reports, "--max-r2-drop", "none",
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"linreg-ops run: error: cannot write {reports / 'model_card.md'}: it is a FIFO, not a file"
    ]
    assert snapshot(models_copy) == before, "a version was published"
    assert stat.S_ISFIFO((reports / "model_card.md").lstat().st_mode)
    assert sorted(p.name for p in reports.iterdir()) == ["model_card.md", "report.md"]
    assert (reports / "report.md").read_text() == "the previous report"


def test_the_sweep_refuses_a_reports_file_in_one_line(run_cli, models_copy, tmp_path):
    (tmp_path / "reports").write_text("mine")
    result = run_cli(
        "quantize", "--sweep", "--models-dir", models_copy, "--reports-dir", tmp_path / "reports"
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{tmp_path / 'reports'} is not a folder" in lines[0]
    assert (tmp_path / "reports").read_text() == "mine"
