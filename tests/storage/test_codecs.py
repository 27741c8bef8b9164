"""Codecs: exact round trips, deterministic bytes, and a schema that refuses what cannot be
a model — each refusal one line that names the file and the field."""

import json

import numpy as np
import pytest

from linreg_ops.errors import ArtifactError
from linreg_ops.storage import codecs


@pytest.fixture(scope="module")
def documents(models):
    return {
        "float": json.loads(codecs.encode_float(models.float)),
        "quantized": json.loads(codecs.encode_quantized(models.quantized)),
        "integer": json.loads(codecs.encode_integer(models.integer)),
    }


DECODERS = {
    "float": codecs.decode_float,
    "quantized": codecs.decode_quantized,
    "integer": codecs.decode_integer,
}


def _encode(payload) -> bytes:
    return json.dumps(payload).encode()


def test_float_round_trip_is_exact(models, test_rows):
    again = codecs.decode_float(codecs.encode_float(models.float), "m")
    X = test_rows[1][:, :-1]
    np.testing.assert_array_equal(again.predict(X), models.float.predict(X))
    assert codecs.encode_float(again) == codecs.encode_float(models.float)


def test_quantized_round_trip_is_exact(models, test_rows):
    again = codecs.decode_quantized(codecs.encode_quantized(models.quantized), "q")
    X = test_rows[1][:, :-1]
    np.testing.assert_array_equal(again.predict(X), models.quantized.predict(X))
    assert again.weights.dtype == np.int64
    assert again.feature_mean.dtype == np.float32


def test_integer_round_trip_is_exact(models, test_rows):
    again = codecs.decode_integer(codecs.encode_integer(models.integer), "i")
    X = test_rows[1][:, :-1]
    np.testing.assert_array_equal(again.predict_codes(X)[0], models.integer.predict_codes(X)[0])
    assert codecs.encode_integer(again) == codecs.encode_integer(models.integer)


def test_json_bytes_sorts_keys_and_refuses_nan():
    assert codecs.json_bytes({"b": 1, "a": {"d": 2, "c": 3}}) == codecs.json_bytes(
        {"a": {"c": 3, "d": 2}, "b": 1}
    )
    assert codecs.json_bytes({"b": 1, "a": 2}).index(b'"a"') < codecs.json_bytes(
        {"b": 1, "a": 2}
    ).index(b'"b"')
    with pytest.raises(ValueError, match="not JSON compliant"):
        codecs.json_bytes({"x": float("nan")})


def _set_correlation(document: dict, i: int, j: int, value: float, mirror: float | None = None):
    matrix = document["training_statistics"]["standardized_correlation"]
    matrix[i][j] = value
    matrix[j][i] = value if mirror is None else mirror


# (kind, edit of the document, words the one-line message must contain)
BAD_EDITS = [
    ("float", lambda d: d.update(coef=d["coef"][:-1]), "coef has 7 values, expected 8"),
    ("float", lambda d: d.update(intercept="1.0"), "intercept: Input should be a valid number"),
    ("float", lambda d: d.update(intercept=True), "intercept"),
    ("float", lambda d: d.update(coef=[1e400] * 8), "coef[0]: Input should be a finite number"),
    (
        "float",
        lambda d: d["training_statistics"].update(feature_std=[0.0] * 8),
        "feature_std must be positive",
    ),
    ("float", lambda d: d.update(features=["a"] * 8), "features lists a name twice"),
    # second attack: an indefinite matrix loaded, then crashed quantize (LinAlgError)
    ("float", lambda d: _set_correlation(d, 0, 1, 5.0), "must be positive semi-definite"),
    ("float", lambda d: _set_correlation(d, 0, 1, 0.5, 0.4), "must be symmetric"),
    ("float", lambda d: _set_correlation(d, 2, 2, 3.0), "1 (or 0) on its diagonal"),
    ("float", lambda d: d.update(extra=1), "extra: Extra inputs are not permitted"),
    ("float", lambda d: d.pop("target"), "target: Field required"),
    ("float", lambda d: d.update(schema_version=99), "written by a newer linreg-ops"),
    ("float", lambda d: d.update(schema_version=1), "written by an older linreg-ops"),
    ("float", lambda d: d.update(schema_version="2"), "no integer schema_version"),
    (
        "quantized",
        lambda d: d.update(weights=[1000, *d["weights"][1:]]),
        "weights must lie in [-127, 127]",
    ),
    ("quantized", lambda d: d.update(scale=[-0.5]), "scale must be positive"),
    ("quantized", lambda d: d.update(scale=[0.1]), "scale must hold float32 values"),
    (
        "quantized",
        lambda d: d.update(bias=2**40),
        "bias: Input should be less than or equal to 2147483647",
    ),
    ("quantized", lambda d: d.update(bits=4), "bits/symmetric do not match dtype int8"),
    ("quantized", lambda d: d.update(granularity="per-channel"), "scale has 1 values, expected 8"),
    ("quantized", lambda d: d.update(dtype="int99"), "unsupported dtype 'int99'"),
    ("integer", lambda d: d.update(shift=200), "shift: Input should be less than or equal to 62"),
    (
        "integer",
        lambda d: d.update(multiplier=5),
        "multiplier: Input should be greater than or equal to 1073741824",
    ),
    ("integer", lambda d: d.update(weights=[127] * 8, bias=2**31 - 1), "beyond int32"),
    ("integer", lambda d: d.update(input_bits=12), "input_bits"),
    ("integer", lambda d: d.update(input_zero_point=[0] * 7), "input_zero_point has 7 values"),
    ("integer", lambda d: d.update(weight_dtype="uint8"), "weight_dtype must be a symmetric intN"),
    ("integer", lambda d: d.update(output_scale=0.0), "output_scale must be positive"),
]


@pytest.mark.parametrize(("kind", "edit", "words"), BAD_EDITS)
def test_schema_refuses_what_cannot_be_a_model(documents, kind, edit, words):
    payload = json.loads(json.dumps(documents[kind]))
    edit(payload)
    with pytest.raises(ArtifactError) as caught:
        DECODERS[kind](_encode(payload), f"{kind}.json")
    message = str(caught.value)
    assert words in message
    assert message.startswith(f"{kind}.json ")
    assert "\n" not in message


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b"null",
        b"7",
        b'"text"',
        b"{",
        b"[" * 5000 + b"]" * 5000,
        b'{"schema_version": NaN}',
    ],
)
def test_non_documents_are_refused_in_one_line(data):
    with pytest.raises(ArtifactError) as caught:
        codecs.decode_float(data, "model.json")
    assert "\n" not in str(caught.value)


def test_unknown_fields_are_named(documents):
    payload = json.loads(json.dumps(documents["integer"]))
    payload["surprise"] = 1
    with pytest.raises(ArtifactError, match="surprise"):
        codecs.decode_integer(_encode(payload), "integer_model.json")
