"""MLflow tracking and registry (extra ``mlflow``): a published version logged as an MLflow
run and registered as a model version; registry aliases moved; a registered version fetched
back into a models folder that the ordinary loader verifies.

A version travels whole: the run's ``linreg-ops-version/`` artifacts are the version's files
and its manifest, and the registered version's ``manifest_sha256`` tag names that manifest,
so what ``fetch_registered_version`` downloads is checked end to end (tag → manifest →
every artifact's SHA-256 → the models' known answers) before anything serves it; pickles
are logged with the version but never downloaded. MLflow is imported inside the functions
that talk to it: without a tracking URI nothing imports it.
"""

import contextlib
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linreg_ops.config import (
    DEFAULT_REGISTERED_MODEL,
    TRACKED_MODEL_KIND,
    TRACKING_URI_ENV,
    ModelKind,
)
from linreg_ops.errors import ArtifactError, InputError
from linreg_ops.exports.mlflow import model_metadata, pyfunc_arguments, quiet_mlflow
from linreg_ops.extras import require
from linreg_ops.inference import loading
from linreg_ops.storage import codecs, store
from linreg_ops.storage.digests import sha256_bytes
from linreg_ops.storage.store import Version

__all__ = [
    "MODEL_ARTIFACT",
    "REPORT_ARTIFACTS",
    "TAGS",
    "VERSION_ARTIFACTS",
    "TrackedRun",
    "check_registered_name",
    "check_registry_alias",
    "check_tracking_server",
    "fetch_registered_version",
    "log_run",
    "parse_model_uri",
    "registered_version_of",
    "registry_tags",
    "resolve_model_uri",
    "run_metrics",
    "run_params",
    "set_registry_alias",
]

VERSION_ARTIFACTS = "linreg-ops-version"  # the run's copy of versions/N (manifest included)
REPORT_ARTIFACTS = "reports"
MODEL_ARTIFACT = "model"  # the logged MLflow model's name (what the registry version points at)
# The registered version's tags: what a registry user filters and compares on.
TAGS = (
    "models_version",  # N of versions/N in the models folder the run published
    "manifest_sha256",  # the version's manifest: fetch checks the download against it
    "data_sha256",
    "dtype",
    "rounding",
    "delta_r2",
    "integer_delta_r2",
    "model_kind",
    "package_version",
)
_MODEL_URI = re.compile(r"models:/([^/@]+)(?:@([^/@]+)|/([1-9][0-9]*))")
_PROBE_RETRIES = "0"  # the reachability check asks once: MLflow's own retries take minutes
_PARAMS_PER_BATCH = 100  # MLflow's limit of parameters in one log_batch
_DEFAULT_EXPERIMENT = "0"  # MLflow's default experiment


@dataclass(frozen=True)
class TrackedRun:
    """What ``log_run`` logged and registered."""

    tracking_uri: str
    experiment_id: str
    run_id: str
    registered_model: str
    registry_version: int
    tags: dict[str, str]

    @property
    def model_uri(self) -> str:
        return f"models:/{self.registered_model}/{self.registry_version}"


# --------------------------------------------------------------------------- what is logged


def run_params(version: Version, metrics: dict[str, Any]) -> dict[str, str]:
    """The run's parameters: where the data came from, how it was split and fitted, how the
    models were quantized and gated, and the package versions that did it."""
    manifest = version.manifest
    params: dict[str, Any] = {
        "models_version": version.number,
        "data_source": manifest.training_data.get("source"),
        "data_sha256": manifest.training_data.get("sha256"),
        "command": manifest.command,
    }
    params.update({f"split.{key}": value for key, value in manifest.split.items()})
    sections = (("quantized", ("dtype", "granularity", "rounding")),
                ("integer_only", ("weight_dtype", "input_dtype", "calibration")))  # fmt: skip
    for section, keys in sections:
        figures = metrics.get(section) or {}
        params.update({f"{section}.{key}": figures.get(key) for key in keys if key in figures})
    gate = metrics.get("gate") or {}
    params.update({f"gate.{key}": gate.get(key) for key in ("max_r2_drop", "max_abs_diff")})
    params.update({f"versions.{name}": value for name, value in manifest.versions.items()})
    return {
        key: str(value)[:6000]  # MLflow's limit for a parameter's value
        for key, value in params.items()
        if value is not None and not isinstance(value, dict | list)
    }


