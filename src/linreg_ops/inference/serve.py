"""HTTP serving: a framework-free ASGI front for the hot routes, FastAPI behind it for the rest.

* ``POST /predict``: ``{"instances": [...], "model": "float"|"quantized"|"integer"}``; the
  integer model's answer names the rows it clipped (``clipped_rows``).
* ``POST /invocations``: MLflow's scoring protocol (``dataframe_split``,
  ``dataframe_records``, ``instances``, ``inputs``; JSON or ``text/csv``); ``?model=`` or the
  ``X-Model-Kind`` header picks the quantized or integer model (``X-Clipped-Rows`` counts the
  integer model's clipped rows; the body stays MLflow's).
* ``GET /health`` (alive), ``/ready`` (models loaded), ``/metadata``, ``/metrics``
  (Prometheus), and MLflow's ``/ping`` and ``/version``.
* ``/docs`` (Swagger UI), ``/redoc`` and ``/openapi.json``: FastAPI, built on first use.

The front (``Front``) answers the hot routes with no framework in the way: a request reads the
one reference to the live models (``Live``) once, so a swap is atomic; every answer carries
``X-Model-Version`` and ``X-Request-ID``, is counted (``telemetry``) and logged
(``access_log``). Every worker follows an alias (``current`` unless ``--alias`` names
another): ``live.Follower`` loads the alias's new holder beside the served one and swaps it in
(``Service.swap``), so a worker restarted after a retrain serves what the alias names, as the
others do within ``live.POLL_SECONDS`` plus one load. ``--version N`` pins every worker to N
(passed in ``LINREG_OPS_MODEL_VERSION``). Models load in the lifespan; importing this module
does nothing.
"""

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import numpy as np
import orjson
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from linreg_ops._version import __version__
from linreg_ops.config import (
    DEFAULT_MODELS_DIR,
    MODEL_KINDS,
    MODEL_NAMES,
    SERVE_DEFAULTS,
    AccessLog,
    LogLevel,
    ModelKind,
)
from linreg_ops.errors import InputError
from linreg_ops.inference import oip, requests
from linreg_ops.inference.access_log import AccessLogger, Entry, request_id
from linreg_ops.inference.live import (
    POLL_SECONDS,
    AliasSource,
    Follower,
    Source,
    first_version,
    lease,
    load,
)
from linreg_ops.inference.loading import (
    ARTIFACT_OF,
    Models,
    load_metrics,
    load_models,
    stored_test_rows,
)
from linreg_ops.inference.predict import predict_rows
from linreg_ops.inference.requests import Limits, RequestError
from linreg_ops.inference.telemetry import (
    MULTIPROC_ENV,
    Telemetry,
    compact_dead_workers,
    gauge_exposition,
    prediction_buckets,
)
from linreg_ops.model import IntegerLinearModel
from linreg_ops.monitoring.drift import gauge_samples
from linreg_ops.monitoring.served import Monitor
from linreg_ops.storage import store

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "APP_FACTORY",
    "CLIPPED_HEADER",
    "DOCUMENTATION_PATHS",
    "HOT_ROUTES",
    "LARGE_BODY",
    "MODEL_KIND_HEADER",
    "OIP_INFER_ROUTE",
    "OIP_ROUTE",
    "SMALL_INTEGER_BATCH",
    "UNSUPPORTED",
    "Answer",
    "Call",
    "Drain",
    "ErrorResponse",
    "Front",
    "Handler",
    "HotRoute",
    "InvocationsResponse",
    "Live",
    "Message",
    "ModelInfo",
    "PredictResponse",
    "Receive",
    "Scope",
    "Send",
    "ServeSettings",
    "Service",
    "asked_kind",
    "bind",
    "create_app",
    "describe_service",
    "documented_app",
    "example_rows",
    "handle_health",
    "handle_invocations",
    "handle_metadata",
    "handle_metrics",
    "handle_monitor",
    "handle_ping",
    "handle_predict",
    "handle_ready",
    "handle_version",
    "invocations_kind",
    "make_live",
    "run",
    "serve_settings",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
LARGE_BODY = 1 << 20  # after a body this large, hand freed memory back to the system
CLIPPED_HEADER = b"x-clipped-rows"  # integer model: how many rows it clipped
_CLIENT_LEFT = 499  # logged for a client that left before its body arrived (nginx's code)
MODEL_KIND_HEADER = b"x-model-kind"  # /invocations: the model, like ?model=
UNSUPPORTED = "UNSUPPORTED_MEDIA_TYPE"
SMALL_INTEGER_BATCH = 512  # rows: below this the integer model runs its int64 arithmetic
DOCUMENTATION_PATHS = frozenset({"/docs", "/redoc", "/openapi.json"})


