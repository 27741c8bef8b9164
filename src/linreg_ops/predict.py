"""Loading a version's models and predicting with them: numpy and JSON only.

Nothing here imports scikit-learn or unpickles anything: this is the path the container and
the HTTP service run. A model is trusted after three checks: the store's SHA-256, the
codec's schema, and its *known answers* — the predictions recorded in the manifest when the
version was published, which the loaded model must reproduce, so an artifact that is valid
but not the one published, or a runtime that computes differently, is refused instead of
served. The integer model must reproduce its output codes and clipped flags bit for bit on
every stored test row (a SHA-256 of them) and on the probe rows; the float kinds their
answers on the probe rows, each within the rounding bound of that row's arithmetic.
"""

import contextlib
import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from linreg_ops.config import DEFAULT_CHUNK_ROWS, MODEL_KINDS, ModelKind
from linreg_ops.errors import ArtifactError, InputError
from linreg_ops.metrics import quantized_fidelity, regression_metrics
from linreg_ops.model import (
    IntegerLinearModel,
    LinearModel,
    Predictor,
    QuantizedLinearModel,
    domain_error,
    outside_domain,
)
from linreg_ops.storage import codecs, store, tables
from linreg_ops.storage.store import Version

if TYPE_CHECKING:
    from linreg_ops.storage.cluster import Piece

AnyModel = LinearModel | QuantizedLinearModel | IntegerLinearModel  # each one a Predictor
ARTIFACT_OF: dict[ModelKind, str] = {
    "float": store.MODEL_JSON,
    "quantized": store.QUANTIZED_MODEL_JSON,
    "integer": store.INTEGER_MODEL_JSON,
}
KNOWN_ANSWER_ROWS = 16


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


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Models:
    """Every model of one version, checked: what ``predict``, ``evaluate`` and ``serve`` use."""

    version: Version
    float: LinearModel
    quantized: QuantizedLinearModel | None
    integer: IntegerLinearModel | None

    def get(self, kind: ModelKind) -> AnyModel:
        model: AnyModel | None = {
            "float": self.float,
            "quantized": self.quantized,
            "integer": self.integer,
        }[kind]
        if model is None:
            raise InputError(f"{self.version} has no {kind} model: run linreg-ops quantize")
        return model

    def kinds(self) -> list[ModelKind]:
        return [kind for kind in MODEL_KINDS if self.version.has(ARTIFACT_OF[kind])]


def load_models(version: Version) -> Models:
    """Decode every model of ``version`` and check each against its known answers."""
    source = f"{version.path}/"

    def read(name: str) -> bytes:
        return store.read_artifact(version, name)

    float_model = codecs.decode_float(read(store.MODEL_JSON), source + store.MODEL_JSON)
    quantized = integer = None
    if version.has(store.QUANTIZED_MODEL_JSON):
        name = store.QUANTIZED_MODEL_JSON
        quantized = codecs.decode_quantized(read(name), source + name)
    if version.has(store.INTEGER_MODEL_JSON):
        name = store.INTEGER_MODEL_JSON
        integer = codecs.decode_integer(read(name), source + name)
    models = Models(version, float_model, quantized, integer)
    for other in (quantized, integer):
        if other is not None and other.feature_names != float_model.feature_names:
            raise ArtifactError(f"{version}: the models do not name the same features")
    check_known_answers(models)
    return models


def known_answers(models: Mapping[ModelKind, Predictor], test_rows: np.ndarray) -> dict[str, Any]:
    """The manifest section a loader checks: probe rows, the features they are (by name:
    the rows are positional, so a model whose names were swapped would answer them the
    same), what each model answers on them, and for the models whose answers are exact
    (integer codes) a digest of their answers on every stored test row (``test_rows``, in
    the order of ``test_split.csv``)."""
    names = {model.feature_names for model in models.values()}
    if len(names) != 1:
        raise ArtifactError("the models do not name the same features")
    test_rows = test_rows[:, : len(next(iter(names)))]
    rows = probe_rows(models, test_rows)
    answers: dict[str, Any] = {
        "features": list(names.pop()),
        "rows": rows.tolist(),
        "test_rows": len(test_rows),
        "test_digests": {},
    }
    for kind, model in models.items():
        answers[kind] = model.answers(rows).tolist()
        if model.exact_answers:
            answers["test_digests"][kind] = answers_digest(model, test_rows)
    return answers


def probe_rows(models: Mapping[ModelKind, Predictor], test_rows: np.ndarray) -> np.ndarray:
    """The first stored test rows, two rows beyond the training range on every side (so an
    integer model's clipping is part of what is checked), and the test rows where an edit of
    any one number of a float model shows most against its rounding (``sensitive_rows``).
    Rows outside some model's domain are left out: no runtime answers them."""
    float_model = models["float"]
    assert isinstance(float_model, LinearModel)
    stats = float_model.stats
    width = stats.maximum - stats.minimum
    with np.errstate(over="ignore"):  # beyond float64 for huge columns: infinite, left out
        edges = np.vstack([stats.minimum - width - 1.0, stats.maximum + width + 1.0])
    sensitive = np.unique(
        np.concatenate([model.sensitive_rows(test_rows) for model in models.values()])
    )
    rows = np.vstack([test_rows[:KNOWN_ANSWER_ROWS], edges, test_rows[sensitive]])
    outside = np.any([outside_domain(model, rows) for model in models.values()], axis=0)
    return np.ascontiguousarray(rows[~outside])