def run_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Every finite number of ``metrics.json``: ``float.r2``, ``quantized.delta_r2``,
    ``integer_only.clipped_rows``, … and the row counts."""
    found: dict[str, float] = {}
    for section in ("float", "quantized", "integer_only"):
        for key, value in (metrics.get(section) or {}).items():
            if _number(value):
                found[f"{section}.{key}"] = float(value)
    for key in ("n_train", "n_test", "n_test_stored"):
        if _number(metrics.get(key)):
            found[key] = float(metrics[key])
    return found


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def registry_tags(version: Version, metrics: dict[str, Any], kind: ModelKind) -> dict[str, str]:
    """The registered version's ``TAGS``: which version it is, of which data, quantized how
    and at what cost in R²."""
    from linreg_ops._version import __version__

    quantized = metrics.get("quantized") or {}
    integer = metrics.get("integer_only") or {}
    tags: dict[str, Any] = {
        "models_version": version.number,
        "manifest_sha256": sha256_bytes(_manifest_bytes(version)),
        "data_sha256": version.manifest.training_data.get("sha256"),
        "dtype": quantized.get("dtype"),
        "rounding": quantized.get("rounding"),
        "delta_r2": quantized.get("delta_r2"),
        "integer_delta_r2": integer.get("delta_r2"),
        "model_kind": kind,
        "package_version": __version__,
    }
    return {key: str(value) for key, value in tags.items() if value is not None}


def _manifest_bytes(version: Version) -> bytes:
    return store.read_regular_file(version.path / store.MANIFEST_JSON, store.MANIFEST_MAX_BYTES)


# --------------------------------------------------------------------------- talking to MLflow


@contextlib.contextmanager
def _mlflow_errors(tracking_uri: str) -> Iterator[None]:
    """An MLflow refusal or an unreachable server as one line (exit 2), not a traceback."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        lines = str(exc.message).strip().splitlines() or [type(exc).__name__]
        raise InputError(f"MLflow at {tracking_uri}: {lines[0][:300]}") from None
    except OSError as exc:
        raise InputError(f"MLflow at {tracking_uri}: {exc.strerror or exc}") from None


def _client(tracking_uri: str) -> Any:
    """A client for ``tracking_uri``, built inside the error mapping: MLflow refuses some
    URIs as it builds it (a ``file://`` store is in maintenance mode), not at the first call."""
    mlflow = require("mlflow", "mlflow", "MLflow tracking (--tracking-uri)")
    with _mlflow_errors(tracking_uri):
        return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def check_registered_name(name: str) -> None:
    """A registered model's name as MLflow takes it (no ``/`` or ``:``), and one a
    ``models:/NAME@ALIAS`` URI can name (no ``@``)."""
    if not name.strip() or any(c in name for c in "/:@"):
        raise InputError(f"--registered-model {name!r}: a name without '/', ':' or '@' is needed")


def check_tracking_server(tracking_uri: str, registered_model: str | None = None) -> None:
    """Ask the tracking server once whether it answers (and check the registered model's
    name), before a run does any work: a run must not train, publish, and only then find
    the server down."""
    if registered_model is not None:
        check_registered_name(registered_model)
    client = _client(tracking_uri)
    with quiet_mlflow(MLFLOW_HTTP_REQUEST_MAX_RETRIES=_PROBE_RETRIES), _mlflow_errors(tracking_uri):
        client.search_experiments(max_results=1)


