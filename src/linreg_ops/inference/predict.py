"""Predicting with a loaded model: rows in memory, or a file, folder or glob written block by
block. Numpy only; a row outside the model's domain is refused with one message everywhere
(the CLI, the service, the MLflow export)."""

import collections
import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from linreg_ops.config import DEFAULT_CHUNK_ROWS, ModelKind
from linreg_ops.errors import InputError, did_you_mean
from linreg_ops.inference.loading import Models
from linreg_ops.model import Predictor, domain_error, outside_domain
from linreg_ops.storage import store, tables

__all__ = [
    "SHOWN_CLIPPED",
    "FilePrediction",
    "Progress",
    "check_kept",
    "check_output",
    "output_columns",
    "predict_file",
    "predict_rows",
]

Progress = Callable[[int, int], None]  # (rows, bytes) read since the last call


def predict_rows(
    model: Predictor, X: np.ndarray, first_row: int = 0, source: str = "input"
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions, and which rows an integer model clipped (an input or the output).

    A row outside the model's domain (``model.outside_domain``: NaN, ±inf, or a value so
    large that a float model's sum could overflow) is refused by number (``first_row``
    numbers the rows of ``X`` in ``source``), never written as ``inf`` or served as ``null``:
    the CLI, the HTTP service and the MLflow export all refuse it with this one message.
    """
    X = np.asarray(X, dtype=np.float64)
    outside = outside_domain(model, X)
    if outside.any():
        index = int(np.flatnonzero(outside)[0])
        raise InputError(f"{source} row {first_row + index + 1}: {domain_error(model, X[index])}")
    return model.predict_clipped(X)


@dataclass(frozen=True)
class FilePrediction:
    """What a file prediction did: rows written, and which rows had clipped inputs."""

    rows: int
    clipped_rows: int
    first_clipped: list[int]  # 1-based row numbers over the whole input, at most SHOWN_CLIPPED


SHOWN_CLIPPED = 10


def predict_file(
    models: Models,
    kind: ModelKind,
    input_spec: str | Path,
    output_path: Path,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Progress | None = None,
    keep: Sequence[str] = (),
) -> FilePrediction:
    """Predict every row of a file, folder or glob into one output file, block by block.

    Memory stays at one block of ``chunk_rows`` rows whatever the input's size. The output
    has the ``keep`` input columns (row for row, read in the same pass as the features, so
    a user can join back), a ``prediction`` column, and for the integer-only model a
    ``clipped`` column (1 where an input was outside the calibrated range). Nothing is left
    behind if a block is bad. ``progress(rows, bytes)`` after each block.
    """
    model = models.get(kind)
    files = tables.table_files(input_spec)
    check_output(models, files, output_path)
    columns = output_columns(kind)
    check_kept(keep, columns)
    names = list(model.feature_names)
    for path in files:  # every header first: a missing column fails before any output
        header = tables.read_header(path)
        tables.check_columns(str(path), header, names)
        _check_kept_in(str(path), header, keep)
    rows = clipped_rows = 0
    first_clipped: list[int] = []
    with tables.prediction_writer(output_path, [*keep, *columns]) as write:
        for path in files:
            read = 0  # bytes of this file
            for block in tables.iter_blocks(path, names, chunk_rows, keep=keep):
                predictions, clipped = predict_rows(model, block.values, block.offset, str(path))
                arrays = [*block.kept, predictions]
                if kind == "integer":
                    arrays.append(clipped.astype(np.int64))
                try:
                    write(*arrays)
                except InputError as exc:
                    raise InputError(f"{path}: {exc}") from None
                if len(first_clipped) < SHOWN_CLIPPED:
                    first_clipped += (np.flatnonzero(clipped)[:SHOWN_CLIPPED] + rows + 1).tolist()
                rows += len(predictions)
                clipped_rows += int(clipped.sum())
                if progress:
                    progress(len(predictions), max(block.position - read, 0))
                    read = max(read, block.position)
            if progress:  # the file is read: the bar reaches its size whatever was estimated
                progress(0, max(path.stat().st_size - read, 0))
    return FilePrediction(rows, clipped_rows, first_clipped[:SHOWN_CLIPPED])


def output_columns(kind: ModelKind) -> list[str]:
    """The columns a file prediction writes after the kept ones."""
    return ["prediction", "clipped"] if kind == "integer" else ["prediction"]


def check_kept(keep: Sequence[str], output: Sequence[str]) -> None:
    """``--keep-columns`` names each column once, and none the output writes itself."""
    for name in keep:
        if not name:
            raise InputError("--keep-columns: an empty column name (check the commas)")
        if name in output:
            raise InputError(
                f"--keep-columns {name!r}: the output has its own {name!r} column; "
                "rename that input column first"
            )
    twice = [name for name, count in collections.Counter(keep).items() if count > 1]
    if twice:
        raise InputError(f"--keep-columns names {twice[0]!r} twice")


def _check_kept_in(label: str, header: Sequence[str], keep: Sequence[str]) -> None:
    for name in keep:
        if name not in header:
            raise InputError(
                f"--keep-columns: column {name!r} not found in {label}"
                f"{did_you_mean(name, header)} (columns are: {', '.join(header)})"
            )


def check_output(models: Models, inputs: list[Path], output: Path) -> None:
    """An output must not replace one of its inputs, nor land in the models folder (where it
    would replace a seed link, or write into a version that is never written again)."""
    if output == tables.STDOUT:
        return
    store.check_outside(models.version.models_dir, output, "--output")
    for path in inputs:
        with contextlib.suppress(OSError):
            if os.path.samefile(path, output):
                raise InputError(f"--output {output} is the input file {path}: choose another")
