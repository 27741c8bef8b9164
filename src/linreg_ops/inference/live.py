"""Hot reload: the watcher that follows an alias and hands the service a new version.

A worker follows a ``Source``: a models folder's alias (``AliasSource``, ``current`` by
default), or anything else that names versions by number — an MLflow registry alias, whose
source lives with the registry code (``exports.registry``). Every ``poll_seconds`` the worker
asks the source which version the alias names (one readlink for a folder). When it names
another, the worker leases that version, loads and verifies it in a thread beside the one it
serves and prepares what the service answers with (``serve.make_live``), then hands it over in
one call (``Service.swap``: one assignment): a request reads the service's reference once, so
a request in flight finishes on the models it started with and the next one gets the new
ones. A version that fails to load or verify is refused: the old one keeps serving, and the
refusal is logged and shown (``status``: ``/metadata``'s ``live``; a counter in
``/metrics``). A version that failed its verification (``ArtifactError``) is not tried again
until the alias names another; any other failure (the source unreachable) is tried again at
the next poll. Each worker watches on its own, so every worker answers with the new version
at most one poll interval plus one load after the move. A service pinned to a version
(``serve --version N``) watches nothing but still leases its version, so ``gc`` never
removes it.

A worker that starts (or restarts) while the alias names a version it cannot load starts on
the first of the source's ``fallbacks`` that loads and verifies — a registry source offers
the version the service served last — with the refusal logged and counted, and keeps
following (``first_version``). A folder's alias offers none: the worker does not start.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from linreg_ops.errors import ArtifactError, InputError
from linreg_ops.inference.loading import Models, load_models
from linreg_ops.storage import store

__all__ = [
    "POLL_SECONDS",
    "AliasSource",
    "Follower",
    "Source",
    "Start",
    "first_version",
    "lease",
    "load",
]

POLL_SECONDS = 0.5  # how often each worker reads the folder's alias it follows
_log = logging.getLogger("linreg_ops.serve")

_T = TypeVar("_T")


def load(models_dir: Path, number: int) -> Models:
    """Version ``number``'s models, loaded and verified."""
    return load_models(store.open_version(models_dir, number))


def lease(models_dir: Path, number: int) -> store.Lease | None:
    """A lease on the version (None where the folder is read-only: nothing collects there)."""
    try:
        return store.take_lease(models_dir, number)
    except InputError as exc:
        _log.debug("no lease: %s", exc)
        return None


class Source(Protocol):
    """What a worker follows. Versions are named by a number (``key``): the folder's version
    number, or the registry's version number."""

    @property
    def label(self) -> str:
        """What ``/metadata``'s ``live.alias`` and the metrics' ``alias`` label say."""
        ...

    @property
    def poll_seconds(self) -> float: ...

    def holder(self) -> int | None:
        """The key the alias names now (may block on the network: run in a thread)."""
        ...

    def load(self, key: int) -> Models:
        """That version's models, loaded and verified (``ArtifactError`` if they fail)."""
        ...

    def lease(self, key: int) -> store.Lease | None: ...

    def key_of(self, models: Models) -> int | None:
        """The key of models loaded before the watch began (None: not this source's)."""
        ...

    def served(self, key: int) -> None:
        """Told once the version is live (a registry source remembers it as good)."""
        ...

    def fallbacks(self, failed: int | None) -> list[int]:
        """Keys a starting worker may serve when ``failed`` cannot be loaded, best first."""
        ...

    def describe(self, key: int) -> dict[str, Any]:
        """More of ``status`` for this key (a registry source: the resolved model URI)."""
        ...


@dataclass(frozen=True)
class AliasSource:
    """A models folder's alias: one readlink per poll; nothing to fall back to."""

    models_dir: Path
    alias: str
    poll_seconds: float = POLL_SECONDS

    @property
    def label(self) -> str:
        return self.alias

    def holder(self) -> int | None:
        return store.alias_holder(self.models_dir, self.alias)

    def load(self, key: int) -> Models:
        return load(self.models_dir, key)

    def lease(self, key: int) -> store.Lease | None:
        return lease(self.models_dir, key)

    def key_of(self, models: Models) -> int | None:
        return models.version.number

    def served(self, key: int) -> None:
        return None

    def fallbacks(self, failed: int | None) -> list[int]:
        return []

    def describe(self, key: int) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class Start:
    """What a following worker starts on: the key, the verified models, the lease, and the
    refusal of what the alias named when that could not be loaded (None: it could), and
    whether that version failed its verification (not to be tried again until the alias
    moves) rather than could not be reached."""

    key: int
    models: Models
    held: store.Lease | None
    refused: dict[str, Any] | None
    final: bool = False


