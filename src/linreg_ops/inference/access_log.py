"""Request logs: one line per request, JSON (the default) or text, written to stderr.

A line names the request id, route, model, version, rows, status, latency and clipped rows —
never the request's body or its values. It is one ``os.write`` of one line, so the lines of
several workers sharing stderr do not interleave (a pipe writes up to ``PIPE_BUF`` bytes at
once, and a line is far shorter).
"""

import contextlib
import os
import secrets
import time
from dataclasses import dataclass

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
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Entry:
    """What one request did (the fields of its log line)."""

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
    """Writes ``Entry`` lines in the chosen format to a file descriptor (stderr)."""

    def __init__(self, style: AccessLog, fd: int = 2) -> None:
        self.style, self.fd = style, fd

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
        with contextlib.suppress(OSError):  # a closed or full stderr must not fail a request
            os.write(self.fd, line)
