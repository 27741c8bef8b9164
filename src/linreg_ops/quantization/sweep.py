"""The quantization sweep: every symmetric bit width × granularity × rounding of one float
model, measured on the same labelled rows. Read-only: it publishes nothing."""

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from linreg_ops.config import (
    GRANULARITIES,
    ROUNDINGS,
    SUPPORTED_BITS,
    Granularity,
    QuantConfig,
    Rounding,
)
from linreg_ops.model import LinearModel
from linreg_ops.quantization.gate import fidelity
from linreg_ops.quantization.quantize import quantize_model, quantized_parameter_bytes

__all__ = ["sweep"]


def sweep(
    model: LinearModel,
    X: np.ndarray,
    y: np.ndarray,
    bits: Iterable[int] = SUPPORTED_BITS,
    roundings: Iterable[Rounding] = ROUNDINGS,
    granularities: Iterable[Granularity] = GRANULARITIES,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Fidelity of every symmetric intN × rounding × granularity on the same labelled rows;
    ``progress(1)`` after each scheme (the CLI's bar on a terminal)."""
    rows = []
    for width in bits:
        for granularity in granularities:
            for rounding in roundings:
                config = QuantConfig(f"int{width}", granularity, rounding)
                quantized = quantize_model(model, config)
                rows.append(
                    {
                        "bits": width,
                        "granularity": granularity,
                        "rounding": rounding,
                        "applied_rounding": quantized.rounding,
                        **fidelity(model, quantized, X, y),
                        "parameter_bytes": quantized_parameter_bytes(
                            model.n_features, width, quantized.scale.size
                        ),
                    }
                )
                if progress:
                    progress(1)
    return rows
