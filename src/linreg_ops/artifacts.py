"""Every file format the project reads or writes, and the only place that knows them.

Writes are atomic (temporary file in the same folder, fsync, ``os.replace``) so a crash or
a bad input never leaves a half-written artifact. Every artifact written to a models folder
is recorded in ``manifest.json`` with its SHA-256, and every read checks it: a tampered or
stale file is refused instead of silently served.

Heavy or unsafe libraries (joblib/pickle, pyarrow) are imported inside the functions that
need them, so prediction and serving stay numpy-only.
"""

import contextlib
import csv
import functools
import hashlib
import io
import json
import os
import platform
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from linreg_ops.errors import ArtifactError, InputError
from linreg_ops.model import (
    FeatureStats,
    IntegerLinearModel,
    LinearModel,
    QuantizedLinearModel,
)

SCHEMA_VERSION = 1

ESTIMATOR_JOBLIB = "linear_regression_model.joblib"
UNQUANT_PARAMS_JOBLIB = "unquant_params.joblib"
QUANT_PARAMS_JOBLIB = "quant_params.joblib"
MODEL_JSON = "model.json"
QUANTIZED_MODEL_JSON = "quantized_model.json"
INTEGER_MODEL_JSON = "integer_model.json"
TEST_SPLIT_CSV = "test_split.csv"
METRICS_JSON = "metrics.json"
MANIFEST_JSON = "manifest.json"

KNOWN_ARTIFACTS = (
    ESTIMATOR_JOBLIB,
    UNQUANT_PARAMS_JOBLIB,
    QUANT_PARAMS_JOBLIB,
    MODEL_JSON,
    QUANTIZED_MODEL_JSON,
    INTEGER_MODEL_JSON,
    TEST_SPLIT_CSV,
    METRICS_JSON,
)
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


# --------------------------------------------------------------------------- raw bytes


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


