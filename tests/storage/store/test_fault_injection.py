"""Break ``train``, ``quantize`` and ``run`` at each of their file operations in turn —
every k, not a sample — by a SIGKILL, or by the operation failing with ENOSPC or EDQUOT;
and run them on a real tmpfs short of inodes or pages at every budget up to what they need.

A kill leaves one complete version: the previous one, or (once the pointer has moved) the
new one; the next writer cleans up whatever the killed one left. A failure is exit 2 with
one line and the folder exactly as it was, or — once ``current`` names the new version —
exit 0 with that version whole (seed paths it could not link are the next writer's job)."""

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from helpers import write_csv
from linreg_ops import pipeline
from linreg_ops.training import sources

pytestmark = pytest.mark.slow
DRIVER = Path(__file__).with_name("fault_driver.py")
SPACE_ERRORS = {"ENOSPC": "No space left on device", "EDQUOT": "Disk quota exceeded"}


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """Models folders to start from: none, version 1 (train) and versions 1, 2 (quantize);
    and the second data set the commands train on."""
    folder = tmp_path_factory.mktemp("template")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=400)
    first = write_csv(folder / "first.csv", ["a", "b", "c", "y"], np.column_stack([X, y]).tolist())
    second = write_csv(
        folder / "second.csv", ["a", "b", "c", "y"], np.column_stack([X, -y]).tolist()
    )
    (folder / "empty").mkdir()
    pipeline.train(sources.file_source(first, "y"), folder / "trained")
    pipeline.train(sources.file_source(first, "y"), folder / "quantized")
    pipeline.quantize(folder / "quantized")
    return folder, second


COMMANDS = {
    "train": ["train", "--data", "{data}", "--target", "y", "--models-dir", "{models}"],
    "quantize": ["quantize", "--dtype", "int6", "--max-r2-drop", "none", "--models-dir", "{models}"],
    "run": ["run", "--data", "{data}", "--target", "y", "--models-dir", "{models}",
            "--reports-dir", "{work}/reports", "--max-r2-drop", "none"],
}  # fmt: skip
# (command, template, the version it publishes): a first train links every seed path after
# the switch, a first quantize links the quantized ones, a run also writes its reports.
CASES = [("train", "empty", 1), ("train", "quantized", 3), ("quantize", "trained", 2),
         ("run", "quantized", 3)]  # fmt: skip
# On a real tmpfs, a train that only unlinks seed paths adds nothing: left to the ENOSPC sweep.
BUDGET_CASES = [case for case in CASES if case[:2] != ("train", "quantized")]


