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
