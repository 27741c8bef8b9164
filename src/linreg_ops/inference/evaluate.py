"""Scoring every published model of a version on the same labelled rows. Writes nothing."""

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from linreg_ops.config import ModelKind
from linreg_ops.errors import InputError
from linreg_ops.inference.loading import Models, stored_test_rows
from linreg_ops.inference.predict import predict_rows
from linreg_ops.metrics import quantized_fidelity, regression_metrics
from linreg_ops.storage import store, tables

__all__ = ["Evaluation", "LabelledRows", "evaluate", "labelled_rows"]


class LabelledRows(NamedTuple):
    """Rows to score: features, true values, and where they came from (for messages)."""

    X: np.ndarray
    y: np.ndarray
    source: str


def labelled_rows(
    models: Models, data: str | Path | None = None, target: str | None = None
) -> LabelledRows:
    """Rows to score: the stored test split, or labelled files given with ``--data/--target``."""
    if data is None:
        if target is not None:
            raise InputError("--target needs --data PATH (the file holding the true values)")
        test = stored_test_rows(models)
        split = f"stored test split ({store.TEST_SPLIT_CSV})"
        return LabelledRows(test.values[:, :-1], test.values[:, -1], split)
    if not target:
        raise InputError("--data needs --target COLUMN (the column holding the true values)")
    columns = [*models.float.feature_names, target]
    blocks = [tables.read_table(path, columns).values for path in tables.table_files(data)]
    values = np.vstack(blocks)
    return LabelledRows(values[:, :-1], values[:, -1], str(data))


@dataclass(frozen=True)
class Evaluation:
    """Float, quantized and integer-only figures on the same rows."""

    source: str
    n_rows: int
    figures: dict[ModelKind, dict[str, float]]


def evaluate(models: Models, X: np.ndarray, y: np.ndarray, source: str) -> Evaluation:
    """Every published model of the version on the same labelled rows. Writes nothing."""
    float_pred, _ = predict_rows(models.float, X, source=source)
    figures: dict[ModelKind, dict[str, float]] = {
        "float": {**regression_metrics(y, float_pred), "max_abs_diff": 0.0, "mean_abs_diff": 0.0}
    }
    for kind in models.kinds():
        if kind != "float":
            predictions, clipped = predict_rows(models.get(kind), X, source=source)
            figures[kind] = quantized_fidelity(y, float_pred, predictions, clipped)
    return Evaluation(source, int(y.size), figures)
