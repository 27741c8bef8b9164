"""Findings of the outside "attack" pass on the CLI's output contract (integration branch at
314fb8a): ``-q`` prints no prose at all; errors and warnings still go to standard error
(docs/cli.md, "For scripts")."""

import json

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("mlflow")


def test_export_mlflow_quiet_prints_nothing_but_the_json(run_cli, models_copy, tmp_path):
    """Finding C1 (MLflow's log and progress bar under ``-q``).
    Command (after ``make run``): ``linreg-ops export --format mlflow --json -q --output
    /tmp/mlf 2> err.txt; cat err.txt``.
    What happened: exit 0, the JSON on stdout, and on stderr (not a terminal) MLflow's
    ``INFO mlflow.pyfunc: Validating input example against model signature`` and a tqdm
    bar ``Downloading artifacts: 100%|██████████| 1/1 ...``; ``tracking._quiet`` already
    silences both for ``run --tracking-uri``, but the export does not use it.
    What should happen: stderr empty under ``-q`` (no warning or error happened)."""
    result = run_cli(
        "export", "--models-dir", models_copy, "--format", "mlflow", "--json", "-q",
        "--output", tmp_path / "mlf",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-600:]
    assert json.loads(result.stdout)
    assert result.stderr == ""
