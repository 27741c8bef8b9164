"""The MLflow pyfunc behind an exported quantized or integer-only model ("models from code").

MLflow copies this file into the model directory and runs it at load time, so no Python
object is pickled: the model itself is the linreg-ops JSON artifact next to it, decoded and
checked by ``linreg_ops.codecs``. (The float model is exported with MLflow's own sklearn
flavor instead, its estimator stored with skops.)
"""

from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from linreg_ops.model import IntegerLinearModel, QuantizedLinearModel


class LinregOpsModel(PythonModel):
    """Predicts with a linreg-ops quantized or integer-only model, from its JSON."""

    model: QuantizedLinearModel | IntegerLinearModel

    def load_context(self, context: Any) -> None:
        from linreg_ops import codecs

        path = context.artifacts["model"]
        with open(path, "rb") as handle:
            data = handle.read()
        if context.model_config["kind"] == "integer":
            self.model = codecs.decode_integer(data, path)
        else:
            self.model = codecs.decode_quantized(data, path)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        # A DataFrame hint: MLflow validates against the logged signature, not the hint.
        from linreg_ops.predict import predict_rows

        X = model_input[list(self.model.feature_names)].to_numpy(dtype=np.float64)
        return predict_rows(self.model, X)[0]


mlflow.models.set_model(LinregOpsModel())