def answers_digest(model: Predictor, rows: np.ndarray) -> str:
    """SHA-256 of a model's answers and clipped flags on ``rows`` (little-endian int64
    answers, then one byte per flag): exact answers only, the same bits in every runtime."""
    answers = model.answers(rows)
    clipped = model.predict_clipped(rows)[1]
    data = answers.astype("<i8").tobytes() + clipped.astype(np.uint8).tobytes()
    return hashlib.sha256(data).hexdigest()


def check_known_answers(models: Models) -> None:
    """Every model must answer as it did when the version was published: on the probe rows,
    and, for exact answers, on every stored test row."""
    answers = models.version.manifest.known_answers
    kinds = models.kinds()
    try:
        rows = np.asarray(answers["rows"], dtype=np.float64)
        expected = {kind: np.asarray(answers[kind], dtype=np.float64) for kind in kinds}
        usable = rows.ndim == 2 and rows.shape[1] == models.float.n_features
        usable = usable and np.isfinite(rows).all()
        usable = usable and all(e.shape == (len(rows),) for e in expected.values())
        features = answers["features"]
        test_rows, digests = answers["test_rows"], answers["test_digests"]
        exact = [kind for kind in kinds if models.get(kind).exact_answers]
        usable = usable and isinstance(test_rows, int) and isinstance(digests, dict)
        usable = usable and all(isinstance(digests.get(kind), str) for kind in exact)
    except (KeyError, TypeError, ValueError):
        usable = False
    if not usable:
        raise ArtifactError(
            f"{models.version}: {store.MANIFEST_JSON} has no usable known_answers "
            "(published by an older linreg-ops: retrain with linreg-ops train)"
        )
    if features != list(models.float.feature_names):
        raise ArtifactError(
            f"{models.version}: the models name the features {list(models.float.feature_names)}, "
            f"but {store.MANIFEST_JSON} recorded {features} when the version was published"
        )
    for kind, answer in expected.items():
        if not models.get(kind).reproduces(rows, answer):
            raise _not_reproduced(models, kind)
    if exact:
        X = stored_test_rows(models).values[:, :-1]
        if len(X) != test_rows:
            raise ArtifactError(
                f"{models.version}: {store.TEST_SPLIT_CSV} holds {len(X)} rows, but "
                f"{store.MANIFEST_JSON} recorded answers on {test_rows}"
            )
        for kind in exact:
            if answers_digest(models.get(kind), X) != digests[kind]:
                raise _not_reproduced(models, kind)


def _not_reproduced(models: Models, kind: ModelKind) -> ArtifactError:
    return ArtifactError(
        f"{models.version}: the {kind} model does not reproduce the predictions "
        f"recorded when it was published ({store.MANIFEST_JSON} known_answers); "
        "it was changed, or this runtime computes differently"
    )


def load(models_dir: Path, version: int | None = None) -> Models:
    """The current version's models (or version ``version``'s), resolved once."""
    return load_models(store.open_version(models_dir, version))


# --------------------------------------------------------------------------- files


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


def stored_test_rows(models: Models) -> tables.Table:
    """The version's held-out rows (features, then the target)."""
    columns = [*models.float.feature_names, models.float.target_name]
    data = store.read_artifact(models.version, store.TEST_SPLIT_CSV)
    return tables.parse_csv(data, columns, label=str(models.version.path / store.TEST_SPLIT_CSV))


def labelled_rows(
    models: Models, data: str | Path | None = None, target: str | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """Rows to score: the stored test split, or labelled files given with ``--data/--target``."""
    if data is None:
        if target is not None:
            raise InputError("--target needs --data PATH (the file holding the true values)")
        test = stored_test_rows(models)
        return (
            test.values[:, :-1],
            test.values[:, -1],
            f"stored test split ({store.TEST_SPLIT_CSV})",
        )
    if not target:
        raise InputError("--data needs --target COLUMN (the column holding the true values)")
    columns = [*models.float.feature_names, target]
    blocks = [tables.read_table(path, columns).values for path in tables.table_files(data)]
    values = np.vstack(blocks)
    return values[:, :-1], values[:, -1], str(data)


# --------------------------------------------------------------------------- evaluation


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


def check_kind(kind: str) -> ModelKind:
    for known in MODEL_KINDS:
        if kind == known:
            return known
    raise InputError(f"unknown model kind {kind!r}: expected one of {', '.join(MODEL_KINDS)}")


def load_metrics(version: Version) -> dict[str, Any] | None:
    """The version's ``metrics.json``, checked against its schema."""
    if not version.has(store.METRICS_JSON):
        return None
    data = store.read_artifact(version, store.METRICS_JSON)
    return codecs.decode_metrics(data, str(version.path / store.METRICS_JSON))


# --------------------------------------------------------------------------- dask


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
    import dask.dataframe as dd
    from dask.delayed import delayed

    from linreg_ops.storage import cluster
    from linreg_ops.storage.cluster import DaskSession

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


def _offsets_within_files(pieces: "list[Piece]") -> list[int]:
    """Each partition's first row, numbered from 0 within its own file (as errors name it)."""
    file_start: dict[Path, int] = {}
    for piece in pieces:
        file_start.setdefault(piece.part.path, piece.first_row)
    return [piece.first_row - file_start[piece.part.path] for piece in pieces]