def log_run(
    tracking_uri: str,
    version: Version,
    reports: Sequence[Path] = (),
    registered_model: str = DEFAULT_REGISTERED_MODEL,
    kind: ModelKind = TRACKED_MODEL_KIND,
) -> TrackedRun:
    """Log ``version`` as an MLflow run (parameters, metrics, its files, ``reports`` and the
    MLflow model of its ``kind`` model) and register that model as a new version of
    ``registered_model``, tagged with ``registry_tags``. Every call names ``tracking_uri``
    (an ``MlflowClient`` of its own): the process's MLflow settings and environment are left
    as they were found, so nothing later in the process logs to this server by accident."""
    require("mlflow", "mlflow", "MLflow tracking (--tracking-uri)")
    import mlflow.pyfunc
    from mlflow.entities import Metric, Param
    from mlflow.models import Model

    check_registered_name(registered_model)
    models = loading.load_models(version)  # verified before anything leaves the folder
    metrics = loading.load_metrics(version) or {}
    tags = registry_tags(version, metrics, kind)
    example = loading.stored_test_rows(models).values[:, :-1]
    client = _client(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="linreg-ops-mlflow-") as tmp:
        folder = Path(tmp) / VERSION_ARTIFACTS
        folder.mkdir()
        for name in version.manifest.artifacts:
            (folder / name).write_bytes(store.read_artifact(version, name))
        (folder / store.MANIFEST_JSON).write_bytes(_manifest_bytes(version))
        json_path = Path(tmp) / loading.ARTIFACT_OF[kind]
        json_path.write_bytes(store.read_artifact(version, loading.ARTIFACT_OF[kind]))
        arguments = pyfunc_arguments(models, kind, example, model_metadata(models, kind), json_path)
        with quiet_mlflow(), _mlflow_errors(tracking_uri):
            run = client.create_run(
                _experiment_id(client),
                run_name=f"linreg-ops version {version.number}",
                tags={f"linreg_ops.{key}": value for key, value in tags.items()},
            )
            run_id = run.info.run_id
            status = "FAILED"
            try:
                now = int(time.time() * 1000)
                params = [Param(key, value) for key, value in run_params(version, metrics).items()]
                for start in range(0, len(params), _PARAMS_PER_BATCH):
                    client.log_batch(run_id, params=params[start : start + _PARAMS_PER_BATCH])
                client.log_batch(
                    run_id, metrics=[Metric(k, v, now, 0) for k, v in run_metrics(metrics).items()]
                )
                client.log_artifacts(run_id, str(folder), VERSION_ARTIFACTS)
                for path in reports:
                    client.log_artifact(run_id, str(path), REPORT_ARTIFACTS)
                with _process_tracking_uri(tracking_uri):  # Model.log takes no URI
                    logged = Model.log(
                        None, name=MODEL_ARTIFACT, flavor=mlflow.pyfunc, run_id=run_id, **arguments
                    )
                registered = _register(client, registered_model, logged, run_id, tags)
                client.set_tag(run_id, "linreg_ops.registered",
                               f"{registered_model}/{registered.version}")  # fmt: skip
                status = "FINISHED"
            finally:
                client.set_terminated(run_id, status)
    return TrackedRun(
        tracking_uri,
        run.info.experiment_id,
        run_id,
        registered_model,
        int(registered.version),
        tags,
    )


def _experiment_id(client: Any) -> str:
    """The experiment a run goes to, chosen as MLflow's own ``start_run`` chooses it:
    ``MLFLOW_EXPERIMENT_NAME`` (made if new), else ``MLFLOW_EXPERIMENT_ID`` (which must
    exist), else the default experiment."""
    name, number = os.environ.get("MLFLOW_EXPERIMENT_NAME"), os.environ.get("MLFLOW_EXPERIMENT_ID")
    if name:
        found = client.get_experiment_by_name(name)
        return str(found.experiment_id) if found else str(client.create_experiment(name))
    if number:
        return str(client.get_experiment(number).experiment_id)
    return _DEFAULT_EXPERIMENT


