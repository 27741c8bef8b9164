"""Every way a user's table can be unusable gets one clear error naming the file, column and
row; every way a table can be *written* (quotes, BOM, CRLF) reads as the same numbers."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import write_csv
from linreg_ops.config import TrainConfig
from linreg_ops.errors import InputError
from linreg_ops.storage.tables import csv_reading, reading
from linreg_ops.training import engines, sources

GOOD_ROWS = [[1, 2, 3.5], [2, 1, 4.0], [3, 5, 9.5], [4, 3, 8.0], [5, 8, 14.5], [6, 2, 8.0]]
ENGINES = ["sklearn", "streaming"]  # the Dask engine: tests/training


def csv_file(tmp_path, header=("a", "b", "y"), rows=GOOD_ROWS, name="data.csv"):
    return write_csv(tmp_path / name, list(header), rows)


def fit(path, target="y", features=None, engine="streaming", test_size=0.2):
    return engines.fit(
        sources.file_source(path, target, features), TrainConfig(test_size=test_size, engine=engine)
    )


def test_good_csv_fits(tmp_path):
    rows = [[i, (i * 7) % 5, 2 * i - (i * 7) % 5 + 0.1 * (i % 3)] for i in range(40)]
    result = fit(csv_file(tmp_path, rows=rows))
    assert result.train.n + result.test.n == 40
    np.testing.assert_allclose(result.coef, [2, -1], atol=0.1)


def test_features_select_and_order_columns(tmp_path):
    source = sources.file_source(csv_file(tmp_path), "y", ["b", "a"])
    assert source.feature_names == ("b", "a")


def directory_named_csv(folder):
    (folder / "dir.csv").mkdir()
    return folder / "dir.csv"


def empty_file(folder):
    (folder / "empty.csv").write_text("")
    return folder / "empty.csv"


@pytest.mark.parametrize(
    ("make", "target", "features", "message"),
    [
        (lambda p: p / "absent.csv", "y", None, "data file not found"),
        (lambda p: p, "y", None, "no .csv or .parquet files in"),  # an empty folder
        (directory_named_csv, "y", None, "no .csv or .parquet files in .*dir.csv"),
        (lambda p: p / "data.txt", "y", None, "unsupported data format '.txt'"),
        (empty_file, "y", None, "is empty"),
        (lambda p: csv_file(p), "price", None, "target column 'price' not found"),
        (lambda p: csv_file(p), "y", ["a", "zz"], "column 'zz' not found"),
        (lambda p: csv_file(p), "y", ["a", "y"], "also listed in --features"),
        (lambda p: csv_file(p), "y", [], "--features is empty"),
        (lambda p: csv_file(p, ("a", "a", "y")), "y", None, "has 2 columns named 'a'"),
        (lambda p: write_csv(p / "y.csv", ["y"], [[1], [2], [3]]), "y", None, "no feature columns"),
        (lambda p: csv_file(p), None, None, "--data needs --target"),
    ],
)
def test_file_and_column_errors(tmp_path, make, target, features, message):
    path = make(tmp_path)
    with pytest.raises(InputError, match=message):
        sources.file_source(path, target, features)


def test_header_only_file_has_no_rows(tmp_path):
    with pytest.raises(InputError, match="has a header but no data rows"):
        fit(write_csv(tmp_path / "h.csv", ["a", "y"], []))


@pytest.mark.parametrize("engine", ENGINES)
def test_non_numeric_value_names_file_column_and_row(tmp_path, engine):
    rows = [row.copy() for row in GOOD_ROWS]
    rows[2][1] = "NEAR BAY"
    path = csv_file(tmp_path, rows=rows)
    with pytest.raises(InputError, match=rf"{path} column 'b' row 3: non-numeric value 'NEAR BAY'"):
        fit(path, features=["a", "b"], engine=engine)


def test_a_text_column_among_default_features_says_to_pass_features(tmp_path):
    rows = [[*row[:2], "north", row[2]] for row in GOOD_ROWS]
    path = csv_file(tmp_path, ("a", "b", "region", "y"), rows)
    with pytest.raises(
        InputError, match="column 'region' row 1: non-numeric value 'north'; pass --features"
    ):
        fit(path)
    assert fit(path, features=["a", "b"], test_size=0.34).train.n > 0


def test_empty_cell_names_column_and_row(tmp_path):
    rows = [row.copy() for row in GOOD_ROWS]
    rows[4][2] = ""
    with pytest.raises(InputError, match=r"column 'y' row 5: an empty value"):
        fit(csv_file(tmp_path, rows=rows))


@pytest.mark.parametrize(
    ("text", "fields"),
    [("4,5", "has 2 fields"), ("4,5,6,7", "has 4 fields"), ("4", "has 1 field,")],
)
def test_a_row_with_more_or_fewer_fields_is_named_never_shifted(tmp_path, text, fields):
    path = tmp_path / "r.csv"
    path.write_text(f"a,b,y\n1,2,3\n{text}\n")
    with pytest.raises(InputError, match=rf"row 2 \(line 3\) {fields}.*the header has 3"):
        fit(path)


def test_an_unquoted_thousands_separator_is_an_error(tmp_path):
    """Issue 8: '1,392' in 10% of rows used to train with R² 0.9991."""
    rows = [[i, i % 7, 3 * i] for i in range(1, 60)]
    lines = ["a,b,y"] + [",".join(map(str, r)) for r in rows]
    lines[11] = "1,392,4,33"
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"row 11 \(line 12\) has 4 fields, the header has 3"):
        fit(tmp_path / "t.csv")


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("nan", "NaN"),
        ("NaN", "NaN"),
        ("inf", "an infinite value"),
        ("-Infinity", "an infinite value"),
        ("1e400", "'1e400', which overflows float64"),
        ("-1.8e308", "'-1.8e308', which overflows float64"),
    ],
)
def test_nan_inf_and_overflow_are_refused(tmp_path, value, kind):
    rows = [row.copy() for row in GOOD_ROWS]
    rows[1][0] = value
    with pytest.raises(InputError, match=rf"column 'a' row 2 is {kind}"):
        fit(csv_file(tmp_path, rows=rows))


@pytest.mark.parametrize("engine", ENGINES)
def test_values_whose_squares_overflow_are_a_clean_error(tmp_path, engine):
    rows = [[1e300 * (i % 3 + 1), i, i] for i in range(20)]
    with pytest.raises(
        InputError, match="column 'a' holds values so large that their squares overflow"
    ):
        fit(csv_file(tmp_path, rows=rows), engine=engine)


def test_too_few_rows(tmp_path):
    with pytest.raises(InputError, match="3 rows is too few to fit 2 features"):
        fit(csv_file(tmp_path, rows=GOOD_ROWS[:3]))


@pytest.mark.parametrize("engine", ENGINES)
def test_constant_target_on_every_engine(tmp_path, engine):
    rows = [[i, i % 3, 5] for i in range(30)]
    with pytest.raises(InputError, match="target column 'y' is constant"):
        fit(csv_file(tmp_path, rows=rows), engine=engine)


@pytest.mark.parametrize("engine", ["sklearn", "streaming", "auto"])
def test_constant_target_in_memory_on_every_engine(engine):
    X = np.arange(60.0).reshape(30, 2)
    source = sources.ArraySource(X, np.full(30, 2.5), ("a", "b"), "y", "memory", "0" * 64)
    with pytest.raises(InputError, match="target column 'y' is constant"):
        engines.fit(source, TrainConfig(engine=engine))


def test_split_too_small_for_the_features(tmp_path):
    with pytest.raises(InputError, match="need at least 4 training rows and 2 test rows"):
        fit(csv_file(tmp_path), test_size=0.9)


def test_test_size_out_of_range():
    with pytest.raises(InputError, match="--test-size must be between 0 and 1"):
        TrainConfig(test_size=1.5)


def parquet_file(tmp_path, columns: dict) -> object:
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table(columns), path)
    return path


def test_parquet_loads_integers_and_floats(tmp_path):
    a = list(range(30))
    path = parquet_file(tmp_path, {"a": a, "y": [2.0 * v + (v % 3) for v in a]})
    assert fit(path).coef[0] == pytest.approx(2.0, abs=0.1)


def test_parquet_text_column_is_refused(tmp_path):
    path = parquet_file(tmp_path, {"a": ["x"] * 6, "y": [1.0, 3.0, 2.0, 5.0, 4.0, 6.5]})
    with pytest.raises(InputError, match="column 'a' has type string, expected a numeric type"):
        fit(path)


def test_parquet_null_names_the_row(tmp_path):
    path = parquet_file(
        tmp_path, {"a": [1.0, 2.0, None, 4.0, 5.0, 6.0], "y": [1.0, 3.0, 2.0, 5.0, 4.0, 6.5]}
    )
    with pytest.raises(InputError, match=r"column 'a' row 3: missing value"):
        fit(path)


def test_corrupt_parquet_is_unreadable(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not a parquet file at all")
    with pytest.raises(InputError, match=r"cannot read .* as Parquet"):
        sources.file_source(path, "y")


def test_csv_that_is_not_text_is_unreadable(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00\x81,y\n1,1\n")
    with pytest.raises(InputError, match=r"cannot read .*binary\.csv: the header is not UTF-8"):
        sources.file_source(path, "y")


def test_a_header_field_beyond_the_csv_module_limit_is_a_clear_error(tmp_path):
    path = tmp_path / "huge-field.csv"
    path.write_text("a" * 200_000 + ",y\n1,2\n3,4\n5,6\n7,8\n")
    with pytest.raises(InputError, match="as CSV: field larger than field limit"):
        sources.file_source(path, "y")


def test_a_quoted_field_with_commas_between_features_shifts_nothing(tmp_path):
    """Issue 8: read_table(["a", "y"]) used to return [1.0, 5.0] for this row."""
    from linreg_ops.storage import tables

    path = tmp_path / "q.csv"
    path.write_text('a,addr,y\n1,"north, 5, x",3\n')
    np.testing.assert_array_equal(tables.read_table(path, ["a", "y"]).values, [[1.0, 3.0]])


def test_a_spreadsheet_export_trains(run_cli, tmp_path):
    """Issue 8: BOM, CRLF, every field quoted and a multi-line note used to be 'a bug'."""
    rng = np.random.default_rng(3)
    lines = ['"a","b","c","note","y"']
    for i in range(60):
        a, b, c = (float(v) for v in rng.normal(size=3))
        note = f'"line one\r\nline two, with ""quotes"" {i}"'
        lines.append(f'"{a!r}","{b!r}","{c!r}",{note},"{2 * a - b + 0.5 * c!r}"')
    path = tmp_path / "sheet.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    result = run_cli("train", "--data", path, "--target", "y", "--features", "a,b,c",
                     "--models-dir", tmp_path / "m")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "R² Score: 1.0000" in result.stdout


# ------------------------------------------------------------------ the attack's findings


def test_another_encoding_in_a_column_not_used_reads(tmp_path):
    """Attack D1: Latin-1 text in an unselected column, early in the file, failed the header
    read (the header reader decodes ahead) — while the same bytes further on were fine."""
    from linreg_ops.storage import tables

    rows = b"".join(b"%d,%d,caf\xe9\n" % (i, 2 * i) for i in range(20))
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"a,y,note\n" + rows)
    assert tables.read_header(path) == ["a", "y", "note"]
    np.testing.assert_array_equal(tables.read_table(path, ["a", "y"]).values[:, 1], range(0, 40, 2))
    with pytest.raises(InputError, match=r"column 'note' row 1: non-numeric value 'caf"):
        tables.read_table(path, ["note"])


def test_a_field_larger_than_a_parse_block_reads_on_every_path(tmp_path, monkeypatch):
    """Attack D3: one field larger than pyarrow's 4 MiB block failed the file ("straddling
    object") on every engine; the read now retries with larger blocks."""
    from linreg_ops.storage import tables

    monkeypatch.setattr(csv_reading, "CSV_BLOCK_BYTES", 1 << 10)  # the same, at a small scale
    monkeypatch.setattr(reading, "PARSE_BYTES", 1 << 12)  # and through the parallel reader
    rows = [f"{i},{2 * i},short" for i in range(3000)]
    rows[1500] = f'1500,3000,"{"x" * 20_000}"'
    path = tmp_path / "wide-field.csv"
    path.write_text("a,y,note\n" + "\n".join(rows) + "\n")
    expected = np.column_stack([np.arange(3000), 2 * np.arange(3000)])
    blocks = list(tables.iter_blocks(path, ["a", "y"], 700))
    assert [b.offset for b in blocks] == [0, 700, 1400, 2100, 2800]
    np.testing.assert_array_equal(np.vstack([b.values for b in blocks]), expected)
    parts = tables.partitions(path, 1 << 12)
    header = tables.read_header(path)
    assert sum(tables.partition_rows(part, header) for part in parts) == 3000
    body = path.read_bytes()
    assert tables.count_csv_rows(body) == 3000
    np.testing.assert_array_equal(tables.parse_csv(body, ["a", "y"], label="b").values, expected)


