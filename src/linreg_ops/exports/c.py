"""A header-only C99 file of the integer-only model: ``linreg_model.h``.

The header holds the model as ``static const`` data and four ``static inline`` functions,
so it can be included in any number of translation units and unused parts cost nothing:

* ``linreg_quantize_input(j, x)``: the float boundary, x / input_scale_j rounded half to
  even, plus the zero point, saturated to the input codes;
* ``linreg_predict_codes(codes)``: integer operations only, int64 accumulation and the
  floor shift (acc·M + 2^(s−1)) >> s of ``IntegerLinearModel.requantize``;
* ``linreg_predict_clipped(x, &y)``: both, times ``output_scale``, as
  ``IntegerLinearModel.predict_clipped``: returns 1 where predict flags the row clipped (an
  input outside its codes, or the output saturated), 0 where not, and −1 with y = NaN for a
  row outside the domain (a NaN or infinite value), which ``predict`` refuses;
* ``linreg_predict(x)``: the same y alone;
* ``linreg_feature_name(j)``: the feature names, also listed in the opening comment.

Each function gives the numpy reference's bits on every input it defines, and has no
undefined behaviour on any input: see the comments in the generated text. Feature names go
only into string literals and comments, escaped, so any name yields valid C.
"""

import numpy as np

from linreg_ops._version import __version__
from linreg_ops.errors import InputError
from linreg_ops.exports._common import checked_sha256, integer_bounds
from linreg_ops.model import IntegerLinearModel

__all__ = [
    "C_STRING_MAX",
    "HEADER_NAME",
    "c_comment_text",
    "c_header_text",
    "c_string",
]

HEADER_NAME = "linreg_model.h"
C_STRING_MAX = 4095  # bytes in one string literal that C99 (5.2.4.1) guarantees


def c_string(text: str) -> str:
    """A C string literal for any text: printable ASCII as is, every other byte in octal.

    Octal escapes stop after three digits, so a following digit cannot join them (a hex
    escape would swallow it); ``?`` is escaped so no trigraph can form.
    """
    pieces = []
    for byte in text.encode("utf-8", "surrogatepass"):
        char = chr(byte)
        if char in '"\\?':
            pieces.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            pieces.append(char)
        else:
            pieces.append(f"\\{byte:03o}")
    return '"' + "".join(pieces) + '"'


def c_comment_text(text: str) -> str:
    """``c_string`` with ``*`` escaped too, so neither ``*/`` nor ``/*`` can occur in a comment."""
    return c_string(text).replace("*", "\\052")


def _hex_double(value: float) -> str:
    """An exact C99 hexadecimal floating constant (the value, bit for bit)."""
    return float(value).hex()


def _int64(value: int) -> str:
    """An int64_t constant; -2^63 has no literal of its own, so it is written as a difference."""
    if value == -(2**63):
        return "(-INT64_C(9223372036854775807) - 1)"
    return f"INT64_C({value})" if value >= 0 else f"-INT64_C({-value})"


def _array(values: list[str], per_line: int = 4) -> str:
    lines = [", ".join(values[i : i + per_line]) for i in range(0, len(values), per_line)]
    return "{\n    " + ",\n    ".join(lines) + "\n}"


