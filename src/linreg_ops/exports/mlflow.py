"""The MLflow model of a version: a directory ``mlflow.pyfunc.load_model`` and
``mlflow models serve`` take, with a signature, an input example and the linreg-ops facts.

Every kind goes out as a pyfunc written as code (``mlflow_model.py``) that reads the model's
JSON artifact and predicts through ``predict_rows``, so an MLflow runtime answers and refuses
exactly as ``linreg-ops predict`` does (the float model was once MLflow's sklearn flavor,
which answered NaN with scikit-learn's own error). Nothing is pickled.
"""

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from linreg_ops.config import ModelKind
from linreg_ops.errors import InputError
from linreg_ops.extras import require
from linreg_ops.inference.loading import ARTIFACT_OF, Models, load_metrics
from linreg_ops.storage import store
from linreg_ops.storage.digests import sha256_bytes

__all__ = [
    "EXAMPLE_ROWS",
    "model_metadata",
    "pyfunc_arguments",
    "quiet_mlflow",
    "tree_sha256",
    "write_mlflow_model",
]

EXAMPLE_ROWS = 5


@contextlib.contextmanager
def quiet_mlflow(**settings: str) -> Iterator[None]:
    """MLflow's environment settings for the length of a call (no progress bars: a log of
    a run is no terminal), and its INFO lines left out; both as they were after. What the
    user asked for is linreg-ops's own output: MLflow's chatter is not (even under ``-q``)."""
    settings = {
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        # the "🏃 View run … / 🧪 View experiment …" lines MLflow writes to stdout as a run
        # ends: they broke run --json's document and run -q's silence
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
        **settings,
    }
    saved = {name: os.environ.get(name) for name in settings}
    logger = logging.getLogger("mlflow")
    level = logger.level
    os.environ.update(settings)
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def tree_sha256(folder: Path) -> tuple[str, int]:
    """One SHA-256 for a directory (over every file's relative path and SHA-256), and its size."""
    digest, size = hashlib.sha256(), 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        size += len(data)
        digest.update(f"{path.relative_to(folder)}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    return digest.hexdigest(), size


def model_metadata(models: Models, kind: ModelKind) -> dict[str, Any]:
    """The linreg-ops facts an MLflow model of ``kind`` carries in its MLmodel metadata: which
    version and artifact it is (with their SHA-256), the metrics and the quantization."""
    from linreg_ops._version import __version__

    version = models.version
    artifact = ARTIFACT_OF[kind]
    manifest = store.read_regular_file(version.path / store.MANIFEST_JSON, store.MANIFEST_MAX_BYTES)
    return {
        "linreg_ops_version": __version__,
        "models_version": version.number,
        "kind": kind,
        "artifact": artifact,
        "artifact_sha256": version.sha256(artifact),
        "manifest_sha256": sha256_bytes(manifest),
        "metrics": load_metrics(version),
        "quantization": models.quantization_facts(),
    }


def pyfunc_arguments(
    models: Models,
    kind: ModelKind,
    example: np.ndarray,
    linreg_ops: dict[str, Any],
    json_path: Path,
) -> dict[str, Any]:
    """What ``mlflow.pyfunc.save_model`` and ``log_model`` are given, so an exported and a
    tracked model are the same: the code file, the JSON artifact at ``json_path``, the
    signature, an input example and the linreg-ops metadata."""
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from linreg_ops._version import __version__

    names = list(models.get(kind).feature_names)
    return {
        "python_model": str(Path(__file__).with_name("mlflow_model.py")),
        "artifacts": {"model": str(json_path)},
        "model_config": {"kind": kind},
        "pip_requirements": [f"linreg-ops=={__version__}", "mlflow", "numpy", "pandas"],
        "signature": ModelSignature(
            inputs=Schema([ColSpec("double", name) for name in names]),
            outputs=Schema([ColSpec("double")]),
        ),
        "input_example": pd.DataFrame(example[:EXAMPLE_ROWS], columns=names),
        "metadata": {"linreg_ops": linreg_ops},
    }


def write_mlflow_model(
    output: Path,
    models: Models,
    kind: ModelKind,
    example: np.ndarray,
    linreg_ops: dict[str, Any],
    artifact: bytes,
) -> None:
    """Write the MLflow model directory at ``output`` (which must not exist, or be empty):
    built in a temporary sibling folder and renamed into place whole. ``linreg_ops`` goes
    into the MLmodel metadata; ``artifact`` is the model's JSON."""
    mlflow = require("mlflow", "mlflow", "the MLflow export")

    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise InputError(f"{output} already exists: MLflow writes a model into a new folder")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror or exc}") from None
    target = staging / "model"
    try:
        json_path = staging / ARTIFACT_OF[kind]
        json_path.write_bytes(artifact)
        with quiet_mlflow():  # its input-example check and download bar are not ours to print
            mlflow.pyfunc.save_model(
                str(target), **pyfunc_arguments(models, kind, example, linreg_ops, json_path)
            )
        if output.is_dir():
            output.rmdir()
        os.rename(target, output)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
