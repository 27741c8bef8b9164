"""The inference wing: a published version's models, loaded, verified and put to work.

Numpy, pyarrow and JSON only: nothing here imports training, quantization or scikit-learn,
and nothing is unpickled (import-linter's contracts keep it so).

- ``loading``: a version's models, checked against their SHA-256, schema and known answers.
- ``predict``: predictions of rows in memory, or of files written block by block.
- ``evaluate``: every model of a version on the same labelled rows.
- ``dask_scoring``: an input scored on a Dask cluster into a Parquet dataset.
- ``requests``: HTTP request bodies → feature matrices, with limits.
- ``serve``: the FastAPI service.
- ``live``: the models a service answers with, swapped when the alias it follows moves.
"""

__all__ = ["dask_scoring", "evaluate", "live", "loading", "predict", "requests", "serve"]
