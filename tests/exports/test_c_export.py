"""C99 export: the header compiles cleanly and strictly, has no undefined behaviour under the
sanitizers, and gives numpy's bits for the codes, the input quantization and ŷ.

A small driver reads raw binary rows (exact, no text formatting), runs the header's functions
and writes raw binary results back; numpy computes the same from the model object.
"""

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from linreg_ops.errors import InputError
from linreg_ops.exports.c import HEADER_NAME, c_header_text, c_string

SHA = "0123456789abcdef" * 4
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
SANITIZE = [
    "-fsanitize=undefined,float-cast-overflow,float-divide-by-zero,address",
    "-fno-sanitize-recover=all",
    "-g",
]

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "linreg_model.h"

/* driver codes|quantize IN OUT, or driver names OUT: raw native-endian binary in and out. */
static void *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    void *data;
    long end;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (end = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        exit(3);
    *size = (size_t)end;
    data = malloc(*size ? *size : 1);
    if (!data || fread(data, 1, *size, f) != *size) exit(3);
    fclose(f);
    return data;
}

int main(int argc, char **argv)
{
    size_t size, rows, i, j;
    FILE *out;
    if (argc == 3 && strcmp(argv[1], "names") == 0) {
        out = fopen(argv[2], "wb");
        if (!out) return 3;
        for (j = 0; linreg_feature_name(j) != NULL; ++j) {
            const char *name = linreg_feature_name(j);
            uint64_t length = (uint64_t)strlen(name);
            fwrite(&length, sizeof length, 1, out);
            fwrite(name, 1, strlen(name), out);
        }
        if (j != LINREG_N_FEATURES || linreg_feature_names[0] != linreg_feature_name(0)) return 4;
        return fclose(out) == 0 ? 0 : 3;
    }
    if (argc != 4) return 2;
    out = fopen(argv[3], "wb");
    if (!out) return 3;
    if (strcmp(argv[1], "codes") == 0) {
        int16_t *codes = read_all(argv[2], &size);
        rows = size / (sizeof *codes * LINREG_N_FEATURES);
        for (i = 0; i < rows; ++i) {
            int16_t code = linreg_predict_codes(codes + i * LINREG_N_FEATURES);
            fwrite(&code, sizeof code, 1, out);
        }
        free(codes);
    } else if (strcmp(argv[1], "quantize") == 0) {
        double *x = read_all(argv[2], &size);
        rows = size / (sizeof *x * LINREG_N_FEATURES);
        for (i = 0; i < rows; ++i) {
            for (j = 0; j < LINREG_N_FEATURES; ++j) {
                int16_t code = linreg_quantize_input(j, x[i * LINREG_N_FEATURES + j]);
                fwrite(&code, sizeof code, 1, out);
            }
        }
        for (i = 0; i < rows; ++i) {
            double y = linreg_predict(x + i * LINREG_N_FEATURES);
            fwrite(&y, sizeof y, 1, out);
        }
        if (linreg_quantize_input(LINREG_N_FEATURES, 1.0) != 0) return 4;
        free(x);
    } else {
        return 2;
    }
    return fclose(out) == 0 ? 0 : 3;
}
"""

OBJECT_UNIT = """
#include "linreg_model.h"
int16_t export_predict_codes(const int16_t *codes) { return linreg_predict_codes(codes); }
int16_t export_quantize_input(size_t j, double x) { return linreg_quantize_input(j, x); }
double export_predict(const double *x) { return linreg_predict(x); }
"""


def compiler() -> str:
    found = shutil.which("cc")
    if found is None:
        pytest.fail("no C compiler 'cc' on PATH: install one, e.g. apt-get install gcc")
    return found


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, **kwargs
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result


class Driver:
    """The driver compiled against one header, strict (-O2) or sanitized."""

    def __init__(self, integer, folder: Path, flags: list[str]):
        self.integer = integer
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / HEADER_NAME).write_text(c_header_text(integer, artifact_sha256=SHA))
        (folder / "driver.c").write_text(DRIVER)
        self.binary = folder / "driver"
        run([compiler(), *STRICT, *flags, "driver.c", "-o", str(self.binary)], cwd=folder)

    def codes(self, codes: np.ndarray) -> np.ndarray:
        source, target = self.folder / "codes.bin", self.folder / "codes.out"
        np.ascontiguousarray(codes, dtype=np.int16).tofile(source)
        run([str(self.binary), "codes", str(source), str(target)])
        return np.fromfile(target, dtype=np.int16)

    def quantize(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        source, target = self.folder / "x.bin", self.folder / "x.out"
        np.ascontiguousarray(X, dtype=np.float64).tofile(source)
        run([str(self.binary), "quantize", str(source), str(target)])
        data = target.read_bytes()
        n = len(X) * self.integer.n_features
        codes = np.frombuffer(data[: 2 * n], dtype=np.int16).reshape(X.shape)
        return codes, np.frombuffer(data[2 * n :], dtype=np.float64)

    def names(self) -> list[bytes]:
        target = self.folder / "names.out"
        run([str(self.binary), "names", str(target)])
        data, names, width = target.read_bytes(), [], np.dtype(np.uint64).itemsize
        while data:
            length = int(np.frombuffer(data[:width], dtype=np.uint64)[0])
            names.append(data[width : width + length])
            data = data[width + length :]
        return names


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
    codes, y = driver.quantize(X)
    reference_codes, _ = integer.quantize_inputs(X)
    np.testing.assert_array_equal(codes.astype(np.int64), reference_codes)
    np.testing.assert_array_equal(y.view(np.int64), integer.predict(X).view(np.int64))


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
    codes, y = driver.quantize(X)
    zero_codes, _ = integer.quantize_inputs(np.zeros((1, integer.n_features)))
    qmin, qmax = integer.input_range
    assert (codes[:2] == zero_codes).all()  # NaN: the code of 0.0
    assert (codes[2] == qmax).all()
    assert (codes[3] == qmin).all()
    assert (codes[4:] == zero_codes).all()
    assert np.isfinite(y).all()


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