class ServeSettings(BaseSettings):
    """Every setting of the service, once: a ``linreg-ops serve`` flag wins, then a
    ``LINREG_OPS_<NAME>`` environment variable, then ``config.SERVE_DEFAULTS``."""

    model_config = SettingsConfigDict(env_prefix="LINREG_OPS_", extra="forbid")

    models_dir: Path = DEFAULT_MODELS_DIR
    model_version: int | None = Field(None, ge=1)  # pinned to this version; None: follow alias
    alias: str = SERVE_DEFAULTS.alias  # the alias followed (hot reload) when not pinned
    host: str = SERVE_DEFAULTS.host
    port: int = Field(SERVE_DEFAULTS.port, ge=0, le=65535)
    workers: int = Field(SERVE_DEFAULTS.workers, gt=0)
    max_batch: int = Field(SERVE_DEFAULTS.max_batch, gt=0)
    max_body_bytes: int = Field(SERVE_DEFAULTS.max_body_bytes, gt=0)
    max_json_depth: int = Field(SERVE_DEFAULTS.max_json_depth, gt=1)
    log_level: LogLevel = SERVE_DEFAULTS.log_level
    drain_seconds: float = Field(SERVE_DEFAULTS.drain_seconds, ge=0)
    monitor_dir: Path | None = None  # the workers' drift statistics; None: a private folder
    access_log: AccessLog = SERVE_DEFAULTS.access_log
    metrics: bool = SERVE_DEFAULTS.metrics
    # serve --model-uri models:/NAME@ALIAS: the registry alias followed (exports.registry)
    model_uri: str | None = None
    tracking_uri: str | None = None
    registry_poll_seconds: float = Field(
        SERVE_DEFAULTS.registry_poll_seconds, ge=SERVE_DEFAULTS.registry_poll_min_seconds
    )


def serve_settings(**given: Any) -> ServeSettings:
    """The settings from the flags that were ``given`` (None: not given), the environment
    and the defaults; a bad environment value is one line naming the variable."""
    try:
        return ServeSettings(**{name: value for name, value in given.items() if value is not None})
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        name = str(error["loc"][0]) if error["loc"] else "settings"
        raise InputError(
            f"LINREG_OPS_{name.upper()}: {error['msg']} (got {error.get('input')!r})"
        ) from None


class ModelInfo(BaseModel):
    kind: ModelKind
    sha256: str
    dtype: str
    version: int


class PredictResponse(BaseModel):
    predictions: list[float]
    model: ModelInfo
    clipped_rows: list[int] | None = Field(
        None,
        description="integer model only: the 0-based rows it clipped (an input outside the "
        "calibrated range, or the output beyond its codes)",
    )


class InvocationsResponse(BaseModel):
    predictions: list[float]


class ErrorResponse(BaseModel):
    error_code: str
    message: str


def _dtype(models: Models, kind: ModelKind) -> str:
    if kind == "quantized" and models.quantized is not None:
        return models.quantized.dtype
    if kind == "integer" and models.integer is not None:
        return f"{models.integer.weight_dtype}xint{models.integer.input_bits}"
    return "float64"


def describe_service(models: Models, settings: ServeSettings) -> dict[str, Any]:
    """``/metadata``: what is served, where it came from, and the limits."""
    version = models.version
    manifest = version.manifest
    info: dict[str, Any] = {
        "version": version.number,
        "models_dir": version.models_dir.resolve().name,
        "features": list(models.float.feature_names),
        "target": models.float.target_name,
        "models": {
            kind: {
                "sha256": version.sha256(ARTIFACT_OF[kind]),
                "dtype": _dtype(models, kind),
            }
            for kind in models.kinds()
        },
        "metrics": load_metrics(version),
        "training_data": _named_by_file(manifest.training_data),
        "split": manifest.split,
        "versions": {
            **manifest.versions,
            "serving": store.package_versions(("linreg-ops", "numpy", "pyarrow", "fastapi")),
        },
        "limits": {
            "max_batch": settings.max_batch,
            "max_body_bytes": settings.max_body_bytes,
            "max_json_depth": settings.max_json_depth,
        },
    }
    facts = models.quantization_facts()
    if facts is not None:
        info["quantization"] = facts
    return info


def _named_by_file(training_data: dict[str, Any]) -> dict[str, Any]:
    """The training data with its files named by file name: a service must not tell every
    caller where the training files (or the models folder) sit on the server's disk."""
    files = [Path(str(name)) for name in training_data.get("files", [])]
    if not files:
        return training_data
    source = files[0].name if len(files) == 1 else f"{len(files)} files in {files[0].parent.name}"
    return {**training_data, "source": source, "files": [path.name for path in files]}


# --------------------------------------------------------------------------- the live models


@dataclass(frozen=True)
class Live:
    """Everything a request needs of the served version, in one object: a request reads the
    service's reference to it once, so swapping it (a hot reload) is one assignment and no
    request ever sees half of two versions."""

    models: Models
    metadata: bytes  # /metadata's answer, rendered once
    model_info: dict[ModelKind, dict[str, Any]]  # /predict's "model" field per kind
    header: tuple[bytes, bytes]  # X-Model-Version
    bounds: dict[ModelKind, np.ndarray]  # each model's input_bounds, computed once
    monitor: Monitor  # the drift statistics of the rows this version scored (every worker's)
    training_metrics: dict[str, Any] | None  # metrics.json, for /monitor's and /metrics' drift

    @property
    def number(self) -> int:
        return self.models.version.number

    @property
    def kinds(self) -> list[ModelKind]:
        return list(self.model_info)


