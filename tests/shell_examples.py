"""Run documented shell examples as a user would: in bash, from a checkout-like folder.

Shared by the tests that keep ``--help`` examples (tests/cli/test_cli_help.py) and the
README's and docs/ pages' examples (tests/project/test_docs_examples.py) true. A folder holds
``models/`` (a copy of the session's trained California version) and ``examples/``; a
``linreg-ops serve`` or ``make serve`` line starts a real server on a free port, which the
next commands reach at ``localhost:8000`` (rewritten to that port).
"""

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from helpers import Server, free_port, start_server

REPO = Path(__file__).resolve().parents[1]
SERVE = re.compile(r"^(linreg-ops serve|make serve)\b")
DOC_PORT = "localhost:8000"


def workspace(folder: Path, trained_dir: Path) -> Path:
    """A checkout-like folder: the trained models and the example data."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(trained_dir, folder / "models", symlinks=True)
    shutil.copytree(REPO / "examples", folder / "examples")
    return folder


def environment(home: Path) -> dict[str, str]:
    """The test's interpreter's ``linreg-ops`` first on PATH; no inherited models folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINREG_OPS_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    return env


@dataclass
class Shell:
    """Runs one example after another in ``cwd``; keeps a started server until closed."""

    cwd: Path
    env: dict[str, str]
    servers: list[Server] = field(default_factory=list)
    port: int = 0

    def run(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        if SERVE.match(command):
            self._serve(command)
            return subprocess.CompletedProcess(command, 0, "", "")
        if self.port:
            command = command.replace(DOC_PORT, f"localhost:{self.port}")
        return subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip

    def _serve(self, command: str) -> None:
        """``make serve`` is ``linreg-ops serve`` on models/ (the Makefile's own recipe)."""
        command = command.replace("make serve", "linreg-ops serve --models-dir models", 1)
        self.port = free_port()
        env = {**self.env, "LINREG_OPS_PORT": str(self.port)}
        server = start_server(
            ["bash", "-c", f"exec {command}"], self.port, timeout=60, cwd=self.cwd, env=env
        )
        self.servers.append(server)

    def close(self) -> None:
        for server in self.servers:
            server.stop()


@contextlib.contextmanager
def shell(cwd: Path) -> Iterator[Shell]:
    session = Shell(cwd, environment(cwd))
    try:
        yield session
    finally:
        session.close()


def fenced_examples(text: str, marker: str = "runnable") -> list[str]:
    """The commands of every ```` ```bash runnable ```` block of a Markdown page, in order
    (a line ending in a backslash continues; ``#`` lines are comments)."""
    commands = []
    for block in re.findall(rf"```(?:bash|sh|console) {marker}\n(.*?)```", text, re.DOTALL):
        for command in re.split(r"(?<!\\)\n", block):
            command = command.replace("\\\n", " ").strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands
