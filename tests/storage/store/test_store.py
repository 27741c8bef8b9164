"""The store: versions published whole, a lock for writers, reads that only trust regular
files of the recorded size and SHA-256, and one-line refusals for everything else."""

import json
import os
import threading
import time
from pathlib import Path

import pytest

from linreg_ops.errors import ArtifactError, InputError, StoreBusyError
from linreg_ops.storage import store

SECTIONS = {"training_data": {}, "split": {}, "versions": {}, "known_answers": {}}


def publish(models_dir: Path, files: dict[str, bytes], **kwargs) -> store.Version:
    with store.writer(models_dir, "test publish", 1.0) as writer:
        return writer.publish(files, SECTIONS, **kwargs)


def test_versions_are_numbered_immutable_and_current(tmp_path):
    first = publish(tmp_path, {"model.json": b"one"})
    second = publish(tmp_path, {"model.json": b"two"}, parent=first)
    assert (first.number, second.number) == (1, 2)
    assert os.readlink(tmp_path / "current") == "versions/2"
    assert (tmp_path / "model.json").read_bytes() == b"two"  # the seed's path, through current
    assert os.readlink(tmp_path / "model.json") == "current/model.json"
    assert (tmp_path / "versions" / "1" / "model.json").read_bytes() == b"one"
    assert (tmp_path / "versions" / "2" / "model.json").stat().st_mode & 0o222 == 0
    assert store.open_version(tmp_path).manifest.parent == 1
    assert store.open_version(tmp_path, 1).number == 1
    assert list((tmp_path / ".staging").iterdir()) == []


def test_carried_artifacts_are_shared_not_rewritten(tmp_path):
    first = publish(tmp_path, {"model.json": b"m", "test_split.csv": b"t"})
    second = publish(tmp_path, {"metrics.json": b"x"}, parent=first, carry=("model.json",))
    assert second.has("model.json")
    assert not second.has("test_split.csv")
    assert (second.path / "model.json").stat().st_ino == (first.path / "model.json").stat().st_ino
    assert second.sha256("model.json") == first.sha256("model.json")


def test_a_failed_verification_publishes_nothing(tmp_path):
    publish(tmp_path, {"model.json": b"good"})

    def refuse(version):
        raise ArtifactError("not good enough")

    with pytest.raises(ArtifactError, match="not good enough"):
        publish(tmp_path, {"model.json": b"bad"}, verify=refuse)
    assert store.open_version(tmp_path).number == 1
    assert (tmp_path / "model.json").read_bytes() == b"good"


def test_the_next_writer_removes_what_a_killed_writer_left(tmp_path):
    publish(tmp_path, {"model.json": b"one"})
    (tmp_path / ".staging" / "7-12345").mkdir()
    (tmp_path / ".staging" / "7-12345" / "model.json").write_bytes(b"half")
    (tmp_path / ".link-current-12345").symlink_to("versions/9")
    publish(tmp_path, {"model.json": b"two"})
    assert list((tmp_path / ".staging").iterdir()) == []
    assert not (tmp_path / ".link-current-12345").is_symlink()


def test_a_second_writer_waits_then_names_the_holder(tmp_path):
    with store.writer(tmp_path, "linreg-ops train --data big.csv", 1.0):
        started = time.monotonic()
        with pytest.raises(StoreBusyError) as caught, store.writer(tmp_path, "other", 0.3):
            pass
        assert time.monotonic() - started >= 0.3
    message = str(caught.value)
    assert f"PID {os.getpid()} (linreg-ops train --data big.csv" in message
    assert "--lock-timeout" in message


def test_a_waiting_writer_gets_the_lock_when_it_is_released(tmp_path):
    order = []

    def hold():
        with store.writer(tmp_path, "first", 1.0):
            order.append("first in")
            time.sleep(0.3)
            order.append("first out")

    thread = threading.Thread(target=hold)
    thread.start()
    time.sleep(0.1)
    with store.writer(tmp_path, "second", 5.0):
        order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"]


def test_missing_folder_or_model_says_train_first(tmp_path):
    with pytest.raises(
        ArtifactError, match=r"no model in .*: train one first \(linreg-ops train\)"
    ):
        store.open_version(tmp_path / "nothing")


def test_the_flat_layout_of_0_1_asks_for_a_retrain(tmp_path):
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(ArtifactError, match=r"flat layout of linreg-ops 0\.1: retrain"):
        store.open_version(tmp_path)


