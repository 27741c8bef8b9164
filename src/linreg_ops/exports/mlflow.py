"""The MLflow model of a version: a directory ``mlflow.pyfunc.load_model`` and
``mlflow models serve`` take, with a signature, an input example and the linreg-ops facts.

Every kind goes out as a pyfunc written as code (``mlflow_model.py``) that reads the model's
JSON artifact and predicts through ``predict_rows``, so an MLflow runtime answers and refuses
exactly as ``linreg-ops predict`` does (the float model was once MLflow's sklearn flavor,
which answered NaN with scikit-learn's own error). Nothing is pickled.
"""

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from linreg_ops.config import ModelKind
from linreg_ops.errors import InputError
from linreg_ops.extras import require
from linreg_ops.inference.loading import ARTIFACT_OF, Models

__all__ = [
    "EXAMPLE_ROWS",
    "tree_sha256",
    "write_mlflow_model",
]

EXAMPLE_ROWS = 5


def tree_sha256(folder: Path) -> tuple[str, int]:
    """One SHA-256 for a directory (over every file's relative path and SHA-256), and its size."""
    digest, size = hashlib.sha256(), 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        size += len(data)
        digest.update(f"{path.relative_to(folder)}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    return digest.hexdigest(), size


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
    from linreg_ops._version import __version__

    mlflow = require("mlflow", "mlflow", "the MLflow export")
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise InputError(f"{output} already exists: MLflow writes a model into a new folder")
    model = models.get(kind)
    names = list(model.feature_names)
    frame = pd.DataFrame(example[:EXAMPLE_ROWS], columns=names)
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in names]),
        outputs=Schema([ColSpec("double")]),
    )
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror or exc}") from None
    target = staging / "model"
    try:
        json_path = staging / ARTIFACT_OF[kind]
        json_path.write_bytes(artifact)
        mlflow.pyfunc.save_model(
            str(target),
            python_model=str(Path(__file__).with_name("mlflow_model.py")),
            artifacts={"model": str(json_path)},
            model_config={"kind": kind},
            pip_requirements=[f"linreg-ops=={__version__}", "mlflow", "numpy", "pandas"],
            signature=signature,
            input_example=frame,
            metadata={"linreg_ops": linreg_ops},
        )
        if output.is_dir():
            output.rmdir()
        os.rename(target, output)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
