"""The quality gate: how far a quantized model is from its float model on labelled rows, and
whether that is within the limits every published quantized model must meet.

``check_float32_range`` is the gate before quantizing: quantized models keep their feature
statistics and scales in float32, so a feature beyond float32's range is refused up front.
"""

import numpy as np

from linreg_ops.config import GateConfig
from linreg_ops.errors import InputError
from linreg_ops.metrics import quantized_fidelity
from linreg_ops.model import LinearModel, Predictor
from linreg_ops.storage import codecs

__all__ = ["check_float32_range", "fidelity", "gate_failure", "limits_met"]


def fidelity(
    model: LinearModel, other: Predictor, X: np.ndarray, y: np.ndarray
) -> dict[str, float]:
    """How far a quantized or integer-only model is from the float ``model`` on these rows."""
    predictions, clipped = other.predict_clipped(X)
    return quantized_fidelity(y, model.predict(X), predictions, clipped)


def limits_met(figures: dict[str, float], gate: GateConfig) -> dict[str, bool]:
    """Which of the gate's limits a model's figures meet (a limit of None is always met)."""
    return {
        "max_r2_drop": gate.max_r2_drop is None or -figures["delta_r2"] <= gate.max_r2_drop,
        "max_abs_diff": gate.max_abs_diff is None or figures["max_abs_diff"] <= gate.max_abs_diff,
    }


def gate_failure(label: str, figures: dict[str, float], gate: GateConfig) -> str | None:
    """Why ``label`` may not be published (every limit it misses), or None."""
    met = limits_met(figures, gate)
    reasons = []
    if not met["max_r2_drop"]:
        reasons.append(
            f"loses {-figures['delta_r2']:.6f} R² against the float model, "
            f"more than --max-r2-drop {gate.max_r2_drop:g}"
        )
    if not met["max_abs_diff"]:
        reasons.append(
            f"moves a prediction by {figures['max_abs_diff']:.6f}, "
            f"more than --max-abs-diff {gate.max_abs_diff:g}"
        )
    return f"{label} {' and '.join(reasons)}" if reasons else None


def check_float32_range(model: LinearModel) -> None:
    """The quantized models keep feature statistics and scales in float32 (what another
    runtime reads): a feature beyond its range cannot be quantized, only rescaled."""
    stats = model.stats
    for j, name in enumerate(model.feature_names):
        reach = max(abs(stats.minimum[j]), abs(stats.maximum[j]), abs(stats.mean[j]))
        if reach > codecs.FLOAT32_MAX:
            raise InputError(
                f"feature {name!r} reaches {reach:.3g}, beyond float32's range "
                f"({codecs.FLOAT32_MAX:.3g}) in which quantized models keep their statistics: "
                "rescale the column (other units) to quantize"
            )
        spans = (stats.maximum[j] - stats.minimum[j], stats.high[j] - stats.low[j])
        width = min((span for span in spans if span > 0), default=0.0)
        if 0 < width < codecs.FLOAT32_TINY * 2**16:  # the integer model's input scale
            raise InputError(
                f"feature {name!r} spans only {width:.3g}, too little for a float32 scale of "
                "its integer codes: rescale the column (other units) to quantize"
            )
