"""The README and docs/ pages keep nothing a test does not keep true: every ```` ```bash
runnable ```` example runs as written (in order, page by page, from a checkout-like folder),
every ```` ```console transcript ```` prints what the page shows, every link resolves, and the
README's first screen gets a newcomer from clone to a served prediction."""

import re
from pathlib import Path

import pytest

from shell_examples import REPO, fenced_examples, shell, workspace

pytestmark = pytest.mark.slow

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUNNABLE = [page for page in PAGES if fenced_examples(page.read_text())]
FIRST_SCREEN = 60


def page_id(page: Path) -> str:
    return str(page.relative_to(REPO))


@pytest.mark.parametrize("page", RUNNABLE, ids=page_id)
def test_every_runnable_example_runs(trained_dir, tmp_path, page):
    folder = workspace(tmp_path / "checkout", trained_dir)
    with shell(folder) as sh:
        for command in fenced_examples(page.read_text()):
            result = sh.run(command)
            assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
            assert "Traceback" not in result.stderr, command


def transcripts(text: str) -> list[tuple[str, list[str]]]:
    """(command, the lines shown after it) for each ``$ `` line of a transcript block."""
    pairs: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console transcript\n(.*?)```", text, re.DOTALL):
        for line in block.splitlines():
            if line.startswith("$ "):
                pairs.append((line[2:], []))
            else:
                pairs[-1][1].append(line)
    return pairs


TRANSCRIPTS = [(page, pair) for page in PAGES for pair in transcripts(page.read_text())]


@pytest.mark.parametrize(
    ("page", "pair"), TRANSCRIPTS, ids=[f"{page_id(p)}: {c}" for p, (c, _) in TRANSCRIPTS]
)
def test_every_transcript_prints_what_the_page_shows(trained_dir, tmp_path, page, pair):
    command, shown = pair
    folder = workspace(tmp_path / "checkout", trained_dir)
    with shell(folder) as sh:
        result = sh.run(command)
    assert (result.stdout + result.stderr).splitlines() == shown


def test_the_docs_have_runnable_examples_and_transcripts():
    assert REPO / "README.md" in RUNNABLE
    assert len(RUNNABLE) >= 3
    assert TRANSCRIPTS


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_relative_link_resolves(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page_id(page)} links to a missing {target}"
        if anchor and linked.suffix == ".md":
            headings = re.findall(r"(?m)^#+ (.*)$", linked.read_text())
            assert anchor in {slug(h) for h in headings}, f"{page_id(page)}: no #{anchor}"


def test_the_readme_first_screen_is_a_front_door():
    lines = (REPO / "README.md").read_text().splitlines()
    screen = "\n".join(lines[:FIRST_SCREEN])
    assert "```mermaid" in screen
    assert "make run" in screen
    assert "make test" in screen
    for step in ("linreg-ops train --data", "linreg-ops predict --input", "linreg-ops serve"):
        assert step in screen, step
    assert "curl " in screen
    assert "docker run" in screen
    assert "## Contents" in "\n".join(lines)
