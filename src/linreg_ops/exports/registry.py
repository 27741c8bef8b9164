"""A service that follows an MLflow registry alias: ``serve --model-uri models:/NAME@ALIAS``.

Each worker asks the registry every ``registry_poll_seconds`` (default 2 s, ``serve
--registry-poll-seconds``: one HTTP call, but a registry is a server a whole team shares)
which registered version the alias names. A new one is fetched by
``tracking.fetch_registered_version`` — no pickles; the manifest checked against the
registered ``manifest_sha256`` tag, then every file and model verified as a local version
is — into a folder of its own beside the others, ``<root>/<registered version>/``, and
swapped in by the same ``live.Follower`` that follows a folder's alias: requests in flight
finish on the old version; a version that fails is refused (logged, counted in
``linreg_ops_reloads_refused_total``, shown in ``/metadata``'s ``live.refused``) and the
old one keeps serving. The workers share the folders: a fetch lands in a staging folder
of its own and is renamed into place whole, so a worker that comes second loads (and
verifies) what the first fetched.

The registered version a worker last went live on is remembered in ``<root>/last-good``.
A worker that starts while the alias names a version that cannot be served — it fails its
verification, or the registry does not answer — starts on that one instead (else on the
newest other version fetched so far that verifies), logs and counts the refusal, and keeps
following (``live.first_version``). ``models:/NAME/VERSION`` is pinned: nothing is polled.
"""

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linreg_ops.config import SERVE_DEFAULTS
from linreg_ops.errors import InputError
from linreg_ops.exports import tracking
from linreg_ops.exports.mlflow import quiet_mlflow
from linreg_ops.inference.loading import Models, load_models
from linreg_ops.inference.serve import Front, ServeSettings
from linreg_ops.storage import store

__all__ = ["APP_FACTORY", "LAST_GOOD", "POLL_TIMEOUT_SECONDS", "RegistrySource", "create_app"]

APP_FACTORY = "linreg_ops.exports.registry:create_app"  # what each worker process calls
LAST_GOOD = "last-good"  # <root>/last-good: the registered version a worker last went live on
# a poll or a download that hangs on the registry gives up (and is tried again)
POLL_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class RegistrySource:
    """The ``live.Source`` of a registry alias: versions are registered version numbers,
    each fetched into ``root / str(number)``."""

    tracking_uri: str
    model_uri: str  # models:/NAME@ALIAS
    root: Path
    poll_seconds: float = SERVE_DEFAULTS.registry_poll_seconds

    @property
    def label(self) -> str:
        return self.model_uri

    @property
    def name(self) -> str:
        return tracking.parse_model_uri(self.model_uri)[0]

    def holder(self) -> int | None:
        """The registered version the alias names: one call, asked once (no back-off: the
        next poll asks again)."""
        with quiet_mlflow(
            MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
            MLFLOW_HTTP_REQUEST_TIMEOUT=str(POLL_TIMEOUT_SECONDS),
        ):
            resolved = tracking.resolve_model_uri(self.tracking_uri, self.model_uri)
        return tracking.parse_model_uri(resolved)[2]

    def folder(self, key: int) -> Path:
        return self.root / str(key)

    def load(self, key: int) -> Models:
        """Registered version ``key``, fetched unless a worker has already, then verified.
        Workers that ask at once take turns (a lock file per version): one downloads, the
        others load what it kept, instead of each downloading it again."""
        folder = self.folder(key)
        if not folder.is_dir():
            with open(self.root / f".fetch-{key}.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
                if not folder.is_dir():
                    self._fetch(key)
        return load_models(store.open_version(folder))

    def _fetch(self, key: int) -> None:
        staging = self.root / f".fetching-{key}-{os.getpid()}"
        store.remove_tree(staging)  # a fetch of this process killed half-way
        # each download asked once, as a poll is: MLflow's own back-off on a registry that
        # fails mid-fetch holds a starting worker (and a running one's watch) for minutes
        with quiet_mlflow(
            MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
            MLFLOW_HTTP_REQUEST_TIMEOUT=str(POLL_TIMEOUT_SECONDS),
        ):
            tracking.fetch_registered_version(
                self.tracking_uri, f"models:/{self.name}/{key}", staging
            )
        try:
            staging.rename(self.folder(key))
        except OSError:  # another worker's copy came first: it is the same version
            store.remove_tree(staging)
            if not self.folder(key).is_dir():
                raise InputError(f"cannot keep models:/{self.name}/{key} in {self.root}") from None

    def lease(self, key: int) -> store.Lease | None:
        return None  # the folders are the service's own: nothing collects them while it runs

    def key_of(self, models: Models) -> int | None:
        folder = models.version.models_dir.resolve()
        inside = folder.parent == self.root.resolve() and folder.name.isdigit()
        return int(folder.name) if inside else None

    def served(self, key: int) -> None:
        """Remember ``key`` as the last version that went live (written whole: a rename)."""
        written = self.root / f".{LAST_GOOD}-{os.getpid()}"
        with contextlib.suppress(OSError):  # a worker that cannot write still serves
            written.write_text(f"{key}\n")
            written.replace(self.root / LAST_GOOD)

    def fallbacks(self, failed: int | None) -> list[int]:
        """The last version that went live, then every other fetched one, newest first."""
        try:
            fetched = sorted(
                (int(p.name) for p in self.root.iterdir() if p.name.isdigit() and p.is_dir()),
                reverse=True,
            )
        except OSError:
            return []
        last: int | None = None
        with contextlib.suppress(OSError, ValueError):
            last = int((self.root / LAST_GOOD).read_text().strip())
        ordered = ([last] if last in fetched else []) + [k for k in fetched if k != last]
        return [key for key in ordered if key != failed]

    def describe(self, key: int) -> dict[str, Any]:
        return {"model_uri": f"models:/{self.name}/{key}"}


def create_app(settings: ServeSettings | None = None, preloaded: Models | None = None) -> Front:
    """A worker's app following ``settings.model_uri``: its fetched versions live beside
    ``settings.models_dir`` (the folder of the version the service started on)."""
    settings = settings or ServeSettings()
    if settings.model_uri is None or settings.tracking_uri is None:
        raise InputError("a registry-following worker needs LINREG_OPS_MODEL_URI and _TRACKING_URI")
    source = RegistrySource(
        settings.tracking_uri,
        settings.model_uri,
        Path(settings.models_dir).resolve().parent,
        settings.registry_poll_seconds,
    )
    return Front(settings, preloaded, source)
