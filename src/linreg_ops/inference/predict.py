"""Predicting with a loaded model: rows in memory, or a file, folder or glob written block by
block. Numpy only; a row outside the model's domain is refused with one message everywhere
(the CLI, the service, the MLflow export)."""

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from linreg_ops.config import DEFAULT_CHUNK_ROWS, ModelKind
from linreg_ops.errors import InputError
from linreg_ops.inference.loading import Models
from linreg_ops.model import Predictor, domain_error, outside_domain
from linreg_ops.storage import store, tables

__all__ = ["SHOWN_CLIPPED", "FilePrediction", "check_output", "predict_file", "predict_rows"]


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
    progress: Callable[[int], None] | None = None,
) -> FilePrediction:
    """Predict every row of a file, folder or glob into one output file, block by block.

    Memory stays at one block of ``chunk_rows`` rows whatever the input's size. The output
    has a ``prediction`` column, and for the integer-only model a ``clipped`` column (1 where
    an input was outside the calibrated range). Nothing is left behind if a block is bad.
    """
    model = models.get(kind)
    files = tables.table_files(input_spec)
    check_output(models, files, output_path)
    columns = ["prediction", "clipped"] if kind == "integer" else ["prediction"]
    names = list(model.feature_names)
    for path in files:  # every header first: a missing column fails before any output
        tables.check_columns(str(path), tables.read_header(path), names)
    rows = clipped_rows = 0
    first_clipped: list[int] = []
    with tables.prediction_writer(output_path, columns) as write:
        for path in files:
            for block in tables.iter_blocks(path, names, chunk_rows):
                predictions, clipped = predict_rows(model, block.values, block.offset, str(path))
                if kind == "integer":
                    write(predictions, clipped.astype(np.int64))
                else:
                    write(predictions)
                if len(first_clipped) < SHOWN_CLIPPED:
                    first_clipped += (np.flatnonzero(clipped)[:SHOWN_CLIPPED] + rows + 1).tolist()
                rows += len(predictions)
                clipped_rows += int(clipped.sum())
                if progress:
                    progress(len(predictions))
    return FilePrediction(rows, clipped_rows, first_clipped[:SHOWN_CLIPPED])


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
