"""The floor of ``bench_serve.py``: ``bare_fastapi``'s work with no framework at all.

The same routes, the same parsing (orjson), the same arithmetic (numpy ``X @ coef + b``) and
the same answers as ``bare_fastapi.py``, written straight against ASGI, so the gap between
the two is what FastAPI and Starlette cost and the gap to linreg-ops is what validation and
the framework cost. Served by the same uvicorn::

    BENCH_MODEL_JSON=models/current/model.json uvicorn --factory --app-dir benchmarks/peers \\
        raw_asgi:create_app --loop uvloop --http httptools --no-access-log
"""

import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
JSON_HEADERS = [(b"content-type", b"application/json")]
ROWS_OF = {  # route → where its body keeps the rows (the shapes bare_fastapi reads)
    "/invocations": lambda body: body["dataframe_split"]["data"],
    "/predict": lambda body: body["instances"],
}


def create_app() -> Callable[[Message, Receive, Send], Awaitable[None]]:
    """The ASGI callable, with the coefficients of the ``model.json`` in ``BENCH_MODEL_JSON``."""
    model = orjson.loads(Path(os.environ["BENCH_MODEL_JSON"]).read_bytes())
    coef = np.asarray(model["coef"], dtype=np.float64)
    intercept = float(model["intercept"])

    async def respond(send: Send, status: int, body: bytes) -> None:
        headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # nothing to load or release: acknowledge both events
            while (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        rows_of = ROWS_OF.get(scope["path"])
        if scope["method"] == "GET" and scope["path"] == "/health":
            await respond(send, 200, b'{"status": "ok"}')
            return
        if scope["method"] != "POST" or rows_of is None:
            await respond(send, 404, b'{"detail": "Not Found"}')
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        X = np.asarray(rows_of(orjson.loads(b"".join(chunks))), dtype=np.float64)
        predictions = X @ coef + intercept
        body = orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY)
        await respond(send, 200, body)

    return app
