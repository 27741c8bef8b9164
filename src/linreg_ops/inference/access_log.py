"""Request logs: one line per request, JSON (the default) or text, written to stderr.

A line names the request id, route, model, version, rows, status, latency and clipped rows —
never the request's body or its values. Lines are written after the answer has gone, on the
event loop's next turn: the lines of every request answered in the meantime go in one
``os.write`` (a system call per request cost a third of a one-row request), in pieces of
at most ``PIPE_BUF`` bytes cut between lines, so the lines of several workers sharing
stderr never interleave (a pipe writes up to ``PIPE_BUF`` bytes at once).
"""

import asyncio
import contextlib
import itertools
import os
import secrets
import select
import time
from collections.abc import Iterator
from typing import NamedTuple

import orjson

from linreg_ops.config import AccessLog

__all__ = ["MAX_REQUEST_ID", "AccessLogger", "Entry", "request_id"]

MAX_REQUEST_ID = 128  # characters of a caller's X-Request-ID kept; a longer one is replaced


def request_id(given: bytes | None) -> str:
    """The caller's ``X-Request-ID`` when it is short printable ASCII, else a fresh one: a
    header must not be able to forge log lines or fill the log."""
    if given and len(given) <= MAX_REQUEST_ID and given.isascii():
        text = given.decode()
        if text.isprintable() and '"' not in text and " " not in text:
            return text
    return _fresh_id()


# A fresh id is this process's random prefix and a counter: unique without asking the kernel
# for randomness on every request (secrets.token_hex does); 16 hex characters. The prefix is
# drawn on first use in each process, so a forked worker draws its own.
_ids: tuple[int, str, Iterator[int]] | None = None


def _fresh_id() -> str:
    global _ids
    pid = os.getpid()
    if _ids is None or _ids[0] != pid:
        _ids = (pid, secrets.token_hex(4), itertools.count())
    return f"{_ids[1]}{next(_ids[2]) & 0xFFFFFFFF:08x}"


class Entry(NamedTuple):
    """What one request did (the fields of its log line); a named tuple, built on every
    request (a frozen dataclass costs three times as much to make)."""

    request_id: str
    method: str
    route: str
    model: str
    version: int
    rows: int
    status: int
    latency_ms: float
    clipped_rows: int


class AccessLogger:
    """Writes ``Entry`` lines in the chosen format to a file descriptor (stderr): at once
    outside an event loop, else on the loop's next turn with the lines gathered since."""

    def __init__(self, style: AccessLog, fd: int = 2) -> None:
        self.style, self.fd = style, fd
        self._pending: list[bytes] = []

    @property
    def enabled(self) -> bool:
        return self.style != "off"

    def write(self, entry: Entry) -> None:
        if self.style == "json":
            line = orjson.dumps(
                {
                    "time": time.time(),
                    "request_id": entry.request_id,
                    "method": entry.method,
                    "route": entry.route,
                    "model": entry.model,
                    "version": entry.version,
                    "rows": entry.rows,
                    "status": entry.status,
                    "latency_ms": round(entry.latency_ms, 3),
                    "clipped_rows": entry.clipped_rows,
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
        elif self.style == "text":
            line = (
                f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {entry.method} {entry.route} "
                f"{entry.status} {entry.latency_ms:.3f}ms model={entry.model} "
                f"version={entry.version} rows={entry.rows} clipped={entry.clipped_rows} "
                f"id={entry.request_id}\n"
            ).encode()
        else:
            return
        self._pending.append(line)
        if len(self._pending) > 1:
            return  # a flush is already due
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # no event loop: nothing will come back for it
            self.flush()

    def flush(self) -> None:
        """Write the pending lines, whole lines per write of at most ``PIPE_BUF`` bytes."""
        lines, self._pending = self._pending, []
        piece: list[bytes] = []
        size = 0
        for line in lines:
            if piece and size + len(line) > select.PIPE_BUF:
                self._write(b"".join(piece))
                piece, size = [], 0
            piece.append(line)
            size += len(line)
        if piece:
            self._write(b"".join(piece))

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):  # a closed or full stderr must not fail a request
            os.write(self.fd, data)
