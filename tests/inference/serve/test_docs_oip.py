"""docs/operating.md's Open Inference Protocol examples, run as written against a real
``linreg-ops serve`` of the shared California models: each curl command and the tritonclient
script prints exactly the output the page shows under it."""

import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import served

pytestmark = pytest.mark.slow
PAGE = Path(__file__).resolve().parents[3] / "docs" / "operating.md"


def examples() -> list[tuple[str, str, str]]:
    """(language, code, printed output) for each code block of the section that a ``text``
    block follows."""
    section = PAGE.read_text().split("## Open Inference Protocol", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.DOTALL)
    return [
        (language, code, output)
        for (language, code), (kind, output) in itertools.pairwise(blocks)
        if language in ("bash", "python") and kind == "text"
    ]


def test_the_section_shows_curl_and_tritonclient():
    languages = [language for language, _, _ in examples()]
    assert languages.count("bash") >= 3
    assert languages.count("python") == 1


@pytest.fixture(scope="module")
def port(trained_dir):
    if shutil.which("curl") is None:
        pytest.fail("the examples need curl: apt-get install curl")
    with served(trained_dir, ready="/v2/health/ready") as server:
        yield server.port


@pytest.mark.parametrize("example", examples(), ids=lambda example: example[1].splitlines()[0][:60])
def test_each_example_prints_what_the_page_shows(port, example, tmp_path):
    language, code, output = example
    code = code.replace("localhost:8000", f"localhost:{port}")
    if language == "bash":
        command = ["bash", "-c", code]
    else:
        (tmp_path / "example.py").write_text(code)
        command = [sys.executable, str(tmp_path / "example.py")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == output.strip()
