"""docs/operating.md's drift example, run as written: its commands in a folder holding the
models, its printed table compared with what the command prints."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
DOC = Path(__file__).resolve().parents[2] / "docs" / "operating.md"


def blocks(kind: str) -> list[str]:
    """The fenced blocks of language ``kind`` ("" for none), in order."""
    found, current, language = [], None, None
    text = DOC.read_text()
    for line in text[text.index("\n## Drift\n") :].splitlines():  # the drift section's
        if line.startswith("```"):
            if current is None:
                current, language = [], line[3:].strip()
            else:
                if language == kind:
                    found.append("\n".join(current) + "\n")
                current = None
        elif current is not None:
            current.append(line)
    return found


def test_the_drift_example_prints_what_the_doc_shows(trained_dir, tmp_path):
    shutil.copytree(trained_dir, tmp_path / "models", symlinks=True)
    commands = next(block for block in blocks("bash") if "awk" in block)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = blocks("")[0]

    def same_version(text: str) -> str:  # make run publishes version 1, the fixture 2
        return re.sub(r"of version \d+", "of version N", text).strip()

    assert same_version(result.stdout) == same_version(shown)
    for name in ("drift.md", "drift.png", "drift.json"):
        assert (tmp_path / "reports" / name).exists()
