"""The models a service answers with, and the watcher that swaps them when an alias moves.

A worker serving ``--alias NAME`` reads the alias's link every ``POLL_SECONDS`` (one
readlink). When it names another version, the worker leases that version, loads and
verifies it in a thread beside the one it serves, and swaps one reference: a request reads
the reference once, so a request in flight finishes on the models it started with and the
next one gets the new ones. A version that fails to load or verify is refused: the old one
keeps serving, and the refusal is logged and shown in ``/metadata`` (``live.refused``).
Each worker watches on its own, so every worker answers with the new version at most
``POLL_SECONDS`` plus one load after the move.

Every response carries ``X-Model-Version``: the version whose models answered it.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linreg_ops.errors import InputError
from linreg_ops.inference.loading import Models, load_models
from linreg_ops.storage import store

__all__ = ["POLL_SECONDS", "VERSION_HEADER", "Live", "Served", "VersionHeader", "serving"]

POLL_SECONDS = 0.5
VERSION_HEADER = "x-model-version"
_log = logging.getLogger("linreg_ops.serve")


@dataclass(frozen=True)
class Served:
    """One version's models and what ``/metadata`` says about them: swapped as one."""

    models: Models
    metadata: dict[str, Any]


@dataclass
class Live:
    models_dir: Path
    alias: str | None  # None: pinned to the version it started with
    describe: Callable[[Models], dict[str, Any]]
    served: Served
    lease: store.Lease | None = None
    refused: dict[str, Any] | None = None  # the last version that failed to load, and why
    swaps: int = 0
    _failed: int | None = field(default=None, repr=False)

    def metadata(self) -> dict[str, Any]:
        return {
            **self.served.metadata,
            "live": {"alias": self.alias, "swaps": self.swaps, "refused": self.refused},
        }

    async def poll(self) -> bool:
        """One look at the alias; load, verify and swap if it moved. True if it swapped."""
        if self.alias is None:
            return False
        try:
            holder = store.alias_holder(self.models_dir, self.alias)
        except InputError as exc:
            self._refuse(None, f"cannot read alias {self.alias!r}: {exc}")
            return False
        if holder is None or holder in (self.served.models.version.number, self._failed):
            return False
        lease = _lease(self.models_dir, holder)
        try:
            models = await asyncio.to_thread(_load, self.models_dir, holder)
            served = Served(models, self.describe(models))
        except (InputError, OSError) as exc:
            if lease is not None:
                lease.release()
            self._refuse(holder, str(exc))
            return False
        previous, self.served = self.lease, served  # the one swap
        self.lease, self.swaps, self._failed = lease, self.swaps + 1, None
        if previous is not None:
            previous.release()
        _log.info("alias %r moved: serving version %d", self.alias, holder)
        return True

    def _refuse(self, version: int | None, why: str) -> None:
        self._failed = version
        self.refused = {"version": version, "error": why}
        _log.error("keeping version %d: %s", self.served.models.version.number, why)

    def close(self) -> None:
        if self.lease is not None:
            self.lease.release()
            self.lease = None


def _load(models_dir: Path, number: int) -> Models:
    return load_models(store.open_version(models_dir, number))


def _lease(models_dir: Path, number: int) -> store.Lease | None:
    """A lease on the version (None where the folder is read-only: nothing collects there)."""
    try:
        return store.take_lease(models_dir, number)
    except InputError as exc:
        _log.debug("no lease: %s", exc)
        return None


@contextlib.asynccontextmanager
async def serving(
    models_dir: Path,
    version: int | None,
    alias: str | None,
    describe: Callable[[Models], dict[str, Any]],
) -> AsyncIterator[Live]:
    """Load the version (``alias``'s holder, or ``version``, or the current one), lease it,
    and while ``alias`` is set watch it every ``POLL_SECONDS``; stop watching on exit."""
    if alias is not None:
        version = store.alias_holder(models_dir, alias)
        if version is None:
            raise InputError(f"{models_dir} has no alias {alias!r}")
    number = version if version is not None else store.open_version(models_dir).number
    lease = _lease(models_dir, number)
    models = _load(models_dir, number)
    live = Live(models_dir, alias, describe, Served(models, describe(models)), lease)

    async def watch() -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            await live.poll()

    task = asyncio.create_task(watch()) if alias is not None else None
    try:
        yield live
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        live.close()


_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]


class VersionHeader:
    """ASGI middleware: ``X-Model-Version`` on every response — the version a handler
    recorded in ``scope["state"]["model_version"]``, else the one serving now."""

    def __init__(self, app: Callable[..., Awaitable[None]], live: Callable[[], "Live"]) -> None:
        self.app, self.live = app, live

    async def __call__(
        self,
        scope: _Scope,
        receive: Callable[[], Awaitable[_Message]],
        send: Callable[[_Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_version(message: _Message) -> None:
            if message["type"] == "http.response.start":
                used = scope.get("state", {}).get("model_version")
                if used is None:
                    with contextlib.suppress(AttributeError):
                        used = self.live().served.models.version.number
                if used is not None:
                    headers = [
                        *message.get("headers", []),
                        (b"x-model-version", str(used).encode()),
                    ]
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_version)