def test_a_bad_value_after_a_huge_field_is_still_named(tmp_path, monkeypatch):
    from linreg_ops.storage import tables

    monkeypatch.setattr(csv_reading, "CSV_BLOCK_BYTES", 1 << 10)
    rows = [f"{i},{2 * i},short" for i in range(300)]
    rows[100] = f'100,200,"{"x" * 20_000}"'
    rows[250] = "250,oops,short"
    path = tmp_path / "wide-field.csv"
    path.write_text("a,y,note\n" + "\n".join(rows) + "\n")
    with pytest.raises(InputError, match="column 'y' row 251: non-numeric value 'oops'"):
        tables.read_table(path, ["a", "y"])


def test_blank_lines_before_the_header_are_skipped_as_pyarrow_skips_them(tmp_path):
    """Attack D4: a leading blank line made the file "empty"."""
    path = tmp_path / "blank-first.csv"
    path.write_text("\n\n" + "a,b,y\n" + "\n".join(",".join(map(str, r)) for r in GOOD_ROWS))
    assert sources.file_source(path, "y").feature_names == ("a", "b")
    assert fit(path, test_size=0.34).train.n == 4


def test_a_header_without_a_line_end_has_no_data_rows(tmp_path):
    """Attack D5: pyarrow's "Empty CSV file or block: cannot infer number of columns"."""
    path = tmp_path / "header-only.csv"
    path.write_text("a,b,y")
    with pytest.raises(InputError, match=r"header-only\.csv has a header but no data rows"):
        fit(path)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (["a", "", "y"], "column 2 of the selection has no name"),
        (["a", "b" * 1025, "y"], "column 2 of the selection has a name of 1,025 characters"),
        (["a", "b", "y" * 2000], "column 3 of the selection has a name of 2,000 characters"),
    ],
)
def test_a_column_name_a_model_cannot_keep_is_refused_before_training(tmp_path, header, message):
    """Attack D6: refused only when the staged model was verified, naming a staging path."""
    path = csv_file(tmp_path, header=header)
    with pytest.raises(InputError, match=message):
        sources.file_source(path, header[-1])


