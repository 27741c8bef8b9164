"""C99 export: the header compiles cleanly and strictly, has no undefined behaviour under the
sanitizers, and gives numpy's bits for the codes, the input quantization and ŷ.

A small driver reads raw binary rows (exact, no text formatting), runs the header's functions
and writes raw binary results back; numpy computes the same from the model object.
"""

import shutil
from dataclasses import replace

import numpy as np
import pytest

from c_driver import OBJECT_UNIT, SANITIZE, SHA, STRICT, Driver, compiler, run
from linreg_ops.errors import InputError
from linreg_ops.exports.c import HEADER_NAME, c_header_text, c_string


def code_vectors(integer, n: int, seed: int) -> np.ndarray:
    """Arbitrary int16 code vectors: uniform, in range, all-extreme and weight-sign extremes."""
    rng = np.random.default_rng(seed)
    d = integer.n_features
    qmin, qmax = integer.input_range
    low, high = np.iinfo(np.int16).min, np.iinfo(np.int16).max
    sign = np.sign(integer.weights)
    fixed = np.array(
        [
            np.full(d, low),
            np.full(d, high),
            np.full(d, qmin),
            np.full(d, qmax),
            np.where(sign >= 0, high, low),
            np.where(sign >= 0, low, high),
            np.where(sign >= 0, qmax, qmin),
            np.where(sign >= 0, qmin, qmax),
            np.zeros(d),
        ]
    )
    uniform = rng.integers(low, high, size=(n, d), endpoint=True)
    in_range = rng.integers(qmin, qmax, size=(n, d), endpoint=True)
    extremes = rng.choice([low, high, qmin, qmax, qmin + 1, qmax - 1, 0, -1, 1], size=(n, d))
    return np.concatenate([fixed, uniform, in_range, extremes]).astype(np.int16)


def reference_output_codes(integer, codes: np.ndarray) -> np.ndarray:
    """numpy's requantize(accumulate(codes)), codes saturated to the input range first."""
    clipped = np.clip(codes.astype(np.int64), *integer.input_range)
    return integer.requantize(integer.accumulate(clipped))


def check_driver(driver: Driver, X: np.ndarray) -> None:
    integer = driver.integer
    vectors = code_vectors(integer, 30_000, seed=3)
    np.testing.assert_array_equal(
        driver.codes(vectors).astype(np.int64), reference_output_codes(integer, vectors)
    )
    codes, y, y_clipped, flags = driver.run_rows(X)
    finite = np.isfinite(X).all(axis=1)
    with np.errstate(over="ignore"):
        reference_codes, _ = integer.quantize_inputs(X)
        reference_y, reference_clipped = integer.predict_clipped(X[finite])
    inputs = np.isfinite(X)  # a non-finite value has no code in numpy; the header gives 0.0's
    np.testing.assert_array_equal(codes.astype(np.int64)[inputs], reference_codes[inputs])
    for answer in (y, y_clipped):
        np.testing.assert_array_equal(answer[finite].view(np.int64), reference_y.view(np.int64))
        assert np.isnan(answer[~finite]).all()
    np.testing.assert_array_equal(flags[finite], reference_clipped.astype(np.int64))
    assert (flags[~finite] == -1).all()


