"""linreg-ops: a reproducible linear-regression pipeline, from data to a quantized, served model."""

__version__ = "0.2.0"
