"""Hot reload: the watcher that follows an alias and hands the service a new version.

A worker serving an alias (``current`` by default) reads the alias's link every
``POLL_SECONDS`` (one readlink). When it names another version, the worker leases that
version, loads and verifies it in a thread beside the one it serves and prepares what the
service answers with (``serve.make_live``), then hands it over in one call (``Service.swap``:
one assignment): a request reads the service's reference once, so a request in flight
finishes on the models it started with and the next one gets the new ones. A version that
fails to load or verify is refused: the old one keeps serving, and the refusal is logged and
shown (``status``: ``/metadata``'s ``live``; a counter in ``/metrics``). Each worker watches
on its own, so every worker answers with the new version at most ``POLL_SECONDS`` plus one
load after the move. A service pinned to a version (``serve --version N``) watches nothing
but still leases its version, so ``gc`` never removes it.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from linreg_ops.errors import InputError
from linreg_ops.inference.loading import Models, load_models
from linreg_ops.storage import store

__all__ = ["POLL_SECONDS", "Follower", "lease", "load"]

POLL_SECONDS = 0.5  # how often each worker reads the alias it follows
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


@dataclass
class Follower(Generic[_T]):
    """One worker's watch on ``alias`` (None: pinned). ``prepare`` turns loaded models into
    what the service answers with (run in a thread, beside the serving version); ``install``
    hands that over (run in the event loop); ``refused`` is told of each refusal."""

    models_dir: Path
    alias: str | None
    serving: int  # the version this worker answers with
    prepare: Callable[[Models], _T]
    install: Callable[[_T], None]
    on_refused: Callable[[], None] = lambda: None
    held: store.Lease | None = None
    refused: dict[str, Any] | None = None  # the last version that failed to load, and why
    swaps: int = 0
    _failed: int | None = field(default=None, repr=False)

    def status(self) -> dict[str, Any]:
        """What ``/metadata`` says under ``live``: the alias followed, the version served,
        how many swaps, and the last refusal."""
        return {
            "alias": self.alias,
            "version": self.serving,
            "swaps": self.swaps,
            "poll_seconds": POLL_SECONDS if self.alias is not None else None,
            "refused": self.refused,
        }

    async def poll(self) -> bool:
        """One look at the alias; load, verify and swap if it moved. True if it swapped."""
        if self.alias is None:
            return False
        try:
            holder = store.alias_holder(self.models_dir, self.alias)
        except (InputError, OSError) as exc:
            self._refuse(None, f"cannot read alias {self.alias!r}: {exc}")
            return False
        if holder is None or holder in (self.serving, self._failed):
            return False
        claim = lease(self.models_dir, holder)
        try:
            ready = await asyncio.to_thread(lambda: self.prepare(load(self.models_dir, holder)))
        except (InputError, OSError) as exc:
            if claim is not None:
                claim.release()
            self._refuse(holder, str(exc))
            return False
        self.install(ready)  # the one swap
        previous, self.held = self.held, claim
        self.serving, self.swaps, self._failed = holder, self.swaps + 1, None
        if previous is not None:
            previous.release()
        _log.info("alias %r moved: serving version %d", self.alias, holder)
        return True

    async def watch(self) -> None:
        """Poll every ``POLL_SECONDS`` until cancelled; an unexpected error is logged and the
        watch goes on (the old version keeps serving)."""
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not stop the watch nor the service
                _log.exception("alias watch: %s", exc)

    def _refuse(self, version: int | None, why: str) -> None:
        first = self._failed != version or self.refused is None
        self._failed = version
        self.refused = {"version": version, "error": why}
        if first:  # once per refused version, not once per poll
            self.on_refused()
            _log.error("keeping version %d: %s", self.serving, why)

    def close(self) -> None:
        if self.held is not None:
            self.held.release()
            self.held = None
