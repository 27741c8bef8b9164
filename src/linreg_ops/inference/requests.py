"""Request bodies → feature matrices: the service's parsing, with no web framework in sight.

Cheap limits come before expensive work, so a hostile body costs little: the body size is
bounded by the server before this runs; orjson parses with its own depth limit (1,024
levels, so no body can exhaust the stack), and a body it refuses has its depth measured on
the raw bytes before the standard library tries it; the row count is checked against
``max_batch`` right after parsing, before a single row is validated.

Two paths, one answer. The common body (rows as lists of numbers, nothing else) takes a fast
path: one ``numpy.array`` call proves the rows rectangular and numeric, which also proves the
nesting depth, and one ``isfinite`` proves every value finite. Anything else — or anything
the fast path cannot prove — takes the checked path (depth walk, pydantic), whose refusal
names the field and row. Every refusal is a ``RequestError`` with a 4xx status; nothing here
can raise anything else for any body (a property test and schemathesis hold it to that).
"""

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import orjson
from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, Strict, TypeAdapter, ValidationError

from linreg_ops.config import MODEL_KINDS, SERVE_DEFAULTS, ModelKind
from linreg_ops.errors import InputError
from linreg_ops.storage import tables

__all__ = [
    "CSV_TYPES",
    "JSON_TYPES",
    "MLFLOW_KEYS",
    "ROWS",
    "Limits",
    "Number",
    "PredictRequest",
    "RequestError",
    "Row",
    "check_batch",
    "check_depth",
    "columns_to_matrix",
    "csv_matrix",
    "invocations_request",
    "json_depth",
    "load_json",
    "media_type",
    "mlflow_matrix",
    "numeric_matrix",
    "predict_request",
    "rows_to_matrix",
    "validation_message",
]

Number = Annotated[float, Strict(), AllowInfNan(False)]
Row = list[Number] | dict[str, Number]
ROWS = TypeAdapter(list[Row])
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv",)
_JSON_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


