"""``linreg-ops monitor`` as a user runs it: a real process, its table, reports and exit codes."""

import json

import numpy as np
import pytest

from helpers import CALIFORNIA_FEATURES, publish_without_profile, write_csv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rows_csv(tmp_path_factory, test_rows):
    """The stored test split as a CSV, and a copy with MedInc shifted by +1 training σ."""
    from linreg_ops.inference import loading

    columns, values = test_rows
    folder = tmp_path_factory.mktemp("rows")
    plain = write_csv(folder / "plain.csv", list(columns), values.tolist())
    shifted_values = values.copy()
    shifted_values[:, 0] += 1.9  # ≈ 1σ of MedInc
    shifted = write_csv(folder / "shifted.csv", list(columns), shifted_values.tolist())
    del loading
    return plain, shifted


def test_monitor_prints_the_table_and_writes_the_reports(trained_dir, rows_csv, tmp_path, run_cli):
    plain, _ = rows_csv
    reports = tmp_path / "reports"
    result = run_cli("monitor", "--models-dir", trained_dir, "--input", plain,
                     "--reports-dir", reports, "--fail-on-drift", check=True)  # fmt: skip
    assert "| MedInc |" in result.stdout
    assert "Drifted features: none; prediction drift: no" in result.stdout
    for name in ("drift.md", "drift.png", "drift.json"):
        assert (reports / name).stat().st_size > 0
    assert result.stdout.strip() in (reports / "drift.md").read_text()
    assert json.loads((reports / "drift.json").read_text())["rows"] == 4128


def test_fail_on_drift_exits_4_and_json_names_the_feature(trained_dir, rows_csv, tmp_path, run_cli):
    _, shifted = rows_csv
    result = run_cli("monitor", "--models-dir", trained_dir, "--input", shifted, "--json",
                     "--fail-on-drift", "--reports-dir", tmp_path / "r")  # fmt: skip
    assert result.returncode == 4, result.stderr
    report = json.loads(result.stdout)
    assert report["drifted"] == ["MedInc"]
    assert report["prediction"]["drift"] is True
    top = max(report["attribution"], key=lambda row: abs(row["mean_contribution"]))
    assert top["name"] == "MedInc"
    assert top["mean_share"] == pytest.approx(1.0, abs=0.05)
    without = run_cli("monitor", "--models-dir", trained_dir, "--input", shifted,
                      "--reports-dir", tmp_path / "r")  # fmt: skip
    assert without.returncode == 0


def test_target_gives_realised_r2_beside_training(trained_dir, rows_csv, tmp_path, run_cli):
    plain, _ = rows_csv
    result = run_cli("monitor", "--models-dir", trained_dir, "--input", plain, "--json",
                     "--target", "MedHouseVal", "--reports-dir", tmp_path / "r", check=True)  # fmt: skip
    target = json.loads(result.stdout)["target"]
    assert target["r2"] == pytest.approx(target["training_r2"], rel=1e-9)
    assert target["mse"] == pytest.approx(target["training_mse"], rel=1e-9)


def test_a_version_without_a_profile_says_retrain(models_copy, rows_csv, tmp_path, run_cli):
    plain, _ = rows_csv
    current = publish_without_profile(models_copy)
    result = run_cli("monitor", "--models-dir", models_copy, "--input", plain,
                     "--reports-dir", tmp_path / "r")  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "no drift profile" in result.stderr
    assert "retrain" in result.stderr
    older = run_cli("monitor", "--models-dir", models_copy, "--input", plain, "--version",
                    current.number, "--reports-dir", tmp_path / "r")  # fmt: skip
    assert older.returncode == 0, older.stderr


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        ("MedInc,HouseAge\n1,2\n", (), "AveRooms"),  # a missing column, named with its file
        (None, ("--target", "nope"), "nope"),
        ("BAD", (), "column 'AveRooms' row 2"),  # a non-numeric cell: its column and row
        (None, ("--version", "99"), "no version 99"),
        (None, ("--version", "0"), "--version"),
        ("HUGE", (), "column 'Population' row 2: a value more than 1e+150"),  # overflows the sums
    ],
)
def test_bad_input_is_exit_2_with_one_line(
    trained_dir, test_rows, tmp_path, run_cli, content, args, expected
):
    columns, values = test_rows
    path = tmp_path / "rows.csv"
    if content in (None, "BAD", "HUGE"):
        rows = values[:5].tolist()
        if content == "BAD":
            rows[1][2] = "x"
        if content == "HUGE":
            rows[1][4] = 1e200  # Population: inside the model's domain, not the sums'
        write_csv(path, list(columns), rows)
    else:
        path.write_text(content)
    result = run_cli("monitor", "--models-dir", trained_dir, "--input", path, *args,
                     "--reports-dir", tmp_path / "r")  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r" / "drift.json").exists()


def test_reports_inside_the_models_folder_are_refused(trained_dir, rows_csv, run_cli):
    plain, _ = rows_csv
    result = run_cli("monitor", "--models-dir", trained_dir, "--input", plain,
                     "--reports-dir", trained_dir / "r")  # fmt: skip
    assert result.returncode == 2
    assert "inside the models folder" in result.stderr
    np.testing.assert_equal(result.stdout, "")


ROW = [8.3252, 41.0, 6.984127, 1.02381, 322.0, 2.555556, 37.88, -122.23]


@pytest.mark.parametrize("target", ["1e300", "1e160"])
def test_a_huge_target_value_is_exit_2_naming_file_column_and_row(
    run_cli, trained_dir, tmp_path, target
):
    """Attack finding M1: a target value beyond 1e150 overflowed the target's sums, then
    failed JSON encoding on inf: a traceback and exit 1. Now exit 2 with one line."""
    rows = [[*ROW, 4.5]] * 49 + [[*ROW, float(target)]]
    data = write_csv(tmp_path / "t.csv", [*CALIFORNIA_FEATURES, "MedHouseVal"], rows)
    result = run_cli(
        "monitor", "--models-dir", trained_dir, "--input", data, "--target", "MedHouseVal",
        "--json", "--reports-dir", tmp_path / "reports",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-600:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-600:]
    assert "t.csv column 'MedHouseVal' row 50:" in lines[0]
    assert result.stdout == ""


def test_a_huge_feature_value_names_its_column(run_cli, trained_dir, tmp_path):
    """Attack finding M2: the refusal of a feature value beyond 1e150 named the row only."""
    rows = [ROW] * 49 + [[1e300, *ROW[1:]]]
    data = write_csv(tmp_path / "v.csv", list(CALIFORNIA_FEATURES), rows)
    result = run_cli(
        "monitor", "--models-dir", trained_dir, "--input", data, "--json",
        "--reports-dir", tmp_path / "reports",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-600:]
    assert "v.csv column 'MedInc' row 50:" in result.stderr