@functools.cache
def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def json_bytes(payload: Any) -> bytes:
    """Deterministic JSON: fixed key order, shortest round-tripping floats, trailing newline."""
    return (json.dumps(payload, indent=2, allow_nan=False) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- manifest


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def load_manifest(models_dir: Path) -> dict[str, Any]:
    path = Path(models_dir) / MANIFEST_JSON
    if not path.is_file():
        raise ArtifactError(
            f"no {MANIFEST_JSON} in {models_dir}: train a model first (linreg-ops train)"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from exc


def start_manifest(training_data: dict[str, Any], split: dict[str, Any]) -> dict[str, Any]:
    """A fresh manifest for a new training run: earlier artifacts are no longer trusted."""
    return {
        "schema_version": SCHEMA_VERSION,
        "created_utc": _now_utc(),
        "training_data": training_data,
        "split": split,
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scikit-learn": _package_version("scikit-learn"),
            "linreg-ops": _package_version("linreg-ops"),
        },
        "artifacts": {},
    }


def write_manifest(models_dir: Path, manifest: dict[str, Any]) -> Path:
    manifest = {**manifest, "updated_utc": _now_utc()}
    return atomic_write_bytes(Path(models_dir) / MANIFEST_JSON, json_bytes(manifest))


def write_artifacts(
    models_dir: Path, files: dict[str, bytes], *, fresh_manifest: dict[str, Any] | None = None
) -> list[Path]:
    """Atomically write artifacts, then record their SHA-256 and size in one manifest update.

    With ``fresh_manifest`` (a new training run) the old manifest is replaced and the known
    artifacts it no longer lists are deleted, so nothing from an older model lingers.
    """
    manifest = fresh_manifest if fresh_manifest is not None else load_manifest(models_dir)
    paths = []
    for name, data in files.items():
        paths.append(atomic_write_bytes(Path(models_dir) / name, data))
        manifest["artifacts"][name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    write_manifest(models_dir, manifest)
    if fresh_manifest is not None:
        for name in KNOWN_ARTIFACTS:
            if name not in manifest["artifacts"]:
                (Path(models_dir) / name).unlink(missing_ok=True)
    return paths


def read_artifact(models_dir: Path, name: str) -> bytes:
    """The bytes of an artifact, refused unless they match the manifest's SHA-256."""
    manifest = load_manifest(models_dir)
    entry = manifest.get("artifacts", {}).get(name)
    path = Path(models_dir) / name
    if entry is None:
        hint = "linreg-ops quantize" if "quant" in name else "linreg-ops train"
        raise ArtifactError(f"{name} is not recorded in {path.parent / MANIFEST_JSON}: run {hint}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from exc
    actual = sha256_bytes(data)
    if actual != entry["sha256"]:
        raise ArtifactError(
            f"{path} does not match its SHA-256 in {MANIFEST_JSON} "
            f"(expected {entry['sha256'][:12]}…, found {actual[:12]}…): "
            "it was modified after it was written; retrain or restore it"
        )
    return data


def artifact_sha256(models_dir: Path, name: str) -> str:
    return load_manifest(models_dir)["artifacts"][name]["sha256"]


def artifact_size(models_dir: Path, name: str) -> int:
    return int(load_manifest(models_dir)["artifacts"][name]["bytes"])


def _read_json_artifact(models_dir: Path, name: str) -> dict[str, Any]:
    data = read_artifact(models_dir, name)
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise ArtifactError(f"{Path(models_dir) / name} is not valid JSON: {exc}") from exc
    if payload.get("schema_version") != SCHEMA_VERSION:
        raise ArtifactError(
            f"{name} has schema_version {payload.get('schema_version')!r}; "
            f"this linreg-ops reads {SCHEMA_VERSION}"
        )
    return payload


# --------------------------------------------------------------------------- models


def _floats(values: np.ndarray) -> list:
    """JSON-ready floats (nested for 2-D), shortest repr that round-trips."""
    return np.asarray(values, dtype=np.float64).tolist()


def model_to_dict(model: LinearModel) -> dict[str, Any]:
    stats = model.stats
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "linear_regression",
        "target": model.target_name,
        "features": list(model.feature_names),
        "coef": _floats(model.coef),
        "intercept": float(model.intercept),
        "training_statistics": {
            "n": stats.n,
            "feature_mean": _floats(stats.mean),
            "feature_std": _floats(stats.std),
            "feature_min": _floats(stats.minimum),
            "feature_max": _floats(stats.maximum),
            "quantile_level": stats.quantile_level,
            "feature_low_quantile": _floats(stats.low),
            "feature_high_quantile": _floats(stats.high),
            "standardized_correlation": _floats(stats.correlation),
        },
    }


def model_from_dict(payload: dict[str, Any]) -> LinearModel:
    try:
        stats = payload["training_statistics"]

        def array(key: str) -> np.ndarray:
            return np.asarray(stats[key], dtype=np.float64)

        return LinearModel(
            feature_names=tuple(payload["features"]),
            target_name=payload["target"],
            coef=np.asarray(payload["coef"], dtype=np.float64),
            intercept=float(payload["intercept"]),
            stats=FeatureStats(
                n=int(stats["n"]),
                mean=array("feature_mean"),
                std=array("feature_std"),
                minimum=array("feature_min"),
                maximum=array("feature_max"),
                quantile_level=float(stats["quantile_level"]),
                low=array("feature_low_quantile"),
                high=array("feature_high_quantile"),
                correlation=array("standardized_correlation"),
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{MODEL_JSON} is malformed: {exc!r}") from exc


def quantized_to_dict(model: QuantizedLinearModel) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "quantized_linear_regression",
        "target": model.target_name,
        "features": list(model.feature_names),
        "convention": "real = scale * (q - zero_point); round half to even; saturate",
        "prediction": (
            "z = (x - feature_mean) / feature_std; "
            "y = sum(scale * (q - zero_point) * z) + bias * bias_scale "
            "(equivalently: fold 1/feature_std and feature_mean into raw-space weights once)"
        ),
        "dtype": model.dtype,
        "bits": model.bits,
        "symmetric": model.symmetric,
        "granularity": model.granularity,
        "rounding": model.rounding,
        "weights": [int(q) for q in model.weights],
        "scale": _floats(model.scale),
        "scale_dtype": "float32",
        "zero_point": [int(z) for z in model.zero_point],
        "bias": int(model.bias),
        "bias_dtype": "int32",
        "bias_scale": float(model.bias_scale),
        "feature_mean": _floats(model.feature_mean),
        "feature_std": _floats(model.feature_std),
        "statistics_dtype": "float32",
    }


def quantized_from_dict(payload: dict[str, Any]) -> QuantizedLinearModel:
    try:
        return QuantizedLinearModel(
            feature_names=tuple(payload["features"]),
            target_name=payload["target"],
            dtype=payload["dtype"],
            bits=int(payload["bits"]),
            symmetric=bool(payload["symmetric"]),
            granularity=payload["granularity"],
            rounding=payload["rounding"],
            weights=np.asarray(payload["weights"], dtype=np.int64),
            scale=np.asarray(payload["scale"], dtype=np.float32),
            zero_point=np.asarray(payload["zero_point"], dtype=np.int64),
            bias=int(payload["bias"]),
            bias_scale=float(payload["bias_scale"]),
            feature_mean=np.asarray(payload["feature_mean"], dtype=np.float32),
            feature_std=np.asarray(payload["feature_std"], dtype=np.float32),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{QUANTIZED_MODEL_JSON} is malformed: {exc!r}") from exc


def integer_to_dict(model: IntegerLinearModel) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "integer_only_linear_regression",
        "target": model.target_name,
        "features": list(model.feature_names),
        "inference": [
            "q_x = clip(round_half_even(x / input_scale) + input_zero_point, input range)",
            "acc = sum(weights * q_x) + bias  (int64; bias already holds the zero points)",
            "out = clip((acc * multiplier + 2**(shift - 1)) >> shift, output range)",
            "y = output_scale * out",
        ],
        "weight_dtype": model.weight_dtype,
        "weights": [int(q) for q in model.weights],
        "accumulator_scale": float(model.accumulator_scale),
        "rounding": model.rounding,
        "bias": int(model.bias),
        "bias_dtype": "int32",
        "input_bits": model.input_bits,
        "input_scale": _floats(model.input_scale),
        "input_zero_point": [int(z) for z in model.input_zero_point],
        "calibration": model.calibration,
        "output_bits": model.output_bits,
        "output_scale": float(model.output_scale),
        "multiplier": int(model.multiplier),
        "shift": int(model.shift),
        "scale_dtype": "float32",
    }


def integer_from_dict(payload: dict[str, Any]) -> IntegerLinearModel:
    try:
        return IntegerLinearModel(
            feature_names=tuple(payload["features"]),
            target_name=payload["target"],
            weight_dtype=payload["weight_dtype"],
            weights=np.asarray(payload["weights"], dtype=np.int64),
            accumulator_scale=float(payload["accumulator_scale"]),
            rounding=payload["rounding"],
            bias=int(payload["bias"]),
            input_bits=int(payload["input_bits"]),
            input_scale=np.asarray(payload["input_scale"], dtype=np.float32),
            input_zero_point=np.asarray(payload["input_zero_point"], dtype=np.int64),
            calibration=payload["calibration"],
            output_bits=int(payload["output_bits"]),
            output_scale=float(payload["output_scale"]),
            multiplier=int(payload["multiplier"]),
            shift=int(payload["shift"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{INTEGER_MODEL_JSON} is malformed: {exc!r}") from exc


def model_bytes(model: LinearModel) -> bytes:
    """The bytes of ``model.json``: deterministic, so two identical fits give identical files."""
    return json_bytes(model_to_dict(model))


def load_model(models_dir: Path) -> LinearModel:
    return model_from_dict(_read_json_artifact(models_dir, MODEL_JSON))


def quantized_model_bytes(model: QuantizedLinearModel) -> bytes:
    return json_bytes(quantized_to_dict(model))


def load_quantized_model(models_dir: Path) -> QuantizedLinearModel:
    return quantized_from_dict(_read_json_artifact(models_dir, QUANTIZED_MODEL_JSON))


def integer_model_bytes(model: IntegerLinearModel) -> bytes:
    return json_bytes(integer_to_dict(model))


def load_integer_model(models_dir: Path) -> IntegerLinearModel:
    return integer_from_dict(_read_json_artifact(models_dir, INTEGER_MODEL_JSON))


# --------------------------------------------------------------------------- joblib (seed)


def joblib_bytes(obj: Any) -> bytes:
    """Seed-compatible joblib/pickle bytes. Only training-time code reads these back."""
    import joblib

    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


def load_joblib_artifact(models_dir: Path, name: str) -> Any:
    """Unpickle one of our own joblib artifacts, only after its SHA-256 matched the manifest."""
    import joblib

    return joblib.load(io.BytesIO(read_artifact(models_dir, name)))


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Table:
    """Named float64 columns read from a CSV or Parquet file."""

    path: Path
    columns: tuple[str, ...]
    values: np.ndarray  # shape (rows, len(columns)), float64

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.columns.index(name)]


def table_csv_bytes(columns: Sequence[str], values: np.ndarray) -> bytes:
    """CSV with a header and 17 significant digits, so floats survive the round trip exactly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    np.savetxt(buffer, np.asarray(values, dtype=np.float64), delimiter=",", fmt="%.17g")
    return buffer.getvalue().encode("utf-8")


def split_csv_bytes(
    feature_names: Sequence[str],
    target: str,
    X: np.ndarray,
    y: np.ndarray,
) -> bytes:
    return table_csv_bytes([*feature_names, target], np.column_stack([X, y]))


def load_test_split(models_dir: Path) -> Table:
    data = read_artifact(models_dir, TEST_SPLIT_CSV)
    return parse_csv_text(str(Path(models_dir) / TEST_SPLIT_CSV), data.decode("utf-8"))


def _table_suffix(path: Path) -> str:
    """The table format of ``path``, after checking it is a readable file of a known kind."""
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(
            f"unsupported data format {suffix or '(no extension)'!r} for {path}: "
            "expected .csv or .parquet"
        )
    if not path.exists():
        raise InputError(f"data file not found: {path}")
    if not path.is_file():
        raise InputError(f"cannot read {path}: not a regular file")
    return suffix


def read_table_header(path: Path) -> list[str]:
    """Column names of a CSV or Parquet file, without reading its rows."""
    path = Path(path)
    if _table_suffix(path) == ".csv":
        try:
            with open(path, encoding="utf-8-sig", newline="") as handle:
                first = handle.readline()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {path}: {exc}") from exc
        if not first.strip():
            raise InputError(f"{path} is empty: expected a header row and data rows")
        return _csv_header(path, first)
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc


DEFAULT_CHUNK_ROWS = 131_072  # 9 float64 columns: ~9 MB a block; larger blocks gain nothing


@dataclass(frozen=True)
class Chunk:
    """A block of rows: ``offset`` is the 0-based index of its first row in the whole file."""

    offset: int
    values: np.ndarray  # float64, (rows, columns)


def iter_table_chunks(
    path: Path, columns: Sequence[str] | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> tuple[tuple[str, ...], Iterator[Chunk]]:
    """The selected column names and an iterator over float64 row blocks, in file order.

    Memory stays at one block whatever the file's size. Every error names the file, the
    column and the row (counted from 1 over the whole file), wherever the block boundary is.
    """
    path = Path(path)
    if _table_suffix(path) != ".csv":
        return _parquet_chunks(path, columns, chunk_rows)
    header = read_table_header(path)
    indices = _select(path, header, columns)

    def blocks() -> Iterator[Chunk]:
        # The file opens only when the first block is asked for, and closes with the iterator.
        try:
            with open(path, encoding="utf-8-sig", newline="") as handle:
                lines = (line.rstrip("\r\n") for line in handle)
                next(lines)  # the header, already read
                yield from _csv_blocks(path, header, indices, lines, chunk_rows)
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {path}: {exc}") from exc

    return tuple(header[i] for i in indices), blocks()


def read_table(path: Path, columns: Sequence[str] | None = None) -> Table:
    """Read numeric columns from a CSV or Parquet file, with errors that name the column and row.

    ``columns`` selects (and orders) the columns to return; other columns may hold anything.
    """
    names, chunks = iter_table_chunks(path, columns)
    return Table(path=Path(path), columns=names, values=np.vstack([c.values for c in chunks]))


def _select(path: Path, header: Sequence[str], columns: Sequence[str] | None) -> list[int]:
    if len(set(header)) != len(header):
        dupes = sorted({name for name in header if list(header).count(name) > 1})
        raise InputError(f"{path} has duplicate column names: {', '.join(dupes)}")
    if columns is None:
        return list(range(len(header)))
    missing = [name for name in columns if name not in header]
    if missing:
        raise InputError(
            f"column {missing[0]!r} not found in {path}; columns are: {', '.join(header)}"
        )
    return [list(header).index(name) for name in columns]


def parse_csv_text(label: str, text: str, columns: Sequence[str] | None = None) -> Table:
    """Parse CSV held in memory (e.g. an HTTP body); ``label`` names it in error messages."""
    names, chunks = _csv_chunks(Path(label), iter(text.splitlines()), columns, 2**62)
    return Table(path=Path(label), columns=names, values=np.vstack([c.values for c in chunks]))


def _csv_chunks(
    path: Path, lines: Iterator[str], columns: Sequence[str] | None, chunk_rows: int
) -> tuple[tuple[str, ...], Iterator[Chunk]]:
    first = next(lines, None)
    if first is None or not first.strip():
        raise InputError(f"{path} is empty: expected a header row and data rows")
    header = _csv_header(path, first)
    indices = _select(path, header, columns)
    return tuple(header[i] for i in indices), _csv_blocks(path, header, indices, lines, chunk_rows)


def _csv_header(path: Path, line: str) -> list[str]:
    try:
        return [name.strip() for name in next(csv.reader([line]))]
    except csv.Error as exc:  # NUL bytes, stray carriage returns inside a field, ...
        raise InputError(f"{path} is not valid CSV: {exc}") from exc


def _csv_blocks(
    path: Path, header: list[str], indices: list[int], lines: Iterator[str], chunk_rows: int
) -> Iterator[Chunk]:
    offset, batch, numbers = 0, [], []
    for line_number, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        batch.append(line)
        numbers.append(line_number)
        if len(batch) == chunk_rows:
            yield _csv_block(path, header, indices, batch, numbers, offset)
            offset += len(batch)
            batch, numbers = [], []
    if batch:
        yield _csv_block(path, header, indices, batch, numbers, offset)
    elif offset == 0:
        raise InputError(f"{path} has a header but no data rows")


def _csv_block(
    path: Path,
    header: list[str],
    indices: list[int],
    lines: list[str],
    numbers: list[int],
    offset: int,
) -> Chunk:
    try:
        values = np.loadtxt(
            lines, delimiter=",", usecols=indices, dtype=np.float64, ndmin=2, comments=None
        )
    except ValueError as exc:
        _raise_first_bad_csv_cell(path, header, indices, lines, numbers, offset)
        raise InputError(f"cannot parse {path} as CSV: {exc}") from exc
    return Chunk(offset, values)


def _raise_first_bad_csv_cell(
    path: Path,
    header: list[str],
    indices: list[int],
    lines: list[str],
    numbers: list[int],
    offset: int,
) -> None:
    """Find the first cell numpy could not parse and name it, so the user can fix it."""
    try:
        rows = list(csv.reader(lines))
    except csv.Error as exc:
        raise InputError(f"{path} is not valid CSV: {exc}") from exc
    for position, (row, line_number) in enumerate(zip(rows, numbers, strict=True)):
        data_row = offset + position + 1
        if len(row) != len(header):
            raise InputError(
                f"{path} row {data_row} (line {line_number}) has {len(row)} fields, "
                f"the header has {len(header)}"
            )
        for index in indices:
            cell = row[index].strip()
            try:
                float(cell)
            except ValueError:
                shown = "an empty value" if cell == "" else f"non-numeric value {cell!r}"
                raise InputError(
                    f"{path} column {header[index]!r} row {data_row} (line {line_number}): {shown}"
                ) from None


def _parquet_chunks(
    path: Path, columns: Sequence[str] | None, chunk_rows: int
) -> tuple[tuple[str, ...], Iterator[Chunk]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        n_rows = pq.read_metadata(path).num_rows
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    header = list(schema.names)
    names = tuple(header[i] for i in _select(path, header, columns))
    for name in names:
        kind = schema.field(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            raise InputError(f"{path} column {name!r} has type {kind}, expected a numeric type")
    if n_rows == 0:
        raise InputError(f"{path} has no data rows")

    def blocks() -> Iterator[Chunk]:
        offset = 0
        parquet = None
        try:
            # Opened only when the first block is asked for. No pre-buffering: it reads whole
            # row groups ahead and multiplies the memory by the number of columns in flight.
            parquet = pq.ParquetFile(path, pre_buffer=False)
            for batch in parquet.iter_batches(batch_size=chunk_rows, columns=list(names)):
                arrays = []
                for name, column in zip(names, batch.columns, strict=True):
                    if column.null_count:
                        nulls = column.is_null().to_numpy(zero_copy_only=False)
                        row = offset + int(np.flatnonzero(nulls)[0])
                        raise InputError(
                            f"{path} column {name!r} row {row + 1}: missing value (null)"
                        )
                    arrays.append(column.to_numpy(zero_copy_only=False).astype(np.float64))
                yield Chunk(offset, np.column_stack(arrays))
                offset += batch.num_rows
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"cannot read {path}: {exc}") from exc
        finally:
            if parquet is not None:
                parquet.close()

    return names, blocks()


@contextlib.contextmanager
def prediction_writer(path: Path, columns: Sequence[str]) -> Iterator[Callable[..., None]]:
    """Append prediction blocks to ``path`` (CSV or Parquet) in constant memory, atomically:
    blocks go to a temporary file that replaces ``path`` only when every block is written."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise InputError(
            f"unsupported output format {suffix or '(no extension)'!r} for {path}: "
            "expected .csv or .parquet"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())
    try:
        if suffix == ".csv":
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(",".join(columns) + "\n")

                def write_csv(*arrays: np.ndarray) -> None:
                    block = np.column_stack([np.asarray(a, dtype=np.float64) for a in arrays])
                    np.savetxt(handle, block, delimiter=",", fmt="%.17g")

                yield write_csv
                handle.flush()
                os.fsync(handle.fileno())
        else:
            os.close(fd)
            import pyarrow as pa
            import pyarrow.parquet as pq

            writer = None
            try:

                def write_parquet(*arrays: np.ndarray) -> None:
                    nonlocal writer
                    table = pa.table(
                        {name: np.asarray(a) for name, a in zip(columns, arrays, strict=True)}
                    )
                    if writer is None:
                        writer = pq.ParquetWriter(tmp_name, table.schema)
                    writer.write_table(table)

                yield write_parquet
                if writer is None:  # no rows: still a valid, empty file
                    pq.write_table(
                        pa.table({name: pa.array([], pa.float64()) for name in columns}), tmp_name
                    )
            finally:
                if writer is not None:
                    writer.close()
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_predictions(path: Path, columns: dict[str, np.ndarray]) -> Path:
    """Write prediction columns (one row per input row) as CSV or Parquet, atomically."""
    with prediction_writer(path, list(columns)) as write:
        write(*columns.values())
    return Path(path)


# --------------------------------------------------------------------------- metrics


def load_metrics(models_dir: Path) -> dict[str, Any]:
    return json.loads(read_artifact(models_dir, METRICS_JSON))