def test_an_existing_file_whose_name_looks_like_a_glob_is_that_file(tmp_path):
    """Attack A5: ``runs[1].csv`` was taken as a pattern matching ``runs1.csv``."""
    from linreg_ops.storage import tables

    literal = csv_file(tmp_path, name="runs[1].csv")
    csv_file(tmp_path, name="runs1.csv", rows=GOOD_ROWS[:4])
    assert tables.table_files(literal) == [literal]
    assert tables.table_files(tmp_path / "runs*.csv") == [tmp_path / "runs1.csv", literal]


def test_hidden_files_in_a_folder_are_not_data(tmp_path):
    """Attack A6: a folder's ``._part.csv`` (macOS metadata) or a writer's temporary file
    was read as data, while a glob over the same folder skipped it."""
    from linreg_ops.storage import tables

    part = csv_file(tmp_path, name="part-0.csv")
    (tmp_path / "._part-0.csv").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    csv_file(tmp_path, name=".part-1.csv.tmp.csv")
    assert tables.table_files(tmp_path) == [part]
    assert tables.table_files(tmp_path / "*.csv") == [part]


# ------------------------------------------------------------------ the second attack


def test_a_header_longer_than_a_parse_block_reads(tmp_path, monkeypatch):
    """A header of megabytes (thousands of long names) made pyarrow's first block hold no
    whole line: "Empty CSV file or block", reported as "no data rows"."""
    from linreg_ops.storage import tables

    monkeypatch.setattr(csv_reading, "CSV_BLOCK_BYTES", 1 << 10)
    names = [f"column_{i:04d}_" + "n" * 40 for i in range(100)]  # 5 KB of header
    rows = [[i, 2 * i, *range(98)] for i in range(30)]
    path = write_csv(tmp_path / "wide.csv", names, rows)
    values = tables.read_table(path, [names[0], names[1]]).values
    np.testing.assert_array_equal(values[:, 1], 2 * values[:, 0])
    assert len(values) == 30