def make_live(models: Models, settings: ServeSettings, monitors: dict[Path, Monitor]) -> Live:
    """The ``Live`` of loaded, verified ``models``; its ``Monitor`` taken from (or added
    to) the worker's ``monitors``, by version folder."""
    number = models.version.number
    info: dict[ModelKind, dict[str, Any]] = {
        kind: {
            "kind": kind,
            "sha256": models.version.sha256(ARTIFACT_OF[kind]),
            "dtype": _dtype(models, kind),
            "version": number,
        }
        for kind in models.kinds()
    }
    description = describe_service(models, settings)
    metadata = orjson.dumps(description)
    bounds = {kind: models.get(kind).input_bounds for kind in info}
    # each version's statistics in its own folder: rows scored by an older version (before a
    # hot reload) are never merged into a newer one's
    assert settings.monitor_dir is not None, "Service.start gives every worker a monitor_dir"
    folder = settings.monitor_dir / str(number)
    monitor = monitors.get(folder)
    if monitor is None:  # one per version and worker: a swap back reuses it (its file is
        folder.mkdir(parents=True, exist_ok=True)  # mapped; a second Monitor would truncate it)
        monitor = monitors[folder] = Monitor(models.version, models.float, folder)
    header = (b"x-model-version", str(number).encode())
    return Live(models, metadata, info, header, bounds, monitor, description.get("metrics"))


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Call:
    """One request as a hot route sees it: the body, the headers, the query string."""

    body: bytes
    headers: list[tuple[bytes, bytes]]
    query: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def media_type(self) -> str:
        given = self.header(b"content-type") or b""
        if given == b"application/json":
            return "application/json"
        return requests.media_type(given.decode("latin-1"))


@dataclass
class Answer:
    """A hot route's answer, and what the request did (for the metrics and the log)."""

    body: bytes
    status: int = 200
    kind: ModelKind | None = None
    rows: int = 0
    clipped: int = 0
    predictions: "np.ndarray | None" = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    content_type: bytes = b"application/json"


Handler = Callable[["Service", Call, Live], Answer]


def _predictions(live: Live, kind: ModelKind, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A request's predictions and clipped flags; a row outside the model's domain (whose
    prediction could overflow) is a 422 naming it, with ``predict_rows``'s message. The
    domain check compares with the bounds ``Live`` computed once."""
    if kind not in live.model_info:
        raise RequestError(422, f"model: {kind!r} is not published here: run linreg-ops quantize")
    model = live.models.get(kind)
    if not (np.abs(X) <= live.bounds[kind]).all():  # NaN compares False
        try:
            predict_rows(model, X, source="request")
        except InputError as exc:
            raise RequestError(422, str(exc)) from None
    if isinstance(model, IntegerLinearModel) and len(X) < SMALL_INTEGER_BATCH:
        return _integer_in_int64(model, X)
    return model.predict_clipped(X)


def _integer_in_int64(model: IntegerLinearModel, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The integer model's answer by its int64 arithmetic, as written (``quantize_inputs``,
    ``accumulate``, ``requantize_saturated``): the same codes and flags as
    ``predict_clipped``, whose float64 route costs a fixed ~0.1 ms of set-up per call that
    only pays off on large batches (measured: 1 row 91 µs against 60 µs, 128 rows 121 against
    26, 1,000 rows 191 against 207)."""
    with np.errstate(over="ignore"):  # x / input_scale beyond float64: a clipped code
        codes, inputs_clipped = model.quantize_inputs(X)
        out, saturated = model.requantize_saturated(model.accumulate(codes))
    return out * np.float64(model.output_scale), inputs_clipped | saturated


def handle_predict(service: "Service", call: Call, live: Live) -> Answer:
    """``POST /predict``: rows and a model kind in, predictions and the model's facts out."""
    if call.media_type not in requests.JSON_TYPES:
        given = (call.header(b"content-type") or b"none").decode("latin-1")
        raise RequestError(
            415, f"unsupported Content-Type {given!r}: send application/json", UNSUPPORTED
        )
    asked = asked_kind(call)
    features = live.models.float.feature_names
    X, kind = requests.predict_request(call.body, features, service.limits, asked or "float")
    if asked is not None and kind != asked:
        raise RequestError(
            422, f"model: the body asks for {kind!r}, ?model= or X-Model-Kind for {asked!r}"
        )
    predictions, clipped = _predictions(live, kind, X)
    live.monitor.record(X)
    answer: dict[str, Any] = {"predictions": predictions, "model": live.model_info[kind]}
    headers = []
    count = 0
    if kind == "integer":
        rows = np.flatnonzero(clipped)
        answer["clipped_rows"] = rows
        count = len(rows)
        headers.append((CLIPPED_HEADER, str(count).encode()))
    body = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    return Answer(body, 200, kind, len(predictions), count, predictions, headers)


def invocations_kind(call: Call) -> ModelKind:
    """The model an ``/invocations`` call asks for: ``?model=`` or the ``X-Model-Kind``
    header (float when neither; both must agree)."""
    return asked_kind(call) or "float"


def asked_kind(call: Call) -> ModelKind | None:
    """The model ``?model=`` or the ``X-Model-Kind`` header asks for (both must agree), or
    None when neither does; /predict and /invocations read them the same way."""
    asked: list[str] = []
    if call.query:
        query = parse_qsl(call.query.decode("latin-1"))
        asked += [value for name, value in query if name == "model"]
    header = call.header(MODEL_KIND_HEADER)
    if header is not None:
        asked.append(header.decode("latin-1").strip())
    if not asked:
        return None
    if len(set(asked)) > 1:
        raise RequestError(422, f"model: asked for {' and '.join(map(repr, asked))}: ask once")
    if asked[0] not in MODEL_KINDS:
        raise RequestError(
            422,
            f"model: {asked[0]!r} is not one of {', '.join(MODEL_KINDS)} (?model= or X-Model-Kind)",
        )
    kind: ModelKind = asked[0]
    return kind


def handle_invocations(service: "Service", call: Call, live: Live) -> Answer:
    """``POST /invocations``: MLflow's scoring protocol; the body of the answer stays MLflow's
    (``{"predictions": [...]}``), the integer model's clipped rows are counted in a header."""
    try:
        kind = invocations_kind(call)
        X = requests.invocations_request(
            call.body, call.media_type, live.models.float.feature_names, service.limits
        )
        predictions, clipped = _predictions(live, kind, X)
    except RequestError as exc:
        if exc.status != 422:
            raise
        # MLflow's scoring server answers every bad input 400: so does its protocol here
        raise RequestError(400, exc.message, exc.code) from None
    live.monitor.record(X)
    headers = []
    count = 0
    if kind == "integer":
        count = int(np.count_nonzero(clipped))
        headers.append((CLIPPED_HEADER, str(count).encode()))
    body = orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY)
    return Answer(body, 200, kind, len(predictions), count, predictions, headers)


