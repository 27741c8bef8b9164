"""HTTP serving: a thin FastAPI layer over ``requests`` (parsing), ``loading`` and ``predict``.

* ``POST /predict``: ``{"instances": [...], "model": "float"|"quantized"|"integer"}``.
* ``POST /invocations``: MLflow's scoring protocol (``dataframe_split``,
  ``dataframe_records``, ``instances``, ``inputs``; JSON or ``text/csv``).
* ``GET /health`` (alive), ``/ready`` (models loaded), ``/metadata``; OpenAPI at ``/docs``,
  whose Swagger UI assets come from an installed package (it works offline).

Every worker serves one version: the one ``linreg-ops serve`` resolved when it started,
passed to the workers in ``LINREG_OPS_MODEL_VERSION``, so a worker restarted after a retrain
still serves it. Models load in the lifespan; importing this module does nothing.
"""

import asyncio
import ctypes
import ctypes.util
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.requests import ClientDisconnect

from linreg_ops._version import __version__
from linreg_ops.config import DEFAULT_MODELS_DIR, SERVE_DEFAULTS, LogLevel, ModelKind
from linreg_ops.errors import InputError
from linreg_ops.inference import live, requests
from linreg_ops.inference.loading import ARTIFACT_OF, AnyModel, Models, load_metrics
from linreg_ops.inference.predict import predict_rows
from linreg_ops.inference.requests import Limits, RequestError
from linreg_ops.storage import store

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "LARGE_BODY",
    "BodyLimit",
    "Drain",
    "Draining",
    "InvocationsResponse",
    "JSONBody",
    "Message",
    "ModelInfo",
    "PredictResponse",
    "Receive",
    "Scope",
    "Send",
    "ServeSettings",
    "bind",
    "create_app",
    "describe_service",
    "run",
    "serve_settings",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
LARGE_BODY = 1 << 20  # after a body this large, hand freed memory back to the system


class ServeSettings(BaseSettings):
    """Every setting of the service, once: a ``linreg-ops serve`` flag wins, then a
    ``LINREG_OPS_<NAME>`` environment variable, then ``config.SERVE_DEFAULTS``."""

    model_config = SettingsConfigDict(env_prefix="LINREG_OPS_", extra="forbid")

    models_dir: Path = DEFAULT_MODELS_DIR
    model_version: int | None = Field(None, ge=1)  # None: the current version at start-up
    alias: str | None = None  # follow this alias's moves (inference.live)
    host: str = SERVE_DEFAULTS.host
    port: int = Field(SERVE_DEFAULTS.port, ge=0, le=65535)
    workers: int = Field(SERVE_DEFAULTS.workers, gt=0)
    max_batch: int = Field(SERVE_DEFAULTS.max_batch, gt=0)
    max_body_bytes: int = Field(SERVE_DEFAULTS.max_body_bytes, gt=0)
    max_json_depth: int = Field(SERVE_DEFAULTS.max_json_depth, gt=1)
    log_level: LogLevel = SERVE_DEFAULTS.log_level
    drain_seconds: float = Field(SERVE_DEFAULTS.drain_seconds, ge=0)


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


class InvocationsResponse(BaseModel):
    predictions: list[float]


