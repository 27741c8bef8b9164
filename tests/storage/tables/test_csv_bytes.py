"""The stored test split is written by pyarrow's CSV writer and read back by the one table
reader: every float64 (subnormals, -0.0, the largest, 17-digit fractions) and every column
name (quotes, commas, CR, LF, non-ASCII) comes back exactly, bit for bit."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from linreg_ops.storage import tables

FLOATS = st.floats(allow_nan=False, allow_infinity=False, width=64)
NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufeff"),
    min_size=1,
    max_size=8,
) | st.sampled_from(['a"b', "c,d", "e\rf", "g\nh", "ünï", " x "])


@st.composite
def splits(draw):
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    rows = draw(st.integers(1, 30))
    values = draw(arrays(np.float64, (rows, len(names)), elements=FLOATS))
    return names, values


@given(splits())
def test_values_and_names_read_back_bit_for_bit(split):
    names, values = split
    data = tables.csv_bytes(names, values)
    table = tables.parse_csv(data, names, label="test_split.csv")
    assert table.columns == tuple(names)
    assert table.values.shape == values.shape
    # bit for bit: -0.0 stays -0.0, a subnormal stays itself
    np.testing.assert_array_equal(table.values.view(np.uint64), values.view(np.uint64))


def test_a_split_of_no_rows_is_a_header():
    assert tables.csv_bytes(["a", "y"], np.empty((0, 2))) == b'"a","y"\n'


@given(
    predictions=arrays(np.float64, st.integers(0, 40), elements=FLOATS),
    suffix=st.sampled_from([".csv", ".parquet"]),
)
def test_prediction_files_read_back_bit_for_bit(tmp_path_factory, predictions, suffix):
    """Prediction files (pyarrow's writers, in two blocks) hold every float64 exactly and the
    integer ``clipped`` column as integers."""
    path = tmp_path_factory.mktemp("predictions") / f"p{suffix}"
    clipped = (predictions.view(np.uint64) % 2).astype(np.int64)
    half = len(predictions) // 2
    with tables.prediction_writer(path, ["prediction", "clipped"]) as write:
        write(predictions[:half], clipped[:half])
        write(predictions[half:], clipped[half:])
    if not len(predictions):
        return  # a valid file with no rows, which the reader refuses as "no data rows"
    values = tables.read_table(path, ["prediction", "clipped"]).values
    np.testing.assert_array_equal(values[:, 0].view(np.uint64), predictions.view(np.uint64))
    np.testing.assert_array_equal(values[:, 1], clipped)
    if suffix == ".csv":  # integers as integers, not "1.0" or "1e+00"
        assert {line.rsplit(",", 1)[1] for line in path.read_text().splitlines()[1:]} <= {"0", "1"}