def handle_monitor(service: "Service", call: Call, live: Live) -> Answer:
    """``GET /monitor``: the drift of every row the live version scored so far, in every
    worker — the JSON ``linreg-ops monitor --json`` prints for the same rows."""
    monitor = live.monitor
    if monitor.unavailable:
        error = {"error_code": "NO_DRIFT_PROFILE", "message": monitor.unavailable}
        return Answer(orjson.dumps(error), 404)
    report = monitor.report(live.training_metrics)
    return Answer(orjson.dumps(report, option=orjson.OPT_SERIALIZE_NUMPY))


def handle_health(service: "Service", call: Call, live: Live) -> Answer:
    return Answer(b'{"status":"ok"}')


def handle_ready(service: "Service", call: Call, live: Live) -> Answer:
    body = {"version": live.number, "models": live.kinds}
    if service.drain.active:
        return Answer(orjson.dumps({"status": "draining", **body}), 503)
    return Answer(orjson.dumps({"status": "ready", **body}))


def handle_metadata(service: "Service", call: Call, live: Live) -> Answer:
    """The version's pre-rendered description, with the watch's state (``live``: the alias
    followed, the version served, the last refused one) merged in at request time."""
    follower = service.follower
    if follower is None:
        return Answer(live.metadata)
    # live.metadata is one JSON object: its closing brace makes room for one more member
    return Answer(
        b"".join((live.metadata[:-1], b',"live":', orjson.dumps(follower.status()), b"}"))
    )


def handle_ping(service: "Service", call: Call, live: Live) -> Answer:
    """MLflow's ``/ping``: 200 with a newline once the model is loaded."""
    return Answer(b"\n")


def handle_version(service: "Service", call: Call, live: Live) -> Answer:
    """MLflow's ``/version`` answers its own version as plain text; this, linreg-ops's."""
    return Answer(__version__.encode(), content_type=b"text/plain; charset=utf-8")


def handle_metrics(service: "Service", call: Call, live: Live) -> Answer:
    if service.telemetry is None:
        return Answer(
            orjson.dumps({"error_code": "NOT_FOUND", "message": "metrics are off (--no-metrics)"}),
            404,
        )
    body, content_type = service.telemetry.render()
    if not live.monitor.unavailable:  # the drift of the rows served so far, as gauges
        body += gauge_exposition(gauge_samples(live.monitor.report(live.training_metrics)))
    return Answer(body, content_type=content_type.encode())


@dataclass(frozen=True)
class HotRoute:
    """A route the front answers itself: its methods (GET routes answer HEAD too) and
    handler."""

    path: str
    methods: frozenset[str]
    handler: Handler
    predicts: bool = False  # a prediction route: counted by model, rows and predictions


HOT_ROUTES = (
    HotRoute("/predict", frozenset({"POST"}), handle_predict, predicts=True),
    HotRoute("/invocations", frozenset({"POST"}), handle_invocations, predicts=True),
    HotRoute("/health", frozenset({"GET", "HEAD"}), handle_health),
    HotRoute("/ready", frozenset({"GET", "HEAD"}), handle_ready),
    HotRoute("/metadata", frozenset({"GET"}), handle_metadata),
    HotRoute("/ping", frozenset({"GET"}), handle_ping),
    HotRoute("/version", frozenset({"GET"}), handle_version),
    HotRoute("/metrics", frozenset({"GET"}), handle_metrics),
    HotRoute("/monitor", frozenset({"GET"}), handle_monitor),
)
# The Open Inference Protocol's routes are answered by ``oip`` under two metric labels: every
# model's ``…/infer`` and the rest of ``/v2`` (metadata, health), a bounded label set.
OIP_INFER_ROUTE, OIP_ROUTE = "/v2/models/{name}/infer", "/v2"


# --------------------------------------------------------------------------- the service


