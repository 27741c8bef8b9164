"""Findings of the outside "attack" pass on ``linreg-ops monitor`` (integration branch at
314fb8a). Each test fails on that code and passes once monitor keeps its contract: bad input
is exit 2 with one line naming file, column and row (docs/cli.md, "Exit codes")."""

import pytest

from helpers import CALIFORNIA_FEATURES, write_csv

pytestmark = pytest.mark.slow

ROW = [8.3252, 41.0, 6.984127, 1.02381, 322.0, 2.555556, 37.88, -122.23]


@pytest.mark.parametrize("target", ["1e300", "1e160"])
def test_a_huge_target_value_is_exit_2_naming_its_row(run_cli, trained_dir, tmp_path, target):
    """Finding M1 (traceback, exit 1).
    Command (after ``make run``)::

        H=$(head -1 models/test_split.csv)
        (echo "$H"; sed -n 2,50p models/test_split.csv;
         echo "1,41,6.98,1.02,322,2.55,37.88,-122.23,1e300") > t.csv
        linreg-ops monitor --input t.csv --target MedHouseVal --json

    What happened: ``RuntimeWarning: overflow encountered in matmul`` (stats.py:148, the
    target's sums), then ``ValueError: Out of range float values are not JSON compliant:
    inf``, "unexpected error (a bug; please report it)", exit 1. A feature value that large
    is refused (exit 2, "a value more than 1e+150 from the training mean cannot be
    monitored"); the target column is not.
    What should happen: exit 2, one line naming t.csv, the column MedHouseVal and the row."""
    rows = [[*ROW, 4.5]] * 49 + [[*ROW, float(target)]]
    data = write_csv(tmp_path / "t.csv", [*CALIFORNIA_FEATURES, "MedHouseVal"], rows)
    result = run_cli(
        "monitor", "--models-dir", trained_dir, "--input", data, "--target", "MedHouseVal",
        "--json", "--reports-dir", tmp_path / "reports",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-600:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "Traceback" not in result.stderr
    assert "t.csv" in lines[0]
    assert "MedHouseVal" in lines[0]
    assert "row 50" in lines[0]
    assert result.stdout == ""


def test_a_huge_feature_value_names_its_column(run_cli, trained_dir, tmp_path):
    """Finding M2 (the refusal names no column).
    Command: a CSV of the eight features whose row 50 holds MedInc = 1e300, then
    ``linreg-ops monitor --input v.csv --json`` (a Parquet file the same).
    What happened: exit 2, ``v.csv row 50: a value more than 1e+150 from the training mean
    cannot be monitored (its square overflows)`` — which of the eight values is meant is
    left to the reader.
    What should happen: the line names file, column and row, as every other refusal of
    monitor does (``v.csv column 'MedInc' row 50 is NaN; ...``)."""
    rows = [ROW] * 49 + [[1e300, *ROW[1:]]]
    data = write_csv(tmp_path / "v.csv", list(CALIFORNIA_FEATURES), rows)
    result = run_cli(
        "monitor", "--models-dir", trained_dir, "--input", data, "--json",
        "--reports-dir", tmp_path / "reports",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-600:]
    assert "row 50" in result.stderr
    assert "MedInc" in result.stderr
