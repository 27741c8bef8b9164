"""docs/lifecycle.md, run as written: each ```console block's ``$`` commands run in order in
one empty folder (California Housing, ``ci/`` beside it), and what they print must be what
the page shows, times aside. ``python tests/docs/test_lifecycle_doc.py`` rewrites the page's
output from a fresh run."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "lifecycle.md"
BLOCK = re.compile(r"```console\n(.*?)```", re.DOTALL)
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\+00:00)?")
USER = "alice"  # history names the user; the test runs as this one


def commands(text: str) -> list[list[str]]:
    """Each block's commands (lines starting with ``$ ``)."""
    return [
        [line[2:] for line in block.splitlines() if line.startswith("$ ")]
        for block in BLOCK.findall(text)
    ]


def run_page(text: str, folder: Path) -> list[str]:
    """Each block as the session prints it: ``$ command`` then its output (and its exit
    status when it is not 0)."""
    shutil.copytree(REPO / "ci", folder / "ci")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "LOGNAME": USER,
        "COLUMNS": "100",
    }
    env.pop("LINREG_OPS_MODELS_DIR", None)
    blocks = []
    for block in commands(text):
        lines = []
        for command in block:
            done = subprocess.run(
                ["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True,
                timeout=600, check=False,
            )  # fmt: skip
            lines.append(f"$ {command}")
            lines.extend((done.stdout + done.stderr).rstrip("\n").splitlines())
            if done.returncode != 0:
                lines.append(f"[exit {done.returncode}]")
        blocks.append("\n".join(lines) + "\n")
    return blocks


def normalized(block: str) -> str:
    return TIME.sub("<time>", block)


def test_the_lifecycle_page_is_what_the_commands_print(tmp_path):
    text = PAGE.read_text()
    shown = BLOCK.findall(text)
    assert len(shown) >= 6
    printed = run_page(text, tmp_path)
    for page, fresh in zip(shown, printed, strict=True):
        assert normalized(page) == normalized(fresh)


if __name__ == "__main__":  # refresh the page's output
    text = PAGE.read_text()
    with tempfile.TemporaryDirectory() as folder:
        printed = iter(run_page(text, Path(folder)))
    PAGE.write_text(BLOCK.sub(lambda _: f"```console\n{next(printed)}```", text))
