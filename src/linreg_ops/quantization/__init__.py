"""The quantization wing: a float model to real low-bit integer models, measured and gated.

- ``rounding``: nearest, Hessian-aware (GPTQ-style) and optimal (sphere-decoded) rounding.
- ``quantize``: the quantized model (integer weights) and the integer-only model.
- ``gate``: fidelity to the float model and the limits a published model must meet.
- ``sweep``: every bit width × granularity × rounding, measured on the same rows.
"""

__all__ = ["gate", "quantize", "rounding", "sweep"]
