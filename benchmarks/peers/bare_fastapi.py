"""The hand-written FastAPI app a user would write instead of linreg-ops: the yardstick of
``bench_serve.py`` (issue 15).

Reads the body, parses it with orjson, builds the matrix with numpy, answers ``X @ coef + b``
with orjson, and checks nothing: no Content-Type, depth, size, shape or finiteness check, no
column names (the columns are taken in the order they come), and the ``model`` field of
``/predict`` is ignored (every answer is the float model's). Coefficients come from the
``model.json`` named by ``BENCH_MODEL_JSON``, read when uvicorn builds the app::

    BENCH_MODEL_JSON=models/current/model.json uvicorn --factory --app-dir benchmarks/peers \\
        bare_fastapi:create_app --loop uvloop --http httptools --no-access-log
"""

import os
from pathlib import Path

import numpy as np
import orjson
from fastapi import FastAPI, Request, Response


def create_app() -> FastAPI:
    """The app, with the coefficients of the ``model.json`` named by ``BENCH_MODEL_JSON``."""
    model = orjson.loads(Path(os.environ["BENCH_MODEL_JSON"]).read_bytes())
    coef = np.asarray(model["coef"], dtype=np.float64)
    intercept = float(model["intercept"])
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    def answer(rows: list[list[float]]) -> Response:
        predictions = np.asarray(rows, dtype=np.float64) @ coef + intercept
        body = orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY)
        return Response(body, media_type="application/json")

    @app.get("/health")
    async def health() -> Response:
        return Response(b'{"status": "ok"}', media_type="application/json")

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        return answer(orjson.loads(await request.body())["dataframe_split"]["data"])

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        return answer(orjson.loads(await request.body())["instances"])

    return app
