"""Checks every exporter shares: what it may promise about a model before writing it out.

The integer exporters reproduce ``IntegerLinearModel.predict_codes`` bit for bit only where
no intermediate value wraps around, so they check the bounds below once, on the model's
constants, and refuse (``InputError``) a model outside them instead of exporting a graph or
a header that would silently disagree with numpy.
"""

import re
from dataclasses import dataclass

import numpy as np

from linreg_ops.errors import InputError
from linreg_ops.model import IntegerLinearModel

__all__ = [
    "INT64_MAX",
    "MAX_CODE_BITS",
    "MAX_SHIFT",
    "MAX_ZERO_POINT",
    "IntegerBounds",
    "checked_sha256",
    "integer_bounds",
]

INT64_MAX = 2**63 - 1
MAX_CODE_BITS = 16  # input and output codes travel as int16
MAX_SHIFT = 62
# |zero point| up to 2^51 keeps every comparison in the C input quantizer exact (see c.py);
# build_integer_model's zero points are far smaller (|low/scale| for a 16-bit grid).
MAX_ZERO_POINT = 2**51

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def checked_sha256(value: str) -> str:
    """The digest in lower case: it is written into comments and metadata, so only hex passes."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise InputError(f"artifact_sha256 must be 64 hexadecimal digits, got {value!r}")
    return value.lower()


@dataclass(frozen=True)
class IntegerBounds:
    """Proven ranges of the integer pipeline's intermediates, for one model.

    ``accumulator``: the largest |Σ_j w_j·q_j + bias| any input codes in range can give (every
    partial sum is bounded by it too, whatever the summation order); ``rounded``: the largest
    |acc·multiplier + 2^(shift−1)|, which must stay inside int64.
    """

    accumulator: int
    rounded: int


def integer_bounds(model: IntegerLinearModel) -> IntegerBounds:
    """Check the integer model's constants and return the ranges the exporters rely on."""
    if model.n_features < 1:
        raise InputError("an integer model without features cannot be exported")
    weights = np.asarray(model.weights)
    if weights.shape != (model.n_features,) or not np.issubdtype(weights.dtype, np.integer):
        raise InputError("the integer model's weights must be one integer per feature")
    if not 2 <= model.input_bits <= MAX_CODE_BITS or not 2 <= model.output_bits <= MAX_CODE_BITS:
        raise InputError(
            f"input and output codes must have 2 to {MAX_CODE_BITS} bits, "
            f"got {model.input_bits} and {model.output_bits}"
        )
    if not 1 <= model.shift <= MAX_SHIFT:
        raise InputError(f"the requantization shift {model.shift} is outside 1..{MAX_SHIFT}")
    if not 0 <= model.multiplier < 2**31:
        raise InputError(f"the requantization multiplier {model.multiplier} is not an int32 ≥ 0")
    zero_points = [int(z) for z in np.asarray(model.input_zero_point).ravel()]
    if len(zero_points) != model.n_features or any(abs(z) > MAX_ZERO_POINT for z in zero_points):
        raise InputError(
            f"input zero points must be one per feature with |zero point| ≤ 2^51, got {zero_points}"
        )
    scales = np.asarray(model.input_scale, dtype=np.float64)
    positive = bool(np.isfinite(scales).all() and (scales > 0).all())
    if scales.shape != (model.n_features,) or not positive:
        raise InputError("input scales must be one finite positive number per feature")
    code_max = 2 ** (model.input_bits - 1)  # |qmin| = 2^(b−1) ≥ qmax
    accumulator = sum(abs(int(w)) for w in weights) * code_max + abs(int(model.bias))
    rounded = accumulator * model.multiplier + 2 ** (model.shift - 1)
    if rounded > INT64_MAX:
        raise InputError(
            f"integer-only requantization could reach {rounded:,}, beyond int64: "
            "the model cannot be exported exactly"
        )
    return IntegerBounds(accumulator=accumulator, rounded=rounded)
