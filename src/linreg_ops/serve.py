"""HTTP serving: a thin FastAPI layer over ``predict``, strict about its input.

* ``POST /predict``: ``{"instances": [...], "model": "float"|"quantized"|"integer"}``, each
  instance a list in feature order or an object keyed by feature name.
* ``POST /invocations``: MLflow's scoring protocol (``dataframe_split``,
  ``dataframe_records``, ``instances``, ``inputs``; JSON or ``text/csv``), so MLflow clients
  switch over unchanged.
* ``GET /health`` (alive), ``/ready`` (models loaded), ``/metadata``; OpenAPI at ``/docs``.

Models are loaded once, in the lifespan, from the pickle-free JSON artifacts (SHA-256 checked
against the manifest). Bad input is a 4xx whose message names the field and row, never a 5xx:
400/422 for content, 413 for a batch above ``max_batch`` rows or a body above
``max_body_bytes``. Nothing here imports scikit-learn.
"""

import csv
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, Strict, TypeAdapter, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from linreg_ops import __version__, artifacts, predict
from linreg_ops.data import check_finite
from linreg_ops.errors import InputError

Number = Annotated[float, Strict(), AllowInfNan(False)]
Row = list[Number] | dict[str, Number]
ROWS = TypeAdapter(list[Row])
JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv",)
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ServeSettings(BaseSettings):
    """Service settings; each can come from a ``LINREG_OPS_*`` environment variable."""

    model_config = SettingsConfigDict(env_prefix="LINREG_OPS_")

    models_dir: Path = Path("models")
    max_batch: int = Field(10_000, gt=0)
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0)


class PredictRequest(BaseModel):
    """Body of ``POST /predict``."""

    model_config = ConfigDict(extra="forbid")

    instances: list[Row] = Field(
        min_length=1,
        description="rows to predict: lists in feature order, or objects keyed by feature name",
    )
    model: Literal["float", "quantized", "integer"] = "float"


class ModelInfo(BaseModel):
    kind: str
    sha256: str
    dtype: str


class PredictResponse(BaseModel):
    predictions: list[float]
    model: ModelInfo


class InvocationsResponse(BaseModel):
    predictions: list[float]