@pytest.fixture(scope="module")
def models(cal_models, quantize_variants, fit):
    """California int8×int16, int8 weights × int8 inputs, a gain of 8 (output clips), and a
    40-feature synthetic model with int4 weights and feature names C must escape."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(500, 40)) * 10.0 ** rng.uniform(-2, 3, 40) + rng.uniform(-1e3, 1e3, 40)
    names = [f"feature {j}" for j in range(40)]
    names[:8] = [
        'a "quote"',
        "back\\slash",
        "*/ closes",
        "/* opens",
        "tri??/graph",
        "new\nline",
        "ünï ☃",
        "",
    ]
    wide = fit(X, X @ rng.normal(size=40) + rng.normal(size=500), names=names)
    return {
        "cal_models-int8-int16": cal_models.integer,
        "cal_models-int8-int8": quantize_variants(cal_models.model, "int8", input_dtype="int8"),
        "cal_models-loud": replace(cal_models.integer, shift=cal_models.integer.shift - 3),
        "synthetic-int4-int16": quantize_variants(wide, "int4", input_dtype="int16"),
    }


@pytest.mark.parametrize(
    "name",
    ["cal_models-int8-int16", "cal_models-int8-int8", "cal_models-loud", "synthetic-int4-int16"],
)
def test_header_bit_for_bit_strict_build(cal_models, models, name, edge_rows, tmp_path):
    integer = models[name]
    driver = Driver(integer, tmp_path / name, ["-O2"])
    stats = cal_models.model.stats
    limits = (stats.minimum, stats.maximum) if name.startswith("cal_models") else None
    X = edge_rows(integer, 100_000, seed=5, limits=limits)  # the ONNX tests' rows
    check_driver(driver, X)
    if name == "cal_models-loud":
        out = reference_output_codes(integer, code_vectors(integer, 30_000, seed=3))
        assert (out == -32768).any()
        assert (out == 32767).any()
        # Rows whose inputs all stay inside their codes but whose output saturates: flagged.
        with np.errstate(over="ignore"):
            _, inputs_clipped = integer.quantize_inputs(X)
            _, clipped = integer.predict_clipped(X)
        flags = driver.run_rows(X)[3]
        saturated = clipped & ~inputs_clipped
        assert saturated.sum() > 100
        assert (flags[saturated] == 1).all()


@pytest.mark.parametrize(
    "name",
    ["cal_models-int8-int16", "cal_models-int8-int8", "cal_models-loud", "synthetic-int4-int16"],
)
def test_header_has_no_undefined_behaviour_under_sanitizers(models, name, edge_rows, tmp_path):
    integer = models[name]
    driver = Driver(integer, tmp_path / name, SANITIZE)
    X = edge_rows(integer, 5_000, seed=6)
    check_driver(driver, X)
    # Beyond what numpy defines: NaN, the largest doubles, subnormals. No UB, saturated codes.
    special = np.array(
        [np.nan, -np.nan, np.finfo(np.float64).max, -np.finfo(np.float64).max, 5e-324, -5e-324]
    )
    X = np.tile(special[:, None], (1, integer.n_features))
    codes, y, _, flags = driver.run_rows(X)
    zero_codes, _ = integer.quantize_inputs(np.zeros((1, integer.n_features)))
    qmin, qmax = integer.input_range
    assert (codes[:2] == zero_codes).all()  # NaN: the code of 0.0
    assert (codes[2] == qmax).all()
    assert (codes[3] == qmin).all()
    assert (codes[4:] == zero_codes).all()
    assert np.isnan(y[:2]).all()  # NaN: refused, as predict refuses it
    assert (flags[:2] == -1).all()
    assert np.isfinite(y[2:]).all()
    assert (flags[2:4] == 1).all()  # the largest doubles: clipped


def test_feature_names_are_escaped_exactly(models, tmp_path):
    integer = models["synthetic-int4-int16"]
    driver = Driver(integer, tmp_path / "names", ["-O2"])
    assert driver.names() == [name.encode() for name in integer.feature_names]
    header = c_header_text(integer, artifact_sha256=SHA)
    comment = header[: header.index("*/\n#ifndef")]
    assert "*/" not in comment[2:]
    assert "/*" not in comment[2:]
    assert "??" not in header
    assert header.isascii()


def test_c_string_escapes():
    assert c_string('a"b\\c?d') == r'"a\"b\\c\?d"'
    assert c_string("\n1") == r'"\0121"'  # octal: three digits, so the 1 stays a 1
    assert c_string("é") == r'"\303\251"'


def test_refusals_are_input_errors(cal_models):
    with pytest.raises(InputError, match="integer-only model"):
        c_header_text(cal_models.model, artifact_sha256=SHA)
    with pytest.raises(InputError, match="64 hexadecimal"):
        c_header_text(cal_models.integer, artifact_sha256="*/")
    with pytest.raises(InputError, match="beyond int64"):
        c_header_text(replace(cal_models.integer, bias=2**62), artifact_sha256=SHA)
    long_name = replace(
        cal_models.integer, feature_names=("x" * 5000, *cal_models.integer.feature_names[1:])
    )
    with pytest.raises(InputError, match="4095 bytes"):
        c_header_text(long_name, artifact_sha256=SHA)


def test_object_size(cal_models, tmp_path):
    """The compiled size of the three functions and the model constants, for the README."""
    (tmp_path / HEADER_NAME).write_text(c_header_text(cal_models.integer, artifact_sha256=SHA))
    (tmp_path / "unit.c").write_text(OBJECT_UNIT)
    run([compiler(), *STRICT, "-O2", "-c", "unit.c", "-o", "unit.o"], cwd=tmp_path)
    size = shutil.which("size")
    sections = run([size, "unit.o"], cwd=tmp_path).stdout if size else ""
    header_bytes = len((tmp_path / HEADER_NAME).read_bytes())
    object_bytes = (tmp_path / "unit.o").stat().st_size
    print(
        f"\nC export: {HEADER_NAME} {header_bytes} bytes; cc -std=c99 -O2 -c: {object_bytes} bytes\n{sections}"
    )
    assert object_bytes < 20_000
