"""The MLflow pyfunc behind every exported model ("models from code").

MLflow copies this file into the model directory and runs it at load time, so no Python
object is pickled: the model itself is the linreg-ops JSON artifact next to it, decoded and
checked by ``storage.codecs``, and it predicts through ``predict_rows``: the same answers
as ``linreg-ops predict``, and the same refusal (one message) for a row outside the model's
domain — NaN, ±inf, or a value a float model's sum could overflow on.
"""

from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from linreg_ops.model import IntegerLinearModel, LinearModel, QuantizedLinearModel

__all__ = [
    "LinregOpsModel",
]


class LinregOpsModel(PythonModel):
    """Predicts with a linreg-ops float, quantized or integer-only model, from its JSON."""

    model: LinearModel | QuantizedLinearModel | IntegerLinearModel

    def load_context(self, context: Any) -> None:
        from linreg_ops.storage import codecs

        path = context.artifacts["model"]
        with open(path, "rb") as handle:
            data = handle.read()
        kind = context.model_config["kind"]
        if kind == "integer":
            self.model = codecs.decode_integer(data, path)
        elif kind == "quantized":
            self.model = codecs.decode_quantized(data, path)
        else:
            self.model = codecs.decode_float(data, path)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        # A DataFrame hint: MLflow validates against the logged signature, not the hint.
        from linreg_ops.inference.predict import predict_rows

        X = model_input[list(self.model.feature_names)].to_numpy(dtype=np.float64)
        return predict_rows(self.model, X)[0]


mlflow.models.set_model(LinregOpsModel())