class Service:
    """One worker's state: settings, limits, the live models (one reference, swapped
    whole), drain, metrics and the request log."""

    def __init__(self, settings: ServeSettings, source: Source | None = None) -> None:
        self.settings = settings
        self._source = source  # followed instead of the folder's alias (a registry's)
        self.limits = Limits(max_batch=settings.max_batch, max_json_depth=settings.max_json_depth)
        self.drain = Drain(settings.drain_seconds)
        self.live: Live | None = None
        self.follower: Follower[Live] | None = None
        self.telemetry: Telemetry | None = None
        self.log = AccessLogger(settings.access_log)
        self.monitors: dict[Path, Monitor] = {}  # each version's drift statistics, by folder
        self._private_monitor_dir: Path | None = None

    def start(self, preloaded: Models | None = None) -> None:
        """Resolve the version (``--version``, else the alias's holder), lease it, load and
        verify it (unless the process has just done so: ``preloaded``), then go live (the
        lifespan's start-up). ``watch`` then follows the alias."""
        settings = self.settings
        refused, final = None, False
        if self._source is not None:  # a registry alias: it may start on a fallback
            start = first_version(self._source, preloaded)
            source: Source | None = self._source
            key, models, claim, refused = start.key, start.models, start.held, start.refused
            final = start.final
        else:
            source, models, claim = self._start_in_folder(preloaded)
            key = models.version.number
        if settings.monitor_dir is None:  # an app outside `linreg-ops serve`: its own
            self._private_monitor_dir = Path(tempfile.mkdtemp(prefix="linreg-ops-monitor-"))
            self.settings = settings.model_copy(update={"monitor_dir": self._private_monitor_dir})
        self.follower = Follower(
            source, key, prepare=lambda loaded: make_live(loaded, self.settings, self.monitors),
            install=self.swap, on_refused=self._count_refusal, held=claim,
            number=models.version.number,
        )  # fmt: skip
        if settings.metrics:
            folder = os.environ.get(MULTIPROC_ENV)
            multiproc_dir = Path(folder) if folder else None
            if multiproc_dir is not None:
                compact_dead_workers(multiproc_dir)
            self.telemetry = Telemetry(_prediction_bounds(models), multiproc_dir)
        self.swap(make_live(models, self.settings, self.monitors))
        if refused is not None:  # logged and counted now that the metrics exist
            self.follower.refuse_at_start(refused, final)
        if source is not None:
            source.served(key)

    def _start_in_folder(
        self, preloaded: Models | None
    ) -> tuple[Source | None, Models, store.Lease | None]:
        """The folder's version (``--version``, else the alias's holder), leased and loaded
        (unless ``preloaded``), and the alias to follow (None: pinned)."""
        settings = self.settings
        models_dir = settings.models_dir
        alias = None if settings.model_version is not None else settings.alias
        copied = models_dir / store.CURRENT
        if alias == store.CURRENT and copied.is_dir() and not copied.is_symlink():
            alias = None  # a copied current folder (the Docker image's) never moves: no watch
        number = settings.model_version
        if alias is not None:
            number = store.alias_holder(models_dir, alias)
            if number is None:
                raise InputError(f"{models_dir} has no alias {alias!r}")
        claim = lease(models_dir, number) if number is not None else None
        try:
            if preloaded is not None and number in (None, preloaded.version.number):
                models = preloaded
            elif number is not None:
                models = load(models_dir, number)
            else:
                models = load_models(store.open_version(models_dir))
        except BaseException:
            if claim is not None:
                claim.release()
            raise
        source = AliasSource(models_dir, alias) if alias is not None else None
        return source, models, claim

    def swap(self, live: Live) -> None:
        """Serve ``live`` from the next request on: one assignment."""
        if self.telemetry is not None:
            self.telemetry.describe_models(
                live.number,
                {kind: (info["dtype"], info["sha256"]) for kind, info in live.model_info.items()},
            )
            followed = self.follower.alias if self.follower is not None else None
            self.telemetry.serving(live.number, followed or "")
        self.live = live

    @property
    def _follows(self) -> bool:
        return self.follower is not None and self.follower.alias is not None

    def _count_refusal(self) -> None:
        if self.telemetry is not None and self.follower is not None:
            self.telemetry.refused_reload(self.follower.alias or "")

    async def watch(self) -> None:
        """Follow the alias until cancelled (a pinned service returns at once)."""
        if self._follows and self.follower is not None:
            await self.follower.watch()

    def stop(self) -> None:
        self.log.flush()
        if self.telemetry is not None:
            self.telemetry.close()
        if self.follower is not None:
            self.follower.close()
        for monitor in self.monitors.values():
            monitor.close()
        self.monitors.clear()
        if self._private_monitor_dir is not None:
            shutil.rmtree(self._private_monitor_dir, ignore_errors=True)


def _prediction_bounds(models: Models) -> tuple[float, ...]:
    """The predicted-values histogram's buckets, from the float model's answers on the
    version's held-out rows."""
    if not models.version.has(store.TEST_SPLIT_CSV):
        return (0.0,)
    rows = stored_test_rows(models).values[:, : models.float.n_features]
    return prediction_buckets(models.float.predict(rows))


