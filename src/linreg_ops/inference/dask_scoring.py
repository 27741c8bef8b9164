"""Scoring an input on a Dask cluster: every partition read by ``tables`` on a worker, like
every other path, and written as a Parquet dataset (a folder, renamed into place whole)."""

from pathlib import Path
from typing import Any

import numpy as np

from linreg_ops.config import ModelKind
from linreg_ops.errors import InputError
from linreg_ops.extras import require
from linreg_ops.inference.loading import AnyModel, Models
from linreg_ops.inference.predict import check_output, predict_rows
from linreg_ops.storage import cluster, store, tables
from linreg_ops.storage.cluster import DaskSession, Piece

__all__ = ["dask_predict"]


def _score_partition(
    part: tables.Partition, header: list[str], first_row: int, model: AnyModel, kind: ModelKind
) -> Any:
    """Runs on a worker: one partition's predictions (and clipped flags for integer-only)."""
    import pandas as pd

    names = list(model.feature_names)
    blocks = [b.values for b in tables.partition_blocks(part, names, header, first_row, 1 << 16)]
    values = np.vstack(blocks) if blocks else np.empty((0, len(names)))
    predictions, clipped = predict_rows(model, values, first_row, str(part.path))
    columns: dict[str, np.ndarray] = {"prediction": predictions}
    if kind == "integer":
        columns["clipped"] = clipped.astype(np.int64)
    return pd.DataFrame(columns)


def dask_predict(
    models: Models, kind: ModelKind, input_spec: str | Path, output: Path, scheduler: str | None
) -> int:
    """Score every partition of the input on the cluster (read by ``tables``, like every other
    path) and write a Parquet dataset: a folder with one part file per partition.

    The folder must not exist: it is written under a temporary name beside it and renamed
    into place whole, so no part file of an earlier run (or of a failed one) is mixed in.
    """
    dd = require("dask.dataframe", "scale", "the dask engine")
    from dask.delayed import delayed

    model = models.get(kind)
    names = list(model.feature_names)
    files = tables.table_files(input_spec)
    output = Path(output)
    check_output(models, files, output)
    if output.exists() or output.is_symlink():
        raise InputError(f"{output} already exists: Dask writes its predictions to a new folder")
    headers = cluster.checked_headers(files, names)
    staging = store.staging_sibling(output)
    try:
        with DaskSession(scheduler) as client:
            pieces = cluster.count_pieces(headers, names, client)
            offsets = _offsets_within_files(pieces)
            meta = {"prediction": "f8", **({"clipped": "i8"} if kind == "integer" else {})}
            parts = [
                delayed(_score_partition, pure=True)(piece.part, piece.header, offset, model, kind)
                for piece, offset in zip(pieces, offsets, strict=True)
            ]
            scored = dd.from_delayed(parts, meta=meta)
            written = scored.to_parquet(str(staging), write_index=False, compute=False)
            client.compute(written).result()
        store.rename_into_place(staging, output)
    finally:
        store.remove_tree(staging)
    return sum(piece.rows for piece in pieces)


def _offsets_within_files(pieces: list[Piece]) -> list[int]:
    """Each partition's first row, numbered from 0 within its own file (as errors name it)."""
    file_start: dict[Path, int] = {}
    for piece in pieces:
        file_start.setdefault(piece.part.path, piece.first_row)
    return [piece.first_row - file_start[piece.part.path] for piece in pieces]
