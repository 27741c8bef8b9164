"""linreg-ops: a reproducible linear-regression pipeline, from data to a quantized, served model.

The names below are the library's curated API. They load on first use (PEP 562), so
``import linreg_ops`` stays as cheap as it ever was: a cold ``linreg-ops predict`` pays
only for what it runs. The package's map: ``training``, ``quantization``, ``inference``,
``exports`` and ``monitoring`` are the wings, on ``storage``; ``pipeline`` runs the stages,
``cli`` is the command line.
"""

from linreg_ops._version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads the name)
if TYPE_CHECKING:
    from linreg_ops.config import GateConfig, IntegerConfig, QuantConfig, TrainConfig
    from linreg_ops.errors import InputError, QualityGateError
    from linreg_ops.inference.evaluate import evaluate, labelled_rows
    from linreg_ops.inference.loading import Models, load
    from linreg_ops.inference.predict import predict_file, predict_rows
    from linreg_ops.model import IntegerLinearModel, LinearModel, QuantizedLinearModel
    from linreg_ops.pipeline import export, quantize, run, sweep, train
    from linreg_ops.training.sources import california_source, file_source

_HOMES = {
    "GateConfig": "linreg_ops.config",
    "IntegerConfig": "linreg_ops.config",
    "QuantConfig": "linreg_ops.config",
    "TrainConfig": "linreg_ops.config",
    "InputError": "linreg_ops.errors",
    "QualityGateError": "linreg_ops.errors",
    "evaluate": "linreg_ops.inference.evaluate",
    "labelled_rows": "linreg_ops.inference.evaluate",
    "Models": "linreg_ops.inference.loading",
    "load": "linreg_ops.inference.loading",
    "predict_file": "linreg_ops.inference.predict",
    "predict_rows": "linreg_ops.inference.predict",
    "IntegerLinearModel": "linreg_ops.model",
    "LinearModel": "linreg_ops.model",
    "QuantizedLinearModel": "linreg_ops.model",
    "export": "linreg_ops.pipeline",
    "quantize": "linreg_ops.pipeline",
    "run": "linreg_ops.pipeline",
    "sweep": "linreg_ops.pipeline",
    "train": "linreg_ops.pipeline",
    "california_source": "linreg_ops.training.sources",
    "file_source": "linreg_ops.training.sources",
}

__all__ = [
    "GateConfig",
    "InputError",
    "IntegerConfig",
    "IntegerLinearModel",
    "LinearModel",
    "Models",
    "QualityGateError",
    "QuantConfig",
    "QuantizedLinearModel",
    "TrainConfig",
    "__version__",
    "california_source",
    "evaluate",
    "export",
    "file_source",
    "labelled_rows",
    "load",
    "predict_file",
    "predict_rows",
    "quantize",
    "run",
    "sweep",
    "train",
]


def __getattr__(name: str) -> object:
    """A curated name, imported from its module on first use (and kept)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'linreg_ops' has no attribute {name!r}")
    value = getattr(__import__(home, fromlist=[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