@pytest.mark.parametrize("target", ["../elsewhere", "versions/../../x", "/etc", "versions/1/.."])
def test_current_must_point_to_a_version(tmp_path, target):
    publish(tmp_path, {"model.json": b"m"})
    (tmp_path / "current").unlink()
    (tmp_path / "current").symlink_to(target)
    with pytest.raises(ArtifactError, match="not to a version"):
        store.open_version(tmp_path)


def test_a_copy_that_followed_the_links_still_reads(tmp_path):
    import shutil

    publish(tmp_path / "models", {"model.json": b"m"})
    copy = Path(shutil.copytree(tmp_path / "models", tmp_path / "copy", symlinks=False))
    version = store.open_version(copy)
    assert store.read_artifact(version, "model.json") == b"m"


def test_a_copied_current_serves_its_version_by_number_and_refuses_writers(tmp_path):
    """Attack C5: ``current`` copied as a folder, without ``versions/``: version 1 by number
    (what a pinned service worker asks for) is that folder; a writer is refused, not mixed."""
    import shutil

    publish(tmp_path / "models", {"model.json": b"m"})
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "models" / "current", copy / "current", symlinks=False)
    assert store.open_version(copy, 1).path == copy / "current"
    with pytest.raises(ArtifactError, match="has no version 2"):
        store.open_version(copy, 2)
    with pytest.raises(ArtifactError, match="copied folder, not a link"):
        publish(copy, {"model.json": b"n"})


def test_a_version_folder_must_hold_its_own_number(tmp_path):
    publish(tmp_path, {"model.json": b"m"})
    publish(tmp_path, {"model.json": b"n"})
    (tmp_path / "current").unlink()
    os.rename(tmp_path / "versions" / "1", tmp_path / "versions" / "3")
    (tmp_path / "current").symlink_to("versions/3")
    with pytest.raises(ArtifactError, match="says version 1, not 3"):
        store.open_version(tmp_path)


def test_a_linked_lock_file_is_refused_and_its_target_left_alone(tmp_path):
    """Attack B3: the lock was opened through a symlink and truncated on release."""
    publish(tmp_path / "models", {"model.json": b"m"})
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    (tmp_path / "models" / ".lock").unlink()
    (tmp_path / "models" / ".lock").symlink_to(precious)
    with pytest.raises(ArtifactError, match=r"\.lock is a symbolic link"):
        publish(tmp_path / "models", {"model.json": b"n"})
    assert precious.read_text() == "keep me"