def test_a_glob_under_a_folder_with_brackets_in_its_name_reads_that_folder(tmp_path):
    """Second attack: ``g[1]/*.csv`` read ``g1/f.csv`` (the brackets a character class)."""
    from linreg_ops.storage import tables

    (tmp_path / "g[1]").mkdir()
    (tmp_path / "g1").mkdir()
    mine = csv_file(tmp_path / "g[1]", name="f.csv")
    csv_file(tmp_path / "g1", name="f.csv")
    assert tables.table_files(f"{tmp_path}/g[1]/*.csv") == [mine]
    assert tables.table_files(f"{tmp_path}/g[0-9]/*.csv") == [tmp_path / "g1" / "f.csv"]


def test_a_column_name_holding_a_carriage_return_round_trips(tmp_path):
    """Second attack: the stored test split wrote the name ``a\\rb`` unquoted, so reading it
    back split the header, and training failed naming a deleted staging file."""
    from linreg_ops import pipeline
    from linreg_ops.inference import loading

    rows = [[i, (i * 7) % 5, 2 * i - (i * 7) % 5 + 0.1 * (i % 3)] for i in range(40)]
    path = tmp_path / "data.csv"
    lines = ['"a\rb",c,y'] + [",".join(map(str, row)) for row in rows]  # quoted, as csv writes
    path.write_bytes("\n".join(lines).encode() + b"\n")
    pipeline.train(sources.file_source(path, "y"), tmp_path / "models")
    models = loading.load(tmp_path / "models")
    assert models.float.feature_names == ("a\rb", "c")
    assert len(loading.stored_test_rows(models).values) > 0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("a", "column 'a' varies by only .*underflow float64; rescale it"),
        ("y", "target column 'y' holds values so small .*underflow float64"),
    ],
)
def test_values_whose_squares_underflow_are_a_clean_error(tmp_path, engine, column, message):
    """Second attack: a varying target near 1e-300 was called constant; a feature near
    1e-170 was called constant and dropped; at 1e-160 a coefficient lost five digits."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 2))
    y = X @ [1.0, 2.0] + rng.normal(scale=0.1, size=60)
    table = {"a": X[:, 0], "b": X[:, 1], "y": y}
    table[column] = table[column] * (1e-170 if column == "a" else 1e-300)
    path = write_csv(tmp_path / "tiny.csv", ["a", "b", "y"], np.column_stack(list(table.values())))
    with pytest.raises(InputError, match=message):
        fit(path, engine=engine)


def test_a_short_row_after_a_very_long_field_is_still_numbered(tmp_path):
    """Second attack: past the csv module's 128 KB field limit the row number was lost."""
    rows = [f"{i},{i},x" for i in range(10)]
    rows[3] = f'3,3,"{"z" * 200_000}"'
    rows[7] = "7,7"
    path = tmp_path / "long.csv"
    path.write_text("a,y,note\n" + "\n".join(rows) + "\n")
    with pytest.raises(InputError, match=r"long\.csv row 8 \(line 9\) has 2 fields"):
        fit(path, features=["a"])