@contextlib.contextmanager
def _process_tracking_uri(tracking_uri: str) -> Iterator[None]:
    """MLflow's ``Model.log`` has no URI parameter: it reads the process-wide tracking URI,
    and ``mlflow.set_tracking_uri`` writes it into ``os.environ`` (where a later subprocess
    or test inherits it). Set for one call, then MLflow's setting and the environment are
    put back as they were found."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_state

    saved_env = os.environ.get(TRACKING_URI_ENV)
    saved = tracking_state._tracking_uri
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        # None (no URI was set) is taken and unsets the variable, put back below
        mlflow.set_tracking_uri(saved)  # type: ignore[arg-type]
        if saved_env is None:
            os.environ.pop(TRACKING_URI_ENV, None)
        else:
            os.environ[TRACKING_URI_ENV] = saved_env


def _register(client: Any, name: str, logged: Any, run_id: str, tags: dict[str, str]) -> Any:
    """A new version of registered model ``name`` (made if new) for the logged model."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    return client.create_model_version(
        name, logged.model_uri, run_id=run_id, tags=tags, model_id=logged.model_id
    )


def registered_version_of(tracking_uri: str, name: str, version: Version) -> int:
    """The registry's version of ``name`` that holds this linreg-ops ``version`` (the one
    whose ``manifest_sha256`` tag is its manifest's; the newest, if logged twice)."""
    digest = sha256_bytes(_manifest_bytes(version))
    client = _client(tracking_uri)
    with _mlflow_errors(tracking_uri):
        found = client.search_model_versions(f"name = '{_quoted(name)}'")
    numbers = [int(mv.version) for mv in found if mv.tags.get("manifest_sha256") == digest]
    if not numbers:
        raise InputError(
            f"{version} is not registered as {name!r} at {tracking_uri}: "
            "log it with linreg-ops run --tracking-uri"
        )
    return max(numbers)


def _quoted(name: str) -> str:
    return name.replace("'", "\\'")


def check_registry_alias(tracking_uri: str, alias: str) -> None:
    """An alias the registry takes, checked by MLflow's own rules before anything moves
    (``latest`` and ``v1``-like names are reserved there, though a models folder takes them)."""
    require("mlflow", "mlflow", "MLflow tracking (--tracking-uri)")
    from mlflow.utils import validation as checks

    validation: Any = checks  # MLflow's checks of an alias, untyped
    with _mlflow_errors(tracking_uri):
        validation._validate_model_alias_name(alias)
        validation._validate_model_alias_name_reserved(alias)