def test_a_linked_staging_folder_is_removed_not_emptied(tmp_path):
    """Attack B3: the stale-staging clean-up followed a ``.staging`` symlink and deleted
    everything in the folder it pointed to."""
    publish(tmp_path / "models", {"model.json": b"m"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "data.csv").write_text("a,b\n1,2\n")
    staging = tmp_path / "models" / ".staging"
    staging.rmdir()
    staging.symlink_to(elsewhere)
    publish(tmp_path / "models", {"model.json": b"n"})
    assert (elsewhere / "data.csv").read_text() == "a,b\n1,2\n"
    assert not staging.is_symlink()


def test_a_linked_versions_folder_is_refused(tmp_path):
    """Attack B3: ``versions`` as a link let a writer publish, and readers read, elsewhere."""
    publish(tmp_path / "models", {"model.json": b"m"})
    versions = tmp_path / "models" / "versions"
    os.rename(versions, tmp_path / "outside")
    versions.symlink_to(tmp_path / "outside")
    with pytest.raises(ArtifactError, match="versions is not a folder"):
        store.open_version(tmp_path / "models")
    with pytest.raises(ArtifactError, match="versions is not a folder"):
        publish(tmp_path / "models", {"model.json": b"n"})
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == ["1"]


def test_a_writer_that_times_out_leaves_the_holders_name(tmp_path):
    with store.writer(tmp_path, "the holder", 1.0):
        with pytest.raises(StoreBusyError), store.writer(tmp_path, "late", 0.1):
            pass
        with (
            pytest.raises(StoreBusyError, match=r"\(the holder, since"),
            store.writer(tmp_path, "later", 0.1),
        ):
            pass


def _version_with(tmp_path: Path, replace) -> store.Version:
    version = publish(tmp_path, {"model.json": b'{"a": 1}'})
    path = version.path / "model.json"
    path.chmod(0o644)
    path.unlink()
    replace(path)
    return version


@pytest.mark.parametrize(
    ("replace", "words"),
    [
        (lambda p: p.symlink_to("/dev/zero"), "symbolic link; only regular files are read"),
        (lambda p: os.mkfifo(p), "not a regular file"),
        (lambda p: p.mkdir(), "not a regular file"),
        (lambda p: p.write_bytes(b'{"a": 2}'), "does not match its SHA-256"),
        (lambda p: p.write_bytes(b'{"a": 1}   '), "has 11 bytes, more than expected (8)"),
        (lambda p: None, "is missing"),
    ],
    ids=["symlink-to-dev-zero", "fifo", "folder", "edited", "grown", "deleted"],
)
def test_only_the_recorded_regular_file_is_read(tmp_path, replace, words):
    version = _version_with(tmp_path, replace)
    started = time.monotonic()
    with pytest.raises(ArtifactError) as caught:
        store.read_artifact(version, "model.json")
    assert time.monotonic() - started < 5, "a read must never block"
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("manifest", "words"),
    [
        (b"[]", "expected a JSON object"),
        (b"null", "expected a JSON object"),
        (b"{}", "no integer schema_version"),
        (b"", "is not valid JSON"),
        (b"{" * 3000, "is not valid JSON"),
        (
            lambda m: {**m, "artifacts": {"model.json": {"sha256": 5, "bytes": 8}}},
            "artifacts.model.json.sha256",
        ),
        (lambda m: {**m, "schema_version": 99}, "written by a newer linreg-ops"),
        (lambda m: {**m, "version": 0}, "version: Input should be greater than or equal to 1"),
    ],
)
def test_a_broken_manifest_is_one_line(tmp_path, manifest, words):
    version = publish(tmp_path, {"model.json": b'{"a": 1}'})
    path = version.path / "manifest.json"
    if callable(manifest):
        manifest = json.dumps(manifest(json.loads(path.read_bytes()))).encode()
    path.chmod(0o644)
    path.write_bytes(manifest)
    with pytest.raises(ArtifactError) as caught:
        store.open_version(tmp_path)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_unlisted_artifact_says_what_to_run(tmp_path):
    version = publish(tmp_path, {"model.json": b"m"})
    with pytest.raises(
        ArtifactError,
        match=r"quantized_model\.json is not part of version 1 .*run linreg-ops quantize",
    ):
        store.read_artifact(version, "quantized_model.json")


def test_an_unwritable_models_folder_is_one_line(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match="cannot write to"):
        publish(blocker / "models", {"model.json": b"m"})


def test_atomic_write_leaves_the_old_file_or_the_new_one(tmp_path, monkeypatch):
    path = store.atomic_write(tmp_path / "report.md", b"old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(InputError, match="No space left on device"):
        store.atomic_write(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"], "temporary file left behind"


def test_a_hard_linked_lock_file_is_refused_and_its_target_left_alone(tmp_path):
    """Second attack: a ``.lock`` hard-linked to a file outside had that file emptied."""
    publish(tmp_path / "models", {"model.json": b"m"})
    precious = tmp_path / "precious.csv"
    precious.write_text("a,b\n1,2\n")
    (tmp_path / "models" / ".lock").unlink()
    os.link(precious, tmp_path / "models" / ".lock")
    with pytest.raises(ArtifactError, match="not a regular file of its own"):
        publish(tmp_path / "models", {"model.json": b"n"})
    assert precious.read_text() == "a,b\n1,2\n"


def test_stray_version_folders_cannot_make_the_next_version_unreadable(tmp_path):
    """Second attack: ``versions/999999999`` made the next version 1000000000, a number
    ``current`` may not name, so every reader refused the folder."""
    publish(tmp_path, {"model.json": b"m"})
    (tmp_path / "versions" / "1000000000").mkdir()  # not a version number: ignored
    (tmp_path / "versions" / "007").mkdir()  # nor this
    assert publish(tmp_path, {"model.json": b"n"}).number == 2
    (tmp_path / "versions" / "999999999").mkdir()
    with pytest.raises(ArtifactError, match="already holds version 999999999, the last one"):
        publish(tmp_path, {"model.json": b"o"})
    assert store.open_version(tmp_path).number == 2


def test_a_folder_named_like_a_half_made_link_is_left_alone(tmp_path):
    """Second attack: a directory ``.link-x`` made every writer fail with a traceback."""
    publish(tmp_path, {"model.json": b"m"})
    (tmp_path / ".link-x").mkdir()
    (tmp_path / ".link-x" / "keep").write_text("mine")
    assert publish(tmp_path, {"model.json": b"n"}).number == 2
    assert (tmp_path / ".link-x" / "keep").read_text() == "mine"
