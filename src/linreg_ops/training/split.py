"""The row-hash split: which rows are held out for testing, from (row index, seed) alone.

Every engine, chunking and partitioning gives a row the same number, so every engine holds
out the same rows of a file.
"""

import numpy as np

__all__ = ["GOLDEN", "held_out_rows", "row_uniforms"]

GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def row_uniforms(row_index: np.ndarray, random_state: int) -> np.ndarray:
    """A uniform number in [0, 1) per row, from (row index, seed) alone (splitmix64).

    Every engine, chunking and partitioning gives a row the same number, so the split below
    is the same everywhere.
    """
    with np.errstate(over="ignore"):
        z = np.asarray(row_index, dtype=np.uint64) + np.uint64(random_state % 2**64) * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / 2.0**53


def held_out_rows(row_index: np.ndarray, random_state: int, test_size: float) -> np.ndarray:
    """The held-out rows of the deterministic row-hash split."""
    return row_uniforms(row_index, random_state) < test_size
