"""docs/testing.md stays true: the fixtures it tells contributors to reuse exist with the scope
it gives, and `make test` runs pytest the way it says."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "testing.md").read_text()
# every conftest.py of the suite (a shared fixture may live beside the tests that use it)
CONFTEST = "\n".join(path.read_text() for path in sorted((REPO / "tests").rglob("conftest.py")))


def fixture_table() -> dict[str, str]:
    """The doc's fixture table: name → scope as written."""
    rows = re.findall(r"^\| ((?:`\w+(?:\([^)]*\))?`(?:, )?)+) \| ([^|]+) \|", DOC, re.MULTILINE)
    table = {name: scope.strip() for cell, scope in rows for name in re.findall(r"`(\w+)", cell)}
    assert len(table) >= 6, "the fixture table is missing from docs/testing.md"
    return table


def test_every_fixture_the_doc_names_exists_with_that_scope():
    for name, scope in fixture_table().items():
        match = re.search(rf'@pytest\.fixture(\(scope="(\w+)"\))?\ndef {name}\(', CONFTEST)
        assert match, f"docs/testing.md names a fixture no tests/**/conftest.py has: {name}"
        declared = match.group(2) or "test"
        # "once per run" fixtures are session fixtures built through build_once
        expected = "session" if scope.startswith(("session", "once per")) else scope
        assert declared == expected, f"{name}: the doc says {scope}, conftest.py {declared}"


def test_make_test_runs_pytest_as_the_doc_says():
    makefile = (REPO / "Makefile").read_text()
    assert "PYTEST_WORKERS ?= auto" in makefile
    (line,) = re.findall(r"^\t\$\(BIN\)/python -m pytest .*$", makefile, flags=re.MULTILINE)
    shown = re.search(r"`make test` \| everything, in parallel: `pytest ([^`]+)`", DOC)
    assert shown, "docs/testing.md no longer shows make test's pytest command"
    expected = line.replace("$(PYTEST_WORKERS)", "auto").replace(" $(PYTEST_ARGS)", "")
    assert expected.split("pytest ", 1)[1] == shown.group(1)
    shared = re.search(r"^SHARED_RESOURCES = \{(.*)\}$", CONFTEST, re.MULTILINE)
    costly = re.search(r"^COSTLY_MODULE_FIXTURES = \((.*)\)$", CONFTEST, re.MULTILINE)
    assert shared
    assert costly
    for name in re.findall(r'"(\w+)": ', shared.group(1)) + re.findall(r'"(\w+)"', costly.group(1)):
        assert f"`{name}`" in DOC, f"docs/testing.md should name the shared fixture {name}"