class Front:
    """The ASGI app: a framework-free front that answers the hot routes (``HOT_ROUTES``)
    itself and hands every other request to FastAPI (``/docs``, ``/redoc``, the OpenAPI
    document, 404 and 405), which is imported and built on the first such request.

    Every answer carries ``X-Model-Version`` and ``X-Request-ID``, is counted in the metrics
    and logged; bodies above ``max_body_bytes`` are refused with 413 before they are read
    whole; while draining, every answer closes its connection.
    """

    def __init__(
        self, settings: ServeSettings, preloaded: Models | None = None, source: Source | None = None
    ) -> None:
        self.service = Service(settings, source)
        self._preloaded = preloaded  # models this process loaded and verified already
        self.routes = {route.path: route for route in HOT_ROUTES}
        self._cold: FastAPI | None = None

    def add_route(self, route: HotRoute) -> None:
        """Answer one more route in the front (a faster protocol's endpoint, ``/monitor``)."""
        self.routes[route.path] = route

    @property
    def cold(self) -> "FastAPI":
        """The FastAPI app, built on first use (its examples come from the live version:
        before the models are loaded, it is built afresh each time)."""
        if self._cold is not None:
            return self._cold
        app = documented_app(self)
        if self.service.live is not None:
            self._cold = app
        return app

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document."""
        return self.cold.openapi()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            await self.cold(scope, receive, send)
            return
        started = time.perf_counter()
        service = self.service
        drain = service.drain
        drain.last_request = time.monotonic()
        live = service.live
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        given_id = next((value for name, value in headers if name == b"x-request-id"), None)
        rid = request_id(given_id)
        extra = [(b"x-request-id", rid.encode())]
        if live is not None:
            extra.append(live.header)
        if drain.active:
            extra.append((b"connection", b"close"))
        method, path = scope["method"], scope["path"]
        if live is not None and oip.owns(path):
            await self._open_inference(scope, receive, send, live, extra, started, rid)
            return
        route = self.routes.get(path)
        if route is None or method not in route.methods or live is None:
            label = path if path in DOCUMENTATION_PATHS else "other"  # a bounded label set
            status = 500  # what the server answers when the cold app raises
            try:
                status = await self._pass_on(scope, receive, send, extra)
            finally:  # logged and counted even when the cold app raised: a 5xx is never unseen
                self._record(live, label, None, method, status, started, rid, False)
            return
        answer = await self._answer(route, scope, receive, headers, live)
        if answer is None:  # the client left before its body arrived: nobody to answer
            self._record(live, route.path, None, method, _CLIENT_LEFT, started, rid, False)
            return
        response_headers = [
            (b"content-type", answer.content_type),
            (b"content-length", str(len(answer.body)).encode()),
            *extra,
            *answer.headers,
        ]
        # counted before it is sent: no client can see an answer that a scrape does not count
        # (a scrape on another worker, right after the answer, missed 1 request in 1,000)
        self._record(live, route.path, answer, method, answer.status, started, rid, route.predicts)
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": response_headers}
        )
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else answer.body})

    async def _open_inference(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        live: Live,
        extra: list[tuple[bytes, bytes]],
        started: float,
        rid: str,
    ) -> None:
        """A ``/v2`` request: the Open Inference Protocol's answer (``oip.answer``), counted
        and logged like the hot routes; errors in its own shape, ``{"error": ...}``."""
        method, path = scope["method"], scope["path"]
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        read = await self._read_body(receive, headers) if method == "POST" else b""
        if read is None:  # the client left before its body arrived: nobody to answer
            label = OIP_INFER_ROUTE if path.endswith("/infer") else OIP_ROUTE
            self._record(live, label, None, method, _CLIENT_LEFT, started, rid, False)
            return
        if isinstance(read, Answer):  # 413 before the body was read whole
            message = orjson.loads(read.body)["message"]
            result = oip.Answer(413, [("content-type", "application/json")],
                                orjson.dumps({"error": message}))  # fmt: skip
        else:
            named = {name.decode("latin-1"): value.decode("latin-1") for name, value in headers}
            result = oip.answer(
                method, path, named, read, live.models, self.service.limits,
                ready=not self.service.drain.active,
            )  # fmt: skip
            if len(read) >= LARGE_BODY:
                _release_memory()
        response_headers = [
            *((name.encode("latin-1"), value.encode("latin-1")) for name, value in result.headers),
            (b"content-length", str(len(result.body)).encode()),
            *extra,
        ]
        if result.scored is not None:  # the rows an inference scored, for GET /monitor
            live.monitor.record(result.scored)
        if result.kind == "integer":
            response_headers.append((CLIPPED_HEADER, str(result.clipped).encode()))
        answer = Answer(
            result.body, result.status, result.kind, result.rows, result.clipped,
            result.predictions,
        )  # fmt: skip
        label = OIP_INFER_ROUTE if path.endswith("/infer") else OIP_ROUTE  # a bounded label set
        self._record(
            live, label, answer, method, result.status, started, rid, result.kind is not None
        )
        await send({"type": "http.response.start", "status": result.status,
                    "headers": response_headers})  # fmt: skip
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else result.body})

    async def _answer(
        self,
        route: HotRoute,
        scope: Scope,
        receive: Receive,
        headers: list[tuple[bytes, bytes]],
        live: Live,
    ) -> Answer | None:
        body = b""
        if "POST" in route.methods:
            read = await self._read_body(receive, headers)
            if read is None:
                return None
            if isinstance(read, Answer):
                return read
            body = read
        call = Call(body, headers, scope.get("query_string", b""))
        try:
            if "POST" in route.methods:
                _check_encoding(call)
            return route.handler(self.service, call, live)
        except RequestError as exc:
            return Answer(
                orjson.dumps({"error_code": exc.code, "message": exc.message}), exc.status
            )
        finally:
            if len(body) >= LARGE_BODY:
                _release_memory()

    async def _read_body(
        self, receive: Receive, headers: list[tuple[bytes, bytes]]
    ) -> bytes | Answer | None:
        """The whole body, or a 413 as soon as it is known to exceed ``max_body_bytes``,
        or None when the client left."""
        limit = self.service.settings.max_body_bytes
        for name, value in headers:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                return _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _pass_on(
        self, scope: Scope, receive: Receive, send: Send, extra: list[tuple[bytes, bytes]]
    ) -> int:
        """Hand the request to FastAPI with the front's headers added; its status."""
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        from starlette.requests import ClientDisconnect

        try:
            await self.cold(scope, receive, sending)
        except ClientDisconnect:  # the client left: nobody to answer, as on the hot routes
            return _CLIENT_LEFT
        return status

    def _record(
        self,
        live: Live | None,
        route: str,
        answer: Answer | None,
        method: str,
        status: int,
        started: float,
        rid: str,
        predicts: bool,
    ) -> None:
        service = self.service
        seconds = time.perf_counter() - started
        number = live.number if live is not None else 0
        kind = answer.kind if answer is not None else None
        if service.telemetry is not None:
            predicted = answer is not None and predicts and status == 200
            service.telemetry.record(
                route, kind, number, status, seconds,
                answer.rows if predicted and answer else 0,
                answer.clipped if predicted and answer else 0,
                answer.predictions if predicted and answer else None,
            )  # fmt: skip
        if service.log.enabled:
            service.log.write(
                Entry(
                    rid,
                    method,
                    route,
                    MODEL_NAMES[kind] if kind else "",
                    number,
                    answer.rows if answer else 0,
                    status,
                    seconds * 1000,
                    answer.clipped if answer else 0,
                )
            )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        watch: asyncio.Task[None] | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.service.start(self._preloaded)
                    self._preloaded = None
                except BaseException as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    raise
                self.service.drain.install()
                watch = asyncio.create_task(self.service.watch())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if watch is not None:
                    watch.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watch
                self.service.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _check_encoding(call: Call) -> None:
    """A compressed body is refused (415) on every POST hot route, as ``/v2`` refuses it:
    reading it as if it were plain would answer for bytes the client did not mean."""
    given = call.header(b"content-encoding")
    if given is None:
        return
    encoding = given.decode("latin-1").strip().lower()
    if encoding not in ("", "identity"):
        raise RequestError(
            415, f"unsupported Content-Encoding {encoding!r}: send the body as is", UNSUPPORTED
        )


