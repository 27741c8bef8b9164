"""``helpers.build_once``, which lets pytest-xdist workers share one trained models folder:
racing processes build it once, and a build that died part-way is never reused."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import build_once

TESTS = Path(__file__).resolve().parents[1]


def racer(run_dir: Path, log: Path, then: str = "") -> subprocess.Popen:
    """A process that asks for ``run_dir/shared``, whose build logs its pid, sleeps and writes
    ``made``; ``then`` runs inside the build after the sleep (to die there, say)."""
    code = textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        sys.path.insert(0, {str(TESTS)!r})
        from helpers import build_once

        def build(folder):
            with open({str(log)!r}, "a") as f:
                f.write(f"{{os.getpid()}}\\n")
            time.sleep(0.5)
            {then or "pass"}
            (folder / "made").write_text("whole")

        print(build_once(Path({str(run_dir)!r}), "shared", build))
    """)
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_racing_processes_build_once_and_share_the_folder(tmp_path):
    log = tmp_path / "builds.log"
    processes = [racer(tmp_path, log) for _ in range(3)]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], outputs
    assert len(log.read_text().splitlines()) == 1, "exactly one process built the folder"
    assert {out.strip() for out, _ in outputs} == {str(tmp_path / "shared")}
    assert (tmp_path / "shared" / "made").read_text() == "whole"


def test_a_build_killed_part_way_is_redone_by_the_next_caller(tmp_path):
    log = tmp_path / "builds.log"
    killed = racer(tmp_path, log, then="(folder / 'partial').touch(); os.kill(os.getpid(), 9)")
    killed.communicate(timeout=120)
    assert killed.returncode == -9
    assert (tmp_path / "shared" / "partial").exists()

    folder = build_once(tmp_path, "shared", lambda f: (f / "made").write_text("whole"))
    assert sorted(p.name for p in folder.iterdir()) == ["made"], "the partial build was wiped"


def test_a_build_that_raised_is_redone_and_a_finished_one_is_reused(tmp_path):
    def failing(folder: Path) -> None:
        (folder / "partial").touch()
        raise RuntimeError("build failed")

    with pytest.raises(RuntimeError, match="build failed"):
        build_once(tmp_path, "shared", failing)
    calls = []

    def build(folder: Path) -> None:
        calls.append(folder)
        (folder / "made").write_text("whole")

    first = build_once(tmp_path, "shared", build)
    second = build_once(tmp_path, "shared", build)
    assert first == second
    assert len(calls) == 1
    assert sorted(p.name for p in first.iterdir()) == ["made"]