@pytest.fixture(scope="module")
def driver() -> Iterator[subprocess.Popen]:
    """One fault driver per test process (``fault_driver.py serve``): it imports linreg-ops,
    scikit-learn, pyarrow and matplotlib once, and forks a child for each case."""
    process = subprocess.Popen(
        [sys.executable, str(DRIVER), "serve"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        # a run must not log to an MLflow server an earlier test left in the environment
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
    )  # fmt: skip
    try:
        yield process
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def drive(driver, mode: str, templates, command: str, template: str, work: Path) -> list[dict]:
    folder, second = templates
    argv = [a.replace("{data}", str(second)) for a in COMMANDS[command]]
    driver.stdin.write(json.dumps([mode, str(folder / template), str(work), argv]) + "\n")
    driver.stdin.flush()
    watchdog = threading.Timer(900, driver.kill)  # a hung case ends the driver, not the run
    watchdog.start()
    try:
        lines = []
        while (line := driver.stdout.readline()) and "done" not in (answer := json.loads(line)):
            lines.append(answer)
    finally:
        watchdog.cancel()
    errors = work / "driver.stderr"
    assert line, f"the driver died: {errors.read_text()[-3000:] if errors.exists() else ''}"
    assert answer["done"] == 0, errors.read_text()[-3000:]
    return lines


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_kill_after_any_file_operation_leaves_one_complete_version(
    driver, templates, tmp_path, command
):
    lines = drive(driver, "kill", templates, command, "quantized", tmp_path / "work")
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


def check_outcome(t: dict, new: int, words: str, where: str) -> None:
    """Exit 0 with version ``new`` whole, or exit 2 in one line with nothing changed."""
    assert "Traceback" not in t["stderr"], f"{where}: {t['stderr']}"
    if t["status"] == 0:
        assert t["error"] is None, f"{where}: exit 0, but {t['error']}"
        assert t["current"] == new, f"{where}: exit 0, but version {t['current']} is current"
        assert t["leftovers"] == [], f"{where}: exit 0 left {t['leftovers']}"
    else:
        lines = t["stderr"].strip().splitlines()
        assert len(lines) == 1, f"{where}: {t['stderr']}"
        assert words in lines[0], f"{where}: {lines[0]}"
        assert t["unchanged"], f"{where}: exit 2 ({lines[0]}), but the folder changed"


# A quota fails the same calls as a full disk, and is handled by the same code: EDQUOT is
# tried on the case the issue reported (quantize after train), ENOSPC on every case.
@pytest.mark.parametrize(
    ("command", "template", "new", "error"),
    [*((*case, "ENOSPC") for case in CASES), ("quantize", "trained", 2, "EDQUOT")],
)
def test_a_full_disk_at_any_file_operation_is_exit_2_or_a_whole_version(
    driver, templates, tmp_path, command, template, new, error
):
    lines = drive(driver, error, templates, command, template, tmp_path / "work")
    dry, trials = lines[0], lines[1:]
    assert (dry["status"], dry["current"], dry["error"]) == (0, new, None), dry
    assert dry["seed_links_ok"]
    assert len(trials) == dry["count"] >= 15, "one trial per file operation"
    for t in trials:
        where = (
            f"{command}: operation {t['k']} of {dry['count']} ({t['operation']}) failing: {error}"
        )
        check_outcome(t, new, SPACE_ERRORS[error], where)
        if t["status"] == 0:
            assert t["files"] == dry["files"], f"{where}: exit 0, but not the whole run"
        if "next_writer" in t:
            assert t["next_writer"]["status"] == 0, where
            assert t["next_writer"]["seed_links_ok"], f"{where}: the next writer left them"
    outcomes = [t["status"] for t in trials]
    print(f"\n{command} ({template}), {error} at each of {len(trials)} operations: "
          f"{outcomes.count(2)} exit 2, {outcomes.count(0)} exit 0, "
          f"{sum('next_writer' in t for t in trials)} repaired by the next writer")  # fmt: skip
    assert 2 in outcomes, "a failure before the switch refuses the command"
    assert outcomes[-1] == 0, "the last operation comes after the switch"


@pytest.fixture(scope="module")
def can_mount():
    """Mounting a tmpfs needs root (or CAP_SYS_ADMIN): skip, saying so, where it is denied."""
    if os.geteuid() != 0:
        pytest.skip("not root: a tmpfs cannot be mounted to starve the commands of space")
    with tempfile.TemporaryDirectory() as folder:
        tried = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=16", "tmpfs", folder],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if tried.returncode != 0:
            pytest.skip(f"mount -t tmpfs is not permitted here: {tried.stderr.strip()}")
        subprocess.run(["umount", folder], check=True)


@pytest.mark.parametrize("resource", ["inodes", "bytes"])
@pytest.mark.parametrize(("command", "template", "new"), BUDGET_CASES)
def test_every_space_budget_is_exit_2_or_a_whole_version(
    driver, templates, tmp_path, can_mount, command, template, new, resource
):
    trials = drive(driver, resource, templates, command, template, tmp_path / "work")
    unit = "pages" if resource == "bytes" else "inodes"
    for t in trials:
        where = f"{command} ({template}) on a tmpfs with {t['budget']} free {unit}"
        check_outcome(t, new, "No space left on device", where)
    outcomes = [t["status"] for t in trials]
    first = outcomes.index(0)
    print(f"\n{command} ({template}): exit 2 with {trials[first - 1]['budget']} free {unit}, "
          f"exit 0 from {trials[first]['budget']} (budgets {[t['budget'] for t in trials]})")  # fmt: skip
    assert outcomes[0] == 2
    assert outcomes[-3:] == [0, 0, 0], "more room never turns success into failure"