def _too_large(limit: int) -> Answer:
    message = f"request body exceeds max_body_bytes {limit:,}"
    body = orjson.dumps({"error_code": "REQUEST_TOO_LARGE", "message": message})
    return Answer(body, 413)


def _release_memory() -> None:
    """After a large request, return freed heap pages to the system (glibc's malloc_trim), so
    a burst of rejected large bodies does not leave the worker's memory high for good."""
    if sys.platform.startswith("linux"):
        libc_name = ctypes.util.find_library("c")
        if libc_name:
            trim = getattr(ctypes.CDLL(libc_name), "malloc_trim", None)
            if trim is not None:
                trim(0)


class Drain:
    """SIGTERM as a lame duck, not a cliff: keep answering until the clients have gone.

    uvicorn's own graceful shutdown closes the listening socket at once, which resets every
    connection still queued in the kernel's backlog and every accepted one whose request has
    not been read yet — requests a client had already sent. Instead, the first SIGTERM starts
    draining: ``/ready`` answers 503 (a load balancer stops sending), every response carries
    ``Connection: close``, and requests are still served until none has started for
    ``QUIET_SECONDS`` (at most ``max_seconds``); then uvicorn's shutdown finishes what is in
    flight. A second SIGTERM, or SIGINT, stops at once.
    """

    QUIET_SECONDS = 0.25

    def __init__(self, max_seconds: float) -> None:
        self.max_seconds = max_seconds
        self.active = False
        self.last_request = time.monotonic()

    def install(self) -> None:
        """Take over SIGTERM from the server (call in the running server's lifespan)."""
        if threading.current_thread() is not threading.main_thread():
            return  # an in-process test client: no signals to handle
        shutdown = signal.getsignal(signal.SIGTERM)
        if not callable(shutdown):
            return
        loop = asyncio.get_running_loop()

        def on_sigterm(sig: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(self._begin, shutdown, sig, frame)

        signal.signal(signal.SIGTERM, on_sigterm)

    def _begin(
        self, shutdown: Callable[[int, FrameType | None], Any], sig: int, frame: Any
    ) -> None:
        if self.active:
            shutdown(sig, frame)
            return
        self.active = True
        self._task = asyncio.ensure_future(self._wait_then(shutdown, sig, frame))

    async def _wait_then(
        self, shutdown: Callable[[int, FrameType | None], Any], sig: int, frame: Any
    ) -> None:
        deadline = time.monotonic() + self.max_seconds
        while time.monotonic() < deadline:
            if time.monotonic() - self.last_request >= self.QUIET_SECONDS:
                break
            await asyncio.sleep(0.02)
        shutdown(sig, frame)


APP_FACTORY = "linreg_ops.inference.serve:create_app"  # what each worker process calls


def create_app(settings: ServeSettings | None = None, preloaded: Models | None = None) -> Front:
    """The service's ASGI app; models load in the lifespan, so creating it reads nothing."""
    return Front(settings or ServeSettings(), preloaded)


# --------------------------------------------------------------------------- documentation


def documented_app(front: Front) -> "FastAPI":
    """FastAPI, for what is not hot: Swagger UI at ``/docs`` and ReDoc at ``/redoc`` (assets
    from an installed package: they work offline), the OpenAPI document, 404 and 405. The
    hot routes are declared here too — the OpenAPI document describes them, with examples
    that succeed — and answer through the same handlers as the front."""
    from fastapi import Request
    from fastapi.responses import Response
    from fastapi_offline import FastAPIOffline

    from linreg_ops.inference import openapi

    app = FastAPIOffline(
        title="linreg-ops",
        version=__version__,
        summary="Linear regression predictions from one verified, pickle-free model version.",
        favicon_url=None,
    )

    def endpoint(route: HotRoute) -> Callable[[Request], Awaitable[Response]]:
        async def answer(request: Request) -> Response:
            live = front.service.live
            if live is None:
                return Response(b'{"detail":"starting"}', 503, media_type="application/json")
            body = await request.body()
            scope = request.scope
            call = Call(body, list(scope["headers"]), scope.get("query_string", b""))
            try:
                result = route.handler(front.service, call, live)
            except RequestError as exc:
                error = {"error_code": exc.code, "message": exc.message}
                result = Answer(orjson.dumps(error), exc.status)
            return Response(
                result.body,
                result.status,
                {name.decode(): value.decode() for name, value in result.headers},
                media_type=result.content_type.decode(),
            )

        return answer

    for route in HOT_ROUTES:
        for method in sorted(route.methods - {"HEAD"}):
            app.add_api_route(
                route.path, endpoint(route), methods=[method],
                **openapi.route_documentation(route.path, example_rows(front.service.live)),
            )  # fmt: skip
    return app


def example_rows(live: Live | None) -> tuple[list[str], list[list[float]]]:
    """The features and two held-out rows of the served version: examples that succeed."""
    if live is None:
        return [], []
    models = live.models
    names = list(models.float.feature_names)
    if not models.version.has(store.TEST_SPLIT_CSV):
        return names, [[0.0] * len(names)] * 2
    rows = stored_test_rows(models).values[:2, : len(names)]
    return names, rows.tolist()


# --------------------------------------------------------------------------- process


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port) — port 0 picks a free one — or one clear line."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(
            f"--host {host!r} is not an address this machine can listen on: {exc}"
        ) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def _removed(folder: Path) -> Iterator[None]:
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(
    version: store.Version,
    settings: ServeSettings,
    models: Models | None = None,
    factory: str = APP_FACTORY,
) -> int:
    """Bind, say where, and run uvicorn's workers on the one socket, serving ``version``:
    pinned to it (``settings.model_version``) or following ``settings.alias`` from it (or
    the registry alias ``settings.model_uri``, through ``factory``: each worker calls it
    with no arguments to make its app). One worker serves ``models`` when given (the caller
    has just loaded and verified them: loading twice would double the start-up); several
    workers each load their own."""
    import uvicorn
    from uvicorn.importer import import_from_string
    from uvicorn.supervisors import Multiprocess

    sock = bind(settings.host, settings.port)
    bound_host, bound_port = sock.getsockname()[:2]
    follows = settings.model_version is None
    # every worker's drift statistics (GET /monitor): a folder made fresh now, gone at exit
    monitor_dir = Path(tempfile.mkdtemp(prefix="linreg-ops-monitor-"))
    pinned = settings.model_copy(
        update={"models_dir": version.models_dir.resolve(), "monitor_dir": monitor_dir}
    )
    # the workers' settings, read by ServeSettings in each worker (a restarted one too)
    os.environ.pop("LINREG_OPS_MODEL_VERSION", None)
    os.environ.update(
        {
            f"LINREG_OPS_{name.upper()}": str(value)
            for name, value in pinned.model_dump().items()
            if value is not None
        }
    )
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    workers = settings.workers
    print(
        f"Serving version {version.number} of {version.models_dir} on http://{shown}:{bound_port} "
        f"({workers} worker{'s' if workers > 1 else ''}), "
        + (
            f"following {settings.model_uri} (each worker asks the registry every "
            f"{settings.registry_poll_seconds:g} s)"
            if settings.model_uri is not None
            else f"following alias {settings.alias!r} (each worker looks every {POLL_SECONDS:g} s)"
            if follows
            else "pinned"
        ),
        flush=True,
    )
    make_app = import_from_string(factory)
    single = make_app(pinned, models) if workers == 1 and models is not None else None
    config = uvicorn.Config(
        single or factory,
        factory=single is None,
        host=bound_host,
        port=bound_port,
        workers=workers,
        log_level=settings.log_level,
        access_log=False,  # the service writes its own request log (--access-log)
        lifespan="on",
    )
    os.environ.pop(MULTIPROC_ENV, None)
    with sock, _removed(monitor_dir):
        if workers > 1:
            # every worker's metrics in every scrape: a folder made fresh now, gone at exit
            folder = tempfile.mkdtemp(prefix="linreg-ops-metrics-")
            os.environ[MULTIPROC_ENV] = folder
            try:
                Multiprocess(config, sockets=[sock]).run()
            finally:
                os.environ.pop(MULTIPROC_ENV, None)
                shutil.rmtree(folder, ignore_errors=True)
            return 0
        server = uvicorn.Server(config)
        try:
            server.run(sockets=[sock])
        except SystemExit:  # uvicorn's exit 3 on a failed start-up is not our gate's exit 3
            raise InputError(
                f"version {version.number} could not be loaded when the service started "
                "(the log above says why)"
            ) from None
        return 0 if server.started else 1
