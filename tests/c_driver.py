"""A small C driver around the exported header: it reads raw binary rows (exact, no text
formatting), runs the header's functions and writes raw binary results back. Used by the C
export's own tests and by the cross-runtime agreement tests."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from linreg_ops.exports.c import HEADER_NAME, c_header_text

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
        for (i = 0; i < rows; ++i) {
            double y;
            int8_t flag = (int8_t)linreg_predict_clipped(x + i * LINREG_N_FEATURES, &y);
            fwrite(&y, sizeof y, 1, out);
            fwrite(&flag, sizeof flag, 1, out);
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
int export_predict_clipped(const double *x, double *y) { return linreg_predict_clipped(x, y); }
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
        """Input codes and ``linreg_predict``'s y."""
        return self.run_rows(X)[:2]

    def run_rows(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Input codes, ``linreg_predict``'s y, and ``linreg_predict_clipped``'s y and flag."""
        source, target = self.folder / "x.bin", self.folder / "x.out"
        np.ascontiguousarray(X, dtype=np.float64).tofile(source)
        run([str(self.binary), "quantize", str(source), str(target)])
        data = target.read_bytes()
        n, rows = len(X) * self.integer.n_features, len(X)
        codes = np.frombuffer(data[: 2 * n], dtype=np.int16).reshape(X.shape)
        y = np.frombuffer(data[2 * n : 2 * n + 8 * rows], dtype=np.float64)
        pairs = np.frombuffer(
            data[2 * n + 8 * rows :], dtype=np.dtype([("y", "<f8"), ("flag", "i1")])
        )
        return codes, y, pairs["y"].copy(), pairs["flag"].astype(np.int64)

    def names(self) -> list[bytes]:
        target = self.folder / "names.out"
        run([str(self.binary), "names", str(target)])
        data, names, width = target.read_bytes(), [], np.dtype(np.uint64).itemsize
        while data:
            length = int(np.frombuffer(data[:width], dtype=np.uint64)[0])
            names.append(data[width : width + length])
            data = data[width + length :]
        return names
