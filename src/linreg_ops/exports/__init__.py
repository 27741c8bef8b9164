"""Exporters: pure functions from a model object to the bytes or text of another format.

``linreg_ops.exports.onnx`` writes ONNX graphs of the three model kinds and
``linreg_ops.exports.c`` a header-only C99 file of the integer-only model. None of them
touches a file or a folder: the CLI and storage layers decide where the bytes go and write
them atomically, so an exporter can be tested, and trusted, on its return value alone.
"""