def set_registry_alias(tracking_uri: str, name: str, alias: str, version: int) -> int | None:
    """Point the registry alias ``name@alias`` at registered version ``version`` (MLflow
    moves an alias atomically); return the version that held it before, if any."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    with _mlflow_errors(tracking_uri):
        client.get_model_version(name, str(version))  # "no such version", before any change
        try:
            previous: int | None = int(client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            previous = None
        client.set_registered_model_alias(name, alias, str(version))
    return previous


# --------------------------------------------------------------------------- fetching


def parse_model_uri(model_uri: str) -> tuple[str, str | None, int | None]:
    """``models:/NAME@ALIAS`` → (NAME, ALIAS, None); ``models:/NAME/VERSION`` → (NAME,
    None, VERSION). Anything else is refused: stages are deprecated, and ``runs:/`` URIs
    name no registered version to verify against."""
    match = _MODEL_URI.fullmatch(model_uri)
    if not match:
        raise InputError(
            f"--model-uri {model_uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION"
        )
    name, alias, number = match.groups()
    return name, alias, int(number) if number else None


def _registered(client: Any, tracking_uri: str, model_uri: str) -> Any:
    name, alias, number = parse_model_uri(model_uri)
    with _mlflow_errors(tracking_uri):
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, str(number))


def resolve_model_uri(tracking_uri: str, model_uri: str) -> str:
    """The registered version ``model_uri`` names now, as ``models:/NAME/VERSION``: one
    cheap call, what a service following an alias polls before fetching anything."""
    name = parse_model_uri(model_uri)[0]
    return f"models:/{name}/{_registered(_client(tracking_uri), tracking_uri, model_uri).version}"


def fetch_registered_version(tracking_uri: str, model_uri: str, dest: Path) -> tuple[str, Path]:
    """Resolve ``model_uri`` in the registry, download its linreg-ops version (manifest and
    artifacts, no pickles) into a new models folder at ``dest`` and verify it as a local
    version is verified; return the resolved ``models:/NAME/VERSION`` and ``dest``."""
    name = parse_model_uri(model_uri)[0]  # a malformed URI before anything else
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(
            f"{dest} already exists: a registered version is fetched into a new folder"
        )
    client = _client(tracking_uri)
    # every call asked once, as the server check is: MLflow's back-off on a registry that
    # answers 500 takes minutes before the same one-line refusal
    once = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": _PROBE_RETRIES}
    with quiet_mlflow(**once):
        registered = _registered(client, tracking_uri, model_uri)
    resolved = f"models:/{name}/{registered.version}"
    expected = registered.tags.get("manifest_sha256")
    if not registered.run_id or not expected:
        raise InputError(
            f"{model_uri} ({resolved}) was not registered by linreg-ops run --tracking-uri "
            "(no manifest_sha256 tag and run): nothing to verify it against"
        )
    created = not dest.exists()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=dest.parent))
    except OSError as exc:
        raise InputError(f"cannot write {dest}: {exc.strerror or exc}") from None
    try:
        with quiet_mlflow(**once):
            _fetch_version(
                client, tracking_uri, registered.run_id, resolved, expected, staging, dest
            )
    except BaseException:
        if created:  # nothing half-fetched is left to be mistaken for a version
            store.remove_tree(dest)
        raise
    finally:
        store.remove_tree(staging)
    return resolved, dest


def _fetch_version(
    client: Any, tracking_uri: str, run_id: str, resolved: str, expected: str, staging: Path,
    dest: Path,
) -> None:  # fmt: skip
    """Download the run's version into ``staging``, check it against the registered
    manifest's SHA-256, import it into ``dest`` and verify it with the loader."""
    manifest_path = Path(_download(client, tracking_uri, run_id, store.MANIFEST_JSON, staging))
    data = manifest_path.read_bytes()
    if sha256_bytes(data) != expected:
        raise ArtifactError(
            f"{resolved}: the run's {VERSION_ARTIFACTS}/{store.MANIFEST_JSON} is not the "
            "manifest registered (its SHA-256 differs from the manifest_sha256 tag)"
        )
    manifest = codecs.decode(store.Manifest, data, f"{resolved} {store.MANIFEST_JSON}")
    for artifact in manifest.artifacts:  # names from a fixed set: no path leaves staging
        if not artifact.endswith(".joblib"):
            _download(client, tracking_uri, run_id, artifact, staging)
    try:
        version = store.import_version(manifest_path.parent, dest)
    except ArtifactError as exc:  # named by where it came from, not by a folder now gone
        where = f"{resolved}: {VERSION_ARTIFACTS}/"
        raise ArtifactError(str(exc).replace(f"{manifest_path.parent}/", where, 1)) from None
    loading.load_models(version)  # the loader every local version goes through


def _download(client: Any, tracking_uri: str, run_id: str, name: str, folder: Path) -> str:
    with _mlflow_errors(tracking_uri):
        path: str = client.download_artifacts(run_id, f"{VERSION_ARTIFACTS}/{name}", str(folder))
    return path