class JSONBody(Response):
    """orjson rendering: numpy arrays serialise natively and fast."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


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


# --------------------------------------------------------------------------- app


class BodyLimit:
    """ASGI middleware: refuse bodies above ``max_bytes`` with 413, before reading them whole."""

    def __init__(self, app: Callable[..., Awaitable[None]], max_bytes: int) -> None:
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
                raise _BodyTooLargeError
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLargeError:
            await self._too_large(send)
        except ClientDisconnect:
            # the body never arrived whole (the client left, or the server dropped a malformed
            # chunked body with a 400): nobody to answer, nothing to log per request
            return
        finally:
            if seen >= LARGE_BODY:
                _release_memory()

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


class _BodyTooLargeError(Exception):
    pass


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


class Draining:
    """ASGI middleware: notes when requests arrive, and closes connections while draining."""

    def __init__(self, app: Callable[..., Awaitable[None]], drain: Drain) -> None:
        self.app, self.drain = app, drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        drain = self.drain
        drain.last_request = time.monotonic()
        if not drain.active:
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, closing)


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI app; models load in the lifespan, so creating it reads nothing."""
    settings = settings or ServeSettings()
    limits = Limits(max_batch=settings.max_batch, max_json_depth=settings.max_json_depth)

    drain = Drain(settings.drain_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with live.serving(
            settings.models_dir, settings.model_version, settings.alias,
            lambda models: describe_service(models, settings),
        ) as app.state.live:  # fmt: skip
            drain.install()
            yield

    app = FastAPIOffline(
        title="linreg-ops",
        version=__version__,
        summary="Linear regression predictions from one verified, pickle-free model version.",
        lifespan=lifespan,
        default_response_class=JSONBody,
        redoc_url=None,
        favicon_url=None,
    )

    @app.exception_handler(RequestError)
    async def bad_request(request: Request, exc: RequestError) -> Response:
        return JSONBody({"error_code": exc.code, "message": exc.message}, status_code=exc.status)

    @app.get("/health", summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness: the version's models are loaded and verified")
    async def ready(request: Request) -> Response:
        models = _models(request)
        body = {"version": models.version.number, "models": models.kinds()}
        if drain.active:
            return JSONBody({"status": "draining", **body}, status_code=503)
        return JSONBody({"status": "ready", **body})

    for path, probe in (("/health", health), ("/ready", ready)):  # load balancers use HEAD
        app.add_api_route(path, probe, methods=["HEAD"], include_in_schema=False)

    @app.get("/metadata", summary="Version, features, metrics, quantization and checksums")
    async def model_metadata(request: Request) -> dict[str, Any]:
        info: dict[str, Any] = request.app.state.live.metadata()
        return info

    json_body = {"application/json": {"schema": requests.PredictRequest.model_json_schema()}}

    @app.post(
        "/predict",
        response_model=PredictResponse,
        summary="Predict rows with the float, quantized or integer-only model",
        openapi_extra={"requestBody": {"content": json_body, "required": True}},
        responses={413: {"description": "batch or body too large"}},
    )
    async def predict_route(request: Request) -> Response:
        models = _models(request)
        if _content_type(request) not in requests.JSON_TYPES:
            raise RequestError(400, _wrong_type(request, "application/json"))
        X, kind = requests.predict_request(await request.body(), models.float.feature_names, limits)
        if kind not in models.kinds():
            raise RequestError(
                422, f"model: {kind!r} is not published here: run linreg-ops quantize"
            )
        predictions = _predictions(models.get(kind), X)
        artifact = ARTIFACT_OF[kind]
        info = {
            "kind": kind,
            "sha256": models.version.sha256(artifact),
            "dtype": _dtype(models, kind),
            "version": models.version.number,
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
        models = _models(request)
        body = await request.body()
        X = requests.invocations_request(
            body, _content_type(request), models.float.feature_names, limits
        )
        return JSONBody({"predictions": _predictions(models.float, X)})

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(Draining, drain=drain)
    app.add_middleware(live.VersionHeader, live=lambda: app.state.live)
    return app


def _models(request: Request) -> Models:
    """The models serving now, read once per request (and named in X-Model-Version)."""
    served: live.Served = request.app.state.live.served
    request.state.model_version = served.models.version.number
    return served.models


def _predictions(model: AnyModel, X: "np.ndarray") -> "np.ndarray":
    """A request's predictions; a row whose prediction overflows is a 422 naming it."""
    try:
        return predict_rows(model, X, source="request")[0]
    except InputError as exc:
        raise RequestError(422, str(exc)) from None


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _wrong_type(request: Request, expected: str) -> str:
    given = request.headers.get("content-type") or "none"
    return f"unsupported Content-Type {given!r}: send {expected}"


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


def run(version: store.Version, settings: ServeSettings) -> int:
    """Bind, say where, and run uvicorn's workers on the one socket, pinned to ``version``."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    sock = bind(settings.host, settings.port)
    bound_host, bound_port = sock.getsockname()[:2]
    pinned = settings.model_copy(
        update={
            "models_dir": version.models_dir.resolve(),
            "model_version": None if settings.alias else version.number,
        }
    )
    # the workers' settings, read by ServeSettings in each worker (a restarted one too)
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
        f"({workers} worker{'s' if workers > 1 else ''})"
        + (f", following alias {settings.alias!r}" if settings.alias else ""),
        flush=True,
    )
    config = uvicorn.Config(
        "linreg_ops.inference.serve:create_app",
        factory=True,
        host=bound_host,
        port=bound_port,
        workers=workers,
        log_level=settings.log_level,
        access_log=False,
    )
    with sock:
        if workers > 1:
            Multiprocess(config, sockets=[sock]).run()
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
