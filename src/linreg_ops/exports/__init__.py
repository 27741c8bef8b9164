"""The exports wing: a published model in another runtime's format.

- ``onnx``: ONNX graphs of the three model kinds (bytes).
- ``c``: a header-only C99 file of the integer-only model (text).
- ``mlflow``: an MLflow model directory whose pyfunc (``mlflow_model``, "models from code")
  reads the model's JSON and predicts through ``inference.predict``: nothing is pickled.
- ``tracking``: a published version logged as an MLflow run and registered; registry
  aliases; a registered version fetched back into a verified models folder.
- ``registry``: a service that follows a registry alias (``serve --model-uri
  models:/NAME@ALIAS``): each worker polls it, fetches and verifies the new version, swaps.

The ONNX and C exporters are pure functions from a model object to bytes or text, tested
and trusted on their return value alone; the pipeline decides where they go and writes them
atomically. The MLflow exporter writes its directory beside the target and renames it into
place whole. ``_common`` holds the checks every integer exporter shares.
"""

__all__ = [
    "c",
    "mlflow",
    "onnx",
    "registry",
    "tracking",
]  # mlflow_model is the file MLflow runs, not imported