def c_header_text(model: IntegerLinearModel, *, artifact_sha256: str) -> str:
    """The text of ``linreg_model.h`` for ``model``; refuses models it cannot make exact."""
    if not isinstance(model, IntegerLinearModel):
        raise InputError(f"the C export takes an integer-only model, not {type(model).__name__}")
    digest = checked_sha256(artifact_sha256)
    bounds = integer_bounds(model)
    texts = (model.target_name, *model.feature_names)
    too_long = [n for n in texts if len(n.encode("utf-8", "surrogatepass")) > C_STRING_MAX]
    if too_long:
        raise InputError(
            f"feature name {too_long[0][:40]!r}… is longer than the {C_STRING_MAX} bytes a C99 "
            "string literal may hold"
        )
    d = model.n_features
    qmin, qmax = model.input_range
    omin, omax = model.output_range
    weights = [int(w) for w in np.asarray(model.weights)]
    zero_points = [int(z) for z in np.asarray(model.input_zero_point)]
    scales = [float(s) for s in np.asarray(model.input_scale, dtype=np.float64)]
    name_lines = "\n".join(
        f" *   {j:>4}  {c_comment_text(name)}" for j, name in enumerate(model.feature_names)
    )
    names = _array([c_string(name) for name in model.feature_names], per_line=1)
    weight_array = _array([str(w) for w in weights], per_line=8)
    scale_array = _array([_hex_double(s) for s in scales])
    zero_point_array = _array([_int64(z) for z in zero_points])
    version = __version__
    return f"""\
/* {HEADER_NAME}: integer-only linear regression, exported by linreg-ops {version}.
 *
 * artifact sha256: {digest}
 * target: {c_comment_text(model.target_name)}
 * weights {model.weight_dtype}, inputs int{model.input_bits}, output int{model.output_bits}
 * features (LINREG_N_FEATURES = {d}), in input order:
{name_lines}
 *
 * y = output_scale * linreg_predict_codes(q) with q_j = linreg_quantize_input(j, x_j): the
 * same bits as IntegerLinearModel.predict_codes and predict in linreg-ops, and the same
 * clipped flags (linreg_predict_clipped), on every finite input; NaN and infinity, which
 * linreg-ops refuses, give y = NaN and the flag -1.
 * Integer ranges (checked when the header was written): |accumulator| <= {bounds.accumulator},
 * |accumulator * multiplier + 2^(shift-1)| <= {bounds.rounded} < 2^63.
 */
#ifndef LINREG_MODEL_H
#define LINREG_MODEL_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* Bit-exact quantization needs IEEE double arithmetic evaluated in double. */
#if FLT_EVAL_METHOD != 0 && FLT_EVAL_METHOD != 1
#error "linreg_model.h needs FLT_EVAL_METHOD 0 or 1 (on 32-bit x86: -msse2 -mfpmath=sse)"
#endif
#ifdef __FAST_MATH__
#error "linreg_model.h needs IEEE semantics: compile without -ffast-math"
#endif

#define LINREG_N_FEATURES {d}
#define LINREG_ARTIFACT_SHA256 "{digest}"
#define LINREG_INPUT_MIN ({qmin})
#define LINREG_INPUT_MAX {qmax}
#define LINREG_OUTPUT_MIN ({omin})
#define LINREG_OUTPUT_MAX {omax}

/* Integer weights per input code, the bias at the accumulator scale (it already holds
 * -sum_j weight_j * zero_point_j), and the requantization out = (acc * M + 2^(s-1)) >> s. */
static const int32_t linreg_weights[LINREG_N_FEATURES] = {weight_array};
static const int64_t linreg_bias = {_int64(int(model.bias))};
static const int64_t linreg_multiplier = {_int64(int(model.multiplier))};
static const int linreg_shift = {model.shift};

/* Inputs: q_j = clamp(round_half_even(x_j / scale_j) + zero_point_j, INPUT_MIN, INPUT_MAX);
 * the scales are float32 values, written as exact hexadecimal doubles. */
static const double linreg_input_scale[LINREG_N_FEATURES] = {scale_array};
static const int64_t linreg_input_zero_point[LINREG_N_FEATURES] = {zero_point_array};
static const double linreg_output_scale = {_hex_double(model.output_scale)};

static const char *const linreg_feature_names[LINREG_N_FEATURES] = {names};

/* The name of feature j (in input order), or NULL past the last one. */
static inline const char *linreg_feature_name(size_t j)
{{
    return j < LINREG_N_FEATURES ? linreg_feature_names[j] : NULL;
}}

/* The output code for input codes codes[0..LINREG_N_FEATURES-1] before it is saturated to
 * [OUTPUT_MIN, OUTPUT_MAX]; each input code is first saturated to [INPUT_MIN, INPUT_MAX], as
 * linreg_quantize_input would have produced it.
 *
 * Integer operations only. The accumulator is exact in int64 (bound above). The product and
 * the floor shift are done in uint64, where wrap-around is defined: the bits of
 * t = acc * M + 2^(s-1) are t mod 2^64, and u = t + 2^63 (mod 2^64) is the exact integer
 * t + 2^63 in [0, 2^64) because -2^63 <= t < 2^63. Then u >> s = floor(t / 2^s) + 2^(63-s)
 * (2^s divides 2^63) is below 2^63, so it converts to int64 unchanged, and subtracting
 * 2^(63-s) gives floor(t / 2^s) without right-shifting a negative value (implementation-
 * defined in C99) and without signed overflow. */
static inline int64_t linreg_unsaturated_code(const int16_t *codes)
{{
    int64_t acc = linreg_bias;
    uint64_t t, u;
    size_t j;
    for (j = 0; j < LINREG_N_FEATURES; ++j) {{
        int64_t q = codes[j];
        if (q < LINREG_INPUT_MIN) q = LINREG_INPUT_MIN;
        if (q > LINREG_INPUT_MAX) q = LINREG_INPUT_MAX;
        acc += (int64_t)linreg_weights[j] * q;
    }}
    t = (uint64_t)acc * (uint64_t)linreg_multiplier + ((uint64_t)1 << (linreg_shift - 1));
    u = t + ((uint64_t)1 << 63);
    return (int64_t)(u >> linreg_shift) - (int64_t)((uint64_t)1 << (63 - linreg_shift));
}}

/* The output code for input codes codes[0..LINREG_N_FEATURES-1]: linreg_unsaturated_code
 * saturated to [OUTPUT_MIN, OUTPUT_MAX]. Integer operations only. */
static inline int16_t linreg_predict_codes(const int16_t *codes)
{{
    int64_t out = linreg_unsaturated_code(codes);
    if (out < LINREG_OUTPUT_MIN) out = LINREG_OUTPUT_MIN;
    if (out > LINREG_OUTPUT_MAX) out = LINREG_OUTPUT_MAX;
    return (int16_t)out;
}}

/* Input code of x for feature j: the float boundary, as numpy computes it; *clipped is set
 * to 1 when the code had to be saturated (and left alone otherwise).
 *
 * r = x / scale_j is one IEEE division in the rounding mode in force; C programs start in
 * round-to-nearest (C99 7.6) and numpy uses it too, so leave it unchanged. Rounding r to an
 * integer uses no rounding mode: for |r| < 2^52 the conversion to int64 truncates (r is in
 * range), r - trunc(r) is exact, and ties go to the even neighbour. |r| >= 2^52 (and
 * infinity) saturates: |zero_point| <= 2^51, so r + zero_point is then far outside the codes.
 * NaN, which has no code in linreg-ops (predict refuses it; linreg_predict_clipped returns
 * -1), gives the code of 0.0; j past the last feature gives 0. */
static inline int16_t linreg_quantize_input_clipped(size_t j, double x, int *clipped)
{{
    double r, fraction;
    int64_t i;
    if (j >= LINREG_N_FEATURES) return 0;
    r = x / linreg_input_scale[j];
    if (r != r) r = 0.0;
    if (r >= 0x1p52) {{ *clipped = 1; return LINREG_INPUT_MAX; }}
    if (r <= -0x1p52) {{ *clipped = 1; return LINREG_INPUT_MIN; }}
    i = (int64_t)r;
    fraction = r - (double)i;
    if (fraction > 0.5 || (fraction == 0.5 && i % 2 != 0)) {{
        i += 1;
    }} else if (fraction < -0.5 || (fraction == -0.5 && i % 2 != 0)) {{
        i -= 1;
    }}
    i += linreg_input_zero_point[j];
    if (i < LINREG_INPUT_MIN) {{ *clipped = 1; return LINREG_INPUT_MIN; }}
    if (i > LINREG_INPUT_MAX) {{ *clipped = 1; return LINREG_INPUT_MAX; }}
    return (int16_t)i;
}}

/* linreg_quantize_input_clipped without the flag. */
static inline int16_t linreg_quantize_input(size_t j, double x)
{{
    int clipped = 0;
    return linreg_quantize_input_clipped(j, x, &clipped);
}}

/* The prediction *y for raw features x[0..LINREG_N_FEATURES-1]: output code times
 * output_scale, the float64 product IntegerLinearModel.predict forms. Returns predict's
 * clipped flag: 1 when an input lay outside its codes or the output code saturated (the
 * answer is the end of the model's range, not the row's own), 0 otherwise. A NaN or
 * infinite input is outside the domain linreg-ops answers: -1, and *y is NaN. */
static inline int linreg_predict_clipped(const double *x, double *y)
{{
    int16_t codes[LINREG_N_FEATURES];
    int clipped = 0;
    int64_t out;
    size_t j;
    for (j = 0; j < LINREG_N_FEATURES; ++j) {{
        if (!isfinite(x[j])) {{
            *y = NAN;
            return -1;
        }}
    }}
    for (j = 0; j < LINREG_N_FEATURES; ++j) {{
        codes[j] = linreg_quantize_input_clipped(j, x[j], &clipped);
    }}
    out = linreg_unsaturated_code(codes);
    if (out < LINREG_OUTPUT_MIN) {{ clipped = 1; out = LINREG_OUTPUT_MIN; }}
    if (out > LINREG_OUTPUT_MAX) {{ clipped = 1; out = LINREG_OUTPUT_MAX; }}
    *y = (double)out * linreg_output_scale;
    return clipped;
}}

/* linreg_predict_clipped's *y alone: NaN for a row with a NaN or infinite input. */
static inline double linreg_predict(const double *x)
{{
    double y;
    (void)linreg_predict_clipped(x, &y);
    return y;
}}

#endif /* LINREG_MODEL_H */
"""