class BadRequestError(Exception):
    """A client error with its HTTP status; rendered as MLflow-style JSON."""

    def __init__(self, status: int, message: str, code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class BodyTooLargeError(Exception):
    pass


class JSONBody(Response):
    """orjson rendering: numpy arrays serialise natively and fast."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class Served:
    """Everything the service answers from, loaded once at start-up."""

    models: dict[str, predict.AnyModel]
    sha256: dict[str, str]
    dtypes: dict[str, str]
    features: tuple[str, ...]
    metadata: dict[str, Any]


ARTIFACT_OF = {
    "float": artifacts.MODEL_JSON,
    "quantized": artifacts.QUANTIZED_MODEL_JSON,
    "integer": artifacts.INTEGER_MODEL_JSON,
}


def load_served(models_dir: Path) -> Served:
    """Load and verify the float model and, where published, the quantized ones."""
    manifest = artifacts.load_manifest(models_dir)
    listed = manifest["artifacts"]
    models = {
        kind: predict.load_predictor(models_dir, kind)
        for kind, name in ARTIFACT_OF.items()
        if name in listed
    }
    if "float" not in models:
        raise InputError(f"{models_dir} has no {artifacts.MODEL_JSON}: run linreg-ops train")
    float_model = models["float"]
    dtypes = {"float": "float64"}
    if "quantized" in models:
        dtypes["quantized"] = models["quantized"].dtype
    if "integer" in models:
        dtypes["integer"] = f"{models['integer'].weight_dtype}xint{models['integer'].input_bits}"
    sha256 = {kind: listed[ARTIFACT_OF[kind]]["sha256"] for kind in models}
    info = {
        "features": list(float_model.feature_names),
        "target": float_model.target_name,
        "models": {kind: {"sha256": sha256[kind], "dtype": dtypes[kind]} for kind in models},
        "metrics": (
            artifacts.load_metrics(models_dir) if artifacts.METRICS_JSON in listed else None
        ),
        "training_data": manifest.get("training_data"),
        "split": manifest.get("split"),
        "versions": {**manifest.get("versions", {}), "serving": _versions()},
    }
    if "quantized" in models:
        quantized = models["quantized"]
        info["quantization"] = {
            "dtype": quantized.dtype,
            "granularity": quantized.granularity,
            "rounding": quantized.rounding,
            "scale": quantized.scale.tolist(),
            "zero_point": quantized.zero_point.tolist(),
        }
    return Served(models, sha256, dtypes, float_model.feature_names, info)


def _versions() -> dict[str, str | None]:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {"linreg-ops": __version__, "numpy": np.__version__, "fastapi": version("fastapi")}


# --------------------------------------------------------------------------- parsing


def _location(loc: tuple) -> str:
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


def _row_of(loc: tuple) -> tuple:
    """The part of an error location up to the row index."""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            return loc[: index + 1]
    return loc


def _validation_message(error: ValidationError, prefix: str = "") -> str:
    """One line naming the first bad field and row; for a union, the branch the input chose."""
    errors = error.errors(include_url=False)
    first = errors[0]
    same_row = [e for e in errors if _row_of(e["loc"]) == _row_of(first["loc"])]
    first = max(same_row, key=lambda e: len(e["loc"]))  # the deeper, more specific one
    where = _location(first["loc"])
    if prefix:
        where = prefix if where == "body" else f"{prefix}{where.removeprefix('instances')}"
    return f"{where}: {first['msg']}"


def rows_to_matrix(rows: list, features: tuple[str, ...], field: str) -> np.ndarray:
    """Validated rows (lists in feature order or objects by name) → float64 matrix."""
    d = len(features)
    if all(type(row) is list for row in rows):
        lengths = {len(row) for row in rows}
        if lengths == {d}:
            return np.array(rows, dtype=np.float64)  # the fast path: one C loop
    out = np.empty((len(rows), d))
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            unknown = [key for key in row if key not in features]
            if unknown:
                raise BadRequestError(422, f"{field}[{i}]: unknown feature {unknown[0]!r}")
            missing = [name for name in features if name not in row]
            if missing:
                raise BadRequestError(422, f"{field}[{i}]: missing feature {missing[0]!r}")
            out[i] = [row[name] for name in features]
        else:
            if len(row) != d:
                raise BadRequestError(
                    422, f"{field}[{i}]: expected {d} values in feature order, got {len(row)}"
                )
            out[i] = row
    return out


def columns_to_matrix(
    columns: list, data: list, features: tuple[str, ...], field: str
) -> np.ndarray:
    """A column-named table (MLflow's ``dataframe_split``) → float64 matrix in feature order."""
    unknown = [name for name in columns if name not in features]
    if unknown:
        raise BadRequestError(422, f"{field}: unknown feature {unknown[0]!r}")
    missing = [name for name in features if name not in columns]
    if missing:
        raise BadRequestError(422, f"{field}: missing feature {missing[0]!r}")
    if len(set(columns)) != len(columns):
        raise BadRequestError(422, f"{field}: a column is named twice")
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise BadRequestError(
                422, f"{field}.data[{i}]: expected {len(columns)} values, one per column"
            )
    values = rows_to_matrix(_validated_rows(data, f"{field}.data"), tuple(columns), field)
    return values[:, [columns.index(name) for name in features]]


def _check_batch(n_rows: int, settings: ServeSettings) -> None:
    if n_rows > settings.max_batch:
        raise BadRequestError(
            413,
            f"batch of {n_rows:,} rows exceeds max_batch {settings.max_batch:,}",
            "REQUEST_TOO_LARGE",
        )


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _load_json(body: bytes) -> Any:
    """orjson for speed; the stdlib parser for what orjson refuses (e.g. NaN), so that the
    validation can say which field holds the NaN instead of 'malformed JSON'."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequestError(400, f"malformed JSON: {exc}") from None


def _validated_rows(rows: Any, field: str) -> list:
    try:
        return ROWS.validate_python(rows)
    except ValidationError as exc:
        raise BadRequestError(422, _validation_message(exc, prefix=field)) from None


def mlflow_matrix(payload: Any, features: tuple[str, ...]) -> tuple[np.ndarray, int]:
    """The rows of an MLflow scoring request, in feature order, and their count."""
    if not isinstance(payload, dict):
        raise BadRequestError(
            400, f"body must be a JSON object with one of: {', '.join(MLFLOW_KEYS)}"
        )
    present = [key for key in MLFLOW_KEYS if key in payload]
    unknown = [key for key in payload if key not in (*MLFLOW_KEYS, "params")]
    if unknown:
        raise BadRequestError(
            400, f"unknown field {unknown[0]!r}; expected one of {', '.join(MLFLOW_KEYS)}"
        )
    if len(present) != 1:
        raise BadRequestError(
            400, f"expected exactly one of {', '.join(MLFLOW_KEYS)}, got {len(present)}"
        )
    key = present[0]
    value = payload[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise BadRequestError(
                400, "dataframe_split needs {'columns': [...], 'data': [[...], ...]}"
            )
        data = value["data"]
        columns = value.get("columns")
        if not isinstance(data, list) or not data:
            raise BadRequestError(422, "dataframe_split.data: expected a non-empty list of rows")
        if columns is not None:
            if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
                raise BadRequestError(400, "dataframe_split.columns must be a list of names")
            return columns_to_matrix(columns, data, features, key), len(data)
        rows = data
    elif key in ("instances", "inputs") and isinstance(value, dict):
        # Column-oriented tensor input: {"feature": [v0, v1, ...], ...}
        lengths = {len(column) for column in value.values() if isinstance(column, list)}
        if len(lengths) != 1 or not all(isinstance(c, list) for c in value.values()):
            raise BadRequestError(422, f"{key}: every column must be a list of the same length")
        rows = [
            dict(zip(value, values, strict=True)) for values in zip(*value.values(), strict=True)
        ]
    else:
        rows = value
    if not isinstance(rows, list) or not rows:
        raise BadRequestError(422, f"{key}: expected a non-empty list of rows")
    return rows_to_matrix(_validated_rows(rows, key), features, key), len(rows)


def csv_matrix(body: bytes, features: tuple[str, ...]) -> np.ndarray:
    """A CSV body with a header row naming the features (any order, no extra columns)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequestError(400, f"CSV body is not UTF-8 text: {exc}") from None
    try:
        header = next(csv.reader([text.split("\n", 1)[0]]), [])
    except csv.Error as exc:
        raise BadRequestError(422, f"CSV body is not valid CSV: {exc}") from None
    unknown = [name.strip() for name in header if name.strip() not in features]
    if unknown:
        raise BadRequestError(422, f"CSV body: unknown feature {unknown[0]!r}")
    try:
        table = artifacts.parse_csv_text("CSV body", text, features)
        check_finite(table.values, table.columns, "CSV body")
    except InputError as exc:
        raise BadRequestError(422, str(exc)) from None
    return table.values


# --------------------------------------------------------------------------- app


class BodyLimit:
    """ASGI middleware: refuse bodies above ``max_bytes`` with 413, before reading them whole."""

    def __init__(self, app: Callable, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._too_large(send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLargeError
            return message

        try:
            await self.app(scope, limited, send)
        except BodyTooLargeError:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        body = orjson.dumps(
            {
                "error_code": "REQUEST_TOO_LARGE",
                "message": f"request body exceeds max_body_bytes {self.max_bytes:,}",
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI app; models load in the lifespan, so importing this module does nothing."""
    settings = settings or ServeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.served = load_served(settings.models_dir)
        yield

    app = FastAPI(
        title="linreg-ops",
        version=__version__,
        summary="Linear regression predictions from verified, pickle-free artifacts.",
        lifespan=lifespan,
        default_response_class=JSONBody,
    )
    app.state.settings = settings

    @app.exception_handler(BadRequestError)
    async def bad_request(request: Request, exc: BadRequestError) -> Response:
        return JSONBody({"error_code": exc.code, "message": exc.message}, status_code=exc.status)

    @app.exception_handler(BodyTooLargeError)
    async def too_large(request: Request, exc: BodyTooLargeError) -> Response:
        message = f"request body exceeds max_body_bytes {settings.max_body_bytes:,}"
        return JSONBody({"error_code": "REQUEST_TOO_LARGE", "message": message}, status_code=413)

    @app.get("/health", summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness: the models are loaded and verified")
    async def ready(request: Request) -> dict[str, Any]:
        served: Served = request.app.state.served
        return {"status": "ready", "models": sorted(served.models)}

    @app.get("/metadata", summary="Features, metrics, quantization, versions and checksums")
    async def model_metadata(request: Request) -> dict[str, Any]:
        served: Served = request.app.state.served
        return {
            **served.metadata,
            "limits": {
                "max_batch": settings.max_batch,
                "max_body_bytes": settings.max_body_bytes,
            },
        }

    json_body = {"application/json": {"schema": PredictRequest.model_json_schema()}}

    @app.post(
        "/predict",
        response_model=PredictResponse,
        summary="Predict rows with the float, quantized or integer-only model",
        openapi_extra={"requestBody": {"content": json_body, "required": True}},
        responses={413: {"description": "batch or body too large"}},
    )
    async def predict_route(request: Request) -> Response:
        served: Served = request.app.state.served
        if _content_type(request) not in JSON_TYPES:
            raise BadRequestError(400, _wrong_type(request, "application/json"))
        try:
            body = PredictRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            status = 400 if exc.errors()[0]["type"] == "json_invalid" else 422
            raise BadRequestError(status, _validation_message(exc)) from None
        _check_batch(len(body.instances), settings)
        model = served.models.get(body.model)
        if model is None:
            raise BadRequestError(
                422, f"model: {body.model!r} is not published here: run linreg-ops quantize"
            )
        X = rows_to_matrix(body.instances, served.features, "instances")
        predictions, _ = predict.predict_rows(model, X)
        info = {
            "kind": body.model,
            "sha256": served.sha256[body.model],
            "dtype": served.dtypes[body.model],
        }
        return JSONBody({"predictions": predictions, "model": info})

    invocations_body = {
        "application/json": {"schema": {"type": "object"}},
        "text/csv": {"schema": {"type": "string"}},
    }

    @app.post(
        "/invocations",
        response_model=InvocationsResponse,
        summary="MLflow scoring protocol (float model)",
        openapi_extra={"requestBody": {"content": invocations_body, "required": True}},
        responses={413: {"description": "batch or body too large"}},
    )
    async def invocations(request: Request) -> Response:
        served: Served = request.app.state.served
        content_type = _content_type(request)
        body = await request.body()
        if content_type in JSON_TYPES:
            X, n_rows = mlflow_matrix(_load_json(body), served.features)
        elif content_type in CSV_TYPES:
            X = csv_matrix(body, served.features)
            n_rows = len(X)
        else:
            raise BadRequestError(400, _wrong_type(request, "application/json or text/csv"))
        _check_batch(n_rows, settings)
        predictions, _ = predict.predict_rows(served.models["float"], X)
        return JSONBody({"predictions": predictions})

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


def _wrong_type(request: Request, expected: str) -> str:
    given = request.headers.get("content-type") or "none"
    return f"unsupported Content-Type {given!r}: send {expected}"
