"""``predict --input --keep-columns``: input columns beside the predictions, row for row, in
every output the command writes (CSV, Parquet, standard output), through real processes."""

import csv
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow

HOUSES = Path(__file__).resolve().parents[2] / "examples" / "houses.csv"


@pytest.fixture
def with_ids(tmp_path) -> Path:
    """examples/houses.csv with a text id in front: ``h007``-style, one with a comma."""
    rows = read_rows(HOUSES)
    ids = ["house, 0"] + [f"h{i:03d}" for i in range(1, len(rows) - 1)]
    path = tmp_path / "houses-with-ids.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", *rows[0]])
        writer.writerows([key, *row] for key, row in zip(ids, rows[1:], strict=True))
    return path


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def ids_of(path: Path) -> list[str]:
    return [row[0] for row in read_rows(path)[1:]]


def test_ids_go_to_standard_output_row_for_row(run_cli, models_copy, with_ids):
    kept = run_cli("predict", "--input", with_ids, "--output", "-", "--keep-columns", "id,price",
                   "--models-dir", models_copy, "--chunk-rows", "64", check=True)  # fmt: skip
    plain = run_cli("predict", "--input", with_ids, "--output", "-",
                    "--models-dir", models_copy, check=True)  # fmt: skip
    rows = list(csv.reader(io.StringIO(kept.stdout)))
    assert rows[0] == ["id", "price", "prediction"]
    assert [row[0] for row in rows[1:]] == ids_of(with_ids)
    prices = [row[-1] for row in read_rows(with_ids)[1:]]
    assert [row[1] for row in rows[1:]] == prices  # a kept feature: the same number
    assert [row[2] for row in rows[1:]] == plain.stdout.splitlines()[1:]


def test_ids_in_a_parquet_output_and_a_csv_file(run_cli, models_copy, with_ids, tmp_path):
    out = tmp_path / "p.parquet"
    run_cli("predict", "--input", with_ids, "--output", out, "--keep-columns", "id",
            "--model", "integer", "--models-dir", models_copy, check=True)  # fmt: skip
    table = pq.read_table(out)
    assert table.column_names == ["id", "prediction", "clipped"]
    assert table.schema.field("id").type == pa.string()
    assert table.column("id").to_pylist() == ids_of(with_ids)
    out_csv = tmp_path / "p.csv"
    run_cli("predict", "--input", with_ids, "--output", out_csv, "--keep-columns", "id",
            "--models-dir", models_copy, check=True)  # fmt: skip
    assert ids_of(out_csv) == ids_of(with_ids)


def test_a_kept_column_name_that_needs_quotes_is_quoted(run_cli, models_copy, tmp_path):
    path = tmp_path / "odd.csv"
    text = HOUSES.read_text().splitlines()
    path.write_text('"the ""id"" key",' + text[0] + "\n" + "".join(
        f"{i},{line}\n" for i, line in enumerate(text[1:4])
    ))  # fmt: skip
    result = run_cli("predict", "--input", path, "--output", "-", "--keep-columns",
                     'the "id" key', "--models-dir", models_copy, check=True)  # fmt: skip
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert result.stdout.startswith('"the ""id"" key",prediction\n')
    assert rows[0] == ['the "id" key', "prediction"]
    assert [row[0] for row in rows[1:]] == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--keep-columns", "idd"], "--keep-columns: column 'idd' not found in "),
        (["--keep-columns", "idd"], "; did you mean 'id'?"),
        (["--keep-columns", "id,prediction"], "the output has its own 'prediction' column"),
        (["--model", "integer", "--keep-columns", "clipped"], "its own 'clipped' column"),
        (["--keep-columns", "id,id"], "--keep-columns names 'id' twice"),
        (["--keep-columns", "id,"], "an empty column name in 'id,'"),
        (["--engine", "dask", "--keep-columns", "id"], "works with --engine streaming, not dask"),
    ],
)
def test_bad_keep_columns_exit_2_in_one_line(run_cli, models_copy, with_ids, tmp_path, extra,
                                             message):  # fmt: skip
    out = tmp_path / "out.csv"
    result = run_cli("predict", "--input", with_ids, "--output", out, *extra,
                     "--models-dir", models_copy)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists()


def test_keep_columns_without_input_exits_2(run_cli, models_copy):
    result = run_cli("predict", "--keep-columns", "id", "--models-dir", models_copy)
    assert result.returncode == 2
    assert "--keep-columns needs --input PATH" in result.stderr


@pytest.mark.parametrize("output", ["-", "out.csv"])
def test_a_nested_parquet_column_kept_into_csv_exits_2_writing_nothing(
    run_cli, models_copy, tmp_path, output
):
    """A list or struct column has no CSV text: one line, and not even a header on stdout."""
    rows = read_rows(HOUSES)
    data = {name: [float(row[i]) for row in rows[1:6]] for i, name in enumerate(rows[0])}
    data["tags"] = pa.array([[1, 2], [3], [], None, [5]], pa.list_(pa.int64()))
    path = tmp_path / "nested.parquet"
    pq.write_table(pa.table(data), path)
    result = run_cli("predict", "--input", path, "--output", output, "--keep-columns", "tags",
                     "--models-dir", models_copy, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "column 'tags' has type list<element: int64>, which CSV cannot hold" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "out.csv").exists()
    parquet = run_cli("predict", "--input", path, "--output", tmp_path / "out.parquet",
                      "--keep-columns", "tags", "--models-dir", models_copy)  # fmt: skip
    assert parquet.returncode == 0, parquet.stderr
    assert pq.read_table(tmp_path / "out.parquet").column("tags").to_pylist()[:2] == [[1, 2], [3]]
