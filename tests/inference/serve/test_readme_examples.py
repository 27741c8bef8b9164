"""Every curl example in the README and docs/ pages, run as written against a real
``linreg-ops serve``: one per route, each answering 2xx with the body the page promises."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import served
from linreg_ops._version import __version__

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def curl_examples() -> list[str]:
    """The pages' curl commands (a command may continue over lines ending in a backslash)."""
    text = "\n".join(page.read_text() for page in PAGES)
    commands = []
    for block in re.findall(r"```bash(?: runnable)?\n(.*?)```", text, re.DOTALL):
        for command in re.split(r"(?<!\\)\n", block):
            command = command.replace("\\\n", " ").strip()
            # /v2 examples (some show refusals) are run by test_docs_oip.py against their outputs
            # other ports are other pages' own servers (docs/lifecycle.md's registry one)
            if command.startswith("curl ") and "/v2" not in command and "localhost:8000" in command:
                commands.append(command)
    return commands


def test_the_readme_has_a_curl_example_per_route():
    from linreg_ops.inference.serve import ServeSettings, create_app

    routes = set(create_app(ServeSettings(models_dir=Path("unused"))).openapi()["paths"]) | {
        "/docs"
    }
    shown = {re.search(r"localhost:8000(/[a-z]*)", c).group(1) for c in curl_examples()}
    assert "/redoc" in shown
    assert routes <= shown, f"no curl example for {sorted(routes - shown)}"


@pytest.fixture(scope="module")
def server(trained_dir):
    if shutil.which("curl") is None:
        pytest.fail("the README's examples need curl: apt-get install curl")
    with served(trained_dir) as running:
        yield running.port


@pytest.mark.parametrize("command", curl_examples())
def test_each_readme_curl_example_works(server, command):
    command = command.replace("localhost:8000", f"localhost:{server}")
    result = subprocess.run(
        ["bash", "-c", command.replace("curl ", "curl -sS --fail-with-body ", 1)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    if "/docs" in command:
        assert "SwaggerUIBundle" in result.stdout
    elif "/redoc" in command:
        assert "redoc" in result.stdout.lower()
    elif "/ping" in command:
        assert result.stdout == "\n"
    elif "/version" in command:
        assert result.stdout == __version__
    elif "/metrics" in command:
        assert "# TYPE linreg_ops_requests_total counter" in result.stdout
    else:
        body = json.loads(result.stdout)
        if "/predict" in command or "/invocations" in command:
            assert body["predictions"]
            assert all(isinstance(p, float) for p in body["predictions"])
