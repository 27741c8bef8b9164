"""The inference wing: a published version's models, loaded, verified and put to work.

Numpy, pyarrow and JSON only: nothing here imports training, quantization or scikit-learn,
and nothing is unpickled (import-linter's contracts keep it so).

- ``loading``: a version's models, checked against their SHA-256, schema and known answers.
- ``predict``: predictions of rows in memory, or of files written block by block.
- ``evaluate``: every model of a version on the same labelled rows.
- ``dask_scoring``: an input scored on a Dask cluster into a Parquet dataset.
- ``requests``: HTTP request bodies → feature matrices, with limits.
- ``oip``: the Open Inference Protocol (v2 REST), request to answer, framework-free.
- ``serve``: the HTTP service: a raw ASGI front for the hot routes, FastAPI for the rest.
- ``openapi``: the service's OpenAPI documentation, with examples that succeed.
- ``telemetry``: the service's Prometheus metrics, across workers.
- ``access_log``: one log line per request.
- ``live``: the models a service answers with, swapped when the alias it follows moves.
"""

__all__ = [
    "access_log",
    "dask_scoring",
    "evaluate",
    "live",
    "loading",
    "oip",
    "openapi",
    "predict",
    "requests",
    "serve",
    "telemetry",
]