class RequestError(Exception):
    """A client error with its HTTP status; rendered as MLflow-style JSON."""

    def __init__(self, status: int, message: str, code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


@dataclass(frozen=True)
class Limits:
    max_batch: int = SERVE_DEFAULTS.max_batch
    max_json_depth: int = SERVE_DEFAULTS.max_json_depth


class PredictRequest(BaseModel):
    """Body of ``POST /predict``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    instances: list[Row] = Field(
        min_length=1,
        description="rows to predict: lists in feature order, or objects keyed by feature name",
    )
    model: ModelKind = "float"


# --------------------------------------------------------------------------- JSON


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects, from the raw bytes: brackets inside strings
    do not count. Linear time, no recursion, no Python objects."""
    if body.count(b"[") + body.count(b"{") <= 1:
        return 1
    if b"\\" in body:  # escaped quotes: cut the strings out exactly, with a regex
        structure = np.frombuffer(_JSON_STRINGS.sub(b"", body), np.uint8)
        outside = np.ones(len(structure), dtype=bool)
    else:  # no escapes: a byte is inside a string when an odd number of quotes precede it
        structure = np.frombuffer(body, np.uint8)
        outside = (np.cumsum(structure == ord('"'), dtype=np.int64) & 1) == 0
    opens = ((structure == ord("[")) | (structure == ord("{"))) & outside
    closes = ((structure == ord("]")) | (structure == ord("}"))) & outside
    return int(np.cumsum(opens.astype(np.int32) - closes).max(initial=0))


def load_json(body: bytes, limits: Limits) -> Any:
    """Parse a JSON body: orjson first (its depth limit keeps it safe on any body); a body it
    refuses has its depth measured on the raw bytes before the standard library parses it,
    so the validation can say which field holds a NaN literal instead of "malformed JSON".

    The depth of what orjson parsed is not checked here: the fast path proves it by shape,
    the checked path calls ``check_depth``.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    depth = json_depth(body)
    if depth > limits.max_json_depth:
        raise RequestError(
            400, f"JSON nested {depth} levels deep; at most {limits.max_json_depth} are accepted"
        )
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise RequestError(400, f"malformed JSON: {exc}") from None


def check_depth(payload: Any, limits: Limits) -> None:
    """Refuse a parsed payload nested deeper than ``max_json_depth``: a walk over its
    containers only (numbers and strings are never visited one by one)."""
    if type(payload) not in (list, dict):
        return  # a scalar body: one level
    deepest, stack = 1, [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        items = value.values() if type(value) is dict else value
        stack += [(item, depth + 1) for item in items if type(item) in (list, dict)]
    if deepest > limits.max_json_depth:
        raise RequestError(
            400, f"JSON nested {deepest} levels deep; at most {limits.max_json_depth} are accepted"
        )


def numeric_matrix(rows: Any, n_features: int, body: bytes, limits: Limits) -> np.ndarray | None:
    """The fast path: ``rows`` as a finite float64 matrix of ``n_features`` columns, or None
    when that cannot be proved cheaply (the checked path then finds and names the fault).

    ``numpy.array`` builds a rectangular numeric array only from lists of numbers, so its
    success proves the shape and a nesting depth of 3. JSON booleans would pass as 0 and 1:
    so the values equal to 0 or 1, and only those, are looked up in the parsed rows (a scan
    of ``body`` for ``true`` cost a third of the parse on a 1,000-row body).
    """
    if type(rows) is not list or not rows or limits.max_json_depth < 3:
        return None
    try:
        X = np.array(rows)
    except (ValueError, TypeError, OverflowError):
        return None
    if X.ndim != 2 or X.shape[1] != n_features or X.dtype.kind not in "fiu":
        return None
    X = X.astype(np.float64, copy=False)
    if not np.isfinite(X).all():
        return None
    for i, j in np.argwhere((X == 0.0) | (X == 1.0)).tolist():
        if type(rows[i][j]) is bool:
            return None
    return X


def check_batch(n_rows: int, limits: Limits) -> None:
    if n_rows > limits.max_batch:
        raise RequestError(
            413,
            f"batch of {n_rows:,} rows exceeds max_batch {limits.max_batch:,}",
            "REQUEST_TOO_LARGE",
        )


def _location(loc: Sequence[Any]) -> str:
    """('instances', 3, 'dict[str,float]', 'MedInc') → instances[3].MedInc"""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("list[float]", "dict[str,float]", "function-after[...]"):
            continue
        else:
            text += f".{part}" if text else str(part)
    return text or "body"


def _row_of(loc: Sequence[Any]) -> tuple[Any, ...]:
    """The part of an error location up to the row index."""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            return tuple(loc[: index + 1])
    return tuple(loc)


def validation_message(error: ValidationError, prefix: str = "") -> str:
    """One line naming the first bad field and row; for a union, the branch the input chose."""
    errors = error.errors(include_url=False)
    first = errors[0]
    same_row = [e for e in errors if _row_of(e["loc"]) == _row_of(first["loc"])]
    first = max(same_row, key=lambda e: len(e["loc"]))  # the deeper, more specific one
    where = _location(first["loc"])
    if prefix:
        where = prefix if where == "body" else f"{prefix}{where.removeprefix('instances')}"
    return f"{where}: {first['msg']}"


def _validated_rows(rows: Any, field: str) -> list[Any]:
    try:
        validated: list[Any] = ROWS.validate_python(rows)
    except ValidationError as exc:
        raise RequestError(422, validation_message(exc, prefix=field)) from None
    return validated


# --------------------------------------------------------------------------- rows


def _check_names(names: list[str], features: Sequence[str], where: str) -> None:
    """Every feature named, and nothing else."""
    unknown = [name for name in names if name not in features]
    if unknown:
        raise RequestError(422, f"{where}: unknown feature {unknown[0]!r}")
    missing = [name for name in features if name not in names]
    if missing:
        raise RequestError(422, f"{where}: missing feature {missing[0]!r}")


def rows_to_matrix(rows: list[Any], features: Sequence[str], field: str) -> np.ndarray:
    """Validated rows (lists in feature order or objects by name) → float64 matrix."""
    d = len(features)
    if all(type(row) is list for row in rows) and {len(row) for row in rows} == {d}:
        return np.array(rows, dtype=np.float64)  # the fast path: one C loop
    out = np.empty((len(rows), d))
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            _check_names(list(row), features, f"{field}[{i}]")
            out[i] = [row[name] for name in features]
        else:
            if len(row) != d:
                raise RequestError(
                    422, f"{field}[{i}]: expected {d} values in feature order, got {len(row)}"
                )
            out[i] = row
    return out


def columns_to_matrix(
    columns: list[str], data: list[Any], features: Sequence[str], field: str
) -> np.ndarray:
    """A column-named table (MLflow's ``dataframe_split``) → float64 matrix in feature order."""
    _check_names(columns, features, field)
    if len(set(columns)) != len(columns):
        raise RequestError(422, f"{field}: a column is named twice")
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise RequestError(
                422, f"{field}.data[{i}]: expected {len(columns)} values, one per column"
            )
    values = rows_to_matrix(_validated_rows(data, f"{field}.data"), columns, field)
    return values[:, [columns.index(name) for name in features]]


# --------------------------------------------------------------------------- the two routes


def predict_request(
    body: bytes, features: Sequence[str], limits: Limits, default: ModelKind = "float"
) -> tuple[np.ndarray, ModelKind]:
    """``POST /predict``: the rows and the model kind asked for (``default`` when the body
    names none: the one ``?model=`` or ``X-Model-Kind`` asked for)."""
    payload = load_json(body, limits)
    if type(payload) is dict and payload.keys() <= {"instances", "model"}:
        kind = payload.get("model", default)
        instances = payload.get("instances")
        if kind in MODEL_KINDS and type(instances) is list:
            check_batch(len(instances), limits)
            X = numeric_matrix(instances, len(features), body, limits)
            if X is not None:
                return X, kind
    check_depth(payload, limits)
    if not isinstance(payload, dict):
        raise RequestError(422, "body: Input should be an object")
    if isinstance(payload.get("instances"), list):
        check_batch(len(payload["instances"]), limits)
    try:
        request = PredictRequest.model_validate(payload)
    except ValidationError as exc:
        raise RequestError(422, validation_message(exc)) from None
    kind = request.model if "model" in payload else default
    return rows_to_matrix(request.instances, features, "instances"), kind


def media_type(content_type: str) -> str:
    """The media type of a Content-Type header, lower-cased; "" when absent. A parameter
    other than ``charset=utf-8`` makes it unsupported (as MLflow's server answers: 415)."""
    kind, _, parameters = content_type.partition(";")
    for parameter in parameters.split(";"):
        name, _, value = parameter.strip().partition("=")
        utf8 = name.lower() == "charset" and value.strip('" ').lower() in ("utf-8", "utf8")
        if name and not utf8:
            return f"{kind.strip().lower()}; {parameter.strip()}"
    return kind.strip().lower()


def invocations_request(
    body: bytes, content_type: str, features: Sequence[str], limits: Limits
) -> np.ndarray:
    """``POST /invocations`` (MLflow's scoring protocol): the rows, JSON or CSV.
    ``content_type`` is a ``media_type``; any other than JSON or CSV is a 415."""
    if content_type in JSON_TYPES:
        payload = load_json(body, limits)
        X = _fast_mlflow_matrix(payload, features, body, limits)
        if X is not None:
            return X
        check_depth(payload, limits)
        return mlflow_matrix(payload, features, limits)
    if content_type in CSV_TYPES:
        return csv_matrix(body, features, limits)
    raise RequestError(
        415,
        f"unsupported Content-Type {content_type or 'none'!r}: send application/json or text/csv",
        "UNSUPPORTED_MEDIA_TYPE",
    )


def _fast_mlflow_matrix(
    payload: Any, features: Sequence[str], body: bytes, limits: Limits
) -> np.ndarray | None:
    """The fast path of the MLflow formats whose rows are lists (``dataframe_split``,
    ``instances``, ``inputs``); None sends the payload down the checked path."""
    if type(payload) is not dict:
        return None
    keys = [key for key in payload if key != "params"]
    if len(keys) != 1 or keys[0] not in MLFLOW_KEYS or not _plain(payload.get("params")):
        return None
    key = keys[0]
    value = payload[key]
    if key == "dataframe_split":
        if type(value) is not dict or not value.keys() <= {"columns", "data", "index"}:
            return None
        columns, data = value.get("columns"), value.get("data")
        if type(data) is not list or not _plain(value.get("index")):
            return None
        check_batch(len(data), limits)
        X = numeric_matrix(data, len(features), body, limits)
        if X is None or columns is None or columns == list(features):
            return X
        if type(columns) is not list or not all(type(name) is str for name in columns):
            return None
        if len(set(columns)) != len(columns) or sorted(columns) != sorted(features):
            return None
        return X[:, [columns.index(name) for name in features]]
    if key in ("instances", "inputs") and type(value) is list:
        check_batch(len(value), limits)
        return numeric_matrix(value, len(features), body, limits)
    return None


def _plain(value: Any) -> bool:
    """Absent, or a value with no nested containers (``params``, ``index``): depth-safe."""
    if value is None:
        return True
    if type(value) is dict:
        return not any(type(item) in (list, dict) for item in value.values())
    if type(value) is list:
        return not any(type(item) in (list, dict) for item in value)
    return False


def mlflow_matrix(payload: Any, features: Sequence[str], limits: Limits) -> np.ndarray:
    """The rows of an MLflow scoring request, in feature order."""
    if not isinstance(payload, dict):
        raise RequestError(400, f"body must be a JSON object with one of: {', '.join(MLFLOW_KEYS)}")
    present = [key for key in MLFLOW_KEYS if key in payload]
    unknown = [key for key in payload if key not in (*MLFLOW_KEYS, "params")]
    if unknown:
        raise RequestError(
            400, f"unknown field {unknown[0]!r}; expected one of {', '.join(MLFLOW_KEYS)}"
        )
    if len(present) != 1:
        raise RequestError(
            400, f"expected exactly one of {', '.join(MLFLOW_KEYS)}, got {len(present)}"
        )
    key = present[0]
    value = payload[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise RequestError(
                400, "dataframe_split needs {'columns': [...], 'data': [[...], ...]}"
            )
        data = value["data"]
        columns = value.get("columns")
        if not isinstance(data, list) or not data:
            raise RequestError(422, "dataframe_split.data: expected a non-empty list of rows")
        check_batch(len(data), limits)
        if columns is not None:
            if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
                raise RequestError(400, "dataframe_split.columns must be a list of names")
            return columns_to_matrix(columns, data, features, key)
        rows = data
    elif key in ("instances", "inputs") and isinstance(value, dict):
        # Column-oriented tensor input: {"feature": [v0, v1, ...], ...}
        if not value or not all(isinstance(column, list) for column in value.values()):
            raise RequestError(422, f"{key}: every column must be a list of the same length")
        lengths = {len(column) for column in value.values()}
        if len(lengths) != 1:
            raise RequestError(422, f"{key}: every column must be a list of the same length")
        check_batch(lengths.pop(), limits)
        rows = [
            dict(zip(value, values, strict=True)) for values in zip(*value.values(), strict=True)
        ]
    else:
        rows = value
    if not isinstance(rows, list) or not rows:
        raise RequestError(422, f"{key}: expected a non-empty list of rows")
    check_batch(len(rows), limits)
    return rows_to_matrix(_validated_rows(rows, key), features, key)


def csv_matrix(body: bytes, features: Sequence[str], limits: Limits) -> np.ndarray:
    """A CSV body with a header row naming the features (any order, no extra columns)."""
    if body.count(b"\n") > limits.max_batch + 1:  # an upper bound; count exactly only then
        check_batch(tables.count_csv_rows(body), limits)
    try:
        header = tables.csv_header_of(body, "CSV body")
        unknown = [name for name in header if name not in features]
        if unknown:
            raise RequestError(422, f"CSV body: unknown feature {unknown[0]!r}")
        table = tables.parse_csv(body, list(features), label="CSV body")
    except InputError as exc:
        raise RequestError(422, str(exc)) from None
    check_batch(len(table.values), limits)
    return table.values