def first_version(source: Source, preloaded: Models | None = None) -> Start:
    """The version a following worker starts on: the one the alias names (``preloaded``
    when those are its models); else the first of ``source.fallbacks`` that loads and
    verifies, the refusal returned to be logged and counted; else the first error raised."""
    failed: int | None = None
    try:
        key = source.holder()
        if key is None:
            raise InputError(f"nothing is named by {source.label!r}")
        failed = key
        if preloaded is not None and source.key_of(preloaded) == key:
            return Start(key, preloaded, source.lease(key), None)
        return _loaded(source, key, None)
    except (InputError, OSError) as exc:
        refusal = {"version": failed, "error": str(exc)}
        final = isinstance(exc, ArtifactError)
        for other in source.fallbacks(failed):
            try:
                start = _loaded(source, other, refusal, final)
            except (InputError, OSError) as fallback_exc:
                _log.warning("cannot start on version %d either: %s", other, fallback_exc)
                continue
            _log.error("%s names a version that cannot be served: %s", source.label, exc)
            _log.warning("starting on version %d instead, and following %s", other, source.label)
            return start
        raise


def _loaded(source: Source, key: int, refused: dict[str, Any] | None, final: bool = False) -> Start:
    claim = source.lease(key)
    try:
        return Start(key, source.load(key), claim, refused, final)
    except BaseException:
        if claim is not None:
            claim.release()
        raise


@dataclass
class Follower(Generic[_T]):
    """One worker's watch on ``source`` (None: pinned). ``prepare`` turns loaded models into
    what the service answers with (run in a thread, beside the serving version); ``install``
    hands that over (run in the event loop); ``on_refused`` is told of each refusal."""

    source: Source | None
    serving: int  # the key of the version this worker answers with
    prepare: Callable[[Models], _T]
    install: Callable[[_T], None]
    on_refused: Callable[[], None] = lambda: None
    held: store.Lease | None = None
    refused: dict[str, Any] | None = None  # the last version that failed to load, and why
    swaps: int = 0
    number: int | None = None  # the served version's number (None: the key)
    _failed: int | None = field(default=None, repr=False)  # failed to verify: not retried
    _told: int | None = field(default=None, repr=False)  # the last refusal logged and counted

    @property
    def alias(self) -> str | None:
        """The alias followed, as ``status`` names it (None: pinned)."""
        return None if self.source is None else self.source.label

    def status(self) -> dict[str, Any]:
        """What ``/metadata`` says under ``live``: the alias followed, the version served,
        how many swaps, and the last refusal."""
        source = self.source
        return {
            "alias": self.alias,
            "version": self.serving if self.number is None else self.number,
            "swaps": self.swaps,
            "poll_seconds": source.poll_seconds if source is not None else None,
            "refused": self.refused,
            **(source.describe(self.serving) if source is not None else {}),
        }

    def refuse_at_start(self, refused: dict[str, Any], final: bool) -> None:
        """The alias named a version this worker could not start on (``first_version``)."""
        self._refuse(refused["version"], refused["error"], final=final)

    async def poll(self) -> bool:
        """One look at the alias; load, verify and swap if it moved. True if it swapped."""
        source = self.source
        if source is None:
            return False
        try:
            holder = await asyncio.to_thread(source.holder)
        except (InputError, OSError) as exc:
            self._refuse(None, f"cannot read alias {source.label!r}: {exc}", final=False)
            return False
        if holder is None or holder in (self.serving, self._failed):
            return False
        claim = source.lease(holder)
        try:
            loaded = await asyncio.to_thread(source.load, holder)
            ready = await asyncio.to_thread(self.prepare, loaded)
        except (InputError, OSError) as exc:
            if claim is not None:
                claim.release()
            self._refuse(holder, str(exc), final=isinstance(exc, ArtifactError))
            return False
        self.install(ready)  # the one swap
        previous, self.held = self.held, claim
        self.serving, self.swaps, self._failed, self._told = holder, self.swaps + 1, None, None
        self.number = loaded.version.number
        if previous is not None:
            previous.release()
        source.served(holder)
        _log.info("alias %r moved: serving version %d", source.label, loaded.version.number)
        return True

    async def watch(self) -> None:
        """Poll every ``poll_seconds`` until cancelled; an unexpected error is logged and the
        watch goes on (the old version keeps serving)."""
        if self.source is None:
            return
        while True:
            await asyncio.sleep(self.source.poll_seconds)
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not stop the watch nor the service
                _log.exception("alias watch: %s", exc)

    def _refuse(self, version: int | None, why: str, *, final: bool) -> None:
        first = self._told != version or self.refused is None
        self._told = version
        if final:
            self._failed = version
        self.refused = {"version": version, "error": why}
        if first:  # once per refused version, not once per poll
            self.on_refused()
            served = self.serving if self.number is None else self.number
            _log.error("keeping version %d: %s", served, why)

    def close(self) -> None:
        if self.held is not None:
            self.held.release()
            self.held = None
